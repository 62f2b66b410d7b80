"""Image folders are read safely (issue 13, kind 4): only regular files within 64 MiB and
89,478,485 pixels (checked from the header before decoding); FIFOs, devices, symlink loops and
class folders symlinked back into the root are skipped and reported, never followed or read."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from conftest import jpeg_bytes, time_limit

from studies.measure.images import (
    MAX_IMAGE_PIXELS,
    ImageFolderDataset,
    check_pixels,
    file_problem,
    list_images,
    load_image,
    scan_images,
)

W2I = {"n01440764": 0, "n01443537": 1}


def png_header_only(w: int, h: int) -> bytes:
    """A tiny PNG whose header declares ``w`` × ``h`` (RGB, 8 bit) — a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "n01440764_a.JPEG").write_bytes(jpeg_bytes(seed=1))
    (root / "n01443537").mkdir()
    (root / "n01443537" / "b.JPEG").write_bytes(jpeg_bytes(seed=2))
    return root


def test_fifo_device_and_loop_are_skipped_and_reported_without_hanging(folder):
    os.mkfifo(folder / "n01440764_fifo.JPEG")
    (folder / "n01440764_zero.JPEG").symlink_to("/dev/zero")
    (folder / "n01440764_loop.JPEG").symlink_to(folder / "n01440764_loop.JPEG")
    (folder / "n01440764_dangling.JPEG").symlink_to(folder / "missing.JPEG")
    with time_limit(20):
        files, skipped = scan_images(folder)
        ds = ImageFolderDataset(folder, W2I)
        items = [ds[i] for i in range(len(ds))]
        with pytest.raises(ValueError, match="FIFO"):
            load_image(folder / "n01440764_fifo.JPEG")
        with pytest.raises(ValueError, match="device"):
            load_image(folder / "n01440764_zero.JPEG")
    assert [p.name for p in files] == ["n01440764_a.JPEG", "b.JPEG"]
    reasons = {Path(p).name: why for p, why in skipped}
    assert reasons == {"n01440764_dangling.JPEG": "cannot read: No such file or directory",
                       "n01440764_fifo.JPEG": "not a regular file (a FIFO)",
                       "n01440764_loop.JPEG": "cannot read: Too many levels of symbolic links",
                       "n01440764_zero.JPEG": "not a regular file (a device)"}
    assert [Path(p).name for p, _, _ in ds.samples] == ["n01440764_a.JPEG", "b.JPEG"]
    assert {Path(p).name: why for p, why in ds.skipped} == reasons
    assert all(it.error is None and it.image.shape == (3, 224, 224) for it in items)


def test_class_folder_symlinked_to_the_root_is_not_followed(folder):
    (folder / "n01443537_x").symlink_to(folder)  # a "class folder" that is the root itself
    (folder / "n01440764").symlink_to(folder / "n01443537")  # another class folder, twice, wrong class
    ds = ImageFolderDataset(folder, W2I)
    assert [(Path(p).name, w) for p, w, _ in ds.samples] == [("n01440764_a.JPEG", "n01440764"), ("b.JPEG", "n01443537")]
    assert sorted(Path(p).name for p, _ in ds.skipped) == ["n01440764", "n01443537_x"]
    assert all("not followed" in why for _, why in ds.skipped)
    assert [p.name for p in list_images(folder)] == ["n01440764_a.JPEG", "b.JPEG"]


def test_symlinked_class_folder_outside_the_root_is_used_once(tmp_path, folder):
    elsewhere = tmp_path / "store" / "n01440764"
    elsewhere.mkdir(parents=True)
    (elsewhere / "c.JPEG").write_bytes(jpeg_bytes(seed=3))
    (folder / "n01440764").symlink_to(elsewhere)
    ds = ImageFolderDataset(folder, W2I)
    assert [(Path(p).name, w) for p, w, _ in ds.samples] == [
        ("c.JPEG", "n01440764"), ("n01440764_a.JPEG", "n01440764"), ("b.JPEG", "n01443537")]


def test_pixel_bomb_is_refused_from_its_header(folder):
    data = png_header_only(40000, 40000)
    assert len(data) < 200
    (folder / "n01440764_bomb.png").write_bytes(data)
    with pytest.raises(ValueError, match="pixels"):
        check_pixels(data)
    with time_limit(10):
        with pytest.raises(ValueError, match="pixels"):
            load_image(folder / "n01440764_bomb.png")
        ds = ImageFolderDataset(folder, W2I)
        bad = [ds[i] for i in range(len(ds)) if ds[i].error]
    assert len(bad) == 1 and "pixels" in bad[0].error
    side = int(MAX_IMAGE_PIXELS ** 0.5)
    check_pixels(png_header_only(side, side))  # at the limit: allowed (decoding may still fail)
    with pytest.raises(ValueError, match=f"{side + 1}×{side}"):
        check_pixels(png_header_only(side + 1, side))


def test_oversized_and_empty_files_are_refused(tmp_path):
    big = tmp_path / "big.JPEG"
    with open(big, "wb") as f:
        f.truncate(64 * 2**20 + 1)
    assert "over the limit of 67,108,864 bytes" in file_problem(big)
    empty = tmp_path / "empty.JPEG"
    empty.write_bytes(b"")
    assert file_problem(empty) == "empty file"
    with pytest.raises(ValueError, match="empty file"):
        load_image(empty)

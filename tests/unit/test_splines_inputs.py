"""Adversarial inputs of the tracer (studies.applications.splines) and of ``circuits trace``'s image loader:
every bad image is refused before any compute with its value range named; the result does not depend on the
image's memory layout (tests/real/test_splines_layout_real.py); ``floor`` touches later maps only; a 16-bit PNG is read on the 8-bit scale."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from random_models import random_inception

from circuits.spec import get_spec
from studies.applications.splines import trace, trace_image


@pytest.fixture(scope="module")
def model():
    return random_inception(get_spec("inceptionv1_caffe"))


def _scene() -> torch.Tensor:
    """A grey 64 x 64 image with a dark 3-px arc and a dark bar (pixel values in [0, 1])."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    img = torch.full((3, 64, 64), 0.6)
    img[:, ((xx - 20) ** 2 + (yy - 40) ** 2).sqrt().sub(16).abs() < 1.5] = 0.1
    img[:, 8:11, 30:60] = 0.2
    return img


@pytest.mark.parametrize("image, match", [
    ((_scene() * 255).to(torch.uint8), r"image must be a float .*got torch.uint8"),
    (_scene() * 255, r"image values must lie in \[0, 1\] \(finite\); got min 25.5, max 153"),
    (torch.where(torch.arange(64) == 5, float("nan"), _scene()), r"got min 0.1, max 0.6, 192 NaN"),
    (_scene().index_fill(2, torch.tensor([3]), float("inf")), r"got min 0.1, max inf"),
    (torch.full((3, 16, 16), 0.5), r"at least 32 x 32 px; got torch.float32 \(3, 16, 16\)"),  # flat, but too small
])
def test_trace_image_refuses_images_outside_0_1_or_too_small_before_any_compute(image, match):
    with pytest.raises(ValueError, match=match):
        trace_image(None, image)  # no model: the check comes first


def test_trace_image_refuses_a_bool_or_huge_mask_px():
    with pytest.raises(ValueError, match=r"mask_px must be > 0 and ≤ 1000 px; got True"):
        trace_image(None, torch.zeros(3, 40, 40), mask_px=True)
    with pytest.raises(ValueError, match=r"mask_px must be > 0 and ≤ 1000 px; got 1000000.0"):  # σ 3·10⁵: minutes
        trace_image(None, torch.zeros(3, 40, 40), mask_px=1e6)
    trace_image(get_spec("inceptionv1_caffe"), torch.zeros(3, 40, 40), mask_px=1000)  # the widest (flat: no map)


def test_trace_accepts_a_tensor_that_requires_grad_and_leaves_it_alone():
    yy, xx = np.mgrid[:48, :48]
    m = np.exp(-(np.hypot(xx - 24, yy - 24) - 14) ** 2 / 2).astype(np.float32)
    t = torch.from_numpy(m).requires_grad_(True)
    av = torch.zeros(48, 48, requires_grad=True)
    a, b = trace(m, steps=10), trace(t, steps=10, avoid=av, mu=0.0)
    assert len(a.ctrl) >= 1
    np.testing.assert_array_equal(a.ctrl, b.ctrl)
    assert t.grad is None and av.grad is None


def test_floor_above_1_leaves_the_first_map_on_its_own_scale(model):
    """``floor`` holds *later* maps to a share of the first map's scale: with one map, any floor gives the
    same splines (a floor of 2 used to divide the first map by twice its own scale, dropping its curves)."""
    kw = dict(explain_rounds=1, steps=20, n_splines=6)
    ref, _ = trace_image(model, _scene(), floor=0.0, **kw)
    assert len(ref.ctrl) >= 1
    for floor in (0.75, 2.0, 1e6):
        res, _ = trace_image(model, _scene(), floor=floor, **kw)
        np.testing.assert_array_equal(res.ctrl, ref.ctrl)


def _png16(rgb16: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of ``rgb16 (H, W, 3)`` uint16, written by hand (PNG spec, colour type 2)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_a_16_bit_png_is_read_on_the_8_bit_scale(tmp_path):
    from studies.applications.commands import load_native

    a = np.zeros((40, 48, 3), np.uint16)
    a[..., 0], a[..., 1], a[5:9, :, 2] = 65535, 128 * 257, 255 * 257
    (tmp_path / "x16.png").write_bytes(_png16(a))
    img = load_native(tmp_path / "x16.png")
    assert img.dtype == torch.float32 and img.shape == (3, 40, 48)
    assert float(img.max()) == 1.0 and float(img.min()) == 0.0
    torch.testing.assert_close(img[1], torch.full((40, 48), 128 / 255), rtol=0, atol=0)
    assert float(img[2, 5:9].min()) == 1.0 and float(img[2, 9:].max()) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(seeds=1.5), r"n_splines, seeds and rounds must be integers ≥ 1; got 24, 1.5, 3"),  # used to pick 2 peaks
    (dict(n_splines="3"), r"must be integers ≥ 1; got '3', 12, 3"),
    (dict(rounds=True), r"must be integers ≥ 1; got 24, 12, True"),
    (dict(min_length=float("nan")), r"min_length must be finite and ≥ 0 px; got nan"),  # used to keep no spline
    (dict(curvatures=(0.0, float("nan"))), r"curvatures must be a non-empty sequence of finite numbers"),
    (dict(curvatures="a"), r"curvatures must be a non-empty sequence of finite numbers \(1/px\); got 'a'"),
    (dict(curvatures=()), r"curvatures must be a non-empty sequence"),
    (dict(avoid=np.full((32, 32), np.nan)), r"avoid mask has NaN or infinite values"),  # used to keep no spline
])
def test_trace_names_bad_counts_curvatures_and_masks(kwargs, match):
    with pytest.raises(ValueError, match=match):
        trace(np.ones((32, 32), np.float32), **kwargs)
    image = torch.zeros(3, 32, 32)
    image[:, 10:12] = 1  # not flat: nothing returns before the checks
    with pytest.raises(ValueError, match=next(iter(kwargs))):  # trace_image: checked before the model is used
        trace_image(None, image, **kwargs)


@pytest.mark.parametrize("cmap, match", [
    (np.ones((1, 1)), r"cmap must be \(H, W\), at least 2 x 2; got \(1, 1\)"),
    (np.ones((0, 5)), r"cmap must be \(H, W\), at least 2 x 2; got \(0, 5\)"),
    (np.ones((8, 8)) * (1 + 1j), "cmap has complex values"),  # used to drop the imaginary part
])
def test_trace_refuses_tiny_and_complex_maps(cmap, match):
    with pytest.raises(ValueError, match=match):
        trace(cmap)


@pytest.mark.parametrize("args, match", [
    ((torch.rand(3, 20, 30), np.zeros((5, 5)), 2.0, torch.zeros(3, 1, 1)), r"mask \(H, W\).*got \(3, 20, 30\), \(5, 5\)"),
    ((torch.rand(1, 20, 30), np.zeros((20, 30)), 2.0, torch.zeros(3, 1, 1)), r"image \(3, H, W\).*got \(1, 20, 30\)"),
    ((torch.rand(3, 20, 30), np.zeros((20, 30)), 2.0, torch.zeros(4, 1, 1)), r"fallback of 3 values.*\(4, 1, 1\)"),
    ((torch.rand(3, 20, 30), np.zeros((20, 30)), float("nan"), torch.zeros(3, 1, 1)), r"sigma must be > 0 and ≤ 1000 px; got nan"),
    ((torch.rand(3, 20, 30), np.zeros((20, 30)), -1.0, torch.zeros(3, 1, 1)), r"sigma .* got -1.0"),  # was: fallback
    ((torch.rand(3, 20, 30), np.zeros((20, 30)), float("inf"), torch.zeros(3, 1, 1)), r"sigma .* got inf"),
    ((torch.rand(3, 20, 30), np.zeros((20, 30)), 1e9, torch.zeros(3, 1, 1)), r"sigma .* got 1000000000.0"),  # OOM
])
def test_local_fill_names_bad_arguments(args, match):
    from studies.applications.splines import local_fill

    with pytest.raises(ValueError, match=match):
        local_fill(*args)


def test_a_png_declaring_too_many_pixels_is_refused_before_decoding(tmp_path):
    """The native-size loader of ``circuits trace``/``curves`` applies the image loader's pixel limit to the
    header (a few bytes can declare 100000 x 100000 px, 30 GB decoded as RGB)."""
    from studies.applications.commands import load_native
    from studies.measure.images import MAX_IMAGE_PIXELS

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    big = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    (tmp_path / "big.png").write_bytes(big)
    with pytest.raises(ValueError, match=rf"big.png: image too large to decode .*{MAX_IMAGE_PIXELS:,} pixels"):
        load_native(tmp_path / "big.png")


def test_numpy_scalars_are_numbers_for_every_setting():
    """``scale=np.quantile(m, 0.995)`` of a float32 map is an ``np.float32``: it used to be refused as "not finite
    and > 0". Numpy scalars give the same splines as Python numbers."""
    from studies.applications.splines import _check_trace_image, local_fill

    yy, xx = np.mgrid[:48, :48]
    m = np.exp(-(np.hypot(xx - 24, yy - 24) - 14) ** 2 / 2).astype(np.float32)
    q = np.quantile(m, 0.995)
    assert isinstance(q, np.float32)
    a = trace(m, steps=20, scale=float(q), tau=0.15, n_splines=5)
    b = trace(m, steps=20, scale=q, tau=np.float32(0.15), n_splines=np.int64(5))
    assert len(a.ctrl) >= 1
    np.testing.assert_array_equal(a.ctrl, b.ctrl)
    _check_trace_image(torch.zeros(3, 40, 40), np.int64(2), np.float32(6.0), np.int64(3), 2, {}, "local",
                       np.float32(0.75))  # no error
    img = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0))
    mask = np.zeros((20, 30), np.float32)
    mask[9:12] = 1
    fb = torch.zeros(3, 1, 1)
    torch.testing.assert_close(local_fill(img, mask, np.float32(2.0), fb), local_fill(img, mask, 2.0, fb), rtol=0, atol=0)


def test_load_native_says_why_an_image_is_refused(tmp_path):
    from PIL import Image

    from studies.applications.commands import load_native

    Image.fromarray(np.full((40, 2000), 128, np.uint8)).save(tmp_path / "long.png")
    with pytest.raises(ValueError, match=r"long.png: image is \(10, 512\) px after shrinking its longer side to 512 px "
                                         r"\(raise max_side, --max-side\); curve maps need at least 32 x 32"):
        load_native(tmp_path / "long.png")
    assert load_native(tmp_path / "long.png", max_side=2000).shape == (3, 40, 2000)
    with pytest.raises(ValueError, match=r"not a regular file \(a folder\)"):  # was: "not found"
        load_native(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"image .*missing.png not found"):
        load_native(tmp_path / "missing.png")


def test_a_scale_so_small_that_the_map_overflows_is_named():
    m = np.zeros((32, 32), np.float32)
    m[16, 4:28] = 1.0
    with pytest.raises(ValueError, match=r"scale 1e-300 is too small for this map: its values overflow float32"):
        trace(m, scale=1e-300)  # used to give no spline (an infinite map)
    assert len(trace(m, scale=1e-6, steps=5).ctrl) >= 1  # values of 10⁶: still traced

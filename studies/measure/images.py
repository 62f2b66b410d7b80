"""Image files: listing a folder, decoding and preprocessing one image, labelled and
unlabelled datasets, and evenly spaced reference images.

One extension list (:data:`IMAGE_EXTENSIONS`) and one listing function
(:func:`list_images`) serve classification, dataset statistics, discovery and the
command line. Two folder layouts are understood, and may be mixed (:data:`LAYOUTS`):

* flat: ``ROOT/<wnid>_<anything>.JPEG`` (the label is the file-name prefix before the first
  ``_``), e.g. ``imagenet-sample-1000/n01440764_tench.JPEG``;
* ImageNet-style: ``ROOT/<wnid>/<anything>.JPEG`` (the label is the folder name).

Only regular files are read (issue 13, kind 4): symlinks are resolved and must end at a regular
file; FIFOs, devices, dangling or looping symlinks, files over :data:`MAX_IMAGE_BYTES` (64 MiB)
and images over :data:`MAX_IMAGE_PIXELS` (89,478,485 pixels, PIL's decompression-bomb limit;
checked from the header **before** decoding) are skipped and reported. A class folder that is a
symlink back into the image root (or to a folder already listed) is not followed.

Preprocessing (:func:`load_image`) is the standard single-crop evaluation: resize the short
side to 256 px (bilinear, antialiased), centre-crop 224x224, RGB in [0, 1]; the model applies
its checkpoint's own normalisation. Reference images for activation statistics
(:func:`load_reference_set`) are resized with PIL, as when the catalogs were frozen.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF

#: File extensions (lower case) taken as images.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")

#: Largest image file read, bytes (64 MiB; ImageNet JPEGs are ~110 kB, the largest ~15 MB).
MAX_IMAGE_BYTES = 64 * 2**20
#: Largest decoded image, pixels: PIL's default ``Image.MAX_IMAGE_PIXELS`` (1024³ // 4 // 3 =
#: 89,478,485, ~256 MiB as 8-bit RGB). A 40000×40000 PNG (1.6 G pixels, 4.8 GB decoded) is refused.
MAX_IMAGE_PIXELS = 89_478_485

log = logging.getLogger("circuits")

LAYOUTS = (
    "flat files ROOT/<wnid>_<name>.JPEG|jpg|jpeg|png, or ImageNet-style subfolders ROOT/<wnid>/<name>.JPEG"
)

_TV_PREFIX = re.compile(r"^\w+, \S+:\d+, ")  # "decode_jpeg, /path/decode_jpeg.cpp:171, " in torchvision errors
_OBJ_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")  # "<_io.BytesIO object at 0x7f...>" in PIL errors


def _clean(err: BaseException) -> str:
    """A short, reproducible error message: its first sentence, without torchvision's C++
    source location or object addresses."""
    text = str(err).strip()
    if not text:
        return type(err).__name__
    text = _OBJ_REPR.sub("", _TV_PREFIX.sub("", text.splitlines()[0]))
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0].rstrip(".")


def _is_dir(entry: os.DirEntry) -> bool:
    """``entry.is_dir()``, False where it raises (a symlink loop: ELOOP; :func:`file_problem` reports it)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` must not be read as an image, or None: it must be (or, through symlinks,
    resolve to) a regular, non-empty file of at most :data:`MAX_IMAGE_BYTES` bytes. Never blocks
    (only ``stat`` is called)."""
    try:
        st = os.stat(path)  # follows symlinks
    except OSError as e:  # dangling symlink, symlink loop (ELOOP), no permission
        return f"cannot read: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a folder" if stat.S_ISDIR(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "special")
        return f"not a regular file ({kind})"
    if st.st_size == 0:
        return "empty file"
    if st.st_size > MAX_IMAGE_BYTES:
        return f"file of {st.st_size:,} bytes is over the limit of {MAX_IMAGE_BYTES:,} bytes"
    return None


def scan_images(folder: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files (:data:`IMAGE_EXTENSIONS`, any case) of a folder and its subfolders, sorted
    by path, and ``[(path, reason)]`` of the image-named entries skipped (:func:`file_problem`).
    Symlinked subfolders are not followed.

    Raises:
        FileNotFoundError: no such folder. NotADirectoryError: not a folder.
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    files, skipped = [], []
    for p in sorted(folder.rglob("*")):  # pathlib's ** does not follow symlinked folders
        if p.suffix.lower() not in IMAGE_EXTENSIONS or (p.is_dir() and not p.is_symlink()):
            continue
        why = file_problem(p)
        if why is None:
            files.append(p)
        else:
            skipped.append((p, why))
    return files, skipped


def report_skipped(where: str | Path, skipped: Sequence[tuple[str | Path, str]],
                   what: str = "cannot be read as images", shown: int = 3) -> None:
    """One warning on the ``circuits`` logger for files left out: ``WHERE: skipped N file(s) that
    WHAT (name: reason; … the first ``shown``)``; nothing when ``skipped`` is empty. The command
    line prints it as ``circuits: …`` on stderr (also with ``--quiet``)."""
    if not skipped:
        return
    first = "; ".join(f"{Path(p).name}: {why}" for p, why in skipped[:shown])
    log.warning("%s: skipped %d file(s) that %s (%s%s)", where, len(skipped), what, first,
                "; …" if len(skipped) > shown else "")


def image_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` in px from the image file's header (nothing is decoded), or ``None``
    when PIL cannot identify it (the decoder reports why later)."""
    from PIL import Image

    if file_problem(path) is not None:  # never open a FIFO or a device
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Exception:  # noqa: BLE001 - unidentified, unreadable or a bomb: load_image says why
        return None


def list_images(folder: str | Path, report: bool = True) -> list[Path]:
    """Image files (:data:`IMAGE_EXTENSIONS`, any case) of a folder and its subfolders,
    sorted by path; entries that are not regular files within the size limit are skipped and
    reported (a warning on the ``circuits`` logger: count and first reasons).

    Raises:
        FileNotFoundError: no such folder.
        NotADirectoryError: not a folder.
        ValueError: no image in it.
    """
    files, skipped = scan_images(folder)
    if report:  # a caller that lists the folder twice (a check, then the run) reports once
        report_skipped(folder, skipped)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}"
                         + (f" ({len(skipped)} skipped: {skipped[0][1]})" if skipped else ""))
    return files


def read_image_file(path: str | Path) -> bytes:
    """The bytes of an image file, after :func:`file_problem` (regular file, size limit).

    Raises:
        ValueError: the reason the file is refused. OSError: it cannot be read.
    """
    why = file_problem(path)
    if why is not None:
        raise ValueError(why)
    with open(path, "rb") as f:
        data = f.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"file is over the limit of {MAX_IMAGE_BYTES:,} bytes")
    return data


def check_pixels(data: bytes) -> None:
    """Refuse an image whose header declares more than :data:`MAX_IMAGE_PIXELS` pixels, before
    anything is decoded (PIL reads only the header here). Files PIL cannot identify pass: the
    decoder reports them.

    Raises:
        ValueError: ``width × height`` over the limit.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
    except Image.DecompressionBombError as e:
        raise ValueError(f"image too large to decode ({_clean(e)}); the limit is {MAX_IMAGE_PIXELS:,} pixels") from None
    except Exception:  # noqa: BLE001 - not identified from the header: the decoders will say why
        return
    if w * h > MAX_IMAGE_PIXELS:
        raise ValueError(f"image of {w}×{h} = {w * h:,} pixels is over the limit of {MAX_IMAGE_PIXELS:,} pixels")


def load_image(path: str | Path, size: int = 224, resize: int = 256) -> Tensor:
    """Read, decode and preprocess one image file.

    Decoding uses :func:`torchvision.io.decode_image` (JPEG, PNG, WebP, GIF; grayscale,
    CMYK, palette and alpha images become 3-channel RGB, alpha dropped; 16-bit PNGs are
    scaled to 8 bits); when torchvision cannot decode the file, PIL is tried. Then the short
    side is resized to ``resize`` px (bilinear, antialiased, on uint8 as PIL does) and the
    centre ``size`` x ``size`` crop is taken.

    Args:
        path: the image file.
        size: side of the square centre crop, px (default 224).
        resize: the short side after resizing, px (default 256); must be ≥ ``size``.

    Returns:
        ``(3, size, size)`` float32 tensor, RGB in [0, 1].

    Raises:
        OSError: the file cannot be read.
        ValueError: not a regular file, over :data:`MAX_IMAGE_BYTES` or :data:`MAX_IMAGE_PIXELS`
            (checked from the header before decoding), or neither torchvision nor PIL can
            decode it (corrupt, truncated, not an image); the message gives both reasons.
    """
    data = read_image_file(path)
    check_pixels(data)
    try:
        img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as tv_err:
        img = _decode_pil(data, tv_err)
    if img.dtype != torch.uint8:  # 16-bit PNG
        img = TF.to_dtype(img, torch.uint8, scale=True)
    img = TF.resize(img, [resize], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    img = TF.center_crop(img, [size, size])
    return img.to(torch.float32).div_(255.0)


def _decode_pil(data: bytes, tv_err: BaseException) -> Tensor:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # raises on truncated data
            arr = np.asarray(im.convert("RGB"))
    except Exception as pil_err:  # any PIL failure (incl. DecompressionBombError) is reported
        raise ValueError(f"cannot decode image (torchvision: {_clean(tv_err)}; PIL: {_clean(pil_err)})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class LoadedImage(NamedTuple):
    """One item of :class:`ImageFolderDataset`: the image, or ``None`` and why not."""

    image: Tensor | None  #: ``(3, size, size)`` float32 RGB in [0, 1], or None on failure
    index: int  #: position in :attr:`ImageFolderDataset.samples`
    error: str | None  #: reason of the failure, or None


class ImageFolderDataset(Dataset):
    """The labelled images of a folder, in sorted order, decoded and preprocessed lazily.

    The folder is scanned once, in the constructor (see the module docstring for the
    layouts). Entries are ordered by their path relative to ``root``. Entries that cannot
    be evaluated whatever their content — not an image extension, a class missing from
    ``wnid_to_index``, a folder nested deeper than one level — go to :attr:`skipped`;
    the rest go to :attr:`samples`. Decoding failures are only known when an item is
    loaded: ``__getitem__`` then returns ``LoadedImage(None, index, reason)`` instead of
    raising, so a :class:`~torch.utils.data.DataLoader` with :meth:`collate` never stops.

    Args:
        root: the folder.
        wnid_to_index: class (WordNet id) → output index of the model.
        size: side of the centre crop, px (default 224).
        resize: short side after resizing, px (default 256); must be ≥ ``size``.

    Attributes:
        root: the folder, as a :class:`~pathlib.Path`.
        samples: ``[(path, wnid, label index)]`` in sorted order.
        skipped: ``[(path, reason)]`` found while scanning.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a folder.
        ValueError: ``size``/``resize`` invalid. (An empty folder is *not* an error here;
            :func:`evaluate` raises on it.)
    """

    def __init__(self, root: str | Path, wnid_to_index: Mapping[str, int], size: int = 224, resize: int = 256):
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        if not self.root.is_dir():
            raise NotADirectoryError(f"{self.root} is not a folder; expected {LAYOUTS}")
        if not (0 < size <= resize):
            raise ValueError(f"need 0 < size <= resize; got size={size}, resize={resize}")
        self.wnid_to_index = dict(wnid_to_index)
        self.size = size
        self.resize = resize
        self.samples: list[tuple[str, str, int]] = []
        self.skipped: list[tuple[str, str]] = []
        self._order: list[tuple[str, bool]] = []  # (path, is_sample) in scan order, for head()
        for rel, path, wnid, reason in self._scan():
            reason = reason or self._reject(rel, path, wnid)
            if reason is None:
                self.samples.append((str(path), wnid, self.wnid_to_index[wnid]))
            else:
                self.skipped.append((str(path), reason))
            self._order.append((str(path), reason is None))

    def _scan(self) -> list[tuple[str, Path, str | None, str | None]]:
        """``[(relative path, path, wnid or None, reason to skip or None)]`` sorted by relative path.

        A class folder that is a symlink into the root (itself included) or to a folder already
        listed is skipped, not followed (it would count images twice, under the wrong class)."""
        found: list[tuple[str, Path, str | None, str | None]] = []
        root = self.root.resolve()
        seen: dict[Path, str] = {}
        entries = sorted(os.scandir(self.root), key=lambda e: (e.is_symlink(), e.name))  # real folders first
        for entry in entries:
            p = Path(entry.path)
            if not _is_dir(entry):
                found.append((entry.name, p, Path(entry.name).stem.split("_", 1)[0], None))
                continue
            target = p.resolve()
            if entry.is_symlink() and (target == root or root in target.parents or target in root.parents):
                found.append((entry.name, p, None, f"folder symlink to {target}, inside or above the image root "
                               "(not followed: its images would be counted twice)"))
                continue
            if target in seen:
                found.append((entry.name, p, None, f"same folder as {seen[target]} (not followed)"))
                continue
            seen[target] = entry.name
            try:
                subs = list(os.scandir(p))
            except OSError as e:
                found.append((entry.name, p, None, f"cannot list folder: {_clean(e)}"))
                continue
            for sub in subs:
                sp = Path(sub.path)
                nested = "folder nested too deep (expected ROOT/<wnid>/<image>)" if _is_dir(sub) else None
                found.append((f"{entry.name}/{sub.name}", sp, entry.name, nested))
        found.sort(key=lambda t: t[0])
        return found

    def _reject(self, rel: str, path: Path, wnid: str) -> str | None:
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            return f"not an image file (extension {path.suffix or '(none)'!r}; accepted: {', '.join(IMAGE_EXTENSIONS)})"
        if wnid not in self.wnid_to_index:
            where = "folder name" if "/" in rel else "file-name prefix"
            return f"class {wnid!r} ({where}) is not in the model's class list"
        return file_problem(path)

    @classmethod
    def from_samples(cls, root: str | Path, wnid_to_index: Mapping[str, int], samples: Sequence[tuple[str, str, int]],
                     size: int = 224, resize: int = 256) -> ImageFolderDataset:
        """A dataset of the given ``samples`` ``[(path, wnid, label index)]`` (e.g. one shard of
        a scanned folder's :attr:`samples`) without scanning ``root``; :attr:`skipped` is empty.

        Raises:
            ValueError: ``size``/``resize`` invalid, or a sample's label is not ``wnid_to_index[wnid]``.
        """
        if not (0 < size <= resize):
            raise ValueError(f"need 0 < size <= resize; got size={size}, resize={resize}")
        out = object.__new__(cls)
        out.root, out.wnid_to_index, out.size, out.resize = Path(root), dict(wnid_to_index), size, resize
        out.samples = [(str(p), w, int(i)) for p, w, i in samples]
        for p, w, i in out.samples:
            if out.wnid_to_index.get(w) != i:
                raise ValueError(f"sample {p}: label {i} is not the class index of {w!r}")
        out.skipped = []
        out._order = [(p, True) for p, _, _ in out.samples]
        return out

    def head(self, n: int | None) -> ImageFolderDataset:
        """A copy limited to the first ``n`` samples in sorted order; :attr:`skipped` keeps
        only the entries met up to the ``n``-th sample. ``None`` → ``self``.

        Raises:
            ValueError: ``n`` < 1.
        """
        if n is None:
            return self
        if n < 1:
            raise ValueError(f"limit must be ≥ 1, got {n}")
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        order, kept = [], 0
        for path, is_sample in self._order:
            order.append((path, is_sample))
            kept += is_sample
            if kept == n:
                break
        skipped_paths = {p for p, s in order if not s}
        out._order = order
        out.samples = self.samples[:n]
        out.skipped = [s for s in self.skipped if s[0] in skipped_paths]
        return out

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> LoadedImage:
        path = self.samples[index][0]
        try:
            return LoadedImage(load_image(path, self.size, self.resize), index, None)
        except Exception as e:  # a bad file must never stop an evaluation
            reason = _clean(e) if isinstance(e, ValueError) else f"cannot read/decode ({type(e).__name__}: {_clean(e)})"
            return LoadedImage(None, index, reason)

    @staticmethod
    def collate(batch: Sequence[LoadedImage]) -> tuple[Tensor, Tensor, list[tuple[int, str]]]:
        """Collate function for a DataLoader: drops failed items.

        Returns:
            ``(images (B, 3, size, size) float32, indices (B,) int64, [(index, reason)])``
            where ``B`` counts the items that loaded (``images`` is ``(0, 3, 0, 0)`` if none did).
        """
        ok = [b for b in batch if b.image is not None]
        failed = [(b.index, b.error or "unknown error") for b in batch if b.image is None]
        images = torch.stack([b.image for b in ok]) if ok else torch.empty(0, 3, 0, 0)
        return images, torch.tensor([b.index for b in ok], dtype=torch.int64), failed


class ImageFiles(Dataset):
    """Image files decoded lazily with :func:`load_image` (any file names;
    failures are returned, not raised, as :class:`LoadedImage`)."""

    def __init__(self, files: Sequence[Path], size: int = 224):
        self.files = list(files)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> LoadedImage:
        try:
            return LoadedImage(load_image(self.files[i], self.size), i, None)
        except Exception as e:  # a bad file must not stop the pass
            return LoadedImage(None, i, f"{type(e).__name__}: {e}")


@dataclass(frozen=True)
class ReferenceImages:
    """Reference images for activation statistics, with the description recorded next to
    every statistic measured on them (e.g. in the family catalog's criteria)."""

    images: Tensor  #: ``(n, 3, size, size)`` RGB in [0, 1]
    description: str  #: e.g. ``"imagenet-sample-1000: 100 evenly spaced images, all positions, pre-ReLU"``


def load_reference_set(folder: str | Path, n_images: int = 100, size: int = 224) -> ReferenceImages:
    """``n_images`` evenly spaced images of a folder (deterministic), resized (short side
    256, bilinear, PIL) and centre-cropped to ``size``, with their description.
    Unreadable files are skipped.

    Raises:
        FileNotFoundError / NotADirectoryError / ValueError: as :func:`list_images`; ValueError
            also when no file could be read.
    """
    import torchvision.transforms.functional as TVF
    from PIL import Image

    files = list_images(folder)
    step = max(1, len(files) // n_images)
    out = []
    for p in files[::step][:n_images]:
        try:
            data = read_image_file(p)
            check_pixels(data)
            with Image.open(io.BytesIO(data)) as im:
                im = im.convert("RGB")
                out.append(TVF.to_tensor(TVF.center_crop(TVF.resize(im, 256, antialias=True), size)))
        except Exception:  # noqa: BLE001 - unreadable files are skipped, as in classification
            continue
    if not out:
        raise ValueError(f"no readable images in {folder}")
    description = f"{Path(folder).name}: {len(out)} evenly spaced images, all positions, pre-ReLU"
    return ReferenceImages(torch.stack(out), description)


def load_reference_images(folder: str | Path, n_images: int = 100, size: int = 224) -> Tensor:
    """The images of :func:`load_reference_set` alone: ``(n, 3, size, size)`` RGB in [0, 1]
    (e.g. the reference images of ``EditPlan.apply``)."""
    return load_reference_set(folder, n_images, size).images

"""ImageNet-style classification accuracy of an InceptionV1 checkpoint on a folder of images.

Two folder layouts are understood, and may be mixed:

* flat: ``ROOT/<wnid>_<anything>.JPEG`` (the label is the file-name prefix before the first
  ``_``), e.g. ``imagenet-sample-1000/n01440764_tench.JPEG``;
* ImageNet-style: ``ROOT/<wnid>/<anything>.JPEG`` (the label is the folder name).

Accepted extensions: ``.JPEG``/``.jpg``/``.jpeg``/``.png`` (any case). Preprocessing is the
standard single-crop evaluation: resize the short side to 256 px (bilinear, antialiased),
centre-crop 224x224, RGB in [0, 1]; the model applies its checkpoint's own normalisation.

Nothing in a folder stops an evaluation halfway: files that are not images, whose class is
not in the model's class list, or that cannot be read or decoded are skipped and reported
(path and reason) in :attr:`ClassificationResult.skipped`.

Example::

    from circuits import load_model
    from studies.classify import evaluate, summarize
    res = evaluate(load_model("inceptionv1_caffe"), "shared/data/imagenet-sample-1000")
    summarize(res)  # {'top1': 0.745, 'top5': 0.932, 'n_images': 1000, 'n_skipped': 0}
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from circuits.labels import class_wnids

__all__ = [
    "IMAGE_EXTENSIONS",
    "ClassificationResult",
    "ImageFolderDataset",
    "LoadedImage",
    "evaluate",
    "evaluate_variants",
    "shared_prefix",
    "load_image",
    "summarize",
    "wnid_index",
]

#: File extensions (lower case) taken as images.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")

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


#: batches between two :func:`release_free_memory` calls of an evaluation
TRIM_EVERY = 8


def release_free_memory() -> None:
    """Give the allocator's free pages back to the system (glibc ``malloc_trim``; nothing
    elsewhere). The model's chunk threads each get a malloc arena whose free memory would
    otherwise only grow with the number of batches; trimming keeps a long evaluation's peak
    RSS flat (``bench/bench_memory.py``)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim():
    global _TRIM
    if _TRIM is None:
        import ctypes
        import ctypes.util

        try:
            _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    return _TRIM or None


_TRIM = None


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
        ValueError: neither torchvision nor PIL can decode it (corrupt, truncated, not an
            image); the message gives both reasons.
    """
    data = Path(path).read_bytes()
    if not data:
        raise ValueError("empty file")
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
        """``[(relative path, path, wnid or None, reason to skip or None)]`` sorted by relative path."""
        found: list[tuple[str, Path, str | None, str | None]] = []
        for entry in os.scandir(self.root):
            p = Path(entry.path)
            if entry.is_dir():
                try:
                    subs = list(os.scandir(p))
                except OSError as e:
                    found.append((entry.name, p, None, f"cannot list folder: {_clean(e)}"))
                    continue
                for sub in subs:
                    sp = Path(sub.path)
                    nested = "folder nested too deep (expected ROOT/<wnid>/<image>)" if sub.is_dir() else None
                    found.append((f"{entry.name}/{sub.name}", sp, entry.name, nested))
            else:
                found.append((entry.name, p, Path(entry.name).stem.split("_", 1)[0], None))
        found.sort(key=lambda t: t[0])
        return found

    def _reject(self, rel: str, path: Path, wnid: str) -> str | None:
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            return f"not an image file (extension {path.suffix or '(none)'!r}; accepted: {', '.join(IMAGE_EXTENSIONS)})"
        if wnid not in self.wnid_to_index:
            where = "folder name" if "/" in rel else "file-name prefix"
            return f"class {wnid!r} ({where}) is not in the model's class list"
        return None

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


@dataclass
class ClassificationResult:
    """What :func:`evaluate` returns.

    Attributes:
        per_image: one row per evaluated image, in sorted order, columns ``path`` (str),
            ``wnid`` (str), ``label`` (int, output index), ``pred`` (int, top-1 output
            index), ``pred_wnid`` (str), ``correct_top1`` (bool), ``correct_top5`` (bool),
            ``top5`` (list of 5 ints, best first), ``logit_label`` (float, the label's logit).
        top1, top5: accuracies in [0, 1] over ``per_image``.
        n_images: rows of ``per_image``.
        skipped: ``path``, ``reason`` of every file not evaluated, sorted by path.
        n_skipped: rows of ``skipped``.
        checkpoint: the model's checkpoint name.
        root: the image folder.
    """

    per_image: pd.DataFrame
    top1: float
    top5: float
    n_images: int
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "reason"]))
    n_skipped: int = 0
    checkpoint: str = ""
    root: str = ""


def wnid_index(model_or_spec) -> dict[str, int]:
    """``{wnid: output index}`` of a model (or spec / checkpoint name); unused outputs
    (``None`` in :func:`circuits.labels.class_wnids`, e.g. Lucid's index 0) are left out."""
    spec = getattr(model_or_spec, "spec", model_or_spec)
    return {w: i for i, w in enumerate(class_wnids(spec)) if w is not None}


def evaluate(
    model: nn.Module,
    images: str | Path | ImageFolderDataset,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    progress: bool = True,
    share_prefix: bool = True,
) -> dict[str, ClassificationResult]:
    """:func:`evaluate` for several models (e.g. edit variants) in one pass over the images.

    Every batch is decoded once; with ``share_prefix`` the stages that all variants have in
    common (:func:`shared_prefix`, e.g. everything up to mixed3a when the edits are in
    mixed3b) run once per batch and each variant continues from there — the same numbers
    as separate evaluations, for a fraction of the time.

    All models must be of the same checkpoint (same class list). Arguments otherwise as
    :func:`evaluate`.

    Images are loaded by a :class:`~torch.utils.data.DataLoader` (never all in memory) and
    run under :func:`torch.inference_mode`. Predictions are taken among the model's real
    classes only: outputs without a wnid (Lucid's "dummy" index 0 and unused 1001..1007) are
    excluded from the ranking. The result is deterministic: sorted order, no shuffling.

    Args:
        model: an :class:`~circuits.model.InceptionV1` (anything with a ``.spec`` and a
            forward taking ``(N, 3, H, W)`` RGB in [0, 1] and returning ``(N, classes)``
            logits). It must already be on ``device``; it is put in eval mode for the call
            and restored after.
        images: a folder (see the module docstring for layouts) or an
            :class:`ImageFolderDataset` built with this model's :func:`wnid_index`.
        batch_size: images per forward pass (default 64).
        num_workers: DataLoader worker processes; default ``min(2, os.cpu_count())``;
            0 loads in the calling process.
        device: where the forward pass runs (default ``"cpu"``).
        limit: evaluate only the first ``limit`` image files (of known classes) in sorted
            order, counting those that then fail to decode (default: all); see
            :meth:`ImageFolderDataset.head`.
        progress: show a tqdm progress bar on stderr (default True).

    Returns:
        A :class:`ClassificationResult`.

    Raises:
        FileNotFoundError, NotADirectoryError: ``images`` is not an existing folder.
        ValueError: no usable image in the folder (empty, or every file skipped), the model
            is not on ``device``, or ``batch_size``/``num_workers``/``limit`` is invalid.
    """
    return evaluate_variants({"model": model}, images, batch_size, num_workers, device, limit, progress)["model"]


def shared_prefix(models: Mapping[str, nn.Module]) -> str | None:
    """The last stage after which every model in ``models`` is identical (same parameters,
    bitwise, and no hooks installed), or ``None`` when they differ from the start.

    Variants of one model that differ only from mixed3b on share ``"mixed3a"``: their
    prefix can be computed once per batch (:func:`evaluate_variants`).
    """
    ms = list(models.values())
    if len(ms) < 2 or not all(hasattr(m, "stage_names") for m in ms):
        return None
    base = ms[0]
    last = None
    for stage in base.stage_names:
        if stage in ("avgpool0", "logits"):
            break
        mods = [getattr(m, "preprocess" if stage == "input" else stage, None) for m in ms]
        if any(x is None for x in mods):
            break
        if any(bool(h._forward_hooks) or bool(h._forward_pre_hooks) for mod in mods for h in mod.modules()):
            break
        ref = mods[0].state_dict()
        same = True
        for other in mods[1:]:
            st = other.state_dict()
            if st.keys() != ref.keys() or any(st[k].shape != ref[k].shape or not torch.equal(st[k], ref[k]) for k in ref):
                same = False
                break
        if not same:
            break
        last = stage
    return last


def evaluate_variants(
    models: Mapping[str, nn.Module],
    images: str | Path | ImageFolderDataset,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    progress: bool = True,
    share_prefix: bool = True,
) -> dict[str, ClassificationResult]:
    """:func:`evaluate` for several models (e.g. edit variants) in one pass over the images.

    Every batch is decoded once; with ``share_prefix`` the stages that all variants have in
    common (:func:`shared_prefix`, e.g. everything up to mixed3a when the edits are in
    mixed3b) run once per batch and each variant continues from there — the same numbers
    as separate evaluations, for a fraction of the time.

    Args:
        models: ``{name: model}``, all of one checkpoint, all on ``device``.
        images, batch_size, num_workers, device, limit, progress: as :func:`evaluate`.
        share_prefix: compute the common prefix once (default True).

    Returns:
        ``{name: ClassificationResult}``.

    Raises:
        as :func:`evaluate`; ValueError also for an empty mapping or mixed checkpoints.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    if num_workers is None:
        num_workers = min(2, os.cpu_count() or 1)
    if num_workers < 0:
        raise ValueError(f"num_workers must be ≥ 0, got {num_workers}")
    device = torch.device(device)
    if not models:
        raise ValueError("no models to evaluate")
    for name, m in models.items():
        param = next(m.parameters(), None)
        if param is not None and param.device.type != device.type:
            raise ValueError(f"model {name!r} is on {param.device} but device={device}; move it first (model.to({str(device)!r}))")
    model = next(iter(models.values()))
    if len({getattr(m.spec, "name", None) for m in models.values()}) != 1:
        raise ValueError("evaluate_variants needs models of one checkpoint")
    prefix = shared_prefix(models) if share_prefix else None
    wnids = class_wnids(model.spec)
    to_index = {w: i for i, w in enumerate(wnids) if w is not None}
    if isinstance(images, ImageFolderDataset):
        if images.wnid_to_index != to_index:
            raise ValueError(f"the dataset's wnid_to_index is not {model.spec.name}'s class list; build it with wnid_index(model)")
        ds = images
    else:
        ds = ImageFolderDataset(images, to_index)
    ds = ds.head(limit)
    if len(ds) == 0:
        what = "is empty" if not ds.skipped else f"has no usable image ({len(ds.skipped)} file(s) skipped, e.g. {ds.skipped[0][0]}: {ds.skipped[0][1]})"
        raise ValueError(f"image folder {ds.root} {what}; expected {LAYOUTS}")

    valid = torch.zeros(len(wnids), dtype=torch.bool)
    valid[list(to_index.values())] = True
    valid = valid.to(device)
    k = min(5, int(valid.sum()))

    loader = DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=ImageFolderDataset.collate,
        pin_memory=device.type == "cuda", persistent_workers=False,
    )
    idx_chunks: list[Tensor] = []
    top_chunks: dict[str, list[Tensor]] = {n: [] for n in models}
    logit_chunks: dict[str, list[Tensor]] = {n: [] for n in models}
    failed: list[tuple[int, str]] = []
    was_training = {n: m.training for n, m in models.items()}
    for m in models.values():
        m.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(ds), desc=f"classify {ds.root.name}", unit="img",
                                          file=sys.stderr, disable=not progress) as bar:
            labels_all = torch.tensor([s[2] for s in ds.samples], dtype=torch.int64)
            for n_batch, (batch, idx, fails) in enumerate(loader):
                if n_batch % TRIM_EVERY == TRIM_EVERY - 1:
                    release_free_memory()
                failed.extend(fails)
                if len(idx):
                    x = batch.to(device, non_blocking=True)
                    h = model(x, stop_at=prefix) if prefix is not None else x
                    lab = labels_all[idx].to(device)
                    for name, m in models.items():
                        logits = (m(h, start_at=prefix) if prefix is not None else m(h)).float()
                        logit_chunks[name].append(logits.gather(1, lab[:, None])[:, 0].cpu())
                        logits = logits.masked_fill(~valid, float("-inf"))
                        top_chunks[name].append(logits.topk(k, dim=1).indices.cpu())
                    idx_chunks.append(idx)
                bar.update(len(idx) + len(fails))
    finally:
        for n, m in models.items():
            m.train(was_training[n])

    skipped = sorted(list(ds.skipped) + [(ds.samples[i][0], r) for i, r in failed])
    skipped_df = pd.DataFrame(skipped, columns=["path", "reason"])
    if not idx_chunks:
        raise ValueError(
            f"image folder {ds.root} has no usable image: all {len(skipped)} file(s) were skipped "
            f"(e.g. {skipped[0][0]}: {skipped[0][1]}); expected {LAYOUTS}"
        )
    idx = torch.cat(idx_chunks).numpy()
    label = labels_all.numpy()[idx]
    results = {}
    for name in models:
        top = torch.cat(top_chunks[name]).numpy()
        pred = top[:, 0]
        per_image = pd.DataFrame({
            "path": [ds.samples[i][0] for i in idx],
            "wnid": [ds.samples[i][1] for i in idx],
            "label": label.astype(np.int64),
            "pred": pred.astype(np.int64),
            "pred_wnid": [wnids[p] for p in pred],
            "correct_top1": pred == label,
            "correct_top5": (top == label[:, None]).any(1),
            "top5": [row.tolist() for row in top],
            "logit_label": torch.cat(logit_chunks[name]).numpy().astype(np.float64),
        })
        results[name] = ClassificationResult(
            per_image=per_image,
            top1=float(per_image["correct_top1"].mean()),
            top5=float(per_image["correct_top5"].mean()),
            n_images=len(per_image),
            skipped=skipped_df,
            n_skipped=len(skipped_df),
            checkpoint=getattr(model.spec, "name", str(model.spec)),
            root=str(ds.root),
        )
    return results


def summarize(result: ClassificationResult) -> dict[str, float | int]:
    """``{"top1", "top5", "n_images", "n_skipped"}`` of a :class:`ClassificationResult`
    (accuracies as fractions in [0, 1])."""
    return {"top1": result.top1, "top5": result.top5, "n_images": result.n_images, "n_skipped": result.n_skipped}

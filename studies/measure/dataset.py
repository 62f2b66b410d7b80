"""Dataset statistics of units over an image folder, streamed in batches.

:func:`unit_statistics` reads a folder once (a :class:`~torch.utils.data.DataLoader` over
the files, decoded and preprocessed by :func:`studies.measure.images.load_image`: short side 256,
centre crop 224, RGB in [0, 1]; never the whole folder in memory) and returns, per unit:

* the **pre-ReLU distribution** over every image and every spatial position: mean, std,
  fraction positive, a histogram (exact counts in fine bins that grow with the data, merged
  for output), and an **exponential-tail fit** of the positive part: a weighted least-squares
  line through log density of x > 0 (weights = bin counts), reported as the rate λ
  (density ∝ exp(−λx); per activation unit and per σ). Curve Detectors reports for Lucid's
  3b:379 a mean ≈ −200, positive in ≈ 11 % of cases, and exponential tails;
* the **top-k dataset examples**: the k images with the highest activation (one position
  per image: the image's best), as receptive-field crops (tensors) and a table of image
  path, position (row, col of the layer's map; x, y of the receptive-field centre in px) and
  activation. By default only positions whose receptive field lies inside the image count
  (``interior_only``), so a crop shows everything the unit saw and re-measuring it with the
  receptive-field cone (:func:`circuits.cone.cone_responses`) gives the same value.

:func:`rotation_tuning` is joint tuning by rotation: each top example is rotated about the
receptive-field centre (0–360° in steps, bilinear, counter-clockwise as in
:mod:`studies.measure.stimuli`; what rotates in from outside the image is the checkpoint's mean
colour, i.e. zero after preprocessing), re-measured at the same position, aligned by its
own best angle and averaged → a curve of response versus rotation away from the best.

Other measures ride along the same pass through ``observers`` (sparsity, expected value and
activation-range samples: :mod:`studies.measure.activation_stats`); the units of one mixed
layer are computed by :func:`studies.measure.unit_acts.unit_pre_activations` (only the block
rows they need, on the model's chunked forward pass).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from circuits.cone import cone_responses, fast_path_problem, plan_for_units
from circuits.geometry import receptive_field
from circuits.model import InceptionV1
from circuits.units import Unit, group_by_layer, resolve_units
from studies.measure.images import ImageFiles, ImageFolderDataset, image_size, list_images, load_image
from studies.measure.unit_acts import unit_pre_activations

#: Fine histogram: at most this many bins per unit before neighbours are merged.
MAX_FINE_BINS = 1 << 16


# ============================================================================ histogram
class _FineHistogram:
    """Exact counts in bins of width ``w`` on the grid ``origin + i·w`` (i any integer);
    the array grows to cover new data and merges neighbours past :data:`MAX_FINE_BINS`."""

    def __init__(self, first: np.ndarray, n0: int = 2048):
        lo, hi = float(first.min()), float(first.max())
        self.w = (hi - lo) / n0 if hi > lo else max(abs(lo), 1.0) * 1e-3
        self.origin = lo
        self.start = 0
        self.counts = np.zeros(0, dtype=np.int64)
        self.add(first)

    def add(self, x: np.ndarray) -> None:
        idx = np.floor((x - self.origin) / self.w).astype(np.int64)
        lo, hi = int(idx.min()), int(idx.max())
        if len(self.counts) == 0:
            self.start, self.counts = lo, np.zeros(hi - lo + 1, dtype=np.int64)
        new_lo, new_hi = min(lo, self.start), max(hi, self.start + len(self.counts) - 1)
        while new_hi - new_lo + 1 > MAX_FINE_BINS:
            self._merge()
            idx = np.floor((x - self.origin) / self.w).astype(np.int64)
            lo, hi = int(idx.min()), int(idx.max())
            new_lo, new_hi = min(lo, self.start), max(hi, self.start + len(self.counts) - 1)
        if new_lo < self.start or new_hi > self.start + len(self.counts) - 1:
            grown = np.zeros(new_hi - new_lo + 1, dtype=np.int64)
            grown[self.start - new_lo:self.start - new_lo + len(self.counts)] = self.counts
            self.start, self.counts = new_lo, grown
        self.counts += np.bincount(idx - self.start, minlength=len(self.counts))

    def _merge(self) -> None:
        c = self.counts
        if self.start % 2:
            c = np.concatenate([[0], c])
            self.start -= 1
        if len(c) % 2:
            c = np.concatenate([c, [0]])
        self.counts = c.reshape(-1, 2).sum(1)
        self.start //= 2
        self.w *= 2

    def edges(self) -> np.ndarray:
        return self.origin + (self.start + np.arange(len(self.counts) + 1)) * self.w

    def rebinned(self, n_bins: int, lo: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(edges, counts)`` with about ``n_bins`` bins (merged fine bins, from the first
        fine bin whose left edge is ≥ ``lo`` when given)."""
        e, c = self.edges(), self.counts
        if lo is not None:
            first = int(np.searchsorted(e[:-1], lo, side="left"))
            e, c = e[first:], c[first:]
        nz = np.nonzero(c)[0]
        if len(nz) == 0:
            return e[:1], c[:0]
        e, c = e[nz[0]:nz[-1] + 2], c[nz[0]:nz[-1] + 1]
        f = max(1, int(math.ceil(len(c) / n_bins)))
        pad = (-len(c)) % f
        c = np.concatenate([c, np.zeros(pad, dtype=c.dtype)]).reshape(-1, f).sum(1)
        e = e[0] + np.arange(len(c) + 1) * (e[1] - e[0]) * f
        return e, c


def exponential_tail(edges: np.ndarray, counts: np.ndarray, total: int, min_count: int = 5) -> dict:
    """Fit log density = a − λ·x by least squares weighted by the counts, over bins with at
    least ``min_count`` values. Returns ``tail_rate`` (λ), ``tail_intercept`` (a),
    ``tail_bins`` used and ``tail_r2`` (weighted); NaN if fewer than 3 bins qualify."""
    width = np.diff(edges)
    mid = (edges[:-1] + edges[1:]) / 2
    ok = counts >= min_count
    out = dict(tail_rate=float("nan"), tail_intercept=float("nan"), tail_bins=int(ok.sum()), tail_r2=float("nan"))
    if ok.sum() < 3 or total <= 0:
        return out
    x, c = mid[ok], counts[ok].astype(float)
    y = np.log(c / (total * width[ok]))
    wts = c / c.sum()
    xm, ym = (wts * x).sum(), (wts * y).sum()
    sxx = (wts * (x - xm) ** 2).sum()
    if sxx <= 0:
        return out
    slope = (wts * (x - xm) * (y - ym)).sum() / sxx
    a = ym - slope * xm
    ss_res = (wts * (y - (a + slope * x)) ** 2).sum()
    ss_tot = (wts * (y - ym) ** 2).sum()
    out.update(tail_rate=float(-slope), tail_intercept=float(a), tail_r2=float(1 - ss_res / ss_tot) if ss_tot > 0 else 1.0)
    return out


# ============================================================================ statistics
@dataclass
class DatasetStats:
    """What :func:`unit_statistics` returns.

    Attributes:
        summary: one row per unit: ``unit``, ``layer``, ``index``, ``n_values`` (images ×
            positions), ``mean``, ``std``, ``min``, ``max``, ``frac_positive``, ``tail_rate``
            (λ per activation unit), ``tail_rate_sigma`` (λ·std, per σ), ``tail_intercept``,
            ``tail_r2``, ``tail_bins``.
        histogram: one row per (unit, bin): ``bin_left``, ``bin_right``, ``count``,
            ``density`` (count / (n_values · width)).
        top: one row per (unit, rank): ``rank`` (0 = best), ``path``, ``row``, ``col``
            (position in the layer's map), ``x``, ``y`` (receptive-field centre, px, in the
            224-px image), ``activation`` (pre-ReLU).
        crops: ``{unit: (k, 3, rf, rf)}`` receptive-field crops of the top examples (RGB in
            [0, 1]; outside the image: the checkpoint's mean colour).
        n_images: images read; ``skipped``: ``[(path, reason)]`` not read.
        interior_only: whether top examples were limited to positions whose receptive field
            lies inside the image.
    """

    summary: pd.DataFrame
    histogram: pd.DataFrame
    top: pd.DataFrame
    crops: dict[str, Tensor] = field(repr=False)
    n_images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    interior_only: bool = True
    size: int = 224


def _mean_colour(model: InceptionV1) -> Tensor:
    """RGB in [0, 1] that preprocesses to zero (the model's padding value)."""
    pre = model.preprocess.fn
    m = pre.mean.view(-1).detach().cpu().float() / pre.scale
    return (m.flip(0) if pre.bgr else m).view(3, 1, 1)


def _interior(spec, layer: str, n: int, size: int) -> tuple[int, int]:
    rf = receptive_field(spec, layer, size)
    half = (rf.size - 1) / 2
    lo = max(0, math.ceil((half - rf.offset) / rf.stride))
    hi = min(n - 1, math.floor((size - 1 - half - rf.offset) / rf.stride))
    return lo, hi


def check_layer_fits(spec, layer: str, size: int = 224) -> None:
    """Refuse a layer whose receptive field is wider than the ``size``-px image crop: no position
    of it sees only the image, so it has no top examples to crop (``interior_only``).

    Raises:
        ValueError: naming the layer, its receptive field and the deepest layer that fits.
    """
    from circuits.names import LAYERS

    rf = receptive_field(spec, layer, size)
    if rf.size <= size:
        return
    fits = [lay for lay in LAYERS if receptive_field(spec, lay, size).size <= size]
    raise ValueError(f"{layer} units see {rf.size} px (their receptive field), more than the {size} px image "
                     f"crop, so no position's receptive field lies inside an image and there are no dataset "
                     f"examples to crop; give units of a layer up to {fits[-1]} (receptive field ≤ {size} px)")


def dataset_files(spec, layers: Sequence[str], images: str | Path | Sequence[str | Path], limit: int | None = None,
                  size: int = 224, report: bool = True) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files a dataset analysis of ``layers`` reads, checked before any compute:
    ``(files, skipped)`` with ``skipped`` ``[(path, reason)]`` the files (of the first ``limit``)
    whose short side, read from the header, is smaller than the widest receptive field of
    ``layers``: such an image is mostly interpolation after the resize to 256 px, and a 1×1
    image is one colour everywhere. ``report``: warn about unreadable entries of the folder
    (:func:`~studies.measure.images.list_images`).

    Raises:
        ValueError: a layer wider than the crop (:func:`check_layer_fits`), or every image too small
            (naming the size needed and the smallest image). FileNotFoundError /
            NotADirectoryError: no folder.
    """
    for layer in layers:
        check_layer_fits(spec, layer, size)
    files = list_images(images, report) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    files = files[:limit] if limit else files
    need = max(receptive_field(spec, layer, size).size for layer in layers)
    wide = max(layers, key=lambda layer: receptive_field(spec, layer, size).size)
    kept, skipped = [], []
    for f in files:
        wh = image_size(f)
        if wh is not None and min(wh) < need:
            skipped.append((str(f), f"{wh[0]}×{wh[1]} px is smaller than the {need} px receptive field of {wide}"))
        else:
            kept.append(f)
    if files and not kept:
        raise ValueError(f"all {len(files)} images are smaller than the {need} px receptive field of {wide} "
                         f"(e.g. {Path(skipped[0][0]).name}: {skipped[0][1].split(' is ')[0]}); the dataset "
                         f"analysis needs images whose short side is at least {need} px (they are resized to a "
                         f"256 px short side and centre-cropped to {size} px)")
    return kept, skipped


def _crop(img: Tensor, cx: float, cy: float, size: int, fill: Tensor) -> Tensor:
    """``size``-px square of ``img`` (3, H, W) whose centre pixel is (cx, cy); fill outside."""
    h, w = img.shape[-2:]
    x0, y0 = int(round(cx - (size - 1) / 2)), int(round(cy - (size - 1) / 2))
    out = fill.expand(3, size, size).clone()
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(w, x0 + size), min(h, y0 + size)
    if xe > xs and ye > ys:
        out[:, ys - y0:ye - y0, xs - x0:xe - x0] = img[:, ys:ye, xs:xe]
    return out


@torch.no_grad()
def unit_statistics(
    model: InceptionV1,
    units,
    images: str | Path | Sequence[str | Path],
    k: int = 16,
    bins: int = 100,
    tail_bins: int = 40,
    batch_size: int = 32,
    limit: int | None = None,
    interior_only: bool = True,
    num_workers: int | None = None,
    progress: bool = False,
    observers: Sequence = (),
) -> DatasetStats:
    """Pre-ReLU distribution and top-k examples of ``units`` over an image folder (module
    docstring).

    Args:
        model: the network (on any device).
        units: units or families (``"3b:379"``, a :class:`~circuits.units.Family`, …).
        images: a folder (read recursively, sorted) or a list of image files.
        k: top examples per unit.
        bins: about this many histogram bins per unit in ``histogram``.
        tail_bins: about this many bins over the positive range for the tail fit.
        batch_size: images per forward pass.
        limit: read only the first ``limit`` files (sorted order).
        interior_only: top examples only at positions whose receptive field lies inside the
            image (the distribution always uses every position).
        num_workers: DataLoader workers (default ``min(2, cpu count)``; 0 = in process).
        observers: more measures of the same pass: each gets ``observer.update(layer, ids,
            acts, file_idx)`` per batch and layer (``acts`` ``(B, len(ids), H, W)`` pre-ReLU,
            float32 on the CPU; ``file_idx`` ``(B,)`` positions in the file list), e.g.
            :class:`studies.measure.activation_stats.ActivationObserver`.

    Returns:
        :class:`DatasetStats`.

    Raises:
        KeyError / IndexError: a unit not in the model (before reading any image).
        ValueError: with ``interior_only``, a layer wider than the crop (:func:`check_layer_fits`).
        FileNotFoundError / NotADirectoryError / ValueError: no folder, no images, bad
            ``k``/``bins``/``batch_size``/``limit``, or no image could be decoded.
    """
    units = resolve_units(units, model.spec)
    if not units:
        raise ValueError("no units given")
    for name, v in (("k", k), ("bins", bins), ("tail_bins", tail_bins), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer ≥ 1; got {v!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an integer ≥ 1; got {limit!r}")
    if interior_only:
        for layer in dict.fromkeys(u.layer for u in units):
            check_layer_fits(model.spec, layer, 224)
    files = list_images(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    if not files:
        raise ValueError("no image files given")
    files = files[:limit] if limit else files
    if num_workers is None:
        num_workers = min(2, os.cpu_count() or 1)
    size = 224
    loader = DataLoader(ImageFiles(files, size), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=ImageFolderDataset.collate)
    batches = tqdm(loader, total=math.ceil(len(files) / batch_size), disable=None if progress else True,
                   desc="dataset statistics", unit="batch", file=sys.stderr)
    acc, n_read, skipped = _accumulate(model, units, files, batches, k, interior_only, size, observers)
    fill = _mean_colour(model)
    summary, hist_rows, top_rows = [], [], []
    crops: dict[str, Tensor] = {}
    cache: dict[int, Tensor] = {}
    for u in units:
        a = acc[str(u)]
        summary.append(a.summary(u, tail_bins))
        hist_rows += a.histogram_rows(u, bins)
        rows, crops[str(u)] = _top_examples(model, u, a, files, size, fill, cache)
        top_rows += rows
    return DatasetStats(pd.DataFrame(summary), pd.DataFrame(hist_rows), pd.DataFrame(top_rows), crops,
                        n_read, skipped, interior_only, size)


class _UnitAccumulator:
    """Running statistics of one unit over the batches: moments, fraction positive, range,
    the fine histogram and the best (value, file, row, col) examples."""

    def __init__(self, k: int):
        self.k = k
        self.s1 = self.s2 = 0.0
        self.npos = self.count = 0
        self.vmin, self.vmax = math.inf, -math.inf
        self.hist: _FineHistogram | None = None
        self.best: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, a: Tensor, v: np.ndarray, ff: np.ndarray, rr: np.ndarray, cc: np.ndarray) -> None:
        """``a``: ``(B, H, W)`` pre-ReLU maps of one batch; ``v, ff, rr, cc``: each image's best
        value, file index, row and column."""
        x = a.double()
        self.s1 += float(x.sum())
        self.s2 += float((x * x).sum())
        self.npos += int((x > 0).sum())
        self.count += x.numel()
        vals = a.flatten().numpy()
        self.vmin, self.vmax = min(self.vmin, float(vals.min())), max(self.vmax, float(vals.max()))
        if self.hist is None:
            self.hist = _FineHistogram(vals)
        else:
            self.hist.add(vals)
        if self.best is not None:
            pv, pf, pr, pc = self.best
            v, ff, rr, cc = (np.concatenate([pv, v]), np.concatenate([pf, ff]), np.concatenate([pr, rr]),
                             np.concatenate([pc, cc]))
        order = np.lexsort((ff, -v))[:self.k]  # by activation, ties by file order
        self.best = (v[order], ff[order], rr[order], cc[order])

    def mean_std(self) -> tuple[float, float]:
        n = self.count
        mean = self.s1 / n
        return mean, math.sqrt(max(self.s2 / n - mean * mean, 0.0) * n / max(n - 1, 1))

    def summary(self, u, tail_bins: int) -> dict:
        n = self.count
        mean, std = self.mean_std()
        te, tc = self.hist.rebinned(tail_bins, lo=0.0)
        tail = exponential_tail(te, tc, n)
        return dict(unit=str(u), layer=u.layer, index=u.index, n_values=n, mean=mean, std=std,
                    min=self.vmin, max=self.vmax, frac_positive=self.npos / n, **tail,
                    tail_rate_sigma=tail["tail_rate"] * std)

    def histogram_rows(self, u, bins: int) -> list[dict]:
        e, c = self.hist.rebinned(bins)
        return [dict(unit=str(u), layer=u.layer, index=u.index, bin_left=float(lo), bin_right=float(hi),
                     count=int(cnt), density=float(cnt / (self.count * (hi - lo))))
                for lo, hi, cnt in zip(e[:-1], e[1:], c)]


def _accumulate(model: InceptionV1, units, files: list[Path], batches, k: int, interior_only: bool, size: int,
                observers: Sequence = ()) -> tuple[dict[str, _UnitAccumulator], int, list[tuple[str, str]]]:
    """One pass over the image batches: ``({unit: accumulator}, images read, [(path, reason)] skipped)``."""
    dev = next(model.parameters()).device
    by_layer = group_by_layer(units)
    acc = {str(u): _UnitAccumulator(k) for u in units}
    skipped: list[tuple[str, str]] = []
    n_read = 0
    for imgs, idx, fails in batches:
        skipped.extend((str(files[i]), r) for i, r in fails)
        if len(idx) == 0:
            continue
        n_read += len(idx)
        acts = unit_pre_activations(model, imgs.to(dev), by_layer)  # fast path for one mixed layer
        for layer, ids in by_layer.items():
            a = acts[layer].float().cpu()  # (B, n, H, W)
            for ob in observers:
                ob.update(layer, ids, a, idx)
            h, w = a.shape[-2:]
            if interior_only:
                r0, r1 = _interior(model.spec, layer, h, size)
                c0, c1 = _interior(model.spec, layer, w, size)
            else:
                r0, r1, c0, c1 = 0, h - 1, 0, w - 1
            bv, barg = a[:, :, r0:r1 + 1, c0:c1 + 1].flatten(2).max(2)  # best position per image and unit
            iw = c1 - c0 + 1
            for j, i in enumerate(ids):
                acc[f"{layer}:{i}"].add(a[:, j], bv[:, j].numpy(), idx.numpy(), (barg[:, j] // iw).numpy() + r0,
                                        (barg[:, j] % iw).numpy() + c0)
    if n_read == 0:
        raise ValueError(f"no image could be read ({len(skipped)} failed, e.g. {skipped[0][0]}: {skipped[0][1]})")
    return acc, n_read, skipped


def _top_examples(model: InceptionV1, u, a: _UnitAccumulator, files: list[Path], size: int, fill: Tensor,
                  cache: dict[int, Tensor]) -> tuple[list[dict], Tensor]:
    """The top-example rows of one unit and their receptive-field crops ``(k, 3, rf, rf)``."""
    name = str(u)
    rf = receptive_field(model.spec, u.layer, size)
    v, ff, rr, cc = a.best
    rows, unit_crops = [], []
    for rank, (val, fi, r, col) in enumerate(zip(v, ff, rr, cc)):
        x, y = rf.center(int(col)), rf.center(int(r))
        rows.append(dict(unit=name, layer=u.layer, index=u.index, rank=rank, path=str(files[int(fi)]),
                         row=int(r), col=int(col), x=float(x), y=float(y), activation=float(val)))
        if int(fi) not in cache:
            cache[int(fi)] = load_image(files[int(fi)], size)
        unit_crops.append(_crop(cache[int(fi)], x, y, rf.size, fill))
    return rows, torch.stack(unit_crops) if unit_crops else torch.empty(0, 3, rf.size, rf.size)


# ============================================================================ rotation
def _rotation_offsets(angles: Sequence[float], crop: int, center: float) -> tuple[Tensor, Tensor]:
    """Source offsets ``(sx, sy)`` (px, y up), each ``(n_angles, crop, crop)``, of the pixels of a
    window rotated counter-clockwise by each angle: source = R(−α)·(output offset)."""
    a = torch.tensor([math.radians(t) for t in angles], dtype=torch.float64).view(-1, 1, 1)
    ax = torch.arange(crop, dtype=torch.float64) - center
    px = ax.view(1, 1, -1)  # output offset, x right
    py = -ax.view(1, -1, 1)  # output offset, y up
    return torch.cos(a) * px + torch.sin(a) * py, -torch.sin(a) * px + torch.cos(a) * py


def _rotated_windows(img: Tensor, cx: float, cy: float, angles: Sequence[float], crop: int, center: float,
                     fill: Tensor, offsets: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Windows ``(n_angles, 3, crop, crop)`` of ``img`` rotated counter-clockwise (y up) by
    each angle about pixel (cx, cy), which lands on pixel (center, center); bilinear, ``fill``
    outside the image."""
    h, w = img.shape[-2:]
    sx, sy = offsets if offsets is not None else _rotation_offsets(angles, crop, center)
    grid = torch.stack([(cx + sx) / (w - 1) * 2 - 1, (cy - sy) / (h - 1) * 2 - 1], -1).float()
    src = (img - fill).unsqueeze(0).expand(len(grid), -1, -1, -1)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True) + fill


@torch.no_grad()
def rotation_tuning(
    model: InceptionV1,
    stats: DatasetStats,
    step: float = 10.0,
    units=None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Joint tuning by rotation of the top examples of :func:`unit_statistics`.

    Each example is rotated about its receptive-field centre by 0, step, … < 360° and
    re-measured (pre-ReLU) at the same position through the receptive-field cone
    (:func:`circuits.cone.cone_responses`; the same value as the full image at rotation 0
    for interior positions). Each example's responses are shifted so that its own best
    angle is 0, then averaged.

    Args:
        step: degrees between rotations, in (0, 360].
        units: a subset of the units of ``stats`` (default all).

    Returns:
        ``(curve, per_example)``: ``curve`` has one row per (unit, rotation): ``rotation``
        (deg away from each example's best angle, counter-clockwise), ``response`` (mean),
        ``response_std``, ``relative`` (response / response at 0), ``n_examples``;
        ``per_example`` one row per (unit, rank, angle): ``rank``, ``angle`` (deg, absolute),
        ``response``, ``best_angle``.

    Raises:
        ValueError: bad ``step``; the fast path is unavailable (hooks on the model).
    """
    if not (isinstance(step, (int, float)) and 0 < step <= 360) or math.isnan(step):
        raise ValueError(f"step must be in (0, 360] deg; got {step!r}")
    angles = [i * step for i in range(int(math.floor(360 / step + 1e-9)))]
    names = [str(u) for u in resolve_units(units, model.spec)] if units is not None else list(stats.crops)
    fill = _mean_colour(model)
    dev = next(model.parameters()).device
    images: dict[str, Tensor] = {}
    curve_rows, ex_rows = [], []
    top = stats.top
    for name in names:
        u = Unit.parse(name)
        layer, index = u.layer, u.index
        why = fast_path_problem(model, layer)
        if why:
            raise ValueError(f"rotation_tuning needs the fast path: {why}")
        plan = plan_for_units(model.spec, layer, [index])
        t = top[top["unit"] == name].sort_values("rank").reset_index(drop=True)
        if t.empty:
            continue
        for p in t["path"]:
            if p not in images:
                images[p] = load_image(p, stats.size)
        offsets = _rotation_offsets(angles, plan.crop, plan.center)
        na = len(angles)
        # all examples × angles through the cone in one call (windows made per example, on demand)
        wins = torch.cat([_rotated_windows(images[r["path"]], r["x"], r["y"], angles, plan.crop, plan.center,
                                           fill, offsets) for _, r in t.iterrows()])
        R = cone_responses(model, layer, [index], wins.to(dev), plan)[:, 0].float().cpu().numpy().reshape(-1, na)
        for (_, row), r in zip(t.iterrows(), R):
            b = int(np.argmax(r))
            for a, v in zip(angles, r):
                ex_rows.append(dict(unit=name, layer=layer, index=index, rank=int(row["rank"]), angle=a,
                                    response=float(v), best_angle=angles[b]))
        aligned = np.stack([np.roll(r, -int(np.argmax(r))) for r in R])
        mean, sd = aligned.mean(0), aligned.std(0)
        for j, a in enumerate(angles):
            curve_rows.append(dict(unit=name, layer=layer, index=index, rotation=a, response=float(mean[j]),
                                   response_std=float(sd[j]),
                                   relative=float(mean[j] / mean[0]) if mean[0] != 0 else float("nan"),
                                   n_examples=len(R)))
    return pd.DataFrame(curve_rows), pd.DataFrame(ex_rows)

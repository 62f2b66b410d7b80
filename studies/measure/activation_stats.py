"""Dataset-wide activation measures of units, in the one streamed pass of
:func:`studies.dataset.unit_statistics` (Curve Detectors, Cammarata et al., Distill 2020,
section "Dataset Analysis", figs. 3, 6-7 and 12).

:class:`ActivationObserver` rides along that pass (one forward per image batch, stopping at
the units' layer; never the whole folder in memory) and adds, per unit:

* **sparsity**: the fraction of (image, position) pairs where the unit is active
  (post-ReLU > 0; Curve Detectors: ≈ 10-11 % for 3b:379) and the fraction of images with any
  active position;
* the exact **expected post-ReLU value** E[max(x, 0)] over every (image, position);
* **activation-range examples** (figs. 6-7): receptive-field positions sampled uniformly at
  random within activation ranges of the pre-ReLU distribution, given as value ranges
  (``400:800``) or quantile ranges (``q0.99:1``). Sampling streams: every (image, position)
  gets a pseudo-random key in [0, 1) from a hash of (seed, file index, unit, position), and
  each range keeps the ``k`` smallest keys seen ("bottom-k" sampling: a uniform sample
  without replacement, independent of batch size, worker order and file order). Value ranges
  are known before the pass and sampled exactly. Quantile ranges are known only at the end,
  so positions are kept per bin of a value grid (≤ :data:`GRID_BINS` bins, coarsened by
  merging pairs as the range grows — bottom-k sets merge exactly) and a quantile range is
  rounded to the grid's bin edges; the table reports the rounded value range, which every
  sample falls in.

Only positions whose receptive field lies inside the image are sampled by default (as for
the top examples); the distribution, sparsity and quantiles use every position.

:func:`finish` turns the pass into tidy tables (:class:`ActivationReport`); the
expected-value table (fig. 12) splits E[max(x, 0)] over the histogram's bins
(x·p(x)·Δx with x the bin centre, so the shares are exact to the histogram's resolution:
≤ 65,536 fine bins).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from circuits.geometry import receptive_field
from circuits.model import InceptionV1

from .dataset import DatasetStats, _crop, _FineHistogram, _interior, _mean_colour
from .images import load_image

#: most grid bins of the quantile-range sampler before neighbours merge
GRID_BINS = 1024

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# ============================================================================ ranges
@dataclass(frozen=True)
class RangeBin:
    """An activation range: ``lo ≤ x < hi`` in pre-ReLU units (``kind="value"``) or in
    quantiles of the unit's pre-ReLU distribution over every (image, position)
    (``kind="quantile"``, 0 ≤ lo < hi ≤ 1; a top quantile of 1 includes the maximum)."""

    label: str
    lo: float
    hi: float
    kind: str = "quantile"

    def __post_init__(self):
        if self.kind not in ("quantile", "value"):
            raise ValueError(f"range kind must be 'quantile' or 'value'; got {self.kind!r}")
        if not self.lo < self.hi or math.isnan(self.lo) or math.isnan(self.hi):
            raise ValueError(f"range {self.label!r}: need lo < hi; got {self.lo}:{self.hi}")
        if self.kind == "quantile" and not (0.0 <= self.lo and self.hi <= 1.0):
            raise ValueError(f"quantile range {self.label!r} must lie in [0, 1]; got {self.lo}:{self.hi}")


#: Default ranges (figs. 6-7 in quantiles, as BVLC's units have other scales than Lucid's):
#: the top 1 % ("strongest"), 90-99 % (curve units are positive at ≈ 10 % of positions, so
#: this is the weak positive part), the middle 10 % and the bottom 1 % ("strong negative").
DEFAULT_RANGES = (
    RangeBin("strong positive (top 1 %)", 0.99, 1.0),
    RangeBin("weak positive (90-99 %)", 0.90, 0.99),
    RangeBin("middle (45-55 %)", 0.45, 0.55),
    RangeBin("strong negative (bottom 1 %)", 0.0, 0.01),
)

#: Curve Detectors fig. 7's value ranges for Lucid's 3b:379 (pre-ReLU units of that checkpoint).
ARTICLE_RANGES_379 = (
    RangeBin("strongest 400-800", 400.0, 800.0, "value"),
    RangeBin("weak positive 0-400", 0.0, 400.0, "value"),
    RangeBin("around zero -300-0", -300.0, 0.0, "value"),
    RangeBin("strong negative -800--400", -800.0, -400.0, "value"),
)

_RANGE_RE = re.compile(r"^(q?)\s*(-?[0-9.eE+-]*)\s*:\s*(-?[0-9.eE+-]*)$")


def parse_ranges(text: str | Sequence[str]) -> list[RangeBin]:
    """Ranges from ``"q0.99:1,q0.9:0.99"`` (quantiles) or ``"400:800,0:400,-300:0"`` (values;
    an empty bound is open: ``"400:"`` = x ≥ 400); a list of such strings is joined.

    Raises:
        ValueError: a part that is not ``[q]LO:HI``, or a bad range.
    """
    parts = [p.strip() for t in ([text] if isinstance(text, str) else text) for p in str(t).split(",") if p.strip()]
    if not parts:
        raise ValueError("no activation ranges given (e.g. q0.99:1,q0.9:0.99 or 400:800,0:400)")
    out = []
    for p in parts:
        m = _RANGE_RE.match(p)
        if not m:
            raise ValueError(f"cannot parse activation range {p!r}; expected LO:HI (values) or qLO:HI (quantiles)")
        q = bool(m.group(1))
        try:
            lo = float(m.group(2)) if m.group(2) else (0.0 if q else -math.inf)
            hi = float(m.group(3)) if m.group(3) else (1.0 if q else math.inf)
        except ValueError:
            raise ValueError(f"cannot parse activation range {p!r}; bounds must be numbers") from None
        label = f"quantile {lo:g}-{hi:g}" if q else f"{lo:g} to {hi:g}"
        out.append(RangeBin(label, lo, hi, "quantile" if q else "value"))
    return out


# ============================================================================ sampling
def sample_keys(seed: int, file_idx: np.ndarray, unit: int, n_pos: int) -> np.ndarray:
    """Pseudo-random keys in [0, 1), ``(len(file_idx), n_pos)`` float64: a SplitMix64 hash of
    (seed, file index, unit index, flat position). The same inputs always give the same key."""
    with np.errstate(over="ignore"):
        f = np.asarray(file_idx, dtype=np.uint64).reshape(-1, 1)
        p = np.arange(n_pos, dtype=np.uint64).reshape(1, -1)
        z = (np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15) + f * np.uint64(0xBF58476D1CE4E5B9)
             + np.uint64(unit) * np.uint64(0x94D049BB133111EB) + p * np.uint64(0xD6E8FEB86659FD93)) & _M64
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


_FIELDS = ("bin", "key", "value", "file", "row", "col")


class BottomK:
    """Per bin, the ``k`` entries with the smallest keys seen so far (a uniform random sample
    without replacement of each bin's entries when keys are i.i.d. uniform). Entries carry
    ``value``, ``file``, ``row``, ``col``; bins are integers."""

    def __init__(self, k: int):
        self.k = k
        self.e = {f: np.zeros(0, dtype=np.int64 if f in ("bin", "file", "row", "col") else np.float64)
                  for f in _FIELDS}

    def _threshold(self, bins: np.ndarray) -> np.ndarray:
        thr = np.full(len(bins), np.inf)
        if len(self.e["bin"]) == 0:
            return thr
        ub, start, cnt = np.unique(self.e["bin"], return_index=True, return_counts=True)
        full = cnt >= self.k
        kth = self.e["key"][np.minimum(start + self.k - 1, len(self.e["key"]) - 1)]
        pos = np.clip(np.searchsorted(ub, bins), 0, len(ub) - 1)
        hit = (ub[pos] == bins) & full[pos]
        thr[hit] = kth[pos[hit]]
        return thr

    def offer(self, **new: np.ndarray) -> None:
        """Add entries (arrays ``bin``, ``key``, ``value``, ``file``, ``row``, ``col``)."""
        keep = new["key"] < self._threshold(new["bin"])
        if not keep.any():
            return
        self._select({f: np.concatenate([self.e[f], np.asarray(new[f])[keep].astype(self.e[f].dtype)])
                      for f in _FIELDS})

    def rebin(self, fn) -> None:
        """Map every entry's bin through ``fn`` (e.g. merge neighbours) and keep the bottom k."""
        e = dict(self.e)
        e["bin"] = fn(e["bin"])
        self._select(e)

    def _select(self, e: dict) -> None:
        order = np.lexsort((e["key"], e["bin"]))
        b = e["bin"][order]
        first = np.r_[True, b[1:] != b[:-1]] if len(b) else np.zeros(0, bool)
        starts = np.flatnonzero(first)
        rank = np.arange(len(b)) - starts[np.cumsum(first) - 1]
        order = order[rank < self.k]
        self.e = {f: e[f][order] for f in _FIELDS}

    def take(self, bins: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The bottom ``k`` of the union of ``bins`` (all bins when None), by key."""
        m = np.ones(len(self.e["bin"]), bool) if bins is None else np.isin(self.e["bin"], bins)
        e = {f: v[m] for f, v in self.e.items()}
        o = np.argsort(e["key"], kind="stable")[:self.k]
        return {f: v[o] for f, v in e.items()}


class _GridSampler:
    """Bottom-k per bin of a value grid ``origin + i·w`` that coarsens (w doubles, neighbours
    merge) to keep at most :data:`GRID_BINS` bins."""

    def __init__(self, k: int):
        self.store = BottomK(k)
        self.origin = self.w = None
        self.lo = self.hi = None

    def offer(self, x: np.ndarray, **payload) -> None:
        if self.w is None:
            lo, hi = float(x.min()), float(x.max())
            self.origin = lo
            self.w = (hi - lo) / 256 if hi > lo else max(abs(lo), 1.0) * 1e-3
        b = np.floor((x - self.origin) / self.w).astype(np.int64)
        lo, hi = int(b.min()), int(b.max())
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)
        while self.hi - self.lo + 1 > GRID_BINS:
            self.w *= 2
            b //= 2
            self.lo //= 2
            self.hi //= 2
            self.store.rebin(lambda v: v // 2)
        self.store.offer(bin=b, value=x, **payload)

    def take_range(self, lo: float, hi: float) -> tuple[dict[str, np.ndarray], float, float]:
        """Bottom k of the grid bins between ``lo`` and ``hi`` rounded to bin edges; returns the
        sample and the rounded ``(lo, hi)`` (±inf kept)."""
        if self.w is None:
            return self.store.take(np.zeros(0, np.int64)), lo, hi
        i0 = -(1 << 62) if lo == -math.inf else int(round((lo - self.origin) / self.w))
        i1 = (1 << 62) if hi == math.inf else int(round((hi - self.origin) / self.w))
        bins = np.unique(self.store.e["bin"])
        bins = bins[(bins >= i0) & (bins < i1)]
        rlo = lo if lo == -math.inf else self.origin + i0 * self.w
        rhi = hi if hi == math.inf else self.origin + i1 * self.w
        return self.store.take(bins), rlo, rhi


# ============================================================================ observer
class ActivationObserver:
    """Sparsity, expected post-ReLU value and activation-range samples of units, fed by
    :func:`studies.dataset.unit_statistics` (``observers=[obs]``) — see the module docstring.

    Args:
        model: the network (for receptive fields).
        ranges: :class:`RangeBin` list (default :data:`DEFAULT_RANGES`).
        k: examples per range and unit.
        seed: seed of the sampling keys.
        interior_only: sample only positions whose receptive field lies inside the image.
        size: image side, px (224).

    Raises:
        ValueError: bad ``k`` or ranges.
    """

    def __init__(self, model: InceptionV1, ranges: Sequence[RangeBin] = DEFAULT_RANGES, k: int = 8,
                 seed: int = 0, interior_only: bool = True, size: int = 224):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer ≥ 1; got {k!r}")
        self.ranges = list(ranges)
        if not self.ranges:
            raise ValueError("no activation ranges given")
        self.spec, self.k, self.seed = model.spec, k, int(seed)
        self.interior_only, self.size = interior_only, size
        self.n: dict[str, int] = {}
        self.relu_sum: dict[str, float] = {}
        self.images_any: dict[str, int] = {}
        self.images: dict[str, int] = {}
        self.value_samples: dict[str, list[BottomK]] = {}
        self.grid: dict[str, _GridSampler] = {}
        self.hists: dict[str, _FineHistogram] = {}

    def update(self, layer: str, ids: Sequence[int], acts: Tensor, file_idx: Tensor) -> None:
        """One batch of one layer: ``acts`` ``(B, len(ids), H, W)`` pre-ReLU; ``file_idx`` ``(B,)``."""
        b, _, h, w = acts.shape
        if self.interior_only:
            r0, r1 = _interior(self.spec, layer, h, self.size)
            c0, c1 = _interior(self.spec, layer, w, self.size)
        else:
            r0, r1, c0, c1 = 0, h - 1, 0, w - 1
        files = np.asarray(file_idx, dtype=np.int64)
        rows, cols = np.meshgrid(np.arange(r0, r1 + 1), np.arange(c0, c1 + 1), indexing="ij")
        rows, cols = np.broadcast_to(rows.ravel(), (b, rows.size)), np.broadcast_to(cols.ravel(), (b, cols.size))
        ff = np.broadcast_to(files[:, None], rows.shape)
        inner = acts[:, :, r0:r1 + 1, c0:c1 + 1]
        for j, i in enumerate(ids):
            u = f"{layer}:{i}"
            x = acts[:, j]
            pos = x > 0
            self.n[u] = self.n.get(u, 0) + x.numel()
            self.relu_sum[u] = self.relu_sum.get(u, 0.0) + float(x.clamp(min=0).double().sum())
            self.images_any[u] = self.images_any.get(u, 0) + int(pos.flatten(1).any(1).sum())
            self.images[u] = self.images.get(u, 0) + b
            flat = x.flatten().numpy()
            if u in self.hists:
                self.hists[u].add(flat)
            else:
                self.hists[u] = _FineHistogram(flat)
            v = inner[:, j].reshape(b, -1).numpy()
            keys = sample_keys(self.seed, files, i, h * w)
            keys = keys.reshape(b, h, w)[:, r0:r1 + 1, c0:c1 + 1].reshape(b, -1)
            payload = dict(key=keys.ravel(), file=ff.ravel(), row=rows.ravel(), col=cols.ravel())
            vals = v.ravel().astype(np.float64)
            stores = self.value_samples.setdefault(u, [BottomK(self.k) for _ in self.ranges])
            for r, store in zip(self.ranges, stores):
                if r.kind == "value":
                    m = (vals >= r.lo) & (vals < r.hi)
                    if m.any():
                        store.offer(bin=np.zeros(int(m.sum()), np.int64), value=vals[m],
                                    **{f: a[m] for f, a in payload.items()})
            if any(r.kind == "quantile" for r in self.ranges):
                self.grid.setdefault(u, _GridSampler(self.k)).offer(vals, **payload)


# ============================================================================ tables
def hist_quantile(hist: _FineHistogram, q: float) -> float:
    """Value below which a fraction ``q`` of the histogram's values lie (linear within a fine
    bin); ``-inf`` for q = 0 and ``+inf`` for q = 1 (open ends)."""
    if q <= 0:
        return -math.inf
    if q >= 1:
        return math.inf
    e, c = hist.edges(), hist.counts
    cum = np.cumsum(c)
    t = q * cum[-1]
    i = int(np.searchsorted(cum, t, side="left"))
    prev = cum[i] - c[i]
    frac = (t - prev) / c[i] if c[i] else 0.0
    return float(e[i] + frac * (e[i + 1] - e[i]))


def _ev_parts(hist: _FineHistogram, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fine bins' ``(centres, counts, x·p(x)·Δx)`` with x clipped at 0 (the post-ReLU value)."""
    e, c = hist.edges(), hist.counts
    mid = (e[:-1] + e[1:]) / 2
    return mid, c, np.maximum(mid, 0.0) * c / n


@dataclass
class ActivationReport:
    """What :func:`finish` returns (tidy tables, one row per unit × …).

    Attributes:
        summary: per unit: ``unit``, ``layer``, ``index``, ``n_values`` (images × positions),
            ``n_images``, ``frac_active`` (post-ReLU > 0 over (image, position) pairs),
            ``frac_images_active`` (images with any active position), ``mean``/``std``
            (pre-ReLU), ``expected_relu`` (E[max(x, 0)], exact), ``ev_share_top0.1``/
            ``ev_share_top1``/``ev_share_top10`` (share of E[max(x, 0)] carried by the top
            0.1/1/10 % of (image, position) pairs, from the fine histogram), the tail fit of
            :func:`studies.dataset.unit_statistics` (``tail_rate`` per activation unit,
            ``tail_rate_sigma`` per σ, ``tail_r2``).
        expected_value: per unit and bin (≈ ``bins`` over the whole range): ``bin_left``,
            ``bin_right``, ``density`` (pdf), ``ev_contribution`` (Σ max(x, 0)·count / n over
            the bin's fine bins), ``ev_share`` (of E[max(x, 0)]).
        ranges: per unit and range: ``range``, ``kind``, ``q_lo``/``q_hi`` (quantile ranges),
            ``lo``/``hi`` (value range sampled, rounded to the grid for quantile ranges),
            ``frac_values`` (fraction of (image, position) pairs in it), ``ev_share``,
            ``n_examples``.
        examples: per sampled example: ``unit``, ``range``, ``rank`` (by key), ``path``,
            ``row``/``col`` (layer map), ``x``/``y`` (receptive-field centre, px),
            ``activation`` (pre-ReLU), ``key``.
        crops: ``{unit: {range label: (n, 3, rf, rf)}}`` receptive-field crops, RGB in [0, 1].
    """

    summary: pd.DataFrame
    expected_value: pd.DataFrame
    ranges: pd.DataFrame
    examples: pd.DataFrame
    crops: dict[str, dict[str, Tensor]] = field(repr=False)
    files: list[Path] = field(default_factory=list, repr=False)


def _range_rows(obs: ActivationObserver, u: str, hist: _FineHistogram, n: int, ev_total: float):
    mid, c, ev = _ev_parts(hist, n)
    for r, store in zip(obs.ranges, obs.value_samples.get(u, [])):
        if r.kind == "value":
            sample, lo, hi = store.take(), r.lo, r.hi
            q_lo = q_hi = float("nan")
        else:
            q_lo, q_hi = r.lo, r.hi
            sample, lo, hi = obs.grid[u].take_range(hist_quantile(hist, r.lo), hist_quantile(hist, r.hi))
        m = (mid >= lo) & (mid < hi)
        yield r, sample, dict(range=r.label, kind=r.kind, q_lo=q_lo, q_hi=q_hi, lo=lo, hi=hi,
                              frac_values=float(c[m].sum() / n), ev_share=float(ev[m].sum() / ev_total)
                              if ev_total > 0 else float("nan"), n_examples=len(sample["key"]))


#: columns of :attr:`ActivationReport.examples` (also when no position fell in any range)
EXAMPLE_COLUMNS = ("unit", "layer", "index", "range", "rank", "path", "row", "col", "x", "y", "activation", "key")


def finish(obs: ActivationObserver, stats: DatasetStats, files: Sequence[str | Path], model: InceptionV1,
           bins: int = 100) -> ActivationReport:
    """Tables and crops of ``obs`` after :func:`studies.dataset.unit_statistics` ran with it on
    ``files`` (the same list, same order) and returned ``stats``.

    Raises:
        ValueError: ``obs`` saw no data.
    """
    if not obs.n:
        raise ValueError("the observer saw no activations (was it passed to unit_statistics?)")
    files = [Path(f) for f in files]
    fill = _mean_colour(model)
    base = stats.summary.set_index("unit")
    summary, ev_rows, range_rows, ex_rows = [], [], [], []
    crops: dict[str, dict[str, Tensor]] = {}
    cache: dict[int, Tensor] = {}
    for u, n in obs.n.items():
        layer, index = u.split(":")[0], int(u.split(":")[1])
        hist = obs.hists[u]
        mid, c, ev = _ev_parts(hist, n)
        ev_total = float(ev.sum())
        row = dict(unit=u, layer=layer, index=index, n_values=n, n_images=obs.images[u],
                   frac_active=float(base.loc[u, "frac_positive"]), frac_images_active=obs.images_any[u] / obs.images[u],
                   mean=float(base.loc[u, "mean"]), std=float(base.loc[u, "std"]),
                   expected_relu=obs.relu_sum[u] / n)
        for q, name in ((0.999, "ev_share_top0.1"), (0.99, "ev_share_top1"), (0.9, "ev_share_top10")):
            v = hist_quantile(hist, q)
            row[name] = float(ev[mid >= v].sum() / ev_total) if ev_total > 0 else float("nan")
        for k in ("tail_rate", "tail_rate_sigma", "tail_r2"):
            row[k] = float(base.loc[u, k])
        summary.append(row)
        e, cc = hist.rebinned(bins)
        at = np.searchsorted(e, mid, side="right") - 1
        ok = (at >= 0) & (at < len(cc))
        ev_coarse = np.bincount(at[ok], weights=ev[ok], minlength=len(cc))
        for lo, hi, cnt, evc in zip(e[:-1], e[1:], cc, ev_coarse):
            ev_rows.append(dict(unit=u, layer=layer, index=index, bin_left=float(lo), bin_right=float(hi),
                                count=int(cnt), density=float(cnt / (n * (hi - lo))), ev_contribution=float(evc),
                                ev_share=float(evc / ev_total) if ev_total > 0 else float("nan")))
        rf = receptive_field(model.spec, layer, obs.size)
        crops[u] = {}
        for r, sample, rrow in _range_rows(obs, u, hist, n, ev_total):
            range_rows.append(dict(unit=u, layer=layer, index=index, **rrow))
            cr = []
            for rank in range(len(sample["key"])):
                fi, rr, col = int(sample["file"][rank]), int(sample["row"][rank]), int(sample["col"][rank])
                x, y = rf.center(col), rf.center(rr)
                ex_rows.append(dict(unit=u, layer=layer, index=index, range=r.label, rank=rank, path=str(files[fi]),
                                    row=rr, col=col, x=float(x), y=float(y),
                                    activation=float(sample["value"][rank]), key=float(sample["key"][rank])))
                if fi not in cache:
                    cache[fi] = load_image(files[fi], obs.size)
                cr.append(_crop(cache[fi], x, y, rf.size, fill))
            crops[u][r.label] = torch.stack(cr) if cr else torch.empty(0, 3, rf.size, rf.size)
    return ActivationReport(pd.DataFrame(summary), pd.DataFrame(ev_rows), pd.DataFrame(range_rows),
                            pd.DataFrame(ex_rows, columns=list(EXAMPLE_COLUMNS)), crops, files)

"""Rotational equivariance of a family's expanded weights from the previous family.

Source: Cammarata et al., "Curve Circuits" (Distill 2021), "Equivariance"; Olah et al.,
"Naturally Occurring Equivariance in Neural Networks" (Distill 2020): the weights of a curve
detector at orientation θ_d from the early curves look like those of a curve detector at
θ_r rotated by θ_d − θ_r — the kernels rotated in space *and* each source curve replaced by
the one rotated by the same angle.

Measure (:func:`equivariance`). ``W_d (S, 5, 5)``: expanded weights (:func:`circuits.expanded.expand`,
ReLUs → identity) from the ``S`` source-family units to destination unit ``d``. For every
ordered pair (destination ``d``, reference ``r ≠ d``) the reference is rotated by
``Δ = θ_d − θ_r + δ`` with :func:`edits.handwritten.rotate_pattern` — bilinear spatial rotation
(``grid_sample``, ``align_corners=True``, zeros outside) and circular linear interpolation
over the irregular source orientations (see :mod:`edits.handwritten`) — and compared to
``W_d`` by Pearson correlation over all ``S·5·5`` entries. ``δ`` runs over a small window
(``offsets``, default −15°…+15° in 5° steps) that absorbs the error of the measured
orientations (they come from a 10° grid); the **pair score** is the best correlation over
the window ("correlation after the best rotation"). The **unit score** is the mean pair
score over the references, the **family score** the mean unit score.

Control: the destination orientations are shuffled among the units (seeded permutations;
source orientations kept) and the family score recomputed with the same window; the report
gives the shuffled scores' mean, 95th percentile and the one-sided permutation p-value
``(1 + #{shuffled ≥ observed}) / (1 + n)``. A perfectly equivariant family scores 1 (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from edits.handwritten import rotate_pattern

#: Default search window around the orientation difference (degrees).
DEFAULT_OFFSETS: tuple[float, ...] = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)


@dataclass
class EquivarianceResult:
    """What :func:`equivariance` returns.

    Attributes:
        units: destination unit names, in input order; ``orientations``: their degrees.
        per_unit: one row per unit: ``unit``, ``orientation``, ``score`` (mean best-window
            correlation over references), ``score_exact`` (same at δ = 0),
            ``reference_score`` (mean best-window correlation of the unit, rotated, with every other
            unit: how well it serves as a template), ``best_reference``.
        pairs: one row per (dst, reference): ``delta`` (θ_d − θ_r), ``score``, ``offset`` (best δ), ``exact``.
        family_score: mean of ``per_unit.score``.
        control: ``{"n", "seed", "mean", "std", "p95", "max", "p_value"}`` over shuffled orientations.
        offsets: the δ window (degrees). ``shuffled``: the control's family scores.
    """

    units: list[str]
    orientations: list[float]
    per_unit: pd.DataFrame
    pairs: pd.DataFrame
    family_score: float
    control: dict
    offsets: tuple[float, ...]
    shuffled: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        """JSON-compatible summary (no per-pair table)."""
        return {"units": self.units, "orientations": self.orientations, "family_score": self.family_score,
                "control": self.control, "offsets": list(self.offsets),
                "per_unit": self.per_unit.to_dict(orient="records")}


def _corr_rows(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each row of ``a (n, m)`` with each row of ``b (..., m)`` → ``(n, ...)``."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return torch.einsum("nm,...m->n...", a, b)


def correlation_table(patterns: Tensor, orientations: Sequence[float], src_orientations: Sequence[float],
                      offsets: Sequence[float] = DEFAULT_OFFSETS) -> Tensor:
    """``C[d, r, i, j, o]`` = corr(``W_d``, ``W_r`` rotated by ``θ_i − θ_j + δ_o``), float64.

    Every (i, j) pair of orientations is tabulated so that shuffled assignments are lookups.

    Args:
        patterns: ``(D, S, k, k)``. orientations: ``D`` degrees. src_orientations: ``S`` degrees.

    Raises:
        ValueError: mismatched lengths.
    """
    d, s = patterns.shape[:2]
    if len(orientations) != d or len(src_orientations) != s:
        raise ValueError(f"patterns {tuple(patterns.shape)} need {d} orientations and {s} source orientations; got "
                         f"{len(orientations)} and {len(src_orientations)}")
    p = patterns.to(torch.float64)
    th = np.asarray(orientations, dtype=float)
    flat = p.reshape(d, -1)
    out = torch.empty(d, d, d, d, len(offsets), dtype=torch.float64)
    cache: dict[float, Tensor] = {}
    for i in range(d):
        for j in range(d):
            for o, off in enumerate(offsets):
                ang = round(float(th[i] - th[j] + off) % 360.0, 9)
                if ang not in cache:
                    rot = rotate_pattern(p, ang, src_orientations)  # every reference at once
                    cache[ang] = _corr_rows(flat, rot.reshape(d, -1))  # (D dst, D ref)
                out[:, :, i, j, o] = cache[ang]
    return out


def _family_scores(table: Tensor, perms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-assignment (family score, unit scores (P, D), best offset index (P, D, D))."""
    t = table.max(dim=-1)  # best over the window
    best, arg = t.values.numpy(), t.indices.numpy()  # (D, D, D, D)
    n = best.shape[0]
    dd, rr = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    mask = dd != rr
    pair = best[dd[None], rr[None], perms[:, dd], perms[:, rr]]  # (P, D, D)
    off = arg[dd[None], rr[None], perms[:, dd], perms[:, rr]]
    unit = np.where(mask[None], pair, 0.0).sum(-1) / (n - 1)
    return unit.mean(-1), unit, off


def equivariance(patterns: Tensor, orientations: Sequence[float], src_orientations: Sequence[float],
                 units: Sequence[str] | None = None, offsets: Sequence[float] = DEFAULT_OFFSETS,
                 n_shuffles: int = 1000, seed: int = 0) -> EquivarianceResult:
    """Equivariance scores of a family (see the module docstring).

    Args:
        patterns: ``(D, S, k, k)`` expanded weights from the source family (e.g.
            :func:`edits.handwritten.learned_patterns`), ``D ≥ 2``.
        orientations: ``D`` preferred orientations (degrees) of the destination units.
        src_orientations: ``S`` orientations (degrees) of the source units.
        units: names for the tables (default ``"0"…``).
        offsets: the δ window (degrees) searched around each orientation difference.
        n_shuffles: shuffled-orientation control assignments (seeded ``numpy`` permutations).

    Returns:
        :class:`EquivarianceResult`.

    Raises:
        ValueError: fewer than 2 units, mismatched lengths, ``n_shuffles < 1``, empty ``offsets``.
    """
    d = patterns.shape[0]
    if d < 2:
        raise ValueError(f"equivariance needs at least 2 destination units, got {d}")
    if n_shuffles < 1 or not len(offsets):
        raise ValueError(f"n_shuffles must be ≥ 1 and offsets non-empty; got {n_shuffles}, {list(offsets)}")
    units = [str(u) for u in units] if units is not None else [str(i) for i in range(d)]
    table = correlation_table(patterns, orientations, src_orientations, offsets)
    ident = np.arange(d)[None]
    fam, unit, off = _family_scores(table, ident)
    exact = table[..., list(offsets).index(0.0)] if 0.0 in offsets else None
    rows, prs = [], []
    for a in range(d):
        best_r, best_v = None, -np.inf
        for b in range(d):
            if a == b:
                continue
            v = float(table[a, b, a, b].max())
            ex = float(exact[a, b, a, b]) if exact is not None else float("nan")
            prs.append(dict(dst=units[a], reference=units[b], delta=float((orientations[a] - orientations[b]) % 360),
                            score=v, offset=float(offsets[int(off[0, a, b])]), exact=ex))
            if v > best_v:
                best_r, best_v = units[b], v
        ex_u = float(np.mean([p["exact"] for p in prs if p["dst"] == units[a]]))
        as_ref = float(np.mean([float(table[b, a, b, a].max()) for b in range(d) if b != a]))
        rows.append(dict(unit=units[a], orientation=float(orientations[a]), score=float(unit[0, a]),
                         score_exact=ex_u, reference_score=as_ref, best_reference=best_r, best_pair_score=float(best_v)))
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(d) for _ in range(n_shuffles)])
    shuffled, _, _ = _family_scores(table, perms)
    obs = float(fam[0])
    control = {"n": int(n_shuffles), "seed": int(seed), "mean": float(shuffled.mean()), "std": float(shuffled.std()),
               "p95": float(np.percentile(shuffled, 95)), "max": float(shuffled.max()),
               "p_value": float((1 + (shuffled >= obs - 1e-12).sum()) / (1 + n_shuffles))}
    return EquivarianceResult(units, [float(o) for o in orientations], pd.DataFrame(rows), pd.DataFrame(prs), obs,
                              control, tuple(float(o) for o in offsets), shuffled)


def plot_patterns(patterns: Tensor, orientations: Sequence[float], src_orientations: Sequence[float],
                  units: Sequence[str], src_units: Sequence[str], reference: int, path, title: str = "",
                  scores: Sequence[float] | None = None) -> None:
    """Each unit's pattern next to the reference pattern rotated by ``θ_d − θ_ref`` (PNG at ``path``).

    One row per unit (sorted by orientation); left block: the unit's expanded weights from
    each source unit (columns sorted by source orientation, labelled), right block: the rotated
    reference, rescaled to the unit's L2 norm (correlation ignores scale). Each row has its own
    symmetric colour scale (±max |weight| of the row), shown by the row's colour bar.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    d, s, k = patterns.shape[0], patterns.shape[1], patterns.shape[-1]
    order = sorted(range(d), key=lambda i: orientations[i])
    scol = sorted(range(s), key=lambda i: src_orientations[i])
    step = k + 1  # one blank column between kernels, two between the blocks
    width = 2 * s * step + 1
    ref = patterns[reference].double()
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")
    fig, axes = plt.subplots(d, 1, figsize=(0.5 * width / step * 1.25 + 2.4, 0.62 * d + 1.4), squeeze=False,
                             constrained_layout=True)
    centres = [c * step + k / 2 - 0.5 for c in range(s)] + [(s + c) * step + 1 + k / 2 - 0.5 for c in range(s)]
    for row, i in enumerate(order):
        rot = rotate_pattern(ref, orientations[i] - orientations[reference], src_orientations)
        rot = rot * (patterns[i].double().norm() / rot.norm().clamp_min(1e-30))
        img = np.full((k, width), np.nan)
        for c, j in enumerate(scol):
            img[:, c * step:c * step + k] = patterns[i, j].double().numpy()
            img[:, (s + c) * step + 1:(s + c) * step + 1 + k] = rot[j].numpy()
        vmax = float(max(np.nanmax(np.abs(img)), 1e-12))
        ax = axes[row, 0]
        im = ax.imshow(img, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_yticks([])
        sc = f"\nr={scores[i]:.2f}" if scores is not None else ""
        ax.set_ylabel(f"{units[i]}\nθ={orientations[i]:.0f}°{sc}", fontsize=6, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        for sp in ax.spines.values():
            sp.set_visible(False)
        if row == 0:
            ax.set_xticks(centres, [f"{src_units[j]}\n{src_orientations[j]:.0f}°" for j in scol] * 2, fontsize=5)
            ax.xaxis.tick_top()
        cb = fig.colorbar(im, ax=ax, ticks=[-vmax, 0, vmax], fraction=0.02, pad=0.01)
        cb.ax.tick_params(labelsize=5)
        cb.ax.set_yticklabels([f"{-vmax:.2g}", "0", f"{vmax:.2g}"])
    fig.suptitle((title + "\n" if title else "") + f"left: unit's expanded weights from each source unit; right: "
                 f"{units[reference]} rotated by θ_unit − θ_ref (bilinear space, circular-linear source orientation), "
                 "scaled to the unit's L2 norm; colour: expanded weight, own scale per row", fontsize=7)
    fig.savefig(path, dpi=130)
    plt.close(fig)


__all__ = ["DEFAULT_OFFSETS", "EquivarianceResult", "correlation_table", "equivariance", "plot_patterns"]

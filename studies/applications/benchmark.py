"""Curve-extraction benchmark: metrics, Canny baseline, threshold tuning on a held-out split.

Data: the seeded synthetic scenes of :mod:`studies.applications.scenes` (curves, lines,
angles, plain/textured/noisy backgrounds, occluders) — split into a **tuning** split (scene
indices ``0 … n_tune − 1``) and a **test** split (``10000 …``, ``n_test`` scenes): every threshold and
Canny parameter is chosen on the tuning split only, then measured once on the test split.

Metrics, on bool maps of marked pixels, with a pixel tolerance ``tol`` (Euclidean, px;
default 2):

- curve **precision** = marked pixels within ``tol`` of a ground-truth curve pixel / marked
  pixels; **recall** = curve pixels within ``tol`` of a marked pixel / curve pixels; **F1**
  their harmonic mean (0 when nothing is marked). Counts are summed over the images of a split
  (micro-average).
- **line false-positive rate** = straight-line pixels (farther than ``tol`` + 2 px from every
  curve pixel) within ``tol`` of a marked pixel / those line pixels: the fraction of lines
  marked, measured as curve recall is.
- **angle rate**: the same for the pixels of the angles (reported, not a goal).
- **combing artefacts** (:func:`combing_rate`): the fraction of the pixels in the band
  ``tol < d ≤ tol + band_px`` around the true curves (and farther than ``tol`` from every other
  stroke) that are marked. Any pixel of that band lies on a normal of the curve (its offset to
  the nearest curve point is perpendicular to the curve), so a marked band pixel is a mark
  sticking out perpendicular to a true curve — what the combing effect (curve units excited by
  short lines perpendicular to the curve; Curve Detectors, Distill 2020, "combing") would draw.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

#: Canny grid searched on the tuning split: σ (px) × low × high thresholds (gradient of [0, 1] grey).
CANNY_GRID = dict(sigma=(1.0, 1.5, 2.0, 3.0), low=(0.02, 0.05, 0.1), high=(0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.2, 1.6))


def _dist(mask: np.ndarray) -> np.ndarray:
    """Distance (px) from every pixel to the nearest True pixel of ``mask`` (inf if none)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return distance_transform_edt(~mask)


@dataclass
class Counts:
    """Summable pixel counts of one or more images (see the module docstring)."""

    marked: int = 0
    marked_near_curve: int = 0
    curve: int = 0
    curve_found: int = 0
    line: int = 0
    line_marked: int = 0
    angle: int = 0
    angle_marked: int = 0
    band: int = 0
    band_marked: int = 0

    def __add__(self, o: Counts) -> Counts:
        return Counts(*[a + b for a, b in zip(self.astuple(), o.astuple())])

    def astuple(self) -> tuple[int, ...]:
        return tuple(getattr(self, f) for f in self.__dataclass_fields__)

    @property
    def precision(self) -> float:
        return self.marked_near_curve / self.marked if self.marked else 0.0

    @property
    def recall(self) -> float:
        return self.curve_found / self.curve if self.curve else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    @property
    def line_fp(self) -> float:
        return self.line_marked / self.line if self.line else 0.0

    @property
    def angle_rate(self) -> float:
        return self.angle_marked / self.angle if self.angle else 0.0

    @property
    def combing(self) -> float:
        return self.band_marked / self.band if self.band else 0.0

    def summary(self) -> dict[str, float]:
        return dict(precision=self.precision, recall=self.recall, f1=self.f1, line_fp=self.line_fp,
                    angle_rate=self.angle_rate, combing=self.combing)


def score(pred: np.ndarray, curve: np.ndarray, line: np.ndarray | None = None, angle: np.ndarray | None = None,
          tol: float = 2.0, band_px: float = 6.0) -> Counts:
    """Pixel counts of one marked map against its ground truth (module docstring).

    Args:
        pred, curve, line, angle: bool ``(H, W)`` (marked pixels; ground-truth masks).
        tol: match tolerance (px, Euclidean). band_px: width of the combing band (px).

    Raises:
        ValueError: shapes differ or ``tol`` < 0.
    """
    pred = np.asarray(pred, bool)
    curve = np.asarray(curve, bool)
    line = np.zeros_like(curve) if line is None else np.asarray(line, bool)
    angle = np.zeros_like(curve) if angle is None else np.asarray(angle, bool)
    if not (pred.shape == curve.shape == line.shape == angle.shape):
        raise ValueError(f"shapes differ: pred {pred.shape}, curve {curve.shape}, line {line.shape}, "
                         f"angle {angle.shape}")
    if tol < 0:
        raise ValueError(f"tol must be ≥ 0 px; got {tol}")
    d_curve, d_pred = _dist(curve), _dist(pred)
    near_pred = d_pred <= tol
    lines = line & (d_curve > tol + 2)
    others = _dist(line | angle) > tol
    band = (d_curve > tol) & (d_curve <= tol + band_px) & others
    return Counts(
        marked=int(pred.sum()), marked_near_curve=int((pred & (d_curve <= tol)).sum()),
        curve=int(curve.sum()), curve_found=int((curve & near_pred).sum()),
        line=int(lines.sum()), line_marked=int((lines & near_pred).sum()),
        angle=int(angle.sum()), angle_marked=int((angle & near_pred).sum()),
        band=int(band.sum()), band_marked=int((band & pred).sum()),
    )


def score_set(preds: Sequence[np.ndarray], scenes: Sequence, tol: float = 2.0) -> Counts:
    """Summed :func:`score` over scenes (:class:`~studies.applications.scenes.Scene`)."""
    total = Counts()
    for p, s in zip(preds, scenes, strict=True):
        total = total + score(p, s.curve, s.line, s.angle, tol)
    return total


def tune(make_pred: Callable[[int, dict], np.ndarray], n: int, grid: dict[str, Sequence], scenes: Sequence,
         tol: float = 2.0) -> tuple[dict, float]:
    """The grid point with the best curve F1 on ``scenes`` (the tuning split).

    Args:
        make_pred: ``(scene position, params) → bool (H, W)``.
        grid: ``{param: values}``; every combination is tried.

    Returns:
        ``(best params, best F1)``.
    """
    best, best_f1 = None, -1.0
    keys = list(grid)
    for vals in itertools.product(*(grid[k] for k in keys)):
        p = dict(zip(keys, vals))
        if "low" in p and "high" in p and p["low"] >= p["high"]:
            continue
        f1 = score_set([make_pred(i, p) for i in range(n)], scenes, tol).f1
        if f1 > best_f1:
            best, best_f1 = p, f1
    return best, best_f1

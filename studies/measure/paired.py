"""Paired comparisons of two classifiers on the same images, through ``scipy.stats``: the
exact McNemar test (:func:`mcnemar_exact`, ``scipy.stats.binomtest``) and the paired percentile
bootstrap CI of the accuracy change (:func:`paired_stats`, ``scipy.stats.bootstrap(..., paired=True)``).

Used by the family-ablation study, the main job's random control and the sweep's noise check.
The CI is never clamped to contain the point estimate: a percentile CI may exclude it on
small or skewed samples, and saying so is the honest report.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: ``b``, ``c`` the discordant counts (right → wrong,
    wrong → right), tested as binomial(b + c, ½) (``scipy.stats.binomtest``); 1.0 when b + c = 0."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be ≥ 0, got {b}, {c}")
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(int(b), int(b + c), 0.5, alternative="two-sided").pvalue)


def bootstrap_ci(base: np.ndarray, var: np.ndarray, n_resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Paired percentile bootstrap CI of ``mean(var) - mean(base)`` over the images (the pairs
    are resampled together: ``scipy.stats.bootstrap(..., paired=True, method="percentile")``,
    seeded). When every paired difference is equal the CI is that value (no spread to resample)."""
    b = np.asarray(base, dtype=np.float64)
    v = np.asarray(var, dtype=np.float64)
    if b.shape != v.shape or b.ndim != 1 or len(b) == 0:
        raise ValueError(f"base and var must be equal-length non-empty 1-D arrays, got {b.shape} and {v.shape}")
    d = v - b
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])

    def change(x, y, axis=-1):
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap((b, v), change, paired=True, vectorized=True, n_resamples=int(n_resamples),
                              confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_stats(base: np.ndarray, var: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Change of accuracy ``var - base`` (bool arrays over the same images): ``delta``, the
    paired bootstrap 95 % CI ``ci_low``/``ci_high`` (:func:`bootstrap_ci`, not clamped),
    ``lost`` (right → wrong), ``gained`` (wrong → right) and the exact McNemar ``mcnemar_p``."""
    base = np.asarray(base, dtype=bool)
    var = np.asarray(var, dtype=bool)
    lo, hi = bootstrap_ci(base, var, n_resamples, seed)
    b = int((base & ~var).sum())
    c = int((~base & var).sum())
    return {"delta": float(var.mean() - base.mean()), "ci_low": lo, "ci_high": hi,
            "lost": b, "gained": c, "mcnemar_p": mcnemar_exact(b, c)}

"""The family-ablation statistics (``paired_stats``: paired percentile bootstrap CI and exact
McNemar test) against independent computations: ``scipy.stats.binomtest`` for McNemar, a
per-resample loop and ``scipy.stats.bootstrap(paired=True)`` for the interval, and hand-built
data whose bootstrap distribution is a known binomial (issue 14, item 1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from studies.family_ablation import mcnemar_exact, paired_stats


@pytest.mark.parametrize("b", range(0, 26, 1))
def test_mcnemar_exact_equals_scipy_binomtest(b):
    for c in range(0, 26):
        expected = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
        assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12, abs=1e-300), (b, c)


def test_mcnemar_hand_values():
    assert mcnemar_exact(5, 0) == 2 / 32  # 2 · ½⁵
    assert mcnemar_exact(1, 4) == 2 * (1 + 5) / 32  # 2 · P(X ≤ 1), X ~ Bin(5, ½)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(200, 150) == pytest.approx(stats.binomtest(150, 350).pvalue, rel=1e-9)


def _loop_percentile_ci(base, var, idx):
    """Independent computation: each resample's accuracy change as (accuracy after) − (accuracy
    before) on the resampled images, then the 2.5/97.5 % points by linear interpolation between
    order statistics (numpy's default percentile definition, written out)."""
    deltas = sorted(float(var[i].mean()) - float(base[i].mean()) for i in idx)
    def q(p):
        h = (len(deltas) - 1) * p
        lo = int(np.floor(h))
        return deltas[lo] + (h - lo) * (deltas[min(lo + 1, len(deltas) - 1)] - deltas[lo])
    return q(0.025), q(0.975)


def test_paired_stats_counts_and_delta_by_hand():
    base = np.array([1, 1, 1, 1, 0, 0, 1, 0, 1, 1], bool)
    var = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 1], bool)
    idx = np.random.default_rng(0).integers(0, 10, (200, 10))
    s = paired_stats(base, var, idx)
    assert (s["lost"], s["gained"]) == (3, 1)  # images 1, 2, 8 right → wrong; image 4 wrong → right
    assert s["delta"] == pytest.approx(-0.2)  # 5/10 − 7/10
    assert s["mcnemar_p"] == pytest.approx(stats.binomtest(1, 4).pvalue)
    lo, hi = _loop_percentile_ci(base, var, idx)
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))


def test_interval_uses_the_given_resamples_and_is_not_clamped():
    """Every resample draws image 0 only (unchanged): the interval is [0, 0] although the change
    over all images is −0.5 — an interval is what the resamples say, never widened to the point."""
    base = np.array([1, 1, 1, 1], bool)
    var = np.array([1, 1, 0, 0], bool)
    s = paired_stats(base, var, np.zeros((50, 4), int))
    assert s["delta"] == -0.5 and (s["ci_low"], s["ci_high"]) == (0.0, 0.0)
    # resamples that draw the two changed images only: [−1, −1]
    s = paired_stats(base, var, np.tile([2, 3, 3, 2], (50, 1)))
    assert (s["ci_low"], s["ci_high"]) == (-1.0, -1.0)


def test_interval_of_a_known_binomial_bootstrap():
    """20 images, 4 lost, nothing gained: a resample's change is −K/20 with K ~ Bin(20, 0.2), so
    with many resamples the 2.5/97.5 % points are the binomial's quantiles (K = 8 and K = 1:
    P(K ≤ 7) = 0.968, P(K ≤ 8) = 0.990, P(K = 0) = 0.012, P(K ≤ 1) = 0.069 — both well inside
    a mass point), i.e. exactly [−0.40, −0.05]."""
    base = np.ones(20, bool)
    var = base.copy()
    var[[3, 7, 11, 19]] = False
    assert stats.binom.ppf(0.975, 20, 0.2) == 8 and stats.binom.ppf(0.025, 20, 0.2) == 1
    idx = np.random.default_rng(7).integers(0, 20, (20000, 20))
    s = paired_stats(base, var, idx)
    assert s["delta"] == -0.2 and (s["lost"], s["gained"]) == (4, 0)
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(-0.40), pytest.approx(-0.05))


def test_interval_agrees_with_scipy_paired_bootstrap():
    """A second bootstrap implementation (scipy, its own resamples): the percentile interval of
    the paired accuracy change agrees to the Monte-Carlo error of 4000 resamples."""
    rng = np.random.default_rng(3)
    base = rng.random(300) < 0.7
    var = np.where(rng.random(300) < 0.15, ~base, base)
    idx = rng.integers(0, 300, (4000, 300))
    s = paired_stats(base, var, idx)
    ref = stats.bootstrap((var.astype(float), base.astype(float)), lambda v, b, axis=-1: v.mean(axis) - b.mean(axis),
                          paired=True, vectorized=True, n_resamples=4000, method="percentile", confidence_level=0.95,
                          rng=np.random.default_rng(4)).confidence_interval
    assert s["ci_low"] == pytest.approx(ref.low, abs=0.006) and s["ci_high"] == pytest.approx(ref.high, abs=0.006)
    # the interval is about ±1.96 standard errors of the mean paired difference wide
    d = var.astype(float) - base.astype(float)
    se = d.std(ddof=0) / np.sqrt(len(d))
    assert s["ci_high"] - s["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.08)

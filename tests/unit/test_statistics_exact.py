"""The family-ablation statistics (``paired_stats``: paired percentile bootstrap CI and exact
McNemar test) against independent computations: ``scipy.stats.binomtest`` for McNemar, a
per-resample loop and ``scipy.stats.bootstrap(paired=True)`` for the interval, and hand-built
data whose bootstrap distribution is a known binomial (issue 14, item 1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from studies.measure.paired import mcnemar_exact, paired_stats


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
    s = paired_stats(base, var, 2000, 0)
    assert (s["lost"], s["gained"]) == (3, 1)  # images 1, 2, 8 right → wrong; image 4 wrong → right
    assert s["delta"] == pytest.approx(-0.2)  # 5/10 − 7/10
    assert s["mcnemar_p"] == pytest.approx(stats.binomtest(1, 4).pvalue)
    assert s == paired_stats(base, var, 2000, 0)  # seeded: identical


def test_interval_of_a_known_binomial_bootstrap():
    """20 images, 4 lost, nothing gained: a resample's change is −K/20 with K ~ Bin(20, 0.2), so
    with many resamples the 2.5/97.5 % points are the binomial's quantiles (K = 8 and K = 1:
    P(K ≤ 7) = 0.968, P(K ≤ 8) = 0.990, P(K = 0) = 0.012, P(K ≤ 1) = 0.069 — both well inside
    a mass point), i.e. exactly [−0.40, −0.05] — whichever resamples the bootstrap draws."""
    base = np.ones(20, bool)
    var = base.copy()
    var[[3, 7, 11, 19]] = False
    assert stats.binom.ppf(0.975, 20, 0.2) == 8 and stats.binom.ppf(0.025, 20, 0.2) == 1
    for seed in (0, 7):
        s = paired_stats(base, var, 20000, seed)
        assert s["delta"] == pytest.approx(-0.2) and (s["lost"], s["gained"]) == (4, 0)
        assert (s["ci_low"], s["ci_high"]) == (pytest.approx(-0.40), pytest.approx(-0.05))


def test_interval_is_a_percentile_interval_of_the_change_not_widened():
    """Against an independent resampling loop (own resamples): the interval agrees to the
    Monte-Carlo error of 4000 resamples, its sign is that of (after − before), and it is
    ±1.96 standard errors of the mean paired difference wide — a clamp or a swapped argument
    order would break one of these."""
    rng = np.random.default_rng(3)
    base = rng.random(300) < 0.7
    var = np.where(rng.random(300) < 0.15, ~base, base)
    var[:25] = False  # a clear loss: the whole interval lies below 0
    s = paired_stats(base, var, 4000, 4)
    lo, hi = _loop_percentile_ci(base, var, rng.integers(0, 300, (4000, 300)))
    assert s["ci_low"] == pytest.approx(lo, abs=0.006) and s["ci_high"] == pytest.approx(hi, abs=0.006)
    assert s["ci_high"] < 0 and s["delta"] < 0
    d = var.astype(float) - base.astype(float)
    se = d.std(ddof=0) / np.sqrt(len(d))
    assert s["ci_high"] - s["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.08)


def test_identical_classifiers_give_a_point_interval():
    base = np.array([1, 0, 1, 1, 0], bool)
    s = paired_stats(base, base.copy(), 100, 0)
    assert (s["delta"], s["ci_low"], s["ci_high"], s["lost"], s["gained"], s["mcnemar_p"]) == (0, 0, 0, 0, 0, 1.0)

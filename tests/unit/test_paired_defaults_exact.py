"""Paired statistics (studies.measure.paired): defaults against scipy.stats.bootstrap called
directly, hand-derived intervals on tiny inputs, input validation messages and inputs given as
0/1 floats (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from studies.measure.paired import bootstrap_ci, paired_stats


def _scipy_ci(base, var, n_resamples, seed, level=0.95):
    b, v = np.asarray(base, np.float64), np.asarray(var, np.float64)
    res = stats.bootstrap((b, v), lambda x, y, axis=-1: y.mean(axis) - x.mean(axis), paired=True,
                          n_resamples=n_resamples, confidence_level=level, method="percentile",
                          rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(11)
    base = rng.random(60) < 0.7
    var = np.where(rng.random(60) < 0.8, base, ~base)
    return base, var


def test_defaults_are_1000_percentile_resamples_seed_0_at_95_percent(pairs):
    base, var = pairs
    assert bootstrap_ci(base, var) == _scipy_ci(base, var, 1000, 0)
    assert _scipy_ci(base, var, 1000, 0) != _scipy_ci(base, var, 1001, 0) != _scipy_ci(base, var, 1000, 1)
    assert bootstrap_ci(base, var, level=0.8) == _scipy_ci(base, var, 1000, 0, level=0.8)
    got = paired_stats(base, var)
    assert (got["ci_low"], got["ci_high"]) == _scipy_ci(base, var, 1000, 0)
    got = paired_stats(base, var, seed=5)
    assert (got["ci_low"], got["ci_high"]) == _scipy_ci(base, var, 1000, 5) != _scipy_ci(base, var, 1000, 0)


def test_intervals_of_tiny_samples_by_hand():
    # differences (2, -2): a resampled mean is −2, 0 or 2 (probabilities ¼, ½, ¼); with 1000
    # resamples the 2.5 % and 97.5 % points are the extremes
    assert bootstrap_ci([0.0, 2.0], [2.0, 0.0]) == (-2.0, 2.0)
    # every difference equal: the interval is that difference, exactly as computed pairwise
    assert bootstrap_ci([0.1, 0.7], [0.4, 1.0]) == (0.4 - 0.1, 0.4 - 0.1)
    assert bootstrap_ci([0.0], [1.0]) == (1.0, 1.0)  # one pair


@pytest.mark.parametrize("base, var, shapes", [
    ([], [], "(0,) and (0,)"),
    ([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], "(2, 2) and (2, 2)"),
    ([1.0, 0.0], [1.0, 0.0, 1.0], "(2,) and (3,)"),
])
def test_bad_shapes_are_refused_with_both_shapes(base, var, shapes):
    with pytest.raises(ValueError) as e:
        bootstrap_ci(base, var)
    assert e.value.args[0] == f"base and var must be equal-length non-empty 1-D arrays, got {shapes}"


def test_zero_one_floats_are_read_as_right_and_wrong():
    got = paired_stats(np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0]))
    # differences (−1, 0, 0, 0): a resampled mean is −k/4, k ~ Bin(4, ¼); P(k ≥ 3) = 5.1 %,
    # P(k = 4) = 0.4 %: the 2.5 % point is −¾ and the 97.5 % point 0
    assert got == {"delta": -0.25, "ci_low": -0.75, "ci_high": 0.0, "lost": 1, "gained": 0, "mcnemar_p": 1.0}

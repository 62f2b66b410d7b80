"""family-ablation study end to end (tiny settings): CLI → report folder, statistics, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studies.family_ablation import mcnemar_exact, paired_stats
from studies.measure.paired import bootstrap_ci


def _old_mcnemar(b: int, c: int) -> float:
    """The hand-written exact McNemar this project used before scipy (today's numbers)."""
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n))


def test_statistics_helpers():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == 1.0
    for b in range(0, 25, 3):
        for c in range(0, 25, 4):
            assert mcnemar_exact(b, c) == pytest.approx(_old_mcnemar(b, c), rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="≥ 0"):
        mcnemar_exact(-1, 2)
    rng = np.random.default_rng(1)
    b = rng.random(50) < 0.7
    v = b & (rng.random(50) < 0.8)
    s = paired_stats(b, v, 500, seed=3)
    assert s["ci_low"] <= s["ci_high"] <= 0 + 1e-12
    assert s["lost"] == int((b & ~v).sum()) and s["gained"] == 0 and 0 <= s["mcnemar_p"] <= 1
    assert s == paired_stats(b, v, 500, seed=3)  # seeded: identical
    # no spread: the CI is the point
    same = paired_stats(b, b, 100)
    assert (same["delta"], same["ci_low"], same["ci_high"], same["mcnemar_p"]) == (0.0, 0.0, 0.0, 1.0)


def test_bootstrap_ci_matches_the_old_hand_written_percentile_ci():
    """scipy's paired percentile bootstrap agrees with the old one (index-matrix resampling,
    np.percentile) within Monte-Carlo error on 400 images, 4000 resamples."""
    rng = np.random.default_rng(7)
    base = rng.random(400) < 0.7
    var = np.where(rng.random(400) < 0.1, ~base, base)
    d = var.astype(float) - base.astype(float)
    idx = np.random.default_rng(0).integers(0, 400, size=(4000, 400))
    old_lo, old_hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    lo, hi = bootstrap_ci(base, var, 4000, seed=0)
    assert lo == pytest.approx(old_lo, abs=0.006) and hi == pytest.approx(old_hi, abs=0.006)
    assert lo < d.mean() < hi

"""family-ablation study end to end (tiny settings): CLI → report folder, statistics, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from studies.family_ablation import mcnemar_exact, paired_stats


def test_statistics_helpers():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == 1.0
    rng = np.random.default_rng(1)
    b = rng.random(50) < 0.7
    v = b & (rng.random(50) < 0.8)
    s = paired_stats(b, v, rng.integers(0, 50, (500, 50)))
    assert s["ci_low"] <= s["delta"] <= s["ci_high"] <= 0 + 1e-12
    assert s["lost"] == int((b & ~v).sum()) and s["gained"] == 0 and 0 <= s["mcnemar_p"] <= 1

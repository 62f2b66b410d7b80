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
    idx = rng.integers(0, 50, (500, 50))
    s = paired_stats(b, v, idx)
    boot = [v[i].mean() - b[i].mean() for i in idx]  # each resample's change, computed per resample
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(np.percentile(boot, 2.5)), pytest.approx(np.percentile(boot, 97.5)))
    assert s["delta"] == pytest.approx(v.mean() - b.mean()) and s["ci_high"] <= 0
    assert s["lost"] == int((b & ~v).sum()) and s["gained"] == 0 and 0 <= s["mcnemar_p"] <= 1

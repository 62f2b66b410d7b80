"""Activation interventions (edits.interventions) on the real BVLC weights and real images."""

from __future__ import annotations

import pytest
import torch

from edits import derangement, mean_units, resample_units, zero_units


def test_helpers_reject_bad_channels():
    for bad in (-1, 1.5, "3", True, [1, None]):
        with pytest.raises((TypeError, ValueError)):
            zero_units(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 channels but 3 values"):
        mean_units([1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        mean_units([1], [float("nan")])
    with pytest.raises(ValueError, match="seed"):
        resample_units([1], seed=-1)


def test_derangement():
    for n in (2, 3, 6, 17):
        for seed in range(5):
            p = derangement(n, seed)
            assert sorted(p.tolist()) == list(range(n))
            assert all(p[i] != i for i in range(n))
            assert torch.equal(p, derangement(n, seed))
    assert len({tuple(derangement(6, s).tolist()) for s in range(10)}) > 1
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, 0)

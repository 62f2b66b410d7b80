"""Synthetic benchmark scenes and NMF factorisation (studies.applications.scenes, .factors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studies.applications.factors import consistent_factor, factorize
from studies.applications.scenes import make_scene, make_scenes


def test_scenes_are_deterministic_and_indexed():
    a, b = make_scene(5, size=64, seed=3), make_scenes(2, size=64, seed=3, start=4)[1]
    assert torch.equal(a.image, b.image)
    for k in ("curve", "line", "angle", "occluder"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert not torch.equal(a.image, make_scene(5, size=64, seed=4).image)


def test_scene_ground_truth_is_consistent():
    for i in range(6):
        s = make_scene(i, size=96, occluders=2 if i % 2 else 0)
        assert s.image.shape == (3, 96, 96) and 0 <= float(s.image.min()) and float(s.image.max()) <= 1
        assert s.curve.any() and s.line.any()
        assert not (s.curve & s.occluder).any() and not (s.line & s.occluder).any()
        assert len(s.arcs) == sum(m["kind"] == "curve" for m in s.meta)
        assert s.background == ("plain", "texture", "noise")[i % 3]
        # visible ground-truth curve pixels are dark strokes: darker than the scene's median
        assert float(s.image[0][torch.from_numpy(s.curve)].mean()) < float(s.image[0].median())


def test_scene_errors():
    with pytest.raises(ValueError, match="size"):
        make_scene(0, size=32)
    with pytest.raises(ValueError, match="background"):
        make_scene(0, background="stripes")


def test_nmf_recovers_an_exact_low_rank_factorisation():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(2, 3, 5, 5, generator=g)  # (N, k, h, w)
    h = torch.rand(3, 16, generator=g)  # (k, C)
    acts = torch.einsum("nkyx,kc->ncyx", w, h)
    f = factorize(acts, 3, "test", seed=0, max_iter=2000)
    assert f.maps.shape == (2, 3, 5, 5) and f.loadings.shape == (3, 16)
    assert f.explained > 0.999
    assert len(f.top_units(4)[0]) == 4
    assert f.upsampled((20, 20)).shape == (2, 3, 20, 20)
    assert 0 <= consistent_factor(f) < 3
    with pytest.raises(ValueError, match="k must be"):
        factorize(acts, 0)
    with pytest.raises(ValueError, match="non-negative"):
        factorize(-acts, 2)

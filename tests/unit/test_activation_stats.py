"""Streaming activation measures on synthetic tensors: bottom-k sampling, ranges, sparsity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from circuits.model import InceptionV1
from studies.measure.activation_stats import (
    ActivationObserver,
    BottomK,
    RangeBin,
    _GridSampler,
    hist_quantile,
    parse_ranges,
    sample_keys,
)
from studies.measure.dataset import _FineHistogram


def _stream(n=20000, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 50 - 20
    keys = sample_keys(7, np.arange(n), 3, 1).ravel()
    return x, keys


def _offer(store, x, keys, sl, bins):
    store.offer(bin=bins[sl], key=keys[sl], value=x[sl], file=np.arange(len(x))[sl],
                row=np.zeros(len(x), np.int64)[sl], col=np.zeros(len(x), np.int64)[sl])


def test_sample_keys_deterministic_uniform_and_seeded():
    a = sample_keys(0, np.arange(100), 5, 784)
    assert a.shape == (100, 784)
    np.testing.assert_array_equal(a, sample_keys(0, np.arange(100), 5, 784))
    assert 0 <= a.min() and a.max() < 1
    assert abs(a.mean() - 0.5) < 0.005 and abs(a.var() - 1 / 12) < 0.002
    assert (a != sample_keys(1, np.arange(100), 5, 784)).mean() > 0.999
    assert (a != sample_keys(0, np.arange(100), 6, 784)).mean() > 0.999
    np.testing.assert_array_equal(a[40:60], sample_keys(0, np.arange(40, 60), 5, 784))  # independent of batching


@pytest.mark.parametrize("split", [[20000], [7, 993, 5000, 14000], [1] * 50 + [19950]])
def test_bottom_k_is_exact_whatever_the_batches(split):
    x, keys = _stream()
    bins = (x > 0).astype(np.int64)
    store = BottomK(5)
    start = 0
    for n in split:
        _offer(store, x, keys, slice(start, start + n), bins)
        start += n
    for b in (0, 1):
        want = np.sort(keys[bins == b])[:5]
        np.testing.assert_array_equal(store.take(np.array([b]))["key"], want)


def test_grid_sampler_ranges_exact_and_inside():
    x, keys = _stream(50000)
    g = _GridSampler(6)
    for s in range(0, len(x), 1000):  # growing range makes the grid coarsen
        sl = slice(s, s + 1000)
        g.offer(x[sl] * (1 + s / 5000), key=keys[sl], file=np.arange(len(x))[sl], row=np.zeros(1000, np.int64),
                col=np.zeros(1000, np.int64))
    xs = np.concatenate([x[s:s + 1000] * (1 + s / 5000) for s in range(0, len(x), 1000)])
    for lo, hi in ((50.0, math.inf), (-10.0, 30.0), (-math.inf, -200.0)):
        sample, rlo, rhi = g.take_range(lo, hi)
        assert abs(rlo - lo) <= g.w / 2 + 1e-9 if np.isfinite(lo) else rlo == lo
        assert ((sample["value"] >= rlo) & (sample["value"] < rhi)).all()
        inside = (xs >= rlo) & (xs < rhi)
        np.testing.assert_array_equal(np.sort(sample["key"]), np.sort(keys[inside])[:6])


def test_parse_ranges():
    r = parse_ranges("q0.99:1, 400:800,-300:0,400:")
    assert [(b.kind, b.lo, b.hi) for b in r] == [("quantile", 0.99, 1.0), ("value", 400, 800), ("value", -300, 0),
                                                  ("value", 400, math.inf)]
    for bad in ("abc", "q0.5:2", "5:1", ""):
        with pytest.raises(ValueError):
            parse_ranges(bad)


def test_hist_quantile_matches_numpy():
    x, _ = _stream(100000)
    h = _FineHistogram(x[:1000])
    h.add(x[1000:])
    for q in (0.01, 0.5, 0.9, 0.99):
        assert hist_quantile(h, q) == pytest.approx(np.quantile(x, q), abs=2 * h.w)
    assert hist_quantile(h, 0) == -math.inf and hist_quantile(h, 1) == math.inf


def test_observer_fractions_and_expected_value():
    model = InceptionV1("inceptionv1_caffe")
    obs = ActivationObserver(model, [RangeBin("pos", 0.0, math.inf, "value"), RangeBin("top", 0.9, 1.0)], k=3, seed=2)
    g = torch.Generator().manual_seed(0)
    batches = []
    for b in range(3):
        a = torch.randn(4, 2, 28, 28, generator=g) * 10 - 12
        a[0, 0] = -1.0  # one image with no active position for unit 0
        batches.append(a)
        obs.update("mixed3b", [5, 9], a, torch.arange(4 * b, 4 * b + 4))
    allv = torch.cat(batches)
    assert obs.n["mixed3b:5"] == 12 * 784
    assert obs.images_any["mixed3b:5"] == 9 and obs.images_any["mixed3b:9"] == 12
    assert obs.relu_sum["mixed3b:5"] / obs.n["mixed3b:5"] == pytest.approx(allv[:, 0].clamp(min=0).double().mean().item())
    for u in ("mixed3b:5", "mixed3b:9"):
        assert 0 <= obs.images_any[u] / obs.images[u] <= 1
        s = obs.value_samples[u][0].take()
        assert len(s["key"]) == 3 and (s["value"] >= 0).all()
        # interior rows/cols only (mixed3b's receptive field inside 224 px)
        assert s["row"].min() >= 0 and s["row"].max() < 28

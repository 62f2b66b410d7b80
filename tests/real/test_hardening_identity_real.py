"""Issue 13, kinds 1, 2 and 6 on the real weights and images: a result never comes from a different
model (prefix sharing, sweep cache), a bad cache entry is recomputed to the clean numbers, and the
batch composition or sharding never changes a result (resample ablation)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from circuits.fingerprint import own_copy
from circuits.model import linearized
from edits import Ablate, EditPlan, zero_units
from edits.interventions import install_hook
from studies.measure.classify import evaluate, evaluate_variants, shared_prefix
from studies.run.cache import CacheWarning
from studies.run.sweep import run_sweep

N = 4  # images of the identity tests
EV = dict(limit=N, batch_size=4, num_workers=0, progress=False)


@pytest.fixture(scope="module")
def lin(caffe_model):
    return linearized(caffe_model)


@pytest.fixture(scope="module")
def separate(caffe_model, lin, images_dir):
    """Each model evaluated alone."""
    return {"base": evaluate(caffe_model, images_dir, **EV), "lin": evaluate(lin, images_dir, **EV)}


def _eq(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


def test_variants_with_other_flags_do_not_share_a_prefix(caffe_model, lin, separate, images_dir):
    assert shared_prefix({"base": caffe_model, "lin": lin}) == "input"  # ReLU switches differ from conv2d0 on
    bgr = own_copy(caffe_model)
    bgr.preprocess.fn.bgr = not bgr.preprocess.fn.bgr  # a channel-order copy: same state dict
    assert shared_prefix({"base": caffe_model, "bgr": bgr}) is None
    both = evaluate_variants({"base": caffe_model, "lin": lin}, images_dir, **EV)
    for name in both:
        _eq(both[name].per_image, separate[name].per_image)
    assert both["lin"].top1 == separate["lin"].top1
    assert (separate["lin"].per_image["logit_label"] != separate["base"].per_image["logit_label"]).all()


def test_sweep_cache_never_serves_another_models_entries(caffe_model, lin, separate, images_dir, tmp_path):
    kw = dict(limit=N, batch_size=4, cache_dir=tmp_path)
    plain = run_sweep({"unedited": None}, images_dir, model=caffe_model, **kw)
    assert plain.computed == ["unedited"]
    again = run_sweep({"unedited": None}, images_dir, model=linearized(caffe_model), **kw)
    assert again.loaded == [] and again.computed == ["unedited"]
    _eq(again.per_image.drop(columns=["variant"]), separate["lin"].per_image)
    hooked = own_copy(caffe_model)
    install_hook(hooked, "mixed3b", zero_units(list(range(0, 480, 2))), "zero half of mixed3b")
    res = run_sweep({"unedited": None}, images_dir, model=hooked, **kw)
    assert res.loaded == [] and res.keys["unedited"] not in (plain.keys["unedited"], again.keys["unedited"])
    assert run_sweep({"unedited": None}, images_dir, model=caffe_model, **kw).loaded == ["unedited"]
    h = caffe_model.mixed3b.post.register_forward_hook(lambda m, i, o: o * 0)
    try:
        with pytest.raises(ValueError, match="cannot sweep this model.*fingerprint_key"):
            run_sweep({"unedited": None}, images_dir, model=caffe_model, **kw)
    finally:
        h.remove()


def test_corrupted_entry_is_recomputed_to_the_clean_numbers(caffe_model, images_dir, tmp_path):
    kw = dict(model=caffe_model, limit=N, batch_size=2, shard_size=2, cache_dir=tmp_path)
    plans = {"unedited": None, "3b-zero": EditPlan([Ablate("mixed3b/curves")])}
    clean = run_sweep(plans, images_dir, **kw)
    entry = tmp_path / clean.keys["3b-zero"] / "images-00001.entry"
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x01
    entry.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = run_sweep(plans, images_dir, **kw)
    assert [str(x.message) for x in w if issubclass(x.category, CacheWarning) and str(entry) in str(x.message)]
    assert res.computed == ["3b-zero"] and res.tasks == 1  # resumed from the intact entries
    _eq(res.per_image, clean.per_image)
    assert run_sweep(plans, images_dir, **kw).computed == []


@pytest.fixture(scope="module")
def resampled(caffe_model):
    return EditPlan([Ablate("mixed3b/curves", mode="resample", seed=3)])


def test_batch_size_never_changes_resample_results(caffe_model, resampled, separate, images_dir, tmp_path):
    edited, _ = resampled.apply(caffe_model)
    runs = {b: evaluate(edited, images_dir, limit=9, batch_size=b, num_workers=0, progress=False)
            for b in (1, 8, 64)}  # 9 = 8 + 1: the last batch of 8 has one image (failed before)
    for b in (8, 64):
        _eq(runs[b].per_image, runs[1].per_image)
    base = separate["base"].per_image["logit_label"].to_numpy()
    assert (runs[1].per_image["logit_label"].to_numpy()[:N] != base).all()  # it did resample
    # batches of 2 (the last one of 1 image) in shards of 8 and 1 images
    sweep = run_sweep({"r": resampled}, images_dir, model=caffe_model, limit=9, batch_size=2, shard_size=8,
                      cache_dir=tmp_path)
    _eq(sweep.per_image.drop(columns=["variant"]), runs[1].per_image)

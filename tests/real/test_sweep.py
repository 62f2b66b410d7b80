"""studies.run.sweep: per-plan cache, resume after a lost entry, jobs=2 equals jobs=1."""

from __future__ import annotations

import pandas as pd

from edits import Ablate, EditPlan
from studies.run.sweep import run_sweep


def _plans():
    return {
        "unedited": None,
        "3b-zero": EditPlan([Ablate("mixed3b/curves")]),
        "3a-resample": EditPlan([Ablate("mixed3a/curves", mode="resample", seed=1)]),
    }


def test_resume_recomputes_only_missing(caffe_model, images_dir, tmp_path):
    cache = tmp_path / "cache"
    kw = dict(model=caffe_model, limit=6, cache_dir=cache, plans_per_pass=2, batch_size=4, shard_size=4)
    first = run_sweep(_plans(), images_dir, **kw)
    assert first.computed == list(_plans()) and first.loaded == []
    assert len(first.per_image) == 18 and list(first.per_image["variant"].unique()) == list(_plans())
    assert not [p for p in cache.rglob(".*")]  # no partial entries left
    assert sorted(p.name for p in (cache / first.keys["3b-zero"]).iterdir()) == ["images-00000.entry", "images-00001.entry"]
    (cache / first.keys["3b-zero"] / "images-00001.entry").unlink()
    log = []
    second = run_sweep(_plans(), images_dir, log=log.append, **kw)
    assert second.computed == ["3b-zero"] and sorted(second.loaded) == ["3a-resample", "unedited"]
    assert any("1 plan(s) to compute" in m for m in log)
    pd.testing.assert_frame_equal(first.per_image, second.per_image)
    third = run_sweep(_plans(), images_dir, **kw)
    assert third.computed == []
    # a different limit is a different key
    assert run_sweep({"unedited": None}, images_dir, **{**kw, "limit": 5}).computed == ["unedited"]


def test_jobs2_equals_jobs1(caffe_model, images_dir, tmp_path):
    kw = dict(model=caffe_model, limit=4, plans_per_pass=1, batch_size=4)
    plans = {"unedited": None, "3b-zero": EditPlan([Ablate("mixed3b/curves")])}
    one = run_sweep(plans, images_dir, cache_dir=tmp_path / "c1", jobs=1, **kw)
    two = run_sweep(plans, images_dir, cache_dir=tmp_path / "c2", jobs=2, **kw)
    assert two.computed == one.computed == list(plans)
    a, b = one.per_image, two.per_image
    pd.testing.assert_frame_equal(a.drop(columns=["logit_label"]), b.drop(columns=["logit_label"]))
    pd.testing.assert_series_equal(a["logit_label"], b["logit_label"], rtol=1e-4)

"""The Ray executor (studies.run.executors.RayExecutor) on a local 2-CPU Ray instance: the same
tables as the local executor, a shared cache (resume across executors), retries when a task
raises or its worker process is killed, permanent failures reported per plan, the model put
in the object store once, and the CLI flag."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch

from edits import Ablate, EditPlan
from studies.measure import stimuli as S
from studies.run.executors import LocalExecutor, RayExecutor
from studies.run.sweep import FAULT_ENV, run_sweep

UNITS = ["mixed3b:9", "mixed3a:92"]


def _plans():
    return {
        "unedited": None,
        "3b-9": EditPlan([Ablate("mixed3b:9")]),
        "3a-resample": EditPlan([Ablate("mixed3a/curves", mode="resample", seed=1)]),
        "3b-curves": EditPlan([Ablate("mixed3b/curves")]),
    }


def _kw(model, cache):
    # 12 images in shards of 8 (batches of 4) and 16 stimuli in batches of 6: 2 + 3 pieces per plan
    return dict(model=model, limit=12, batch_size=4, shard_size=8, plans_per_pass=2, cache_dir=cache,
                stimuli=S.curves(range(0, 360, 45), [20.0, 60.0]), units=UNITS, stimulus_batch=6)


@pytest.fixture(scope="module")
def local_run(caffe_model, images_dir, tmp_path_factory):
    """The reference: the local executor in this process, one torch thread per task like a Ray task."""
    cache = tmp_path_factory.mktemp("local-cache")
    return run_sweep(_plans(), images_dir, executor=LocalExecutor(threads=1), **_kw(caffe_model, cache)), cache


def _cache_files(cache):
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*.entry"))


def test_ray_equals_local_and_shares_the_cache(ray_local, local_run, caffe_model, images_dir, tmp_path, monkeypatch):
    ref, ref_cache = local_run
    puts = []
    real_put = ray_local.put
    monkeypatch.setattr(ray_local, "put", lambda v, **k: (puts.append(type(v).__name__), real_put(v, **k))[1])
    res = run_sweep(_plans(), images_dir, executor=RayExecutor(), **_kw(caffe_model, tmp_path))
    # (2 image shards + 3 stimulus batches) × 2 chunks of 2 plans
    assert res.tasks == 10 and res.failed == {} and res.computed == list(_plans())
    assert puts == ["InceptionV1", "SweepContext"]  # the weights go to the object store once, not per task
    assert len(res.per_image) == 4 * 12 and len(res.tuning) == 4 * 2 * 16
    pd.testing.assert_frame_equal(res.per_image, ref.per_image)  # exactly, logits included
    pd.testing.assert_frame_equal(res.tuning, ref.tuning)
    assert _cache_files(tmp_path) == _cache_files(ref_cache)
    # the ablated unit is silenced on every stimulus (pre-ReLU 0 = its zeroed bias)
    t = res.tuning
    assert (t[(t.variant == "3b-9") & (t.unit == "mixed3b:9")]["response"] == 0).all()
    assert (t[(t.variant == "unedited") & (t.unit == "mixed3b:9")]["response"].abs() > 0).all()


def test_resume_across_executors(ray_local, local_run, caffe_model, images_dir, tmp_path):
    ref, _ = local_run
    plans = _plans()
    first = run_sweep({k: plans[k] for k in ("unedited", "3b-9")}, images_dir, executor=RayExecutor(),
                      **_kw(caffe_model, tmp_path))
    assert first.computed == ["unedited", "3b-9"]
    # one shard of one plan lost: the local executor recomputes only that and the new plans
    (tmp_path / first.keys["3b-9"] / "images-00001.entry").unlink()
    second = run_sweep(plans, images_dir, executor=LocalExecutor(threads=1), **_kw(caffe_model, tmp_path))
    assert second.loaded == ["unedited"] and second.computed == ["3b-9", "3a-resample", "3b-curves"]
    # image shard 0: the 2 new plans (1 task); shard 1: the lost entry + 2 new plans (2 tasks of ≤ 2);
    # 3 stimulus batches × the 2 new plans (3 tasks)
    assert second.tasks == 1 + 2 + 3
    pd.testing.assert_frame_equal(second.per_image, ref.per_image)
    third = run_sweep(plans, images_dir, executor=RayExecutor(), **_kw(caffe_model, tmp_path))
    assert third.tasks == 0 and third.loaded == list(plans)
    pd.testing.assert_frame_equal(third.tuning, ref.tuning)


def test_killed_worker_and_raising_task_are_retried(ray_local, local_run, caffe_model, images_dir, tmp_path,
                                                    monkeypatch):
    ref, _ = local_run
    killed, raised = tmp_path / "killed", tmp_path / "raised"
    monkeypatch.setenv(FAULT_ENV, json.dumps({"kill_once": {"variant": "3b-curves", "marker": str(killed)},
                                              "raise_once": {"variant": "3b-9", "marker": str(raised)}}))
    res = run_sweep(_plans(), images_dir, executor=RayExecutor(max_retries=2), **_kw(caffe_model, tmp_path / "c"))
    # a worker process really died (SIGKILL, not the driver) and a task raised once; both were retried
    assert killed.exists() and int(killed.read_text()) != os.getpid() and raised.exists()
    assert res.failed == {} and res.tasks == 10
    # nothing lost, nothing counted twice
    assert res.per_image.groupby(["variant", "path"]).size().eq(1).all() and len(res.per_image) == 48
    pd.testing.assert_frame_equal(res.per_image, ref.per_image)
    pd.testing.assert_frame_equal(res.tuning, ref.tuning)


def test_permanent_failure_is_reported_per_plan(ray_local, local_run, caffe_model, images_dir, tmp_path,
                                                monkeypatch):
    ref, _ = local_run
    monkeypatch.setenv(FAULT_ENV, json.dumps({"raise": ["3a-resample"]}))
    log = []
    res = run_sweep(_plans(), images_dir, executor=RayExecutor(max_retries=1), log=log.append,
                    **_kw(caffe_model, tmp_path))
    assert list(res.failed) == ["3a-resample"]
    assert "RuntimeError: injected fault" in res.failed["3a-resample"] and "2 attempt(s)" in res.failed["3a-resample"]
    assert any("one by one" in m for m in log)
    # its chunk-mate (3b-curves) was re-run alone and is complete and right
    ok = ref.per_image[ref.per_image.variant != "3a-resample"].reset_index(drop=True)
    pd.testing.assert_frame_equal(res.per_image, ok)
    s = res.summary().set_index("variant")
    assert s.loc["3a-resample", "error"] and pd.isna(s.loc["3a-resample", "top1"])
    assert s.loc["3b-curves", "error"] == "" and s.loc["3b-curves", "n_images"] == 12
    assert not (tmp_path / res.keys["3a-resample"]).exists()  # no entry for the failed plan


def test_local_pool_survives_a_killed_worker(local_run, caffe_model, images_dir, tmp_path, monkeypatch):
    ref, _ = local_run
    killed = tmp_path / "killed"
    monkeypatch.setenv(FAULT_ENV, json.dumps({"kill_once": {"variant": "3b-9", "marker": str(killed)}}))
    plans = {k: _plans()[k] for k in ("unedited", "3b-9")}
    kw = {**_kw(caffe_model, tmp_path / "c"), "stimuli": None, "units": None, "plans_per_pass": 1}
    res = run_sweep(plans, images_dir, executor=LocalExecutor(jobs=2, threads=1), **kw)
    assert killed.exists() and res.failed == {}
    want = ref.per_image[ref.per_image.variant.isin(plans)].reset_index(drop=True)
    pd.testing.assert_frame_equal(res.per_image, want)


def test_cli_sweep_on_ray_equals_local(ray_local, images_dir, tmp_path):
    from studies.cli import main

    common = ["study", "sweep", "--images", str(images_dir), "--limit", "8", "--batch-size", "4",
              "--shard-size", "4", "--single-unit-ablations", "mixed3a/curves", "--tune", "3b:9",
              "--orientation-step", "90", "--radii", "2", "--quiet"]
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*common, "--out", str(tmp_path / "local"), "--cache-dir", str(tmp_path / "c1")]) == 0
    finally:
        torch.set_num_threads(torch_threads)
    assert main([*common, "--out", str(tmp_path / "ray"), "--cache-dir", str(tmp_path / "c2"),
                 "--executor", "ray"]) == 0
    for f in ("results.csv", "per_image.csv", "tuning.csv", "tuning_metrics.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / f), pd.read_csv(tmp_path / "ray" / f))
    m = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    assert m["executor"]["executor"] == "ray" and m["failed"] == {} and m["variants"] == 8


def test_study_variants_on_ray_equal_local(ray_local, caffe_model, images_dir):
    """What curve-ablation, echo and combing call for classification with --executor ray."""
    from studies.measure.classify import evaluate_variants
    from studies.run.sweep import evaluate_study_variants

    plan = EditPlan([Ablate("mixed3b/curves")])
    models = {"before": caffe_model, "after": plan.apply(caffe_model)[0]}
    local = evaluate_variants(models, images_dir, batch_size=4, limit=8, num_workers=0, progress=False)
    ray = evaluate_study_variants(models, {"before": None, "after": plan}, images_dir, {"name": "ray"},
                                  batch_size=4, limit=8, progress=False)
    for name in models:
        a, b = local[name].per_image, ray[name].per_image
        pd.testing.assert_frame_equal(a.drop(columns=["logit_label"]), b.drop(columns=["logit_label"]))
        pd.testing.assert_series_equal(a["logit_label"], b["logit_label"], rtol=1e-5)
        assert (local[name].top1, local[name].n_images) == (ray[name].top1, ray[name].n_images)


def test_gpu_request_without_gpus_fails_before_the_cache(ray_local, caffe_model, images_dir, tmp_path):
    """Even a sweep that would load everything from the cache refuses --gpus-per-task without GPUs."""
    kw = dict(model=caffe_model, limit=4, batch_size=4, cache_dir=tmp_path)
    run_sweep({"unedited": None}, images_dir, executor=LocalExecutor(), **kw)
    assert not torch.cuda.is_available()
    with pytest.raises(ValueError, match="GPU"):
        run_sweep({"unedited": None}, images_dir, executor=RayExecutor(gpus_per_task=1), **kw)

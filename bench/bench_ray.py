"""The Ray executor against the local one on the same cores: the 10-plan sweep (ten single-unit
zero ablations of mixed3b curve units, plus the unedited model) over the sample images.

Rows (all in one run, each with its own empty cache, local Ray instances started and stopped
inside the timing — the start-up is part of what a user pays):

- ``local``: the local executor, one process, ``CPUS`` torch threads (the baseline);
- ``ray_1x{CPUS}``: Ray, one worker process with ``CPUS`` threads — the same compute as the
  baseline, so ``ray_overhead = ray_1x{CPUS} / local − 1`` (target ≤ 15 %);
- ``ray_1x1`` and ``ray_2x1``: Ray with one and two worker processes of one thread each:
  ``scaling_1_to_2_workers = ray_1x1 / ray_2x1`` (2.0 = linear).

The tables of every row are checked equal (predictions exactly; label logits to 1e-4, as
thread counts differ). ``BENCH_RAY_IMAGES`` (default 1000) sets the number of images;
``BENCH_RAY_CPUS`` (default 2) the cores.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from circuits import load_model
from circuits.catalog import catalog
from edits import Ablate, EditPlan
from studies.run.executors import LocalExecutor, RayExecutor
from studies.run.sweep import run_sweep

N_PLANS = 10


def _plans(model) -> dict:
    units = list(catalog(model)["mixed3b/curves"].units)[:N_PLANS]
    return {"unedited": None, **{f"ablate-3b:{u}": EditPlan([Ablate(f"mixed3b:{u}")]) for u in units}}


def run() -> dict:
    n = int(os.environ.get("BENCH_RAY_IMAGES", 1000))
    cpus = int(os.environ.get("BENCH_RAY_CPUS", 2))
    images = Path(os.environ["CIRCUITS_DATA"]) / "imagenet-sample-1000"
    model = load_model("inceptionv1_caffe")
    plans = _plans(model)
    # 8 shards of 128 images (batches of 64): enough tasks for two workers; all 11 plans per task
    kw = dict(model=model, limit=n, batch_size=64, shard_size=128, plans_per_pass=len(plans))
    configs = {
        "local": lambda: LocalExecutor(jobs=1, threads=cpus),
        f"ray_1x{cpus}": lambda: RayExecutor(num_cpus=cpus, cpus_per_task=cpus),
        "ray_1x1": lambda: RayExecutor(num_cpus=1, cpus_per_task=1),
        "ray_2x1": lambda: RayExecutor(num_cpus=2, cpus_per_task=1),
    }
    times, tables = {}, {}
    old = torch.get_num_threads()
    try:
        for name, make in configs.items():
            with tempfile.TemporaryDirectory() as cache:
                t = time.perf_counter()
                res = run_sweep(plans, images, executor=make(), cache_dir=cache, **kw)
                times[name] = time.perf_counter() - t
            assert not res.failed and res.tasks == -(-n // 128), (name, res.failed, res.tasks)
            tables[name] = res.per_image
    finally:
        torch.set_num_threads(old)
    ref = tables["local"]
    for t in tables.values():
        pd.testing.assert_frame_equal(t.drop(columns=["logit_label"]), ref.drop(columns=["logit_label"]))
        pd.testing.assert_series_equal(t["logit_label"], ref["logit_label"], rtol=1e-4)
    out = {"images": n, "plans": len(plans), "tasks": -(-n // 128), "cpus": cpus}
    out.update({f"{k}_s": round(v, 1) for k, v in times.items()})
    out["ray_overhead"] = round(times[f"ray_1x{cpus}"] / times["local"] - 1, 3)
    out["scaling_1_to_2_workers"] = round(times["ray_1x1"] / times["ray_2x1"], 2)
    out["local_img_per_s_x_plans"] = round(n * len(plans) / times["local"], 1)
    out["tables_equal"] = True
    return out

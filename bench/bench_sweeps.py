"""Shared-prefix sweeps: 10 single-unit zero ablations in mixed3b of BVLC GoogLeNet (the first
10 units of the catalog family ``mixed3b/curves``, ``Ablate(mode="zero")``: weight edits, no
hooks) evaluated on the sample images with :func:`studies.measure.classify.evaluate_variants` (every
batch decoded once, conv2d0 … mixed3a computed once per batch, each variant continues from
mixed3a) vs 10 independent :func:`studies.measure.classify.evaluate` runs, one per edited model
(target ≤ 0.65× the time). The predictions must be identical.

To spread load from other programs fairly, the independent runs are split around the shared
run (5 before, 5 after). ``BENCH_SWEEP_IMAGES`` limits the number of images (default: all
1000 of ``imagenet-sample-1000``, about 3-4 minutes in all on 2 cores).
"""

from __future__ import annotations

import os
import time

import numpy as np

from circuits import load_model
from circuits.catalog import load_catalog
from circuits.weights import data_dir
from edits import Ablate, EditPlan
from studies.measure.classify import evaluate, evaluate_variants, shared_prefix, wnid_index
from studies.measure.images import ImageFolderDataset

N_VARIANTS = 10


def variants(model) -> dict:
    """``{"zero mixed3b:<i>": edited model}`` for the first 10 units of ``mixed3b/curves``."""
    units = load_catalog(model.spec.name)["mixed3b/curves"].units[:N_VARIANTS]
    return {f"zero mixed3b:{u}": EditPlan([Ablate(f"mixed3b:{u}")]).apply(model)[0] for u in units}


def run() -> dict:
    model = load_model("inceptionv1_caffe")
    folder = data_dir() / "imagenet-sample-1000"
    limit = int(os.environ.get("BENCH_SWEEP_IMAGES", 1000))
    ds = ImageFolderDataset(folder, wnid_index(model)).head(limit)
    models = variants(model)
    names = list(models)
    kw = {"progress": False}

    evaluate_variants(dict(list(models.items())[:2]), ds.head(64), **kw)  # warm-up (oneDNN primitives, workers)

    independent, t_ind = {}, 0.0
    for name in names[:N_VARIANTS // 2]:
        t = time.perf_counter()
        independent[name] = evaluate(models[name], ds, **kw)
        t_ind += time.perf_counter() - t
    t = time.perf_counter()
    shared = evaluate_variants(models, ds, **kw)
    t_shared = time.perf_counter() - t
    for name in names[N_VARIANTS // 2:]:
        t = time.perf_counter()
        independent[name] = evaluate(models[name], ds, **kw)
        t_ind += time.perf_counter() - t

    same_pred = all(
        np.array_equal(shared[n].per_image["pred"].to_numpy(), independent[n].per_image["pred"].to_numpy())
        and shared[n].per_image["top5"].tolist() == independent[n].per_image["top5"].tolist()
        for n in names
    )
    logit_diff = max(
        float(np.abs(shared[n].per_image["logit_label"].to_numpy() - independent[n].per_image["logit_label"].to_numpy()).max())
        for n in names
    )
    n_img = shared[names[0]].n_images
    top1 = [shared[n].top1 for n in names]
    return {
        "images": n_img,
        "variants": len(names),
        "shared_prefix_stage": shared_prefix(models),
        "independent_10_evaluations_s": round(t_ind, 1),
        "evaluate_variants_s": round(t_shared, 1),
        "time_ratio_shared_over_independent (target <= 0.65)": round(t_shared / t_ind, 3),
        "independent_img_per_s (per variant)": round(n_img * len(names) / t_ind, 1),
        "shared_img_per_s (per variant)": round(n_img * len(names) / t_shared, 1),
        "shared_images_through_all_variants_per_s": round(n_img / t_shared, 1),
        "predictions_identical (top-1 and top-5)": same_pred,
        "max_abs_diff_label_logit": logit_diff,
        "top1_range": f"{min(top1):.3f}-{max(top1):.3f}",
    }

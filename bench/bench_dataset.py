"""Dataset pass vs classification throughput (images/s), in the same run, on the first
``BENCH_IMAGES`` sample images (default 256): the streamed dataset pass of ``circuits
dataset`` (:func:`studies.dataset.unit_statistics` with an
:class:`~studies.measure.activation_stats.ActivationObserver`, the 19 BVLC mixed3b curve
units: histogram, tail, top-k, sparsity, range reservoirs) against
:func:`studies.classify.evaluate` (full network, top-1/top-5), each with 2 DataLoader
workers and its default batch size. The two alternate twice; the better run of each counts.
The pass stops at mixed3b and computes only the rows of mixed3b it needs
(:mod:`studies.measure.unit_acts`), so it should be faster than classification
(``ratio`` ≥ 1)."""

from __future__ import annotations

import os
import time

from circuits import load_model
from circuits.catalog import catalog
from circuits.weights import data_dir
from studies.measure.activation_stats import ActivationObserver
from studies.measure.classify import evaluate
from studies.measure.dataset import unit_statistics
from studies.measure.images import list_images as image_files


def run() -> dict:
    n = int(os.environ.get("BENCH_IMAGES", 256))
    folder = data_dir() / "imagenet-sample-1000"
    files = image_files(folder)[:n]
    model = load_model("inceptionv1_caffe")
    fam = catalog(model)["mixed3b/curves"]

    def dataset_pass():
        unit_statistics(model, fam, files, k=8, observers=[ActivationObserver(model, k=8, seed=0)])

    def classify():
        evaluate(model, folder, limit=n, progress=False)

    evaluate(model, folder, limit=32, progress=False)  # warm-up
    best = {"dataset": float("inf"), "classify": float("inf")}
    for _ in range(2):
        for name, fn in (("dataset", dataset_pass), ("classify", classify)):
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    ds, cl = n / best["dataset"], n / best["classify"]
    return {
        "images": n,
        "units": len(fam),
        "dataset_pass_img_per_s (mixed3b/curves)": round(ds, 2),
        "classify_img_per_s": round(cl, 2),
        "ratio_dataset_over_classify": round(ds / cl, 2),
    }

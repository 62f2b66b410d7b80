"""Data loading: images/s of the evaluation pipeline's loading (torchvision decoding in 2
DataLoader workers, :class:`studies.measure.images.ImageFolderDataset`) vs a single-threaded PIL
loop (open, RGB, resize 256, centre crop 224, to tensor), on the first ``BENCH_IMAGES``
sample images (default 1000; the sample JPEGs are small, 256 px, so decoding is cheap and the
workers' start-up counts). The two are timed twice, alternately; the better run of each
counts. End to end: :func:`studies.measure.classify.evaluate` images/s with decoding overlapped in 2
workers vs decoding in the main process (``num_workers=0``), on the first 256 images.
Peak memory of a streamed evaluation: ``bench_memory``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import DataLoader

from circuits.spec import get_spec
from circuits.weights import data_dir
from studies.measure.classify import wnid_index
from studies.measure.images import ImageFolderDataset


def _pil_loop(files) -> None:
    for p in files:
        with Image.open(p) as im:
            TF.to_tensor(TF.center_crop(TF.resize(im.convert("RGB"), 256), 224))


def _loader(ds) -> None:
    for _ in DataLoader(ds, batch_size=64, num_workers=2, collate_fn=ImageFolderDataset.collate):
        pass


def run() -> dict:
    folder = data_dir() / "imagenet-sample-1000"
    ds = ImageFolderDataset(folder, wnid_index(get_spec("inceptionv1_caffe"))).head(int(os.environ.get("BENCH_IMAGES", 1000)))
    files = [Path(s[0]) for s in ds.samples]
    best = {"pil": float("inf"), "loader": float("inf")}
    for _ in range(2):
        for name, fn in (("pil", lambda: _pil_loop(files)), ("loader", lambda: _loader(ds))):
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    pil, loader = len(files) / best["pil"], len(files) / best["loader"]

    from circuits import load_model
    from studies.measure.classify import evaluate

    model = load_model("inceptionv1_caffe")
    small = ds.head(min(256, len(ds)))
    evaluate(model, small.head(64), progress=False)  # warm-up
    e2e = {}
    for workers in (2, 0):
        t = time.perf_counter()
        evaluate(model, small, num_workers=workers, progress=False)
        e2e[workers] = len(small) / (time.perf_counter() - t)
    return {
        "images": len(files),
        "pil_single_thread_img_per_s": round(pil, 1),
        "dataloader_2_workers_img_per_s": round(loader, 1),
        "loading_speedup": round(loader / pil, 2),
        "evaluate_img_per_s_2_workers (decode overlapped)": round(e2e[2], 1),
        "evaluate_img_per_s_0_workers (decode in main)": round(e2e[0], 1),
        "evaluate_overlap_speedup": round(e2e[2] / e2e[0], 2),
    }

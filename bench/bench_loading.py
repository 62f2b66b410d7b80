"""Data loading: images/s of the evaluation pipeline (torchvision decoding in DataLoader
workers, overlapped with compute) vs a single-threaded PIL loop; and peak memory of a
streamed evaluation (must stay flat, not grow with the number of images)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torchvision.transforms.functional as TF
from PIL import Image

from circuits.weights import data_dir
from studies.classify import ImageFolderDataset, wnid_index


def _pil_loop(files):
    for p in files:
        with Image.open(p) as im:
            TF.to_tensor(TF.center_crop(TF.resize(im.convert("RGB"), 256), 224))


def _peak_rss_mb(limit: int) -> float:
    """Peak RSS (MB) of a fresh process that evaluates ``limit`` images."""
    code = (
        "import resource,sys,torch;torch.set_num_threads(2);"
        "from circuits import load_model;from studies.classify import evaluate;"
        f"evaluate(load_model('inceptionv1_caffe'), sys.argv[1], limit={limit}, progress=False);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(data_dir() / "imagenet-sample-1000")],
                         capture_output=True, text=True, check=True, env=os.environ.copy())
    return float(out.stdout.strip().splitlines()[-1])


def run() -> dict:
    from torch.utils.data import DataLoader

    from circuits import load_model

    folder = data_dir() / "imagenet-sample-1000"
    model = load_model("inceptionv1_caffe")
    ds = ImageFolderDataset(folder, wnid_index(model)).head(int(os.environ.get("BENCH_IMAGES", 400)))
    files = [Path(s[0]) if Path(s[0]).is_absolute() else folder / s[0] for s in ds.samples]
    t = time.perf_counter()
    _pil_loop(files)
    pil = len(files) / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in DataLoader(ds, batch_size=64, num_workers=2, collate_fn=ImageFolderDataset.collate):
        pass
    loader = len(files) / (time.perf_counter() - t)
    rss_small, rss_large = _peak_rss_mb(100), _peak_rss_mb(1000)
    return {
        "images": len(files),
        "pil_single_thread_img_per_s": round(pil, 1),
        "dataloader_2_workers_img_per_s": round(loader, 1),
        "loading_speedup": round(loader / pil, 2),
        "peak_rss_mb_100_images": round(rss_small),
        "peak_rss_mb_1000_images (target < 2048)": round(rss_large),
        "rss_growth_ratio_1000_vs_100 (flat ≈ 1)": round(rss_large / rss_small, 2),
    }

"""Memory of a streamed evaluation: peak RSS of a fresh process that runs
:func:`studies.measure.classify.evaluate` (BVLC GoogLeNet, batch 64, DataLoader with 2 workers) over
all of ``imagenet-sample-1000`` (1000 images) and over a folder of ``BENCH_MEMORY_N`` images
(default 10,000) built from the sample in a temporary directory: hard links to the sample
files (a copy where the file system refuses links), named ``<wnid>_cNN_<name>.JPEG`` so the
flat layout gives the same labels. Every image of both folders is evaluated (no ``limit``);
the peak must stay under 2 GB and flat (ratio ≈ 1), i.e. not grow with the number of images.

Peak RSS is the process's own high-water mark, ``VmHWM`` in ``/proc/self/status`` (Linux),
which starts afresh at ``exec``; ``getrusage``'s ``ru_maxrss`` would not do: it is inherited
from the parent over fork and exec, so a child of a big ``python -m bench`` process reports the
parent's size. DataLoader workers (forked from the evaluating process, sharing its pages) are
not counted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from circuits.weights import data_dir

_CHILD = (
    "import json,re,sys,threading,time,torch;torch.set_num_threads(2);"
    "from circuits import load_model;from studies.measure.classify import evaluate;"
    "rss=lambda k:int(re.search(k+r':\\s*(\\d+) kB',open('/proc/self/status').read()).group(1))/1024;"
    "samples=[];done=threading.Event();"
    "sampler=threading.Thread(target=lambda:[samples.append((time.perf_counter(),rss('VmRSS'))) or done.wait(0.25)"
    " for _ in iter(done.is_set,True)],daemon=True);"
    "m=load_model('inceptionv1_caffe');t0=time.perf_counter();sampler.start();"
    "r=evaluate(m,sys.argv[1],progress=False);"
    "t=time.perf_counter()-t0;done.set();sampler.join();"
    "half=max([v for s,v in samples if s-t0<=t/2] or [0]);"
    "print(json.dumps({'n':r.n_images,'top1':r.top1,'s':t,'main_mb':rss('VmHWM'),'first_half_mb':half}))"
)


def peak_rss(folder: Path) -> dict:
    """Evaluate every image of ``folder`` in a fresh process: ``{"n", "top1", "s", "main_mb",
    "first_half_mb"}`` (images, accuracy, seconds, peak RSS of that process in MiB, and the
    largest RSS sampled every 0.25 s during the first half of the evaluation)."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True, check=True,
                         env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_folder(src: Path, dst: Path, n: int) -> int:
    """Fill ``dst`` with ``n`` image files made from the flat-layout folder ``src`` (copy k of
    ``<wnid>_<name>.JPEG`` is ``<wnid>_c<k>_<name>.JPEG``), hard-linked where possible.
    Returns the number of hard links made."""
    files = sorted(p for p in src.iterdir() if p.is_file())
    links = 0
    for i in range(n):
        f = files[i % len(files)]
        wnid, rest = f.name.split("_", 1)
        target = dst / f"{wnid}_c{i // len(files):02d}_{rest}"
        try:
            os.link(f, target)
            links += 1
        except OSError:
            shutil.copyfile(f, target)
    return links


def run() -> dict:
    src = data_dir() / "imagenet-sample-1000"
    n = int(os.environ.get("BENCH_MEMORY_N", 10_000))
    small = peak_rss(src)
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        t = time.perf_counter()
        links = build_folder(src, tmp, n)
        t_build = time.perf_counter() - t
        large = peak_rss(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "images_small": small["n"],
        "images_large": large["n"],
        "large_folder": f"{links} hard links, {n - links} copies ({t_build:.1f} s to build)",
        "peak_rss_mb_small (target < 2048)": round(small["main_mb"]),
        "peak_rss_mb_large": round(large["main_mb"]),
        "rss_ratio_large_over_small (flat = 1)": round(large["main_mb"] / small["main_mb"], 3),
        "large_peak_rss_mb_first_half_of_the_run": round(large["first_half_mb"]),
        "large_rss_ratio_whole_run_over_first_half (flat = 1)": round(large["main_mb"] / large["first_half_mb"], 3),
        "eval_s_small": round(small["s"], 1),
        "eval_s_large": round(large["s"], 1),
        "eval_img_per_s_large": round(large["n"] / large["s"], 1),
        "top1_small": round(small["top1"], 4),
        "top1_large": round(large["top1"], 4),
    }

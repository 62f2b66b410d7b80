"""Joint tuning speed: a full 720-orientation × 32-radius curve sweep (23,040 stimuli) of ten
mixed3b units of BVLC GoogLeNet (target < 60 s on 2 cores), where the time goes (rendering
vs forward), and the baselines it replaces, measured on subsets in the same process and
extrapolated linearly to the full sweep:

* ``window``: the previous path — render in the measurement window (96 px) and
  ``model.run`` up to mixed3b (all branches, all positions);
* ``full224``: the naive way — 224-px images through the whole network (logits), read
  mixed3b at the position whose receptive field is centred on the stimulus.

The fast path's values are checked against ``full224`` on the subset (max |diff|).

The machine's limit: the FLOPs the fast path computes (every convolution of the cone, counted
by ``torch.utils.flop_counter.FlopCounterMode`` on one 16-stimulus chunk and scaled to the
sweep) over its wall time, against the peak of a 2048³ float32 matmul measured in this run
(the best of torch.matmul and oneDNN: ``bench_forward.matmul_peaks``).
``cpu_s`` is process CPU time (all threads), which is less sensitive than wall time to other
programs sharing the machine.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from circuits import load_model
from circuits.cone import CPU_CONE_CHUNK, Cone, cone_plan
from circuits.geometry import receptive_field
from studies.measure import stimuli as S
from studies.measure.tuning import measure

from .bench_forward import matmul_peak

#: Ten mixed3b curve units of BVLC GoogLeNet, all in the 5x5 branch (catalog mixed3b/curves).
UNITS = [324, 386, 394, 368, 330, 358, 335, 326, 321, 398]


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def run(orientation_step: float = 0.5, n_radii: int = 32, window_subset: int = 24, full_subset: int = 64) -> dict:
    """Time the sweep; ``window_subset``: 1/N of the stimuli for the window baseline;
    ``full_subset``: number of stimuli for the 224-px baseline."""
    model = load_model("inceptionv1_caffe")
    units = [f"mixed3b:{i}" for i in UNITS]
    stim = S.curves(S.orientation_grid(orientation_step), S.radius_grid(n_radii))
    n = len(stim)
    plan = cone_plan(model.spec, "mixed3b", {"5x5"})

    peak = matmul_peak()
    # warm-up (oneDNN primitive creation) on a few stimuli
    measure(model, units, stim.subset(range(64)), fast=True)

    fast, t_fast, c_fast = _timed(lambda: measure(model, units, stim, fast=True))
    crop = stim.at(plan.crop, plan.center)
    _, t_render, c_render = _timed(lambda: [None for _ in crop.batches(256)])

    sub = stim.subset(range(0, n, window_subset))
    _, t_win, c_win = _timed(lambda: measure(model, units, sub, fast=False))
    scale_win = n / len(sub)

    rf = receptive_field(model.spec, "mixed3b")
    pos = 13
    few = stim.subset(np.linspace(0, n - 1, full_subset).astype(int).tolist())
    captured = {}

    def full():
        imgs = few.at(224, rf.center(pos)).render()
        with model.capture(["mixed3b_pre_relu"]) as cap, torch.no_grad():
            for s in range(0, len(imgs), 32):
                model(imgs[s:s + 32])
                captured.setdefault("a", []).append(cap["mixed3b_pre_relu"][:, UNITS, pos, pos].clone())

    _, t_full, c_full = _timed(full)
    scale_full = n / len(few)
    ref = torch.cat(captured["a"]).numpy()
    got = measure(model, units, few, fast=True)
    got = np.stack([got[got["index"] == i]["response"].to_numpy() for i in UNITS], 1)
    diff = float(np.abs(got - ref).max())

    from torch.utils.flop_counter import FlopCounterMode

    chunk = crop.subset(range(CPU_CONE_CHUNK)).render()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        Cone(model, plan, UNITS)(chunk)
    flops = fc.get_total_flops() / len(chunk) * n
    peak = max(peak, matmul_peak())

    return {
        "stimuli": n,
        "units": len(units),
        "threads": torch.get_num_threads(),
        "fast_s (target < 60)": round(t_fast, 2),
        "fast_cpu_s": round(c_fast, 2),
        "fast_render_s": round(t_render, 2),
        "fast_forward_s (fast - render)": round(t_fast - t_render, 2),
        "input_crop_px": plan.crop,
        "window_s (extrapolated)": round(t_win * scale_win, 1),
        "window_cpu_s (extrapolated)": round(c_win * scale_win, 1),
        "full224_s (extrapolated)": round(t_full * scale_full, 1),
        "full224_cpu_s (extrapolated)": round(c_full * scale_full, 1),
        "speedup_vs_window": round(t_win * scale_win / t_fast, 1),
        "speedup_vs_full224": round(t_full * scale_full / t_fast, 1),
        "cpu_speedup_vs_full224": round(c_full * scale_full / c_fast, 1),
        "max_abs_diff_vs_full224": diff,
        "responses": int(len(fast)),
        "fast_gflop (cone convolutions, whole sweep)": round(flops / 1e9, 1),
        "tuning_gflops (incl. rendering)": round(flops / t_fast / 1e9, 1),
        "tuning_gflops_forward_only (fast - render)": round(flops / max(t_fast - t_render, 1e-9) / 1e9, 1),
        "matmul_peak_gflops (2048^3 fp32, best of MKL/oneDNN)": round(peak, 1),
        "tuning_fraction_of_peak": round(flops / t_fast / 1e9 / peak, 3),
        "tuning_forward_fraction_of_peak": round(flops / max(t_fast - t_render, 1e-9) / 1e9 / peak, 3),
    }


if __name__ == "__main__":
    import json
    import os
    from pathlib import Path

    os.environ.setdefault("CIRCUITS_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 2)))
    print(json.dumps(run(), indent=2))

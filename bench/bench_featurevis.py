"""Feature visualization speed: neuron visualizations of the BVLC mixed3b curve family
(catalog ``mixed3b/curves``, 19 units), 512 steps, Fourier + colour decorrelation + Lucid's
standard transforms, Adam 0.05 — by our engine (:mod:`studies.measure.featurevis`, one batched
optimisation of the receptive-field window through the differentiable cone) and by Lucent
0.1.8 (``torch-lucent``: ``render_vis`` with ``param.image(128)``, its standard transforms and
its upsampling to 224 px, one unit at a time) on OUR model, in one run.

Lucent 0.1.8 does not import with current kornia: this bench (only) aliases the two functions
kornia moved (``kornia.get_rotation_matrix2d``, ``kornia.warp_affine`` →
``kornia.geometry.transform``) and stubs ``IPython.display`` (Lucent's notebook display, unused
here). Lucent sees our model directly (its hooks name our modules ``mixed3b_pre`` = the
concatenated pre-ReLU hook point; ``preprocess=False`` because our model does its own input
preprocessing). Install: ``pip install -e '.[bench]'`` (or ``pip install --no-deps
torch-lucent==0.1.8 kornia kornia-rs decorator`` to keep the pinned torch).

Lucent runs ``lucent_units`` units for ``lucent_steps`` steps (default 2 × 64: a full 19 × 512 run
would take hours on 2 shared cores); its time per unit-step is extrapolated linearly to the
full job (its cost per step is constant: same image size, same network). Its objective value
after 512 steps is measured on ``lucent_full_units`` units (default 1) when > 0. Ours runs the
full job. Objective values are the unit's pre-ReLU activation at the position each engine
optimises, on its final picture without transforms (ours: the RF centre of the 96-px
picture; Lucent: the centre position of its 128-px picture upsampled to 224 px).

Fraction of peak: our FLOPs (``torch.utils.flop_counter.FlopCounterMode`` over one step's
forward and backward) × steps / wall time, over the float32 matmul peak of this machine
(``bench_forward.matmul_peak``). ``BENCH_THREADS`` (default 2) sets torch's threads; Lucent is
timed with 1 and with 2 threads and its faster setting is used.
"""

from __future__ import annotations

import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

from circuits import load_model
from circuits.catalog import catalog

from .bench_forward import matmul_peak

FAMILY = "mixed3b/curves"


def _lucent():
    """Import Lucent 0.1.8 with the two kornia aliases and an IPython.display stub."""
    import kornia
    import kornia.geometry.transform as kt

    for name in ("get_rotation_matrix2d", "warp_affine"):
        if not hasattr(kornia, name):
            setattr(kornia, name, getattr(kt, name))
    if "IPython" not in sys.modules:
        ip, disp = types.ModuleType("IPython"), types.ModuleType("IPython.display")
        disp.display = disp.HTML = lambda *a, **k: None
        ip.display = disp
        sys.modules["IPython"], sys.modules["IPython.display"] = ip, disp
    from lucent.optvis import objectives, param, render

    return render, param, objectives


def _lucent_unit(model, unit: int, steps: int, threads: int) -> tuple[float, float]:
    """(seconds, final objective) of one Lucent neuron visualization of mixed3b:unit."""
    render, param, objectives = _lucent()
    holder = {}

    def param_f():
        torch.manual_seed(0)
        params, image_f = param.image(128)
        holder["image_f"] = image_f
        return params, image_f

    n_main = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t = time.perf_counter()
        render.render_vis(model, objectives.neuron("mixed3b_pre", unit), param_f, thresholds=(steps,),
                          preprocess=False, progress=False, show_image=False)
        secs = time.perf_counter() - t
    finally:
        torch.set_num_threads(n_main)
    with torch.no_grad():
        img = F.interpolate(holder["image_f"]().detach(), size=224, mode="bilinear", align_corners=True)
        a = model.run(img, ["mixed3b_pre_relu"])["mixed3b_pre_relu"]
        value = float(a[0, unit, a.shape[2] // 2, a.shape[3] // 2])
    return secs, value


def _our_flops(model, units, settings) -> float:
    """FLOPs of one optimisation step (forward + backward) of the whole batch."""
    from torch.utils.flop_counter import FlopCounterMode

    from studies.measure.featurevis import neuron
    from studies.measure.featurevis.param import ImageParam
    from studies.measure.featurevis.render import _feed, centre_window
    from studies.measure.featurevis.transforms import get_transforms

    obj = neuron(units).bind(model.spec)
    feed = _feed(model, obj)
    image = ImageParam(len(units), settings.size or 96, seed=0)
    with FlopCounterMode(display=False) as fc:
        x = centre_window(get_transforms("standard")(image(), torch.Generator().manual_seed(0)), feed.crop, feed.center)
        (-obj(feed.run(x)).sum()).backward()
    return float(fc.get_total_flops())


def run(steps: int = 512, lucent_units: int = 2, lucent_steps: int = 64, lucent_full_units: int = 0) -> dict:
    from studies.measure.featurevis import VisSettings, visualize_units

    model = load_model("inceptionv1_caffe")
    fam = catalog(model)[FAMILY]
    units = list(fam)
    settings = VisSettings(steps=steps)
    peak = matmul_peak()

    t = time.perf_counter()
    ours = visualize_units(model, units, settings=settings, cache=False)
    t_ours = time.perf_counter() - t
    ours_val = {v.unit.index: v.final for v in ours}
    flops = _our_flops(model, units, settings) * steps

    # Lucent: 1 and 2 threads on a few steps, then the faster setting on lucent_units × lucent_steps
    probe = {th: _lucent_unit(model, fam.units[0], 4, th)[0] / 4 for th in (1, 2)}
    th = min(probe, key=probe.get)
    lu = list(fam.units[:lucent_units])
    secs, vals = zip(*[_lucent_unit(model, u, lucent_steps, th) for u in lu])
    per_unit_step = sum(secs) / (len(lu) * lucent_steps)
    out = {
        "units": len(units),
        "steps": steps,
        "ours_s (full job)": round(t_ours, 1),
        "ours_s_per_unit": round(t_ours / len(units), 2),
        "ours_path": ours[0].result.path,
        "ours_picture_px": ours[0].result.settings.size,
        "ours_mean_objective (512 steps)": round(float(np.mean(list(ours_val.values()))), 1),
        "lucent_threads": th,
        "lucent_s_per_step_probe (1 thread, 2 threads)": f"{probe[1]:.2f}, {probe[2]:.2f}",
        "lucent_measured": f"{len(lu)} units x {lucent_steps} steps, {sum(secs):.1f} s",
        "lucent_s_per_unit (extrapolated to 512 steps)": round(per_unit_step * steps, 1),
        "speedup_per_unit": round(per_unit_step * steps / (t_ours / len(units)), 1),
        f"lucent_objective_after_{lucent_steps}_steps": {f"3b:{u}": round(v, 1) for u, v in zip(lu, vals)},
        "ours_objective_same_units": {f"3b:{u}": round(ours_val[u], 1) for u in lu},
        "ours_gflop (whole job)": round(flops / 1e9, 1),
        "ours_gflops": round(flops / t_ours / 1e9, 2),
        "matmul_peak_gflops": round(peak, 1),
        "ours_fraction_of_peak": round(flops / t_ours / 1e9 / peak, 3),
    }
    if lucent_full_units:
        full = [_lucent_unit(model, u, steps, th) for u in fam.units[:lucent_full_units]]
        out[f"lucent_objective_after_{steps}_steps"] = {f"3b:{u}": round(v, 1)
                                                        for u, (_, v) in zip(fam.units, full)}
        out[f"lucent_s_per_unit_measured_{steps}_steps"] = round(float(np.mean([s for s, _ in full])), 1)
    return out


if __name__ == "__main__":
    import argparse
    import json
    import os
    from pathlib import Path

    os.environ.setdefault("CIRCUITS_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 2)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=512)
    ap.add_argument("--lucent-units", type=int, default=2)
    ap.add_argument("--lucent-steps", type=int, default=64)
    ap.add_argument("--lucent-full-units", type=int, default=0)
    a = ap.parse_args()
    print(json.dumps(run(a.steps, a.lucent_units, a.lucent_steps, a.lucent_full_units), indent=2))

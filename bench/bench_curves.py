"""Curve applications: curve-map and spline-tracing speed on the benchmark scenes (small; the
full accuracy benchmark is ``circuits bench-curves``)."""

from __future__ import annotations

import time

import torch


def run() -> dict:
    from circuits import load_model
    from studies.applications.extraction import curve_map
    from studies.applications.scenes import make_scenes
    from studies.applications.splines import trace

    model = load_model("inceptionv1_caffe")
    scenes = make_scenes(8, 128, start=20000, occluders=2)
    x = torch.stack([s.image for s in scenes])
    curve_map(model, x[:1])  # warm-up
    t = time.perf_counter()
    maps = curve_map(model, x)
    map_s = (time.perf_counter() - t) / len(scenes)
    x224 = torch.nn.functional.interpolate(x[:4], size=224, mode="bilinear", align_corners=False)
    t = time.perf_counter()
    curve_map(model, x224)
    map224_s = (time.perf_counter() - t) / 4
    trace(maps[0].numpy(), steps=20)  # warm-up
    t = time.perf_counter()
    for m in maps:
        trace(m.numpy())
    trace_s = (time.perf_counter() - t) / len(scenes)
    return {"curve_map_s_per_128px_image": round(map_s, 3), "curve_map_s_per_224px_image": round(map224_s, 3),
            "trace_s_per_128px_scene": round(trace_s, 3)}

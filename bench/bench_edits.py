"""Structural edits: apply a plan of 100 single-pair pathway prunes (mixed3a → mixed3b, across the
1x1, pool and 5x5 branches; the 5x5 ones duplicate bottleneck units) to the BVLC checkpoint
(target < 2 s), against the naive way — one plan per prune, each applied to the previous result
(a deep copy per prune) — and the forward cost of the widened block."""

from __future__ import annotations

import time

import torch

from circuits import load_model
from edits import EditPlan, PrunePathway

N_PRUNES = 100
NAIVE_SAMPLE = 20  # the naive baseline is timed on the first 20 prunes and extrapolated to 100


def prunes(n: int = N_PRUNES) -> list[PrunePathway]:
    """``n`` deterministic single src → dst pairs, cycling through the 1x1, pool and 5x5 branches."""
    branches = [("1x1", 0, 128), ("pool_reduce", 416, 64), ("5x5", 320, 96)]
    out = []
    for i in range(n):
        _, start, width = branches[i % 3]
        dst = start + (7 * (i // 3)) % width
        src = (37 * i + 11) % 256
        out.append(PrunePathway(src=f"mixed3a:{src}", dst=f"mixed3b:{dst}"))
    return out


def _forward_ms(model, x, reps: int = 5) -> float:
    with torch.no_grad():
        model(x, start_at="mixed3a", stop_at="mixed3b")
        t = time.perf_counter()
        for _ in range(reps):
            model(x, start_at="mixed3a", stop_at="mixed3b")
    return (time.perf_counter() - t) / reps * 1e3


def run() -> dict:
    model = load_model("inceptionv1_caffe")
    edits = prunes()
    plan = EditPlan(edits, name="bench-100-prunes")
    plan.apply(model)  # warm-up (allocator, first-call overheads)
    t = time.perf_counter()
    edited, record = plan.apply(model)
    batched = time.perf_counter() - t

    t = time.perf_counter()
    m = model
    for e in edits[:NAIVE_SAMPLE]:
        m, _ = EditPlan([e]).apply(m)
    naive = (time.perf_counter() - t) * N_PRUNES / NAIVE_SAMPLE

    t = time.perf_counter()
    record.undo(edited)
    undo = time.perf_counter() - t

    x = torch.rand(8, 256, 28, 28)
    return {
        "apply_100_prunes_s (target < 2)": round(batched, 3),
        "naive_one_plan_per_prune_s (extrapolated from 20)": round(naive, 2),
        "speedup_batched_vs_naive": round(naive / batched, 1),
        "undo_s": round(undo, 3),
        "weights_changed": record.num_changed,
        "bottleneck_channels_added": sum(record.added_channels.values()),
        "mixed3b_forward_ms_before (8x256x28x28)": round(_forward_ms(model, x), 1),
        "mixed3b_forward_ms_after": round(_forward_ms(edited, x), 1),
    }

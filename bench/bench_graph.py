"""Circuit graph: build time for conv2d2 → 3a → 3b → 4a, and analytic expanded weights vs
the naive way (autograd through a linearised copy, one destination unit at a time)."""

from __future__ import annotations

import time

import torch

from circuits import load_model
from circuits.expanded import expand
from circuits.graph import build_graph
from circuits.model import linearized


def _naive(lin, units, size=32):
    """Jacobian rows by autograd, one unit at a time (the baseline)."""
    x = torch.randn(1, 256, size, size, requires_grad=True)
    with lin.capture(["mixed3b_pre_relu"]) as cap, torch.enable_grad():
        lin(x, start_at="mixed3a", stop_at="mixed3b")
        y = cap["mixed3b_pre_relu"]
        p = size // 2
        for u in units:
            torch.autograd.grad(y[0, u, p, p], x, retain_graph=True)


def run() -> dict:
    model = load_model("inceptionv1_caffe")
    t = time.perf_counter()
    g = build_graph(model)
    build = time.perf_counter() - t
    t = time.perf_counter()
    expand(model, "mixed3a", "mixed3b")
    analytic = time.perf_counter() - t
    lin = linearized(model, biases=False)
    sample = list(range(0, 480, 30))  # 16 units, extrapolated to 480
    t = time.perf_counter()
    _naive(lin, sample)
    naive = (time.perf_counter() - t) * 480 / len(sample)
    return {
        "graph_build_s (4 layers, target < 60)": round(build, 2),
        "graph_nodes": g.graph.number_of_nodes(),
        "graph_edges": g.graph.number_of_edges(),
        "expanded_3a_to_3b_analytic_s": round(analytic, 3),
        "expanded_3a_to_3b_autograd_per_unit_s (extrapolated)": round(naive, 2),
        "speedup_analytic_vs_autograd": round(naive / analytic, 1),
    }

"""``circuits graph``: build the circuit graph and write its pictures and files."""

from __future__ import annotations

import time
from pathlib import Path

from circuits import load_model
from circuits.catalog import catalog as load_cat
from circuits.graph import DEFAULT_LAYERS, build_graph
from studies.report.circuit_plots import family_graph_html, plot_family_graph, plot_weight_diagram
from studies.report.folder import check_out_dir, report_folder, write_json


def run_graph(model_name: str, layers=DEFAULT_LAYERS, out: str | Path = "runs/graph", threshold: float = 0.5,
              weights: str | None = None, overwrite: bool = False, device: str = "cpu") -> dict:
    """Build the unit graph of ``layers`` and write to ``out``: ``graph.graphml``,
    ``graph.json`` (node-link), ``family_graph.png``, ``family_graph.html``,
    ``family_graph.graphml``, and a weight diagram PNG for every pair of curve families in
    consecutive layers (``weights_<src>_to_<dst>.png``), plus ``summary.json``.
    """
    t0 = time.perf_counter()
    check_out_dir(out, overwrite)  # before any compute
    model = load_model(model_name, weights=weights, device=device)
    cat = load_cat(model)
    g = build_graph(model, layers, cat, threshold=threshold)
    t_build = time.perf_counter() - t0
    fg = g.family_graph()
    layers = g.layers
    with report_folder(out, overwrite) as tmp:
        g.to_graphml(tmp / "graph.graphml")
        g.to_json(tmp / "graph.json")
        import networkx as nx

        nx.write_graphml(fg, str(tmp / "family_graph.graphml"))
        plot_family_graph(fg, tmp / "family_graph.png", title=f"{model.spec.name}: families {' → '.join(layers)}")
        family_graph_html(fg, tmp / "family_graph.html", title=f"{model.spec.name}: circuit family graph")
        diagrams = []
        for src, dst in zip(layers[:-1], layers[1:]):
            for sk in (f"{src}/curves",):
                for dk in (f"{dst}/curves",):
                    if sk in cat and dk in cat:
                        name = f"weights_{src}_to_{dst}.png"
                        plot_weight_diagram(model, cat[sk], cat[dk], tmp / name)
                        diagrams.append(name)
        summary = {
            "checkpoint": model.spec.name, "layers": layers, "threshold": threshold,
            "nodes": g.graph.number_of_nodes(), "edges": g.graph.number_of_edges(),
            "families": fg.number_of_nodes(), "family_edges": fg.number_of_edges(),
            "build_seconds": round(t_build, 2), "weight_diagrams": diagrams,
        }
        write_json(tmp / "summary.json", summary)
    return summary

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
              weights: str | None = None, overwrite: bool = False, device: str = "cpu", vis_steps: int = 0) -> dict:
    """Build the unit graph of ``layers`` and write to ``out``: ``graph.graphml``,
    ``graph.json`` (node-link), ``family_graph.png``, ``family_graph.html``,
    ``family_graph.graphml``, and a weight diagram PNG for every pair of curve families in
    consecutive layers (``weights_<src>_to_<dst>.png``), plus ``summary.json``. With
    ``vis_steps`` > 0 every family node of the HTML page carries a thumbnail of its units'
    feature visualizations (:mod:`studies.measure.featurevis`, ``vis_steps`` steps).
    """
    t0 = time.perf_counter()
    check_out_dir(out, overwrite)  # before any compute
    model = load_model(model_name, weights=weights, device=device)
    cat = load_cat(model)
    g = build_graph(model, layers, cat, threshold=threshold)
    t_build = time.perf_counter() - t0
    fg = g.family_graph()
    layers = g.layers
    thumbs = {}
    if vis_steps:
        from studies.measure.featurevis import VisSettings, visualize_units
        from studies.report.vis_plots import montage_data_uri

        for key in fg.nodes:
            if key in cat:
                vis = visualize_units(model, cat[key], settings=VisSettings(steps=int(vis_steps)))
                thumbs[key] = montage_data_uri([v.image for v in vis])
    with report_folder(out, overwrite) as tmp:
        g.to_graphml(tmp / "graph.graphml")
        g.to_json(tmp / "graph.json")
        import networkx as nx

        nx.write_graphml(fg, str(tmp / "family_graph.graphml"))
        plot_family_graph(fg, tmp / "family_graph.png", title=f"{model.spec.name}: families {' → '.join(layers)}")
        family_graph_html(fg, tmp / "family_graph.html", title=f"{model.spec.name}: circuit family graph",
                          thumbnails=thumbs)
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
        _write_page(tmp, summary)
    return summary


def _write_page(tmp: Path, s: dict) -> None:
    """``summary.md`` and ``report.html`` of :func:`run_graph`."""
    from studies.report.html import write_report

    lines = [f"# Circuit graph: {s['checkpoint']}", "",
             f"- Layers: {' → '.join(s['layers'])}; edges kept above threshold {s['threshold']} "
             "(expanded-weight L2 strength).",
             f"- {s['nodes']} units, {s['edges']} unit edges; {s['families']} families, "
             f"{s['family_edges']} family edges (built in {s['build_seconds']} s).",
             "- Interactive version: [family_graph.html](family_graph.html); GraphML/JSON files for other tools.",
             "- Weight diagrams: each row on its own colour scale (its ±max at the right). Between mixed3b and "
             "mixed4a a stride-2 max-pool makes the expanded kernels checkerboarded.", ""]
    (tmp / "summary.md").write_text("\n".join(lines))
    write_report(tmp, f"Circuit graph: {s['checkpoint']}", figures=["family_graph.png", *s["weight_diagrams"]],
                 tables={})

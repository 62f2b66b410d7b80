"""Family and graph payloads.

- family page: units ordered by preferred orientation (the catalog's, else measured), their radial
  tuning overlaid (:func:`.fasttune.radial`, the cone; Curve Detectors' radial tuning), and weight
  diagrams to and from the families of the neighbouring layers (expanded weights, each row on its own
  symmetric scale; Curve Circuits' weight diagrams between curve families);
- graph: the family units of conv2d2 → mixed3a → mixed3b → mixed4a (:data:`circuits.graph.DEFAULT_LAYERS`)
  as nodes, expanded-weight edges between consecutive layers kept as :func:`circuits.graph.build_graph`
  keeps them (L2 norm ≥ ``threshold`` × the largest into the same destination, here among family units),
  ``weight`` = the kernel's sum, laid out by layer (x) and by family and orientation (y).
"""

from __future__ import annotations

import numpy as np

from circuits.expanded import EXPANDABLE, expand
from circuits.graph import DEFAULT_LAYERS
from circuits.units import Family

from . import assets, figures, pages
from .context import Explorer
from .fasttune import radial

#: Edge threshold of the graph (fraction of the strongest family input of the destination).
GRAPH_THRESHOLD = 0.5


def _diagram(ex: Explorer, src: Family, dst: Family) -> dict:
    """Weight diagram PNG ``src → dst`` (rows: ``dst`` units, columns: ``src`` units, by orientation;
    labelled, with a title and a colour key)."""
    su = [u for u, _ in pages.family_units_ordered(ex, src.key)]
    du = [u for u, _ in pages.family_units_ordered(ex, dst.key)]
    key = ex.key("diagram-png", dict(src=src.key, dst=dst.key, rows=[str(u) for u in du], cols=[str(u) for u in su],
                                     labels=3))
    if not ex.store.has(key, "png"):
        E = expand(ex.model, src.layer, dst.layer, dst_units=[u.index for u in du],
                   src_units=[u.index for u in su]).weight.numpy()
        ex.store.write_png(key, figures.mosaic_png(E, [u.short for u in du], [u.short for u in su],
                                                   f"expanded weights {src.key} -> {dst.key}"))
    return {"from": src.key, "to": dst.key, "image": ex.store.url(key, "png"), "rows": [u.short for u in du],
            "cols": [u.short for u in su]}


def family_page(ex: Explorer, layer: str, name: str) -> dict:
    """``/api/family/{layer}/{name}``: the measured part stored once, feature visualizations looked up."""
    f = ex.family(f"{layer}/{name}")
    key = ex.key("family-page", dict(ex.config.tuning_settings(), family=f.key, units=list(f.units)))
    got = ex.store.read_json(key)
    if got is None:
        with ex.compute:
            got = ex.store.read_json(key)
            if got is None:
                got = _family_static(ex, f)
                ex.store.write_json(key, got)
    for u in got["units"]:
        u["featurevis"] = assets.featurevis_url(ex, ex.unit(u["id"]))
    return got


def _family_static(ex: Explorer, f) -> dict:
    ordered = pages.family_units_ordered(ex, f.key)
    settings = ex.config.tuning_settings()
    rad = radial(ex.model, [u for u, _ in ordered], settings, ex.model, ex.fp, ex.trunk)
    i = EXPANDABLE.index(f.layer)
    diagrams = []
    for other in ex.catalog.values():
        j = EXPANDABLE.index(other.layer) if other.layer in EXPANDABLE else -99
        if j == i - 1:
            diagrams.append(_diagram(ex, other, f))
        elif j == i + 1:
            diagrams.append(_diagram(ex, f, other))
    return dict(key=f.key, layer=f.layer, name=f.name, kind=f.kind, colour=ex.colours[f.key], source=f.source,
                units=[dict(id=u.short, preferred_orientation_deg=o) for u, o in ordered],
                radial=dict(orientation_deg=rad["orientation_deg"], series=rad["series"], units=rad["units"]),
                diagrams=diagrams)


def graph(ex: Explorer) -> dict:
    """``/api/graph`` (stored once per model)."""
    key = ex.key("graph", dict(layers=list(DEFAULT_LAYERS), threshold=GRAPH_THRESHOLD))
    got = ex.store.read_json(key)
    if got is not None:
        return got
    with ex.compute:
        return _graph(ex, key)


def _graph(ex: Explorer, key: str) -> dict:
    layers = [lay for lay in DEFAULT_LAYERS]
    members = {lay: [] for lay in layers}
    for k, f in ex.catalog.items():
        if f.layer in members:
            for u, o in pages.family_units_ordered(ex, k):
                if all(u != v for v, _, _ in members[f.layer]):
                    members[f.layer].append((u, k, o))
    nodes, edges = [], []
    for x, lay in enumerate(layers):
        n = len(members[lay])
        for y, (u, k, o) in enumerate(members[lay]):
            nodes.append(dict(id=u.short, layer=lay, index=u.index, family=k, colour=ex.colours[k],
                              orientation_deg=o, x=x / max(1, len(layers) - 1), y=(y + 0.5) / max(1, n)))
    for src, dst in zip(layers[:-1], layers[1:]):
        su, du = [u for u, _, _ in members[src]], [u for u, _, _ in members[dst]]
        if not su or not du:
            continue
        w = expand(ex.model, src, dst, dst_units=[u.index for u in du], src_units=[u.index for u in su]).weight
        w = w.flatten(2)
        l2, sm = w.norm(dim=-1).numpy(), w.sum(-1).numpy()
        keep = l2 >= GRAPH_THRESHOLD * l2.max(1, keepdims=True)
        for d, s in zip(*np.nonzero(keep)):
            edges.append(dict(source=su[s].short, target=du[d].short, weight=float(sm[d, s]), l2=float(l2[d, s])))
    got = dict(nodes=nodes, edges=edges, layers=layers, threshold=GRAPH_THRESHOLD)
    ex.store.write_json(key, got)
    return got

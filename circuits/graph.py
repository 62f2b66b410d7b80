"""CircuitGraph: units as nodes, expanded weights as edges, and a family-level view.

Nodes are units (``"mixed3b:379"``) with attributes ``layer``, ``index``, ``branch``,
``family`` (first family containing the unit, ``""`` if none), ``families`` (all, comma
separated) and ``orientation`` (preferred orientation in degrees where the catalog knows
it; absent otherwise). Edges connect units of consecutive layers of the requested list,
weighted by the expanded weights (:mod:`circuits.expanded`) and carrying ``pos`` (sum of
the positive entries of the kernel), ``neg`` (sum of the negative entries, ≤ 0), ``l2``
(Frobenius norm), ``peak`` (largest magnitude) and ``sign`` (+1/−1, the sign of pos + neg).

An edge is kept when its ``l2`` is at least ``threshold`` × the largest ``l2`` among the
edges into the same destination unit (default 0.25), so every unit keeps its strongest
inputs whatever its overall scale. The kernels themselves are available on request
(:meth:`CircuitGraph.kernel`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import torch
from torch import Tensor

from .expanded import ExpandedWeights, expand
from .model import InceptionV1
from .spec import MIXED_LAYERS
from .units import Unit, canonical_layer

DEFAULT_LAYERS = ("conv2d2", "mixed3a", "mixed3b", "mixed4a")


class CircuitGraph:
    """A unit-level ``networkx.DiGraph`` (``.graph``) plus the expanded weights it came from."""

    def __init__(self, graph: nx.DiGraph, expanded: dict[tuple[str, str], ExpandedWeights] | None = None):
        self.graph = graph
        self._expanded = expanded or {}

    # ---------------------------------------------------------------- access
    @property
    def layers(self) -> list[str]:
        return list(self.graph.graph.get("layers", "").split(",")) if self.graph.graph.get("layers") else []

    def kernel(self, src: Unit | str, dst: Unit | str) -> Tensor:
        """The expanded-weight kernel ``(kh, kw)`` from ``src`` to ``dst`` (consecutive layers).

        Raises:
            KeyError: the layers are not consecutive in this graph, or the graph was loaded
                from a file without its weights.
        """
        s, d = Unit.parse(src), Unit.parse(dst)
        key = (s.layer, d.layer)
        if key not in self._expanded:
            raise KeyError(f"no kernels for {s.layer} → {d.layer} in this graph (consecutive layers: "
                           f"{list(self._expanded)}; graphs loaded from files carry no kernels)")
        return self._expanded[key].weight[d.index, s.index]

    def family_graph(self) -> nx.DiGraph:
        """Family-level view: one node per family (``"mixed3b/curves"``) with ``layer``,
        ``kind``, ``size``; one edge per family pair with unit edges between them, carrying
        ``pos``, ``neg``, ``l2`` (sums over unit edges), ``n_edges`` and ``sign``.

        A unit in several families contributes to each.
        """
        fg = nx.DiGraph(layers=self.graph.graph.get("layers", ""))
        members: dict[str, list[str]] = {}
        for n, a in self.graph.nodes(data=True):
            for f in filter(None, a.get("families", "").split(",")):
                members.setdefault(f, []).append(n)
                if f not in fg:
                    fg.add_node(f, layer=a["layer"], kind=self.graph.graph.get(f"kind:{f}", ""), size=0)
                fg.nodes[f]["size"] += 1
        for u, v, e in self.graph.edges(data=True):
            fu = filter(None, self.graph.nodes[u].get("families", "").split(","))
            fv = [f for f in self.graph.nodes[v].get("families", "").split(",") if f]
            for a in fu:
                for b in fv:
                    if not fg.has_edge(a, b):
                        fg.add_edge(a, b, pos=0.0, neg=0.0, l2=0.0, n_edges=0)
                    d = fg.edges[a, b]
                    d["pos"] += e["pos"]
                    d["neg"] += e["neg"]
                    d["l2"] += e["l2"]
                    d["n_edges"] += 1
        for _, _, d in fg.edges(data=True):
            d["sign"] = 1 if d["pos"] + d["neg"] >= 0 else -1
        return fg

    # ---------------------------------------------------------------- I/O
    def to_graphml(self, path: str | Path) -> Path:
        """Write the unit graph as GraphML (kernels are not included)."""
        nx.write_graphml(self.graph, str(path))
        return Path(path)

    @classmethod
    def from_graphml(cls, path: str | Path) -> "CircuitGraph":
        g = nx.read_graphml(str(path))
        return cls(_normalise(nx.DiGraph(g)))

    def to_json(self, path: str | Path) -> Path:
        """Write node-link JSON (``networkx.node_link_data``)."""
        Path(path).write_text(json.dumps(nx.node_link_data(self.graph, edges="links")))
        return Path(path)

    @classmethod
    def from_json(cls, path: str | Path) -> "CircuitGraph":
        from .documents import load_json, read_text

        data = load_json(read_text(path, "graph file"), str(path))
        return cls(_normalise(nx.node_link_graph(data, directed=True, edges="links")))


def _normalise(g: nx.DiGraph) -> nx.DiGraph:
    """Types after a round trip through a file: ints stay ints, floats floats."""
    g.graph.pop("node_default", None)
    g.graph.pop("edge_default", None)
    for _, a in g.nodes(data=True):
        if "index" in a:
            a["index"] = int(a["index"])
    for _, _, e in g.edges(data=True):
        if "sign" in e:
            e["sign"] = int(e["sign"])
    return g


def graph_equal(a: CircuitGraph | nx.DiGraph, b: CircuitGraph | nx.DiGraph, rel: float = 1e-6) -> bool:
    """Same nodes, edges and attributes (floats to relative tolerance ``rel``)."""
    ga = a.graph if isinstance(a, CircuitGraph) else a
    gb = b.graph if isinstance(b, CircuitGraph) else b

    def same(x, y):
        if isinstance(x, float) or isinstance(y, float):
            return abs(float(x) - float(y)) <= rel * max(1.0, abs(float(x)), abs(float(y)))
        return x == y

    if set(ga.nodes) != set(gb.nodes) or set(ga.edges) != set(gb.edges) or ga.graph != gb.graph:
        return False
    for n in ga.nodes:
        if ga.nodes[n].keys() != gb.nodes[n].keys() or not all(same(ga.nodes[n][k], gb.nodes[n][k]) for k in ga.nodes[n]):
            return False
    for e in ga.edges:
        if ga.edges[e].keys() != gb.edges[e].keys() or not all(same(ga.edges[e][k], gb.edges[e][k]) for k in ga.edges[e]):
            return False
    return True


@torch.no_grad()
def build_graph(
    model: InceptionV1,
    layers: Sequence[str] = DEFAULT_LAYERS,
    catalog=None,
    threshold: float = 0.5,
) -> CircuitGraph:
    """Build the unit-level circuit graph between consecutive ``layers``.

    Args:
        model: the network.
        layers: canonical or short names in forward order (default conv2d2 → 3a → 3b → 4a).
        catalog: a :class:`~circuits.catalog.FamilyCatalog` for family/orientation attributes
            (default: the model's packaged catalog, if any).
        threshold: keep an edge when its L2 norm ≥ ``threshold`` × the largest L2 norm into
            the same destination unit; 0 keeps every pair.

    Returns:
        :class:`CircuitGraph`.

    Raises:
        KeyError: unknown layer; ValueError: layers not in forward order or threshold < 0.
    """
    from .catalog import load_catalog

    layers = [canonical_layer(layer) for layer in layers]
    order = ("conv2d0", "conv2d1", "conv2d2") + MIXED_LAYERS
    idx = [order.index(layer) for layer in layers]
    if idx != sorted(idx) or len(set(idx)) != len(idx):
        raise ValueError(f"layers must be distinct and in forward order; got {layers}")
    if threshold < 0:
        raise ValueError(f"threshold must be ≥ 0; got {threshold}")
    if catalog is None:
        try:
            catalog = load_catalog(model.spec)
        except FileNotFoundError:
            catalog = None
    spec = model.spec
    g = nx.DiGraph(checkpoint=spec.name, layers=",".join(layers), threshold=float(threshold))
    fam_of: dict[tuple[str, int], list] = {}
    if catalog is not None:
        for key in catalog:
            f = catalog[key]
            g.graph[f"kind:{key}"] = f.kind
            for j, u in enumerate(f.units):
                fam_of.setdefault((f.layer, u), []).append((key, f.orientations[j] if f.orientations else None))
    for layer in layers:
        for i in range(spec.layer_width(layer)):
            fams = fam_of.get((layer, i), [])
            attrs = dict(layer=layer, index=i, branch=spec.branch_of(layer, i) if layer in MIXED_LAYERS else "",
                         family=fams[0][0] if fams else "", families=",".join(f for f, _ in fams))
            ori = next((o for _, o in fams if o is not None), None)
            if ori is not None:
                attrs["orientation"] = float(ori)
            g.add_node(f"{layer}:{i}", **attrs)
    expanded = {}
    for src, dst in zip(layers[:-1], layers[1:]):
        E = expand(model, src, dst)
        expanded[(src, dst)] = E
        w = E.weight.flatten(2)  # (dst, src, k*k)
        pos = w.clamp(min=0).sum(-1)
        neg = w.clamp(max=0).sum(-1)
        l2 = w.norm(dim=-1)
        peak = w.abs().amax(-1)
        keep = l2 >= threshold * l2.amax(1, keepdim=True)
        d_idx, s_idx = torch.nonzero(keep, as_tuple=True)
        P, N, L, K = (t[d_idx, s_idx].tolist() for t in (pos, neg, l2, peak))
        for d, s, p, n, l_, k in zip(d_idx.tolist(), s_idx.tolist(), P, N, L, K):
            g.add_edge(f"{src}:{s}", f"{dst}:{d}", pos=p, neg=n, l2=l_, peak=k, sign=1 if p + n >= 0 else -1)
    return CircuitGraph(g, expanded)

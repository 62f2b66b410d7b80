"""Expanded weights (against the Jacobian of a linearised copy), the circuit graph, its files
and pictures, and the Curve Circuits weight motif on the real BVLC weights."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest
import torch

from circuits.catalog import catalog
from circuits.expanded import expand
from circuits.graph import CircuitGraph, build_graph, graph_equal
from circuits.model import linearized


@pytest.fixture(scope="module")
def lin64(caffe_model):
    return linearized(caffe_model, biases=False).double()


@pytest.mark.parametrize("src,dst,units", [
    ("mixed3a", "mixed3b", [0, 130, 330, 450]),     # adjacent, every branch
    ("conv2d2", "mixed3a", [5, 100, 200, 250]),     # across LRN and the strided pool
    ("mixed3b", "mixed4a", [5, 300, 450, 500]),
    ("conv2d2", "mixed3b", [9, 330, 358]),          # a two-layer span
    ("conv2d0", "conv2d2", [3, 100]),
    ("mixed3a", "mixed3b_5x5", [10, 38]),           # a branch activation, through the bottleneck
])
def test_expanded_weights_equal_linearised_jacobian(caffe_model, lin64, src, dst, units):
    E = expand(caffe_model, src, dst, dst_units=units, dtype=torch.float64)
    size = 48 if src.startswith("mixed") else 64
    x = torch.randn(1, lin64._stage_channels(src), size, size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0), requires_grad=True)
    name = dst if "_" in dst else f"{dst}_pre_relu"
    with lin64.capture([name]) as cap, torch.enable_grad():
        lin64(x, start_at=src, stop_at=lin64.stage_of(name))
        y = cap[name]
        p = y.shape[-1] // 2
        for j, u in enumerate(units):
            (g,) = torch.autograd.grad(y[0, u, p, p], x, retain_graph=True)
            k = E.weight[j]
            lo = E.stride * p - E.padding
            window = g[0, :, lo:lo + k.shape[-1], lo:lo + k.shape[-1]]
            assert torch.allclose(window, k, rtol=1e-9, atol=1e-12)
            # nothing outside the kernel's support
            assert float(g.abs().sum() - window.abs().sum()) < 1e-9


def test_expanded_weights_errors(caffe_model):
    with pytest.raises(ValueError, match="after"):
        expand(caffe_model, "mixed3b", "mixed3a")
    with pytest.raises(KeyError, match="valid layers"):
        expand(caffe_model, "mixed9z", "mixed3b")


@pytest.fixture(scope="module")
def graph(caffe_model):
    t = time.perf_counter()
    g = build_graph(caffe_model)
    g.build_seconds = time.perf_counter() - t
    return g


def test_graph_structure(graph, caffe_model):
    G = graph.graph
    assert G.number_of_nodes() == 192 + 256 + 480 + 512
    n = G.nodes["mixed3b:358"]
    assert n["layer"] == "mixed3b" and n["branch"] == "5x5" and n["family"] == "mixed3b/curves"
    assert "orientation" in n
    # every edge (all of them, vectorised) against statistics recomputed in numpy (float64) from
    # the expanded weights; the edge set is exactly the pairs with l2 ≥ threshold × max l2 into dst
    thr = G.graph["threshold"]
    n_edges = 0
    for src, dst in [("conv2d2", "mixed3a"), ("mixed3a", "mixed3b"), ("mixed3b", "mixed4a")]:
        # the kernels the graph was built from (graph.kernel's store; checked against expand below)
        w = graph._expanded[(src, dst)].weight.double().flatten(2).numpy()  # (dst, src, k*k)
        l2 = np.sqrt((w * w).sum(-1))
        keep = l2 >= thr * l2.max(1, keepdims=True)
        edges = [(int(u.split(":")[1]), int(v.split(":")[1]), e) for u, v, e in G.edges(data=True)
                 if G.nodes[u]["layer"] == src and G.nodes[v]["layer"] == dst]
        d_i = np.array([d for _, d, _ in edges])
        s_i = np.array([s for s, _, _ in edges])
        assert len(edges) == int(keep.sum()) and keep[d_i, s_i].all()  # the same edge set
        got = np.array([[e["pos"], e["neg"], e["l2"], e["peak"], e["sign"]] for _, _, e in edges])
        ww = w[d_i, s_i]
        pos, neg = np.where(ww > 0, ww, 0).sum(-1), np.where(ww < 0, ww, 0).sum(-1)
        np.testing.assert_allclose(got[:, 0], pos, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got[:, 1], neg, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got[:, 2], l2[d_i, s_i], rtol=1e-5)
        np.testing.assert_allclose(got[:, 3], np.abs(ww).max(-1), rtol=1e-5)
        clear = np.abs(pos + neg) > 1e-4 * np.abs(ww).sum(-1)  # sign where float32 rounding cannot flip it
        assert (got[clear, 4] == np.sign(pos + neg)[clear]).all()
        n_edges += len(edges)
    assert n_edges == G.number_of_edges() == 28859
    # the kernel on request is the expanded weight, and its statistics match the edge
    k = graph.kernel("mixed3a:100", "mixed3b:358")
    ref = expand(caffe_model, "mixed3a", "mixed3b", dst_units=[358], src_units=[100]).weight[0, 0]
    assert torch.equal(k, ref)
    assert not G.has_edge("mixed3a:100", "mixed3b:358")  # below the threshold: no edge, but a kernel
    into = list(G.in_edges("mixed3b:358", data=True))  # the edges that exist: each one's l2 is its kernel's
    for u, v, e in into:
        assert e["l2"] == pytest.approx(float(graph.kernel(u, v).norm()), rel=1e-5)
    norms = torch.stack([graph.kernel(f"mixed3a:{i}", "mixed3b:358").norm() for i in range(256)])
    assert len(into) == int((norms >= thr * norms.max()).sum()) == 3
    # each destination unit keeps its strongest input (threshold relative to it)
    assert all(G.in_degree(f"mixed3b:{i}") >= 1 for i in range(480))
    assert graph.build_seconds < 60


def test_graph_round_trips(graph, tmp_path):
    a = CircuitGraph.from_graphml(graph.to_graphml(tmp_path / "g.graphml"))
    b = CircuitGraph.from_json(graph.to_json(tmp_path / "g.json"))
    assert graph_equal(graph, a) and graph_equal(graph, b)
    # a change is detected
    e = next(iter(b.graph.edges))
    b.graph.edges[e]["l2"] *= 1.01
    assert not graph_equal(graph, b)


def test_family_graph_aggregates_unit_edges(graph):
    fg = graph.family_graph()
    assert "mixed3b/curves" in fg and fg.nodes["mixed3b/curves"]["size"] == len(catalog("inceptionv1_caffe")["mixed3b/curves"])
    G = graph.graph
    for a, b, d in fg.edges(data=True):
        members_a = {n for n, x in G.nodes(data=True) if a in x["families"].split(",")}
        members_b = {n for n, x in G.nodes(data=True) if b in x["families"].split(",")}
        edges = [G.edges[u, v] for u in members_a for v in members_b if G.has_edge(u, v)]
        assert d["n_edges"] == len(edges)
        assert d["pos"] == pytest.approx(sum(e["pos"] for e in edges))
        assert d["neg"] == pytest.approx(sum(e["neg"] for e in edges))


def test_curve_circuits_motif_on_bvlc(caffe_model):
    """Curve Circuits: same-orientation early curves excite curves, opposite ones inhibit."""
    cat = catalog(caffe_model)
    a, b = cat["mixed3a/curves"], cat["mixed3b/curves"]
    E = expand(caffe_model, "mixed3a", "mixed3b", dst_units=list(b.units), src_units=list(a.units)).weight
    total = E.sum((2, 3)).numpy()
    near, far = [], []
    for i, ob in enumerate(b.orientations):
        for j, oa in enumerate(a.orientations):
            d = abs((ob - oa + 180) % 360 - 180)
            (near if d < 45 else far if d > 135 else []).append(total[i, j])
    assert len(near) >= 5 and len(far) >= 5
    assert np.mean(near) > 0 > np.mean(far)


def test_curve_family_sits_mostly_in_5x5_branch(caffe_model):
    fam = catalog(caffe_model)["mixed3b/curves"]
    branches = [caffe_model.spec.branch_of("mixed3b", u) for u in fam.units]
    assert branches.count("5x5") > len(branches) / 2


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed for the HTML test (Debian package `chromium`; .ci/run installs it)")


def test_cli_graph_writes_files_and_html_renders(tmp_path, graph):
    from studies.cli import main

    out = tmp_path / "graph"
    assert main(["graph", "--model", "inceptionv1_caffe", "--out", str(out)]) == 0
    for f in ("graph.graphml", "graph.json", "family_graph.png", "family_graph.html", "summary.json"):
        assert (out / f).is_file(), f
    # the files hold the graph build_graph makes (every node, edge and attribute)
    assert graph_equal(CircuitGraph.from_json(out / "graph.json"), graph)
    assert graph_equal(CircuitGraph.from_graphml(out / "graph.graphml"), graph)
    html = (out / "family_graph.html").read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", (out / "family_graph.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    import json

    n = json.loads((out / "summary.json").read_text())["families"]
    assert n == graph.family_graph().number_of_nodes()
    assert f'data-rendered="{n}"' in dom
    assert dom.count('class="node"') == n
    from html_check import check_report_html

    check_report_html(out, tmp_path / "chromium2", min_figures=2)  # family graph + weight diagrams

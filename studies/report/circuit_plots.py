"""Pictures of circuits: the layered family graph, Distill-style weight diagrams, and a
self-contained interactive HTML page of the family graph (works offline, no CDN)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

from circuits.expanded import expand  # noqa: E402
from circuits.units import Family  # noqa: E402

RED, BLUE = "#c0392b", "#2c6fbb"


def _layer_positions(fg: nx.DiGraph, layers: list[str]) -> dict[str, tuple[float, float]]:
    pos = {}
    for x, layer in enumerate(layers):
        nodes = sorted(n for n, a in fg.nodes(data=True) if a["layer"] == layer)
        for k, n in enumerate(nodes):
            pos[n] = (float(x), float(k - (len(nodes) - 1) / 2))
    return pos


def plot_family_graph(fg: nx.DiGraph, path: str | Path | None = None, title: str = ""):
    """Layered drawing of a family graph (:meth:`circuits.graph.CircuitGraph.family_graph`):
    one column per layer, edge width ∝ summed L2 strength, red = net excitatory, blue = net
    inhibitory (sign of pos + neg). Axis limits come from the node positions (with room for
    the labels under the lowest nodes and the layer names above the highest)."""
    from matplotlib.lines import Line2D

    layers = [layer for layer in fg.graph.get("layers", "").split(",") if layer]
    pos = _layer_positions(fg, layers)
    per_layer = max([sum(1 for _, a in fg.nodes(data=True) if a["layer"] == layer) for layer in layers] or [1])
    fig, ax = plt.subplots(figsize=(3.2 * max(len(layers), 2), 1.8 + 1.0 * per_layer), layout="constrained")
    lmax = max([d["l2"] for _, _, d in fg.edges(data=True)] or [1.0])
    for u, v, d in fg.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        ax.annotate("", xy=(x1 - 0.08, y1), xytext=(x0 + 0.08, y0),
                    arrowprops=dict(arrowstyle="-|>", lw=0.5 + 6 * d["l2"] / lmax,
                                    color=RED if d["sign"] > 0 else BLUE, alpha=0.75))
    for n, a in fg.nodes(data=True):
        x, y = pos[n]
        ax.scatter([x], [y], s=150 + 25 * a.get("size", 1), color="#f5f5f5", edgecolor="#333", zorder=3)
        ax.text(x, y - 0.3, f"{n.split('/')[1]} ({a.get('size', 0)})", ha="center", va="top", fontsize=8)
    ys = [y for _, y in pos.values()] or [0.0]
    lo, hi = min(ys) - 0.75, max(ys) + 0.55
    for x, layer in enumerate(layers):
        ax.text(x, hi, layer, ha="center", va="bottom", fontsize=11, weight="bold")
    ax.set_ylim(lo, hi + 0.45)
    ax.set_xlim(-0.45, max(len(layers) - 1, 1) + 0.45)
    ax.set_axis_off()
    ax.legend([Line2D([], [], color=RED, lw=3), Line2D([], [], color=BLUE, lw=3)],
              ["net excitatory", "net inhibitory"], loc="lower right", fontsize=8, frameon=False,
              title="edge width ∝ summed L2 strength", title_fontsize=8)
    ax.set_title(title or "family graph", fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


#: pairs of layers with a stride-2 max-pool between them (the expanded kernels alternate at
#: stride 2: a checkerboard that is real, not a plotting artefact)
POOLED = {("mixed3b", "mixed4a"), ("mixed4e", "mixed5a"), ("conv2d2", "mixed3a")}


def plot_weight_diagram(model, src: Family, dst: Family, path: str | Path | None = None, title: str = ""):
    """Distill-style weight diagram: the expanded-weight kernel from every ``src`` unit
    (columns) to every ``dst`` unit (rows), red positive / blue negative, each row on its own
    symmetric colour scale (its ±max written at the right of the row: one scale for all would
    let a few strong kernels hide most of the others); rows and columns ordered by preferred
    orientation when the families have them (Curve Circuits, weight diagrams between curve families).
    Between layers separated by a stride-2 max-pool (mixed3b → mixed4a) the kernels look
    checkerboarded; the figure says why."""
    def order(f: Family):
        idx = list(range(len(f.units)))
        if f.orientations:
            idx.sort(key=lambda i: f.orientations[i])
        return [f.units[i] for i in idx], [f.orientations[i] if f.orientations else None for i in idx]

    su, so = order(src)
    du, do = order(dst)
    E = expand(model, src.layer, dst.layer, dst_units=du, src_units=su).weight.numpy()
    fig = plt.figure(figsize=(0.72 * len(su) + 2.4, 0.72 * len(du) + 1.6), layout="constrained")
    gs = fig.add_gridspec(len(du), len(su) + 1, width_ratios=[1] * len(su) + [1.4])
    for i in range(len(du)):
        vmax = float(np.abs(E[i]).max()) or 1.0
        for j in range(len(su)):
            ax = fig.add_subplot(gs[i, j])
            ax.imshow(E[i, j], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{su[j]}" + (f"\n{so[j]:.0f}°" if so[j] is not None else ""), fontsize=6)
            if j == 0:
                ax.set_ylabel(f"{du[i]}" + (f"\n{do[i]:.0f}°" if do[i] is not None else ""), fontsize=6,
                              rotation=0, ha="right", va="center")
        sax = fig.add_subplot(gs[i, len(su)])
        sax.axis("off")
        sax.text(0.05, 0.5, f"±{vmax:.3g}", fontsize=7, va="center", transform=sax.transAxes)
    sm = plt.cm.ScalarMappable(cmap="RdBu_r", norm=plt.Normalize(-1, 1))
    fig.colorbar(sm, ax=fig.axes, location="bottom", shrink=0.35, aspect=40, pad=0.01,
                 label="weight / row's max |weight| (row scale ± at the right)")
    note = ""
    if (src.layer, dst.layer) in POOLED:
        note = ("\ncheckerboard: a stride-2 3×3 max-pool lies between the layers, so the expanded kernel "
                "alternates at stride 2")
    fig.suptitle(title or f"expanded weights {src.key} (columns) → {dst.key} (rows); red +, blue −, "
                 f"one colour scale per row{note}", fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
svg{border:1px solid #ddd;background:#fff;max-width:100%;height:auto}
.edge{fill:none;opacity:.7}.edge.dim{opacity:.07}.node{fill:#f4f4f4;stroke:#333;cursor:pointer}
.node.sel{fill:#ffe08a}.label{font-size:11px;pointer-events:none}.layer{font-weight:bold;font-size:13px}
#info{margin-top:8px;font-size:13px;min-height:3em;white-space:pre}
</style></head><body>
<h2>__TITLE__</h2>
<p>Families (circles, area ∝ units) connected by expanded weights: red excitatory, blue inhibitory,
width ∝ summed L2 strength. Click a family to highlight its pathways; hover an edge for numbers.</p>
<svg id="g" width="__W__" height="__H__" viewBox="0 0 __W__ __H__"></svg>
<div id="info"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
(function(){
const D=JSON.parse(document.getElementById('data').textContent);
const svg=document.getElementById('g'),NS='http://www.w3.org/2000/svg',W=+svg.getAttribute('width'),H=+svg.getAttribute('height');
const info=document.getElementById('info');
const L=D.layers,pos={};
L.forEach((l,i)=>{const ns=D.nodes.filter(n=>n.layer===l).sort((a,b)=>a.id<b.id?-1:1);
 const x=80+i*(W-160)/Math.max(1,L.length-1);
 ns.forEach((n,k)=>{pos[n.id]=[x,70+(k+0.5)*(H-100)/Math.max(1,ns.length)];});
 const t=document.createElementNS(NS,'text');t.setAttribute('x',x);t.setAttribute('y',30);t.setAttribute('text-anchor','middle');
 t.setAttribute('class','layer');t.textContent=l;svg.appendChild(t);});
const lmax=Math.max(1e-9,...D.links.map(e=>e.l2));
const edges=D.links.map(e=>{const p=document.createElementNS(NS,'path');const [x0,y0]=pos[e.source],[x1,y1]=pos[e.target];
 p.setAttribute('d',`M${x0},${y0} C${(x0+x1)/2},${y0} ${(x0+x1)/2},${y1} ${x1},${y1}`);
 p.setAttribute('class','edge');p.setAttribute('stroke',e.sign>0?'#c0392b':'#2c6fbb');p.setAttribute('stroke-width',0.5+8*e.l2/lmax);
 p.addEventListener('mouseenter',()=>{info.textContent=`${e.source} → ${e.target}\\nunit edges ${e.n_edges}  pos ${e.pos.toFixed(3)}  neg ${e.neg.toFixed(3)}  L2 ${e.l2.toFixed(3)}`;});
 p.dataset.s=e.source;p.dataset.t=e.target;svg.appendChild(p);return p;});
D.nodes.forEach(n=>{const [x,y]=pos[n.id];const c=document.createElementNS(NS,'circle');
 c.setAttribute('cx',x);c.setAttribute('cy',y);c.setAttribute('r',6+2*Math.sqrt(n.size||1));c.setAttribute('class','node');
 c.dataset.id=n.id;
 c.addEventListener('click',()=>{const on=!c.classList.contains('sel');document.querySelectorAll('.node').forEach(o=>o.classList.remove('sel'));
  edges.forEach(p=>p.classList.toggle('dim',on&&p.dataset.s!==n.id&&p.dataset.t!==n.id));
  if(on){c.classList.add('sel');info.textContent=`${n.id}: ${n.size} units (${n.kind||'family'})`;}});
 svg.appendChild(c);const th=D.thumbs&&D.thumbs[n.id];
 if(th){const im=document.createElementNS(NS,'image');im.setAttribute('href',th);im.setAttribute('x',x+10+2*Math.sqrt(n.size||1));
  im.setAttribute('y',y-24);im.setAttribute('width',48);im.setAttribute('height',48);im.setAttribute('class','thumb');svg.appendChild(im);}
 const t=document.createElementNS(NS,'text');t.setAttribute('x',x);t.setAttribute('y',y+6+2*Math.sqrt(n.size||1)+12);
 t.setAttribute('text-anchor','middle');t.setAttribute('class','label');t.textContent=n.id.split('/')[1]+' ('+n.size+')';svg.appendChild(t);});
document.body.dataset.rendered=String(D.nodes.length);
})();
</script></body></html>
"""


def family_graph_html(fg: nx.DiGraph, path: str | Path, title: str = "Circuit family graph",
                      thumbnails: dict[str, str] | None = None) -> Path:
    """Write a self-contained interactive HTML page of a family graph (inline SVG + script,
    no external resources; opens offline). After rendering, ``<body data-rendered=N>``
    holds the number of drawn family nodes. ``thumbnails``: ``{family key: PNG data URI}``
    drawn beside each node (feature visualizations, :func:`studies.report.vis_plots.montage_data_uri`)."""
    layers = [layer for layer in fg.graph.get("layers", "").split(",") if layer]
    data = nx.node_link_data(fg, edges="links")
    data["layers"] = layers
    data["thumbs"] = dict(thumbnails or {})
    per_layer = max([sum(1 for _, a in fg.nodes(data=True) if a["layer"] == layer) for layer in layers] or [1])
    page = (_HTML.replace("__TITLE__", html.escape(title))
            .replace("__W__", str(max(600, 260 * len(layers))))
            .replace("__H__", str(max(320, 110 * per_layer + 100)))
            .replace("__DATA__", json.dumps(data).replace("</", "<\\/")))
    Path(path).write_text(page, encoding="utf-8")
    return Path(path)

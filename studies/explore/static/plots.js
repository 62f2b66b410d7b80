/* Circuit explorer: SVG plots (radial tuning in polar coordinates, the circuit graph).
   Vanilla JS, no dependencies; everything is drawn from the JSON the server returns. */
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** Distinct colours for n series (hue around the wheel; orientation-ordered families read as a rainbow). */
  function palette(n) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(`hsl(${Math.round((360 * i) / Math.max(1, n))}, 70%, 42%)`);
    return out;
  }

  /** Round numbers for axis ticks: about `n` steps between lo and hi. */
  function niceTicks(lo, hi, n) {
    const span = hi - lo || 1;
    const raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || raw;
    const start = Math.floor(lo / step) * step, ticks = [];
    for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(+v.toFixed(10));
    if (ticks[ticks.length - 1] < hi - 1e-12) ticks.push(+(ticks[ticks.length - 1] + step).toFixed(10));
    return ticks;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    return a !== 0 && (a < 0.01 || a >= 1e4) ? v.toExponential(2) : (+v.toFixed(a < 1 ? 3 : 2)).toString();
  }

  /** Words of `text` in lines of at most `max` characters. */
  function wrap(text, max) {
    const lines = [];
    String(text).split(/\s+/).forEach((w) => {
      const last = lines[lines.length - 1];
      if (last !== undefined && (last + " " + w).length <= max) lines[lines.length - 1] = last + " " + w;
      else lines.push(w);
    });
    return lines;
  }

  /** True when every finite value is 0 (|v| < 1e-9): a unit that never responds, or an ablated one. */
  const allZero = (values) => values.filter((v) => Number.isFinite(v)).every((v) => Math.abs(v) < 1e-9);

  /**
   * Radial tuning as a polar plot: angle = stimulus orientation (degrees, 0° to the right,
   * counter-clockwise), radius = response (linear; the centre is min(0, smallest response)).
   * opts: {orientation: [deg], series: [{id, response, colour?, dashed?, label?}], units: "σ"|…,
   *        pref: deg|null, size: px, title: string}
   * Every series path carries data-id and data-response (JSON) so readers and tests can check the numbers.
   * A series that is 0 at every orientation is also drawn as a ring (class "zero-ring") where 0 lies, so
   * it stays visible at the centre; when every series is 0 the radial scale is left out and the plot
   * says "no response to any curve stimulus (max = 0)" (class "no-response").
   */
  function polarPlot(opts) {
    const size = opts.size || 320, pad = 44, R = size / 2 - pad, cx = size / 2, cy = size / 2 + 6;
    const all = opts.series.flatMap((s) => s.response).filter((v) => Number.isFinite(v));
    const silent = all.length > 0 && allZero(all);
    const label = [`angle: stimulus orientation (°)`, `radius: response (${opts.units || "activation"})`]
      .flatMap((t) => wrap(t, Math.max(24, Math.floor(size / 6.6))));
    const capH = 12 + 14 * label.length;
    const svg = el("svg", {class: "plot polar", width: size, height: size + capH, viewBox: `0 0 ${size} ${size + capH}`,
                           role: "img", "aria-label": opts.title || "radial tuning"});
    const lo0 = Math.min(0, ...all), hi0 = silent ? 1 : Math.max(...all, lo0 + 1e-9);
    const ticks = niceTicks(lo0, hi0, 4), lo = ticks[0], hi = ticks[ticks.length - 1];
    const rad = (v) => (R * (v - lo)) / (hi - lo || 1);
    const xy = (deg, v) => [cx + rad(v) * Math.cos((deg * Math.PI) / 180), cy - rad(v) * Math.sin((deg * Math.PI) / 180)];
    ticks.forEach((t) => { if (rad(t) > 0.5) svg.appendChild(el("circle", {class: "grid-line", cx, cy, r: rad(t)})); });
    for (let a = 0; a < 360; a += 45) {
      const [x1, y1] = xy(a, hi);
      svg.appendChild(el("line", {class: "grid-line", x1: cx, y1: cy, x2: x1, y2: y1}));
      const lx = cx + (R + 16) * Math.cos((a * Math.PI) / 180), ly = cy - (R + 16) * Math.sin((a * Math.PI) / 180);
      svg.appendChild(el("text", {class: "tick", x: lx, y: ly + 3, "text-anchor": "middle"}, `${a}°`));
    }
    const orient = opts.orientation, step = orient.length > 1 ? orient[1] - orient[0] : 0;
    const closed = orient.length > 2 && Math.abs(orient[orient.length - 1] + step - orient[0] - 360) < 1e-6;
    opts.series.forEach((s, i) => {
      const colour = s.colour || palette(opts.series.length)[i];
      const pts = orient.map((d, k) => xy(d, Number.isFinite(s.response[k]) ? s.response[k] : lo));
      const d = pts.map((p, k) => `${k ? "L" : "M"}${p[0].toFixed(2)},${p[1].toFixed(2)}`).join(" ") + (closed ? " Z" : "");
      const path = el("path", {class: "series", d, stroke: colour,
                               "stroke-dasharray": s.dashed ? "5 3" : null, "data-id": s.id, "data-kind": s.kind || null,
                               "data-response": JSON.stringify(s.response)});
      path.appendChild(el("title", {}, s.label || s.id));
      svg.appendChild(path);
      if (s.response.length && allZero(s.response)) {  // 0 everywhere: a ring where 0 lies (the centre when lo = 0)
        const ring = el("circle", {class: "zero-ring", cx, cy, r: Math.max(4, rad(0)), stroke: colour,
                                   "data-id": s.id, "data-kind": s.kind || null});
        ring.appendChild(el("title", {}, `${s.label || s.id}: 0 at every orientation`));
        svg.appendChild(ring);
      }
    });
    if (Number.isFinite(opts.pref)) {
      const [px, py] = xy(opts.pref, hi);
      svg.appendChild(el("line", {class: "pref", x1: cx, y1: cy, x2: px, y2: py, "data-pref": opts.pref}));
    }
    if (silent) {
      const t = el("text", {class: "no-response", x: cx, y: cy - 14, "text-anchor": "middle"});
      ["no response to any ", "curve stimulus (max = 0)"].forEach((line, i) =>
        t.appendChild(el("tspan", {x: cx, dy: i ? 14 : 0}, line)));
      svg.appendChild(t);
    } else {
      // radial scale along 112.5° (between the 90° and 135° spokes), drawn last with a white halo
      ticks.forEach((t) => {
        if (rad(t) < 8) return;  // the centre's value is the smallest tick: read it from the next ring
        const [tx, ty] = xy(112.5, t);
        svg.appendChild(el("text", {class: "tick radial", x: tx, y: ty + 3, "text-anchor": "middle"}, fmt(t)));
      });
    }
    const text = el("text", {class: "axis-label", x: cx, y: size + 16, "text-anchor": "middle"});
    label.forEach((t, i) => text.appendChild(el("tspan", {x: cx, dy: i ? 14 : 0}, i < label.length - 1 ? t + " " : t)));
    svg.appendChild(text);
    return svg;
  }

  /** A small unlabelled polar glyph of one tuning curve (for grids; the full plot is on the unit page). */
  function polarGlyph(orientation, response, colour, size) {
    const s = size || 96, R = s / 2 - 4, c = s / 2;
    const svg = el("svg", {class: "glyph", width: s, height: s, viewBox: `0 0 ${s} ${s}`, "aria-hidden": "true"});
    const lo = Math.min(0, ...response), hi = Math.max(...response, lo + 1e-9);
    svg.appendChild(el("circle", {cx: c, cy: c, r: R, fill: "#fafafa", stroke: "#ddd"}));
    const pts = orientation.map((d, k) => {
      const r = (R * ((Number.isFinite(response[k]) ? response[k] : lo) - lo)) / (hi - lo);
      return `${k ? "L" : "M"}${(c + r * Math.cos((d * Math.PI) / 180)).toFixed(1)},${(c - r * Math.sin((d * Math.PI) / 180)).toFixed(1)}`;
    });
    svg.appendChild(el("path", {d: pts.join(" ") + " Z", fill: "none", stroke: colour, "stroke-width": 1.5}));
    return svg;
  }

  /** Legend for a polar plot: <ul class="legend"> of line swatches. items: [{label, colour, dashed, href?}] */
  function legend(items) {
    const ul = document.createElement("ul");
    ul.className = "legend";
    items.forEach((it) => {
      const li = document.createElement("li"), sw = document.createElement("span");
      sw.className = "line" + (it.dashed ? " dashed" : "");
      sw.style.borderTopColor = it.colour;
      li.appendChild(sw);
      const t = it.href ? document.createElement("a") : document.createElement("span");
      if (it.href) t.href = it.href;
      t.textContent = it.label;
      li.appendChild(t);
      ul.appendChild(li);
    });
    return ul;
  }

  /**
   * The circuit graph: nodes (x, y in [0, 1]) coloured by family, edges red (excitatory) / blue
   * (inhibitory) with width ∝ |weight|. Wheel zooms about the pointer, drag pans; `controls`
   * gets +/−/reset buttons (keyboard access). linkFor(node) → href or null.
   */
  function graphView(data, controls, linkFor) {
    const W = 1100, H = 640;
    const svg = el("svg", {id: "graph", viewBox: `0 0 ${W} ${H}`, role: "img",
                           "aria-label": "circuit graph: family units connected by expanded weights"});
    const view = el("g", {id: "viewport"});
    svg.appendChild(view);
    const P = (n) => [60 + n.x * (W - 120), 50 + n.y * (H - 80)];
    const pos = {};
    data.nodes.forEach((n) => { pos[n.id] = P(n); });
    const wmax = Math.max(1e-12, ...data.edges.map((e) => Math.abs(e.weight)));
    const eg = el("g", {class: "edges"});
    data.edges.forEach((e) => {
      const a = pos[e.source], b = pos[e.target];
      if (!a || !b) return;
      const mx = (a[0] + b[0]) / 2;
      const p = el("path", {class: "edge", d: `M${a[0]},${a[1]} C${mx},${a[1]} ${mx},${b[1]} ${b[0]},${b[1]}`,
                            stroke: e.weight >= 0 ? "#c0392b" : "#2c6fbb",
                            "stroke-width": (0.3 + (3 * Math.abs(e.weight)) / wmax).toFixed(2)});
      p.appendChild(el("title", {}, `${e.source} → ${e.target}: ${fmt(e.weight)}`));
      eg.appendChild(p);
    });
    view.appendChild(eg);
    const layers = {};
    data.nodes.forEach((n) => { (layers[n.layer] = layers[n.layer] || []).push(pos[n.id][0]); });
    Object.entries(layers).forEach(([l, xs]) => {
      view.appendChild(el("text", {class: "layer-label", x: xs.reduce((s, v) => s + v, 0) / xs.length, y: 24,
                                   "text-anchor": "middle"}, l));
    });
    const ng = el("g", {class: "nodes"});
    data.nodes.forEach((n) => {
      const [x, y] = pos[n.id], href = linkFor(n);
      const a = href ? el("a", {href, "data-id": n.id}) : el("g", {"data-id": n.id});
      const c = el("circle", {class: "node", cx: x, cy: y, r: 5, fill: n.colour || "#ccc"});
      c.appendChild(el("title", {}, `${n.id}${n.family ? " — " + n.family : ""}`));
      a.appendChild(c);
      ng.appendChild(a);
    });
    view.appendChild(ng);
    const lg = el("g", {class: "node-labels"});  // after edges and nodes: labels on top, with a white halo
    data.nodes.forEach((n) => {
      const [x, y] = pos[n.id];
      lg.appendChild(el("text", {class: "node-label", x: x + 7, y: y + 3, "data-id": n.id}, String(n.index)));
    });
    view.appendChild(lg);
    // zoom and pan: the viewport transform is (tx, ty, k)
    let k = 1, tx = 0, ty = 0;
    const apply = () => view.setAttribute("transform", `translate(${tx.toFixed(2)},${ty.toFixed(2)}) scale(${k.toFixed(4)})`);
    const toSvg = (ev) => {
      const r = svg.getBoundingClientRect();
      return [((ev.clientX - r.left) * W) / r.width, ((ev.clientY - r.top) * H) / r.height];
    };
    const zoomAt = (f, sx, sy) => {
      const nk = Math.min(20, Math.max(0.3, k * f));
      tx = sx - ((sx - tx) * nk) / k; ty = sy - ((sy - ty) * nk) / k; k = nk; apply();
    };
    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const [sx, sy] = toSvg(ev);
      zoomAt(Math.exp(-ev.deltaY * 0.0015), sx, sy);
    }, {passive: false});
    let drag = null;
    svg.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 || ev.target.closest("a")) return;
      drag = {p: toSvg(ev), tx, ty};
      svg.classList.add("dragging");
      svg.setPointerCapture(ev.pointerId);
    });
    svg.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const [sx, sy] = toSvg(ev);
      tx = drag.tx + sx - drag.p[0]; ty = drag.ty + sy - drag.p[1]; apply();
    });
    const end = () => { drag = null; svg.classList.remove("dragging"); };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    const button = (label, title, fn) => {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = label; b.title = title; b.setAttribute("aria-label", title);
      b.addEventListener("click", fn);
      controls.appendChild(b);
    };
    button("+", "zoom in", () => zoomAt(1.4, W / 2, H / 2));
    button("−", "zoom out", () => zoomAt(1 / 1.4, W / 2, H / 2));
    button("reset", "reset zoom and pan", () => { k = 1; tx = 0; ty = 0; apply(); });
    svg.zoomState = () => ({k, tx, ty});
    return svg;
  }

  window.CircuitPlots = {el, palette, niceTicks, fmt, allZero, polarPlot, polarGlyph, legend, graphView};
})();

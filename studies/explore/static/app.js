/* Circuit explorer: the single-page app (hash routes, pages, API access, job progress).
   Vanilla JS, no framework, no network beyond this server. In a static export (window.CIRCUITS_STATIC)
   the JSON comes from data/*.js files written by studies/explore/export.py instead of /api. */
"use strict";
(function () {
  const P = window.CircuitPlots;
  const STATIC = !!window.CIRCUITS_STATIC;
  const DATA = (window.CIRCUITS_DATA = window.CIRCUITS_DATA || {});
  const INDEX = window.CIRCUITS_INDEX || [];
  const app = document.getElementById("app");
  let routeToken = 0;
  let metaCache = null;

  // ------------------------------------------------------------------ DOM helpers
  /** h("div", {class: "x", onclick: fn}, child, "text", …) */
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "class") e.className = v;
      else if (k === "style") e.setAttribute("style", v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false)
      e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    return e;
  }
  const fmt = P.fmt;
  const deg = (v) => (v === null || v === undefined ? "–" : `${(+v).toFixed(1)}°`);

  function errorBox(err, context) {
    const msg = err && err.message ? err.message : String(err);
    return h("div", {class: "error-box", role: "alert"}, context ? `${context}: ${msg}` : msg);
  }

  // ------------------------------------------------------------------ data access
  const staticName = (path) => path.replace(/^\/api\//, "").replace(/[^A-Za-z0-9_-]/g, "_");

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src; s.onload = resolve;
      s.onerror = () => reject(new Error(`could not load ${src} from this export`));
      document.head.appendChild(s);
    });
  }

  /** GET (or POST with `body`) a JSON endpoint; a non-2xx answer throws Error(server's error text, verbatim). */
  async function api(path, body) {
    if (STATIC) {
      if (!(path in DATA)) {
        if (!INDEX.includes(path)) throw new Error(`${path} is not part of this static export`);
        await loadScript(`data/${staticName(path)}.js`);
      }
      return DATA[path];
    }
    const init = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify(body)};
    let r;
    try { r = await fetch(path, init); } catch (e) { throw new Error(`the server did not answer (${e.message})`); }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) throw new Error(data && data.error ? data.error : `${r.status} ${r.statusText} (${path})`);
    if (data === null) throw new Error(`${path}: the server's answer is not JSON`);
    return data;
  }
  /** A URL from the API (/files/…) as the page must load it (relative in a static export). */
  const fileUrl = (u) => (u && STATIC && u.startsWith("/") ? u.slice(1) : u);
  const available = (path) => !STATIC || path in DATA || INDEX.includes(path);

  async function meta() {
    if (!metaCache) metaCache = await api("/api/meta");
    return metaCache;
  }
  function familyInfo(m, key) { return m.families.find((f) => f.key === key) || {key, colour: "#999", name: key}; }

  function unitLink(id, text) {
    const path = `/api/unit/${id}`;
    if (!available(path)) return h("span", {title: "not part of this static export"}, text || id);
    return h("a", {href: `#/unit/${id}`}, text || id);
  }
  function familyLink(m, key) {
    const f = familyInfo(m, key), [layer, name] = key.split("/");
    const sw = h("span", {class: "swatch", style: `background:${f.colour}`});
    const path = `/api/family/${layer}/${name}`;
    if (!available(path)) return h("span", {}, sw, key);
    return h("a", {href: `#/family/${key}`}, sw, key);
  }

  // ------------------------------------------------------------------ jobs
  /** Poll /api/jobs/{id}, showing 'computing… NN%' in `box`; resolves with the job's result, throws its error. */
  async function pollJob(id, box, token) {
    const bar = h("progress", {max: 1, value: 0, "aria-label": "progress"});
    const txt = h("span", {}, "computing… 0%");
    box.replaceChildren(h("div", {class: "progress", role: "status"}, bar, txt));
    for (;;) {
      if (token !== undefined && token !== routeToken) throw new Error("cancelled");
      const j = await api(`/api/jobs/${id}`);
      bar.value = j.progress || 0;
      txt.textContent = `computing… ${Math.round(100 * (j.progress || 0))}%` + (j.message ? ` — ${j.message}` : "");
      if (j.state === "done") { box.replaceChildren(); return j.result; }
      if (j.state === "error") throw new Error(j.error || "the computation failed");
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  // ------------------------------------------------------------------ pages
  async function pageHome() {
    const m = await meta();
    const rows = m.layers.map((l) => h("tr", {},
      h("td", {class: "l"}, available(`/api/layer/${l.layer}`) ? h("a", {href: `#/layer/${l.layer}`}, l.layer)
        : h("span", {title: "not part of this static export"}, l.layer)), h("td", {class: "l"}, l.short),
      h("td", {}, l.n_units),
      h("td", {class: "l chips"}, m.families.filter((f) => f.layer === l.layer).map((f) => familyLink(m, f.key)))));
    return [
      h("h1", {}, `InceptionV1 circuits — ${m.model}`),
      h("p", {class: "note"}, `Weights digest ${String(m.digest || "").slice(0, 16)}…; `,
        m.images ? "dataset examples from the configured image folder." : "no image folder: no dataset examples."),
      h("p", {}, "Browse a layer's units, open a unit's page (feature visualization, dataset examples, radial tuning, ",
        "expanded-weight neighbours), a family, or the ", h("a", {href: "#/graph"}, "circuit graph"),
        STATIC ? "." : [" — or change the circuit in the ", h("a", {href: "#/edit"}, "edit panel"), "."]),
      STATIC ? h("p", {class: "warning"}, "Static export: only the pages of ",
        m.layers.filter((l) => available(`/api/layer/${l.layer}`)).map((l) => l.layer).join(", "),
        " are included; the edit panel needs the server (circuits explore).") : null,
      h("h2", {}, "Start here"),
      h("ul", {id: "start"},
        h("li", {}, available("/api/unit/3b:379") ? h("a", {href: "#/unit/3b:379"}, "unit 3b:379") : "unit 3b:379",
          " — a curve detector of mixed3b (Curve Detectors, Distill 2020)"),
        h("li", {}, available("/api/family/mixed3b/curves") ? h("a", {href: "#/family/mixed3b/curves"}, "mixed3b/curves")
          : "mixed3b/curves", " — the family, its radial tuning overlay and weights"),
        STATIC ? null : h("li", {}, h("a", {href: "#/edit?target=mixed3b/curves"}, "ablate the mixed3b curve family"),
          " — and see tuning and accuracy change")),
      h("h2", {}, "Layers"),
      h("table", {class: "data"}, h("thead", {}, h("tr", {}, h("th", {class: "l"}, "layer"), h("th", {class: "l"}, "short"),
        h("th", {}, "units"), h("th", {class: "l"}, "families"))), h("tbody", {}, rows)),
    ];
  }

  function featurevisButton(layer, ids, what, box, onDone) {
    return h("button", {type: "button", class: "edit-only", onclick: async (ev) => {
      ev.target.disabled = true;
      const token = routeToken;
      try {
        const {job} = await api("/api/build", {layer, what: [what], units: ids});
        await pollJob(job, box, token);
        onDone();
      } catch (e) {
        if (e.message !== "cancelled") box.replaceChildren(errorBox(e, `computing ${what}`));
        ev.target.disabled = false;
      }
    }}, ids ? `compute ${what === "featurevis" ? "feature visualization" : "dataset examples"}`
            : `compute the missing feature visualizations of ${layer} (slow on a CPU; circuits explore --build does it offline)`);
  }

  async function pageLayer(layer) {
    const [m, d] = await Promise.all([meta(), api(`/api/layer/${layer}`)]);
    const fams = m.families.filter((f) => f.layer === d.layer);
    const compact = 2 * d.units.filter((u) => u.featurevis).length < d.units.length;  // mostly no thumbnails yet
    const cells = d.units.map((u) => {
      const img = u.featurevis ? h("img", {src: fileUrl(u.featurevis), alt: `feature visualization of ${u.id}`,
                                           loading: STATIC ? null : "lazy"})
                               : compact ? null : h("div", {class: "ph", "aria-hidden": "true"});
      const fam = u.families.length ? ` (${u.families.join(", ")})` : "";
      const label = `${u.id}${fam}`;
      const tint = u.colour && /^#[0-9a-f]{6}$/i.test(u.colour) ? `;background:${u.colour}22` : "";
      const attrs = {class: "cell", style: `border-top-color:${u.colour || "#ddd"}${tint}`, title: label, "aria-label": label};
      return available(`/api/unit/${u.id}`) ? h("a", {href: `#/unit/${u.id}`, ...attrs}, img, h("span", {class: "lbl"}, u.index))
                                            : h("div", attrs, img, h("span", {class: "lbl"}, u.index));
    });
    const missing = d.units.filter((u) => !u.featurevis).length;
    const box = h("div", {});
    return [
      h("h1", {}, `Layer ${d.layer}`),
      h("p", {class: "note"}, `${d.units.length} units, numbered as in Lucid; the bar above each unit is its family's `,
        `colour (key below); thumbnails are feature visualizations where computed (${d.units.length - missing} of ${d.units.length}).`,
        STATIC ? ` Units in grey have no page in this static export (${d.units.filter((u) => available(`/api/unit/${u.id}`)).length} have).` : ""),
      h("h2", {}, "Colour key"),
      h("ul", {class: "key"}, fams.map((f) => h("li", {}, familyLink(m, f.key), ` — ${f.units.length} units`)),
        h("li", {}, h("span", {class: "swatch", style: "background:#ddd"}), "no family")),
      missing && !STATIC ? h("p", {}, featurevisButton(d.layer, null, "featurevis", box, route), " ", box) : null,
      h("h2", {}, "Units"),
      h("div", {class: compact ? "grid compact" : "grid", id: "unit-grid"}, cells),
    ];
  }

  function assetFigure(title, asset, render, build) {
    const fig = h("section", {class: "asset-section"}, h("h2", {}, title));
    const box = h("div", {});
    if (asset && asset.state === "ready") fig.appendChild(render(asset));
    else if (asset && asset.state === "running" && !STATIC) {
      fig.appendChild(box);
      if (asset.job) pollJob(asset.job, box, routeToken).then(route, (e) => {
        if (e.message !== "cancelled") box.replaceChildren(errorBox(e, title));
      });
      else box.textContent = "computing…";
    } else if (asset && asset.state === "no-images") {
      fig.appendChild(h("p", {class: "note"}, "No image folder configured (start with --images DIR)."));
    } else {
      fig.appendChild(h("p", {class: "note"}, "Not computed yet."));
      if (!STATIC && build) fig.appendChild(h("p", {}, build(box), " ", box));
    }
    return fig;
  }

  function radialSection(u) {
    const r = u.radial;
    const sec = h("section", {id: "radial"}, h("h2", {}, "Radial tuning"));
    if (!r || !r.orientation_deg || !r.orientation_deg.length) {
      sec.appendChild(h("p", {class: "note"}, "No radial tuning for this unit."));
      return sec;
    }
    const silent = P.allZero(r.response);
    sec.appendChild(h("figure", {}, P.polarPlot({orientation: r.orientation_deg, units: r.units, size: 340,
      series: [{id: u.id, response: r.response, colour: "#2c6fbb"}], pref: u.preferred_orientation_deg,
      title: `radial tuning of ${u.id}`}),
      h("figcaption", {id: "radial-caption"}, silent
        ? `${u.id} does not respond to any of the curve stimuli (its response is 0 at every orientation, in ${r.units}), `
          + "so it has no radial scale and no preferred orientation."
        : [`Response of ${u.id} to curve stimuli by orientation (${r.units}); maximum ${fmt(Math.max(...r.response))}; `,
           u.preferred_orientation_deg === null || u.preferred_orientation_deg === undefined
             ? "no preferred orientation." : `dashed red: preferred orientation ${deg(u.preferred_orientation_deg)}.`])));
    sec.appendChild(h("details", {}, h("summary", {}, "values"), h("table", {class: "data", id: "radial-values"},
      h("thead", {}, h("tr", {}, h("th", {}, "orientation (°)"), h("th", {}, `response (${r.units})`))),
      h("tbody", {}, r.orientation_deg.map((o, i) => h("tr", {}, h("td", {}, fmt(o)), h("td", {}, fmt(r.response[i]))))))));
    return sec;
  }

  function neighbourTable(title, rows) {
    const l2 = rows.some((n) => n.l2 !== undefined);
    return h("section", {}, h("h3", {}, title), rows.length ? h("table", {class: "data neighbours"},
      h("thead", {}, h("tr", {}, h("th", {class: "l"}, "kernel"), h("th", {class: "l"}, "unit"),
        l2 ? h("th", {}, "L2 norm") : null, h("th", {}, l2 ? "sum" : "weight"))),
      h("tbody", {}, rows.map((n) => h("tr", {},
        h("td", {class: "l"}, n.kernel ? h("img", {class: "kernel", src: fileUrl(n.kernel), alt: `kernel ${n.id}`}) : "–"),
        h("td", {class: "l"}, unitLink(n.id)), l2 ? h("td", {}, fmt(n.l2)) : null,
        h("td", {class: n.weight >= 0 ? "pos" : "neg"}, fmt(n.weight))))))
      : h("p", {class: "note"}, "none"));
  }

  /** A range band's label as what it is: a quantile band of the unit's pre-ReLU activation over every
   *  (image, position) of the folder (studies.measure.activation_stats.DEFAULT_RANGES). Values in any band
   *  may be negative (most positions are), so the label names percentiles, not signs. */
  function bandLabel(label) {
    const s = String(label || "");
    let m = s.match(/\(top (\d+(?:\.\d+)?) ?%\)/);
    if (m) return `top ${m[1]} % (${100 - +m[1]}th–100th percentile)`;
    m = s.match(/\(bottom (\d+(?:\.\d+)?) ?%\)/);
    if (m) return `bottom ${m[1]} % (0–${m[1]}${+m[1] === 1 ? "st" : "th"} percentile)`;
    m = s.match(/\((\d+(?:\.\d+)?)\s*[-–]\s*(\d+(?:\.\d+)?) ?%\)/);
    if (m) return `${m[1]}th–${m[2]}th percentile`;
    return s;
  }

  /** Range examples grouped by their label (activation band), in the server's order. */
  function rangeGroups(list, images) {
    const groups = [];
    list.forEach((x) => {
      const g = groups.find((e) => e.label === (x.label || ""));
      if (g) g.items.push(x); else groups.push({label: x.label || "", items: [x]});
    });
    const span = (items) => {
      const a = items.map((x) => x.activation).filter(Number.isFinite);
      return a.length ? ` — activations ${fmt(Math.min(...a))} to ${fmt(Math.max(...a))}` : "";
    };
    return h("div", {class: "range-groups"}, groups.map((g) => h("div", {class: "range-group"},
      h("h4", {}, g.label ? bandLabel(g.label) : "examples", h("span", {class: "note"}, span(g.items))), images(g.items))));
  }

  /** In a static export, "mixed3b:379" → "3b:379" (the export's keys); the server accepts both. */
  async function canonicalUid(uid) {
    if (!STATIC) return uid;
    const m = await meta(), [l, i] = uid.split(":"), L = m.layers.find((x) => x.layer === l || x.short === l);
    return L && /^\d+$/.test(i || "") ? `${L.short}:${+i}` : uid;
  }

  async function pageUnit(uid) {
    const [m, u] = await Promise.all([meta(), canonicalUid(uid).then((id) => api(`/api/unit/${id}`))]);
    const images = (list) => h("div", {class: "examples"}, list.map((x) => h("figure", {},
      h("img", {src: fileUrl(x.image), alt: `dataset example, activation ${fmt(x.activation)}`}),
      h("figcaption", {}, fmt(x.activation)))));
    return [
      h("h1", {}, `Unit ${u.id}`, h("span", {class: "note"}, ` (${u.layer} channel ${u.index})`)),
      h("p", {class: "chips"}, "Families: ", u.families.length ? u.families.map((k) => familyLink(m, k)) : "none",
        STATIC ? null : [" · ", h("a", {href: `#/edit?target=${u.id}`, class: "edit-only"}, "edit this unit…")]),
      h("p", {}, "Preferred orientation: ", h("strong", {id: "pref"}, deg(u.preferred_orientation_deg)),
        u.preferred_orientation_deg === null || u.preferred_orientation_deg === undefined
          ? h("span", {class: "note", id: "pref-note"}, " (none: the unit does not respond to the curve stimuli, ",
              "so no orientation is preferred; see the radial tuning below)") : null),
      h("div", {class: "cols"},
        assetFigure("Feature visualization", u.featurevis, (a) => h("figure", {},
          h("img", {class: "asset", id: "featurevis", src: fileUrl(a.image), alt: `feature visualization of ${u.id}`}),
          h("figcaption", {}, "Optimised input that maximises the unit (feature visualization).")),
        (box) => featurevisButton(u.layer, [u.id], "featurevis", box, route)),
        radialSection(u),
        h("section", {}, h("h2", {}, "Joint map"), u.joint ? h("figure", {},
          h("img", {class: "asset", id: "joint", src: fileUrl(u.joint), alt: `orientation × curvature response of ${u.id}`}),
          h("figcaption", {id: "joint-caption"}, "Response to curve stimuli by orientation (x, °) and curve radius ",
            "(y, px, log scale: small radius = strong curvature); colour: σ of the unit's pre-ReLU activation over the ",
            "reference images (or the pre-ReLU response without an image folder), red above 0, blue below."))
          : h("p", {class: "note"}, "No joint map for this unit."))),
      assetFigure("Dataset examples", u.dataset, (a) => h("div", {id: "dataset"},
        h("p", {class: "note"}, `Captions: the activation of ${u.id} on the image.`),
        h("h3", {}, "Top activating images"), images(a.top || []),
        h("h3", {}, "Across the activation range"),
        h("p", {class: "note", id: "range-note"}, `Bands are percentiles of ${u.id}'s pre-ReLU activation over every image `,
          "and position of the folder (Curve Detectors, figs. 6–7, in quantiles); most positions are negative, so even ",
          "a high band can hold negative values."),
        rangeGroups(a.range || [], images)),
      (box) => featurevisButton(u.layer, [u.id], "dataset", box, route)),
      h("h2", {}, "Expanded-weight neighbours"),
      h("p", {class: "note"}, "Expanded weights: the effective spatial kernel between two units through the block's ",
        "branches (Circuits thread, “Visualizing Weights”); strongest by L2 norm; kernel colours red = excitatory, ",
        "blue = inhibitory; sum = the kernel's signed total."),
      h("div", {class: "cols"}, neighbourTable("Incoming (strongest 8)", u.incoming || []),
        neighbourTable("Outgoing (strongest 8)", u.outgoing || [])),
    ];
  }

  async function pageFamily(layer, name) {
    const [m, f] = await Promise.all([meta(), api(`/api/family/${layer}/${name}`)]);
    const info = familyInfo(m, f.key), cols = P.palette(f.radial.series.length);
    const colourOf = {};
    f.radial.series.forEach((s, i) => { colourOf[s.id] = cols[i]; });
    const prefOf = Object.fromEntries(f.units.map((u) => [u.id, u.preferred_orientation_deg]));
    return [
      h("h1", {}, h("span", {class: "swatch", style: `background:${info.colour}`}), `Family ${f.key}`),
      h("p", {}, `${f.units.length} units of ${f.layer}, ordered by preferred orientation; each cell shows the unit's `,
        `feature visualization, or (not computed yet) its radial tuning in the colour of the plot below.`,
        STATIC ? null : [" ", h("a", {href: `#/edit?target=${f.key}`, class: "edit-only"}, "edit this family…")]),
      h("h2", {}, "Units"),
      h("div", {class: "grid big", id: "family-grid"}, f.units.map((u) => {
        const series = f.radial.series.find((x) => x.id === u.id);
        const img = u.featurevis ? h("img", {src: fileUrl(u.featurevis), alt: `feature visualization of ${u.id}`})
          : series ? P.polarGlyph(f.radial.orientation_deg, series.response, colourOf[u.id], 96)
            : h("div", {class: "ph", "aria-hidden": "true"});
        const attrs = {class: "cell", style: `border-top-color:${info.colour}`};
        const kids = [img, h("span", {class: "lbl"}, `${u.id} · ${deg(u.preferred_orientation_deg)}`)];
        return available(`/api/unit/${u.id}`) ? h("a", {href: `#/unit/${u.id}`, ...attrs}, kids) : h("div", attrs, kids);
      })),
      h("h2", {}, "Radial tuning"),
      h("figure", {id: "family-radial"}, P.polarPlot({orientation: f.radial.orientation_deg, size: 440,
        units: f.radial.units || "activation", title: `radial tuning of ${f.key}`,
        series: f.radial.series.map((s) => ({id: s.id, response: s.response, colour: colourOf[s.id]}))}),
        P.legend(f.radial.series.map((s) => ({label: `${s.id} (${deg(prefOf[s.id])})`, colour: colourOf[s.id],
                                             href: available(`/api/unit/${s.id}`) ? `#/unit/${s.id}` : null}))),
        h("figcaption", {}, "Each unit's response by stimulus orientation; legend: unit (preferred orientation).")),
      h("h2", {}, "Weights to and from neighbouring families"),
      (f.diagrams || []).length ? h("div", {class: "diagrams", id: "family-diagrams"}, f.diagrams.map((d) => h("figure", {},
        h("img", {class: "asset", src: fileUrl(d.image), alt: `expanded weights ${d.from} → ${d.to}`}),
        h("figcaption", {}, `Expanded weights ${d.from} → ${d.to}: rows are ${d.to} units, columns ${d.from} units `,
          "(both by preferred orientation); each cell is the spatial kernel from the column unit to the row unit.")))) :
        h("p", {class: "note"}, "No diagrams."),
    ];
  }

  async function pageGraph() {
    const [m, g] = await Promise.all([meta(), api("/api/graph")]);
    const controls = h("div", {class: "toolbar", role: "group", "aria-label": "zoom"}, h("span", {class: "note"},
      "Wheel: zoom · drag: pan · Tab: nodes ·"));
    const svg = P.graphView(g, controls, (n) => (available(`/api/unit/${n.id}`) ? `#/unit/${n.id}` : null));
    const fams = [...new Set(g.nodes.map((n) => n.family).filter(Boolean))];
    return [
      h("h1", {}, "Circuit graph"),
      h("p", {class: "note"}, `${g.nodes.length} family units and ${g.edges.length} expanded-weight connections, `,
        `conv2d2 → mixed3a → mixed3b → mixed4a. Node colour: family; edge colour: red excitatory, blue inhibitory; `,
        `width ∝ |weight|. Click a node for its unit page.`),
      controls,
      h("div", {class: "graph-wrap"}, svg),
      h("h2", {}, "Colour key"),
      h("ul", {class: "key", id: "graph-key"}, fams.map((k) => h("li", {}, familyLink(m, k))),
        h("li", {}, h("span", {class: "line", style: "display:inline-block;width:18px;border-top:2px solid #c0392b;vertical-align:middle"}), " excitatory"),
        h("li", {}, h("span", {class: "line", style: "display:inline-block;width:18px;border-top:2px solid #2c6fbb;vertical-align:middle"}), " inhibitory")),
    ];
  }

  // ------------------------------------------------------------------ search
  function staticSearch(m, q) {
    const s = q.trim().toLowerCase(), out = [];
    const mu = s.match(/^([a-z0-9_]+):(\d+)$/);
    if (mu) {
      const l = m.layers.find((x) => x.layer === mu[1] || x.short === mu[1]);
      if (l) { const id = `${l.short}:${+mu[2]}`; out.push({kind: "unit", id, label: id, href: `#/unit/${id}`}); }
    }
    m.families.filter((f) => f.key.toLowerCase().includes(s)).forEach((f) =>
      out.push({kind: "family", id: f.key, label: f.key, href: `#/family/${f.key}`}));
    m.layers.filter((l) => l.layer === s || l.short === s).forEach((l) =>
      out.push({kind: "layer", id: l.layer, label: l.layer, href: `#/layer/${l.layer}`}));
    return {results: out};
  }

  async function pageSearch(q) {
    const m = await meta();
    const res = STATIC ? staticSearch(m, q) : await api(`/api/search?q=${encodeURIComponent(q)}`);
    const hits = res.results.filter((r) => !STATIC || r.kind === "layer" ||
      available(r.kind === "unit" ? `/api/unit/${r.id}` : `/api/family/${r.id}`));
    if (hits.length === 1) { location.replace(hits[0].href); return []; }
    return [h("h1", {}, `Search: ${q}`), hits.length ? h("ul", {id: "search-results"}, hits.map((r) =>
      h("li", {}, h("a", {href: r.href}, r.label), h("span", {class: "note"}, ` (${r.kind})`))))
      : h("p", {}, "Nothing found. Try a unit id such as 3b:379 or mixed3b:379, or a family name such as curves.")];
  }

  // ------------------------------------------------------------------ router
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return {parts, params: new URLSearchParams(query || "")};
  }

  async function route() {
    const token = ++routeToken;
    const {parts, params} = parseHash();
    let content, title = "Circuit explorer";
    const slow = setTimeout(() => {  // a unit's first visit measures its tuning (seconds): say so
      if (token !== routeToken) return;
      app.setAttribute("aria-busy", "true");
      app.replaceChildren(h("p", {class: "progress", role: "status"}, h("progress", {"aria-label": "loading"}),
        ` loading #/${parts.join("/")}… (the first visit of a unit measures its tuning; later visits come from the cache)`));
    }, 250);
    try {
      const [kind, ...rest] = parts;
      if (!kind) content = await pageHome();
      else if (kind === "layer" && rest.length === 1) { content = await pageLayer(rest[0]); title = rest[0]; }
      else if (kind === "unit" && rest.length === 1) { content = await pageUnit(rest[0]); title = rest[0]; }
      else if (kind === "family" && rest.length === 2) { content = await pageFamily(rest[0], rest[1]); title = rest.join("/"); }
      else if (kind === "graph") { content = await pageGraph(); title = "circuit graph"; }
      else if (kind === "search") { content = await pageSearch(params.get("q") || ""); title = "search"; }
      else if (kind === "edit" && !STATIC) { content = await window.CircuitEdit.page({api, h, pollJob, meta, errorBox,
        fileUrl, params, token: () => routeToken}); title = "edit panel"; }
      else throw new Error(`no page at #/${parts.join("/")} — try #/ (layers), #/layer/mixed3b, #/unit/3b:379, ` +
                           `#/family/mixed3b/curves, #/graph${STATIC ? "" : " or #/edit"}`);
    } catch (e) {
      content = [h("h1", {}, "Error"), errorBox(e), h("p", {}, h("a", {href: "#/"}, "back to the layers"))];
    }
    clearTimeout(slow);
    if (token !== routeToken) return;
    app.removeAttribute("aria-busy");
    document.title = title === "Circuit explorer" ? title : `${title} — Circuit explorer`;
    app.replaceChildren(...[content].flat().filter(Boolean));
    app.setAttribute("data-route", parts.join("/"));
    app.setAttribute("data-ready", String(token));
  }

  window.CircuitApp = {bandLabel};  // for readers and tests

  document.getElementById("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = document.getElementById("search-q").value.trim();
    if (q) location.hash = `#/search?q=${encodeURIComponent(q)}`;
  });
  if (STATIC) document.body.classList.add("static-mode");
  window.addEventListener("hashchange", route);
  window.addEventListener("error", (ev) => { app.prepend(errorBox(ev.message || "script error")); });
  window.addEventListener("unhandledrejection", (ev) => {
    if (ev.reason && ev.reason.message === "cancelled") return;
    app.prepend(errorBox(ev.reason || "error"));
  });
  meta().then((m) => {
    document.getElementById("model-info").textContent = `${m.model}${STATIC ? " · static export" : ""}`;
  }, () => {});
  route();
})();

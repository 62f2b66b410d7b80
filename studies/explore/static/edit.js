/* Circuit explorer: the edit panel. Composes an EditPlan (the document `circuits edit` reads:
   {schema_version: 1, name, edits: [{type: "Ablate", units, mode}, …]}, see edits/plan.py), shows it as
   YAML or JSON, validates it on the server (errors verbatim, as the CLI prints them), applies it as a
   job and shows the unit's or family's radial tuning, top-1/top-5 and feature visualization before/after. */
"use strict";
(function () {
  const P = window.CircuitPlots;
  const SIGNS = ["all", "positive", "negative"];
  const VIA = ["", "1x1", "3x3", "5x5", "pool_reduce"];
  /** Measured: top-1/top-5 of the edited model on 100 sample images (BVLC, 2 CPU cores), README "Explorer". */
  const N_IMAGES_SECONDS = "10–17";
  /** Edit kinds the builder offers: field name → [label, kind, choices|placeholder]. Names as in edits/*.py. */
  const KINDS = {
    Ablate: {help: "make units constant (zero or mean) or uninformative (resample)",
      fields: {units: ["units or family", "text", "mixed3b/curves or 3b:379,3b:385"],
               mode: ["mode", "select", ["zero", "mean", "resample"]]}},
    PrunePathway: {help: "remove the connection from src units to dst units of the next layer",
      fields: {src: ["src units (earlier layer)", "text", "mixed3a/curves"], dst: ["dst units", "text", "mixed3b/curves"],
               sign: ["sign", "select", SIGNS], via: ["via branch (optional)", "select", VIA]}},
    Linearize: {help: "compute units of a 3x3/5x5 branch without the bottleneck's ReLU",
      fields: {branch: ["branch", "text", "mixed3b_5x5"], units: ["units", "text", "mixed3b:379"]}},
    Scale: {help: "multiply the pathway from src units to dst units by a factor",
      fields: {src: ["src units (earlier layer)", "text", "mixed3a/curves"], dst: ["dst units", "text", "mixed3b/curves"],
               factor: ["factor", "number", "0.5"], sign: ["sign", "select", SIGNS], via: ["via branch (optional)", "select", VIA]}},
  };

  // ---------------------------------------------------------------- YAML (the subset a plan needs)
  const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);
  function yScalar(v) {
    if (v === null) return "null";
    if (typeof v !== "string") return String(v);
    const plain = /^[A-Za-z_][A-Za-z0-9_./-]*$/.test(v) && !/^(true|false|null|yes|no|on|off|y|n)$/i.test(v);
    return plain ? v : JSON.stringify(v);
  }
  function yLines(v, ind) {
    if (Array.isArray(v)) {
      if (v.every(isScalar)) return [`${ind}[${v.map(yScalar).join(", ")}]`];
      return v.flatMap((item) => {
        if (isScalar(item)) return [`${ind}- ${yScalar(item)}`];
        const sub = yLines(item, ind + "  ");
        sub[0] = `${ind}- ${sub[0].slice(ind.length + 2)}`;
        return sub;
      });
    }
    return Object.entries(v).flatMap(([k, val]) => {
      if (isScalar(val)) return [`${ind}${k}: ${yScalar(val)}`];
      if (Array.isArray(val) && val.every(isScalar)) return [`${ind}${k}: ${yLines(val, "")[0]}`];
      return [`${ind}${k}:`, ...yLines(val, ind + "  ")];
    });
  }
  const toYaml = (plan) => yLines(plan, "").join("\n") + "\n";

  /** "a, b" → ["a", "b"]; "a" → "a"; numbers for number fields; "" → undefined. */
  function fieldValue(kind, raw) {
    const s = String(raw).trim();
    if (s === "") return undefined;
    if (kind === "number") return Number(s);
    if (kind === "text" && s.includes(",")) return s.split(",").map((x) => x.trim()).filter(Boolean);
    return s;
  }

  function page(ctx) {
    const {h, api, pollJob, errorBox, params} = ctx;
    const target0 = params.get("target") || "mixed3b/curves";
    const state = {plan: {schema_version: 1, name: "", edits: []}, dirty: false};
    const status = h("div", {id: "plan-status", "aria-live": "polite"});
    const text = h("textarea", {id: "plan-text", spellcheck: "false", "aria-describedby": "plan-help"});
    const fmtSel = h("select", {id: "plan-format"}, h("option", {value: "yaml"}, "YAML"), h("option", {value: "json"}, "JSON"));
    const editsList = h("div", {id: "edits-list"});
    const name = h("input", {type: "text", id: "plan-name", value: "", placeholder: "e.g. no-curves"});
    const showText = () => {
      const plan = {...state.plan, name: name.value.trim() || state.plan.name || ""};
      text.value = fmtSel.value === "json" ? JSON.stringify(plan, null, 2) + "\n" : toYaml(plan);
      state.dirty = false;
      renderList(plan);
    };
    /** The list of edits, rebuilt from `plan` (the builder's, or the text's once parsed/validated). */
    function renderList(plan) {
      const edits = (plan && Array.isArray(plan.edits)) ? plan.edits : [];
      editsList.replaceChildren(edits.length ? h("ol", {class: "edits"}, edits.map((e, i) => h("li", {},
        h("code", {}, JSON.stringify(e)), " ",
        h("button", {type: "button", "aria-label": `remove edit ${i + 1}`, onclick: () => {
          if (!syncFromText()) return;
          state.plan.edits.splice(i, 1); showText(); }}, "remove"))))
        : h("p", {class: "note", id: "no-edits"}, "No edits in the plan yet: fill in the fields above and press ",
            "Add edit (Apply adds the builder's edit for you when the plan is empty)."));
    }
    /** The builder's plan, re-read from the text when it was edited by hand (JSON only; YAML: validate first). */
    const syncFromText = () => {
      if (!state.dirty) return true;
      try { state.plan = JSON.parse(text.value); state.dirty = false; return true; } catch (e) {
        status.replaceChildren(errorBox("The plan text was edited by hand; press Validate first (the builder then " +
                                        "continues from the validated plan)."));
        return false;
      }
    };
    text.addEventListener("input", () => {  // keep the list in step with the text: JSON at once, YAML on Validate
      state.dirty = true;
      try {
        const plan = JSON.parse(text.value);
        if (plan && typeof plan === "object" && Array.isArray(plan.edits)) { state.plan = plan; state.dirty = false;
          renderList(plan); return; }
      } catch (e) { /* YAML or unfinished JSON */ }
      editsList.replaceChildren(h("p", {class: "note", id: "list-stale"},
        "The plan text was edited by hand: Validate (or Apply) reads it and updates this list."));
    });
    name.addEventListener("input", () => { if (syncFromText()) showText(); });
    fmtSel.addEventListener("change", () => { if (syncFromText()) showText(); });

    // builder
    const typeSel = h("select", {id: "edit-type"}, Object.keys(KINDS).map((k) => h("option", {value: k}, k)));
    const fieldsBox = h("div", {class: "form-row", id: "edit-fields"});
    const typeHelp = h("span", {class: "note"});
    const inputs = {};
    const renderFields = () => {
      const kind = KINDS[typeSel.value];
      typeHelp.textContent = kind.help;
      fieldsBox.replaceChildren();
      for (const k of Object.keys(inputs)) delete inputs[k];
      Object.entries(kind.fields).forEach(([f, [label, type, extra]]) => {
        const id = `field-${f}`;
        const input = type === "select" ? h("select", {id}, extra.map((c) => h("option", {value: c}, c || "(none)")))
          : h("input", {id, type: type === "number" ? "number" : "text", step: type === "number" ? "any" : null,
                        placeholder: extra});
        if (f === "units" || f === "dst") input.value = target0;
        if (f === "factor") input.value = "0.5";
        inputs[f] = [input, type];
        fieldsBox.appendChild(h("label", {for: id}, label, input));
      });
    };
    typeSel.addEventListener("change", renderFields);
    renderFields();
    /** The edit the builder's fields describe, or null when a text field is empty. */
    const builderEdit = () => {
      const e = {type: typeSel.value};
      for (const [f, [input, type]] of Object.entries(inputs)) {
        const v = fieldValue(type, input.value);
        if (v !== undefined) e[f] = v;
        else if (type === "text" && !(KINDS[typeSel.value].fields[f][0].includes("optional"))) return null;
      }
      return e;
    };
    const addEdit = () => {
      if (!syncFromText()) return false;
      const e = builderEdit();
      if (!e) {
        status.replaceChildren(errorBox("Fill in every field of the edit first."));
        return false;
      }
      state.plan.edits = [...(state.plan.edits || []), e];
      status.replaceChildren();
      showText();
      return true;
    };

    // apply settings
    const target = h("input", {type: "text", id: "edit-target", value: target0});
    const nImages = h("input", {type: "number", id: "edit-n-images", value: "100", min: "0", max: "1000", step: "1"});
    const applyStatus = h("div", {class: "apply-status", id: "apply-status", "aria-live": "polite"});
    const fv = h("input", {type: "checkbox", id: "edit-featurevis"});
    const result = h("div", {id: "edit-result"});
    const validateBtn = h("button", {type: "button", id: "validate-btn"}, "Validate");
    const applyBtn = h("button", {type: "button", id: "apply-btn", class: "primary"}, "Apply");
    const validate = async () => {
      status.replaceChildren(h("p", {class: "note"}, "validating…"));
      try {
        const r = await api("/api/plan/validate", {text: text.value});
        state.plan = r.plan; state.dirty = false;
        if (r.plan && typeof r.plan.name === "string") name.value = r.plan.name;
        renderList(r.plan);
        status.replaceChildren(h("div", {class: "ok-box", id: "plan-ok"}, `valid: ${r.summary || "ok"}`));
        return true;
      } catch (e) {
        status.replaceChildren(h("div", {class: "error-box", id: "plan-error", role: "alert"}, e.message));
        return false;
      }
    };
    validateBtn.addEventListener("click", validate);
    applyBtn.addEventListener("click", async () => {
      applyBtn.disabled = true;
      applyStatus.replaceChildren();
      const token = ctx.token();
      try {
        if (!state.dirty && !(state.plan.edits || []).length) {  // empty plan: take the builder's edit
          const e = builderEdit();
          if (!e) {
            applyStatus.replaceChildren(errorBox("The plan has no edits: fill in the edit in 1. Compose and press " +
                                                 "Add edit, or write a plan in 2. Plan document."));
            return;
          }
          addEdit();
          applyStatus.replaceChildren(h("p", {class: "note", id: "auto-added"},
            `The plan had no edits: added the builder's edit (${JSON.stringify(e)}).`));
        }
        if (!(await validate())) {
          applyStatus.appendChild(errorBox(`The plan is not valid (details under 2. Plan document): ${
            status.textContent}`));
          return;
        }
        const {job} = await api("/api/edit", {text: text.value, target: target.value.trim(),
          n_images: Number(nImages.value), featurevis: fv.checked});
        const t0 = performance.now();
        const res = await pollJob(job, result, token);
        result.replaceChildren(...renderResult(ctx, res, target.value.trim(), state.plan).filter(Boolean));
        result.setAttribute("data-seconds", ((performance.now() - t0) / 1000).toFixed(1));
        result.setAttribute("data-job", job);
      } catch (e) {
        if (e.message !== "cancelled") result.replaceChildren(errorBox(e, "apply"));
      } finally {
        applyBtn.disabled = false;
      }
    });
    showText();

    return [
      h("h1", {}, "Edit panel"),
      h("p", {}, "Compose an edit plan, validate it (the same checks and messages as ", h("code", {}, "circuits edit"),
        "), apply it and compare the target's radial tuning, ImageNet top-1/top-5 and feature visualization ",
        "before and after. The original model is never changed."),
      h("section", {class: "panel", "aria-labelledby": "h-build"}, h("h2", {id: "h-build"}, "1. Compose"),
        h("div", {class: "form-row"}, h("label", {for: "plan-name"}, "plan name", name),
          h("label", {for: "edit-type"}, "edit", typeSel), typeHelp),
        fieldsBox,
        h("div", {class: "form-row"}, h("button", {type: "button", id: "add-edit", onclick: addEdit}, "Add edit")),
        h("h3", {}, "Edits in the plan"), editsList),
      h("section", {class: "panel", "aria-labelledby": "h-text"}, h("h2", {id: "h-text"}, "2. Plan document"),
        h("div", {class: "form-row"}, h("label", {for: "plan-format"}, "format", fmtSel)),
        h("label", {for: "plan-text", class: "note", id: "plan-help"},
          "The plan file that ", h("code", {}, "circuits edit validate PLAN"), " and ",
          h("code", {}, "circuits edit apply PLAN --out FILE"), " read (save it as plan.yaml, then e.g. ",
          h("code", {}, "circuits edit apply plan.yaml --out edited.safetensors"), "). You may edit it here: ",
          "Validate and Apply read this text and update the list of edits."), text,
        h("div", {class: "form-row"}, validateBtn), status),
      h("section", {class: "panel", "aria-labelledby": "h-apply"}, h("h2", {id: "h-apply"}, "3. Apply"),
        h("div", {class: "form-row"},
          h("label", {for: "edit-target"}, "show tuning of (unit or family)", target),
          h("label", {for: "edit-n-images"}, "images for top-1/top-5", nImages),
          h("label", {for: "edit-featurevis", class: "inline"}, fv, "feature visualization before/after (slow)"),
          applyBtn, applyStatus),
        h("p", {class: "note"}, `Apply with top-1/top-5 on 100 images took ${N_IMAGES_SECONDS} s on 2 shared CPU cores (measured; the `,
          "unedited model's result is stored once); fewer images are faster but one image is then a large change. ",
          "Ablating a family makes its own units 0 everywhere: to see tuning change, show a downstream family ",
          "(e.g. mixed4a/curves after ablating mixed3b/curves)."),
        result),
    ];
  }

  function renderResult(ctx, res, targetName, plan) {
    const {h, fileUrl} = ctx;
    const fmt = P.fmt;
    const out = [h("h2", {}, `Result for ${targetName}`)];
    const ch = res.changed;
    if (ch) out.push(h("p", {id: "edit-changed"}, `The plan changed ${ch.weights ?? "?"} weights in ${ch.tensors ?? "?"} tensors`,
      ch.interventions ? ` and installed ${ch.interventions} activation intervention(s).` : "."));
    const before = res.before || {series: []}, after = res.after || {series: []};
    const cols = P.palette(after.series.length);
    const byId = Object.fromEntries(before.series.map((s) => [s.id, s]));
    const ablates = ((plan && plan.edits) || []).some((e) => e.type === "Ablate");
    const why = ablates ? "ablated" : "silenced by the edit";
    const maxOf = (r) => (r && r.length ? Math.max(...r.filter(Number.isFinite)) : NaN);
    const nZero = after.series.filter((s) => P.allZero(s.response)).length;
    out.push(h("h3", {}, "Radial tuning before / after"),
      nZero ? h("p", {class: "after-note", id: "after-zero-note"}, `${nZero} of ${after.series.length} units respond 0 `,
        `at every orientation after the edit (${why}): drawn as a ring at the centre. To see tuning change rather `,
        "than vanish, show a family downstream of the edit (e.g. mixed4a/curves).") : null,
      P.legend([{label: "before", colour: "#777", dashed: true}, {label: "after (one colour per unit)", colour: cols[0] || "#2c6fbb"}]),
      h("div", {class: after.series.length > 1 ? "multiples" : "multiples one", id: "before-after"}, after.series.map((s, i) => h("figure", {"data-unit": s.id},
        P.polarPlot({orientation: after.orientation_deg, units: after.units || before.units || "σ",
          size: after.series.length > 1 ? 230 : 340,
          title: `radial tuning of ${s.id}, before and after`,
          series: [...(byId[s.id] ? [{id: s.id, kind: "before", response: byId[s.id].response, colour: "#777",
                                     dashed: true, label: `${s.id} before`}] : []),
                   {id: s.id, kind: "after", response: s.response, colour: cols[i], label: `${s.id} after`}]}),
        h("figcaption", {}, h("strong", {}, s.id), `: max after ${fmt(maxOf(s.response))}`,
          byId[s.id] ? ` (before ${fmt(maxOf(byId[s.id].response))})` : "", ` ${after.units || before.units || "σ"}`,
          P.allZero(s.response) ? h("div", {class: "after-note"}, `after: 0 at every orientation (${why})`) : null)))));
    const acc = res.accuracy;
    if (acc) {
      const row = (k) => {
        const b = acc.before[k], a = acc.after[k];
        return h("tr", {}, h("th", {class: "l"}, k.replace("top", "top-")), h("td", {}, (100 * b).toFixed(1)),
                 h("td", {}, (100 * a).toFixed(1)), h("td", {}, `${a - b >= 0 ? "+" : ""}${(100 * (a - b)).toFixed(1)}`));
      };
      out.push(h("h3", {}, `Accuracy on ${acc.n_images} images`), h("p", {class: "note"},
        `Top-1/top-5 of the original and the edited model on the same ${acc.n_images} images; on few images a change `,
        `of one image is ${(100 / Math.max(1, acc.n_images)).toFixed(1)} points (circuits study family-ablation gives confidence intervals).`),
      h("table", {class: "data", id: "accuracy"},
        h("thead", {}, h("tr", {}, h("th", {class: "l"}, "metric"), h("th", {}, "before (%)"), h("th", {}, "after (%)"),
          h("th", {}, "change (points)"))), h("tbody", {}, row("top1"), row("top5"))));
    }
    if (res.featurevis) {
      const ids = res.target || after.series.map((s) => s.id);
      const fvb = res.featurevis.before || [], fva = res.featurevis.after || [];
      out.push(h("h3", {}, "Feature visualization before / after"), h("table", {class: "data", id: "fv-before-after"},
        h("thead", {}, h("tr", {}, h("th", {class: "l"}, "unit"), h("th", {}, "before"), h("th", {}, "after"))),
        h("tbody", {}, fvb.map((u, i) => h("tr", {}, h("td", {class: "l"}, ids[i] || String(i + 1)),
          h("td", {}, h("img", {class: "fv", src: fileUrl(u), alt: `feature visualization of ${ids[i]} before`})),
          h("td", {}, fva[i] ? h("img", {class: "fv", src: fileUrl(fva[i]), alt: `feature visualization of ${ids[i]} after`})
                             : "–"))))));
    }
    if (res.downloads) {
      const d = res.downloads;
      out.push(h("h3", {}, "Downloads"), h("p", {class: "downloads"},
        d.yaml ? h("a", {href: d.yaml, download: "plan.yaml"}, "plan (YAML)") : null,
        d.json ? h("a", {href: d.json, download: "plan.json"}, "plan (JSON)") : null,
        d.weights ? h("a", {href: d.weights, download: "edited.safetensors"}, "edited weights (safetensors)") : null));
    }
    return out;
  }

  window.CircuitEdit = {page, toYaml};
})();

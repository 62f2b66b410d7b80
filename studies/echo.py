"""Echoes: the Curve Circuits edit that brings back 180° "echoes" in mixed3b curve units.

``run_echo(config, out)`` (CLI: ``circuits study echo``) measures the radial tuning of the
mixed3b curve family (packaged catalog) in four variants of the model:

- ``a_unedited``: the checkpoint as is;
- ``b_linearized`` (control): every 3x3/5x5 family unit computed without its bottleneck ReLU
  (:class:`edits.Linearize`, one per branch). The family's 1x1-branch units have no
  bottleneck and are left as they are;
- ``c_curves_only``: (b) plus :class:`edits.PrunePathway` from every mixed3a unit that is *not*
  in ``mixed3a/curves`` to the family (the family is driven only by the early curves);
- ``d_curves_positive``: (c) plus ``PrunePathway(src=mixed3a/curves, dst=family,
  sign="negative")`` — the negative (expanded, for linearised units) weights from the early
  curves removed. This is the Curve Circuits edit; Lucid reports the median echo ratio going
  from ≈0.00 to ≈0.20.

Each variant is one :class:`edits.EditPlan`; the plan validator (claims) is run on each and
the result recorded. Also measured (unedited): the echo ratios of the conv2d2 and mixed3a
curve families. With ``--images``: top-1/top-5 per variant (:func:`evaluate_variants`).

Report folder (atomic): ``config.yaml``, ``results.csv`` (tidy per-unit metrics),
``tuning.csv`` (per-stimulus pre-ReLU responses), ``radial_tuning.png``, ``echo_by_layer.png``,
``summary.md``, ``report.html``, ``metrics.json``, ``plan_<variant>.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from circuits.catalog import load_catalog
from edits import EditError, EditPlan, Linearize, PrunePathway, in_branch
from studies.base import Opening, StudyConfig, open_study
from studies.measure import stimuli as S
from studies.measure.tuning import compare, measure, radial_tuning, tuning_metrics
from studies.report.folder import report_folder, write_json
from studies.report.html import write_report
from studies.report.order import sort_units_df
from studies.report.plots import plot_radial
from studies.report.provenance import write_config
from studies.run.sweep import evaluate_study_variants

LAYER = "mixed3b"
SRC_LAYER = "mixed3a"
VARIANTS = ("a_unedited", "b_linearized", "c_curves_only", "d_curves_positive")
VARIANT_TEXT = {
    "a_unedited": "unedited model",
    "b_linearized": "3x3/5x5 family units linearised (no bottleneck ReLU) — control",
    "c_curves_only": "(b) + every non-curve mixed3a → family pathway pruned",
    "d_curves_positive": "(c) + negative weights from mixed3a curves → family removed (Curve Circuits edit)",
}
#: Lucid's reported median echo ratio before / after the edit (Curve Circuits).
LUCID_MEDIAN = (0.00, 0.20)


@dataclass
class EchoConfig(StudyConfig):
    """Settings of the echo study (saved as ``config.yaml``); the common fields are
    :class:`~studies.base.StudyConfig`'s (``seed``: recorded; nothing here is random).

    Attributes:
        orientation_step: degrees between tuning orientations (default 5°; (0, 90]).
        radii: px (default :data:`studies.measure.stimuli.DEFAULT_RADII`).
        stroke_width: px.
        vis_steps: feature-visualization steps for the before/after grid of the variants
            (0: no grid); seeded with ``seed``.
    """

    orientation_step: float = 5.0
    radii: list[float] = field(default_factory=lambda: list(S.DEFAULT_RADII))
    stroke_width: float = 2.0
    vis_steps: int = 128

    def check(self) -> None:
        super().check()
        if not (0 < self.orientation_step <= 90):
            raise ValueError(f"--orientation-step must be in (0, 90] degrees, got {self.orientation_step}")
        self.vis_settings()

    def vis_settings(self):
        """The feature-visualization settings of the variant grid, checked; ``None`` without a grid."""
        if not self.vis_steps:
            return None
        from studies.measure.featurevis import VisSettings

        settings = VisSettings(steps=self.vis_steps, seed=self.seed)
        settings.check()
        return settings


def build_plans(model, family, src_curves) -> tuple[dict[str, EditPlan], dict]:
    """The three edit plans (b, c, d) and notes on how they were composed.

    Returns:
        ``({variant: EditPlan}, notes)``; notes list the branches of the family units, the
        validator outcome per plan and any fallback composition used.
    """
    spec = model.spec
    units = [f"{LAYER}:{u}" for u in family.units]
    by_branch: dict[str, list[str]] = {}
    for u in family.units:
        by_branch.setdefault(spec.branch_of(LAYER, int(u)), []).append(f"{LAYER}:{u}")
    branches = {b: in_branch(units, f"{LAYER}_{b}", spec) for b in ("3x3", "5x5")}
    one = by_branch.get("1x1", [])
    other = [u for b, us in by_branch.items() if b not in ("1x1", "3x3", "5x5") for u in us]
    lin = [Linearize(f"{LAYER}_{b}", [str(u) for u in us]) for b, us in branches.items() if us]
    curve_src = {int(i) for i in src_curves.units}
    width = spec.layer_width(SRC_LAYER)
    complement = [f"{SRC_LAYER}:{i}" for i in range(width) if i not in curve_src]
    curves = [f"{SRC_LAYER}:{i}" for i in src_curves.units]
    prune_rest = PrunePathway(src=complement, dst=units)
    prune_neg = PrunePathway(src=curves, dst=units, sign="negative")
    plans = {
        "b_linearized": EditPlan(lin, name="echo-b-linearize"),
        "c_curves_only": EditPlan([*lin, prune_rest], name="echo-c-curves-only"),
        "d_curves_positive": EditPlan([*lin, prune_rest, prune_neg], name="echo-d-curves-positive"),
    }
    notes: dict = {
        "branches": {"1x1": one, "3x3": by_branch.get("3x3", []), "5x5": by_branch.get("5x5", []), "other": other},
        "one_by_one_note": (f"{len(one)} family unit(s) in the 1x1 branch ({', '.join(one) or 'none'}) have no "
                            "bottleneck: nothing to linearise; their pathway edits act on the raw 1x1 weights "
                            "(same as expanded weights)."),
        "validation": {},
        "fallback": None,
    }
    for name, plan in list(plans.items()):
        try:
            plan.validate(spec)
            notes["validation"][name] = "accepted"
        except EditError as e:
            notes["validation"][name] = f"refused: {e}"
            if name == "d_curves_positive":
                # fallback: one PrunePathway per disjoint source set is what is refused → fold the
                # negative-only prune of the curves into a separate plan applied on top of (c)
                notes["fallback"] = "negative prune applied as a second plan on the output of (c)"
            else:
                raise
    return plans, notes


def _apply(model, plans: dict[str, EditPlan], notes: dict) -> dict:
    models = {"a_unedited": model}
    for name, plan in plans.items():
        if name == "d_curves_positive" and notes["fallback"]:
            base = models["c_curves_only"]
            models[name], _ = EditPlan([plan.edits[-1]], name=plan.name).apply(base)
        else:
            models[name], _ = plan.apply(model)
    return models


def run_echo(config: EchoConfig, out: str | Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Run the study and write the report folder ``out``; returns the metrics dict.

    Raises:
        ReportExistsError: ``out`` is non-empty and ``overwrite`` is False (checked first).
        WeightsError, FileNotFoundError, ValueError: bad weights, images or settings.
    """
    op = open_study(config, out, overwrite, progress)
    config, model = op.config, op.model
    op.log(f"loaded {model.spec.name}")
    cat = load_catalog(model.spec)
    family, src_curves = cat[f"{LAYER}/curves"], cat[f"{SRC_LAYER}/curves"]
    plans, notes = build_plans(model, family, src_curves)
    models = _apply(model, plans, notes)
    op.log("edits applied; validator: " + "; ".join(f"{k} {v}" for k, v in notes["validation"].items()))
    t = _measure_tuning(op, models, cat, family, progress)
    cls = None
    if config.images:
        op.log("classification per variant (one pass, shared prefix)")
        as_plans = None if notes["fallback"] else {"a_unedited": None, **plans}
        cls = evaluate_study_variants(models, as_plans, config.images, config.executor, batch_size=config.batch_size,
                                      device=config.device, limit=config.limit, num_workers=config.num_workers,
                                      progress=progress)
    metrics = _metrics(config, model, family, src_curves, plans, notes, t, cls)
    with report_folder(out, overwrite) as tmp:
        metrics["provenance"] = _write_report(tmp, config, model, family, plans, t, cls)
        if config.vis_steps:
            op.log(f"feature visualizations of the family in {len(models)} variants ({config.vis_steps} steps)")
            metrics["featurevis"] = _variant_visualizations(tmp, config, models, family)
        metrics["wall_time_s"] = op.elapsed()
        write_json(tmp / "metrics.json", metrics)
        summary = _summary(config, metrics, t.results)
        (tmp / "summary.md").write_text(summary)
        write_report(tmp, f"Echoes: {model.spec.name} {family.key}", summary,
                     figures=["radial_tuning.png", "echo_by_layer.png"]
                     + (["featurevis_variants.png"] if config.vis_steps else []) + ["radial_tuning_raw.png"],
                     tables={"Per unit and variant (results.csv)": "results.csv"})
    op.log(f"report written to {out}")
    return metrics


@dataclass
class _Tuning:
    """The tuning measured by :func:`run_echo`."""

    responses: pd.DataFrame  #: per stimulus, the family in every variant
    radial: pd.DataFrame
    results: pd.DataFrame  #: per unit and variant (tuning metrics, branch, peak change)
    early_responses: pd.DataFrame | None  #: conv2d2/mixed3a curves, unedited
    early_results: pd.DataFrame | None

    @property
    def all_results(self) -> pd.DataFrame:
        return (pd.concat([self.results, self.early_results], ignore_index=True) if self.early_results is not None
                else self.results)


def _measure_tuning(op: Opening, models: dict, cat, family, progress: bool) -> _Tuning:
    """Radial tuning of the family in every variant, and of the early curve families unedited."""
    config, model = op.config, op.model
    orientations = [i * config.orientation_step for i in range(int(math.ceil(360 / config.orientation_step)))]
    stim = S.curves(orientations, config.radii, stroke_width=config.stroke_width)
    tuning = compare(models, family, stim, progress=progress)
    op.log("mixed3b family tuning measured (4 variants)")
    early = []
    for key in ("conv2d2/curves", f"{SRC_LAYER}/curves"):
        if key in cat and len(cat[key]):
            d = measure(model, cat[key], stim, progress=progress)
            d.insert(0, "variant", "a_unedited")
            early.append(d)
    early_tuning = pd.concat(early, ignore_index=True) if early else None
    radial = radial_tuning(tuning)
    results = tuning_metrics(radial)
    results["branch"] = [model.spec.branch_of(LAYER, int(i)) for i in results["index"]]
    early_results = tuning_metrics(radial_tuning(early_tuning)) if early_tuning is not None else None
    base = results[results["variant"] == "a_unedited"].set_index("unit")
    results["peak_change"] = [r.peak / base.loc[r.unit, "peak"] - 1 if base.loc[r.unit, "peak"] > 0 else float("nan")
                              for r in results.itertuples()]
    return _Tuning(tuning, radial, results, early_tuning, early_results)


def _variant_metrics(results: pd.DataFrame, cls) -> dict:
    variants: dict = {}
    for v in VARIANTS:
        r = results[results["variant"] == v]
        variants[v] = {
            "description": VARIANT_TEXT[v],
            "median_echo_ratio": _f(r["echo_ratio"].median()),
            "median_peak": _f(r["peak"].median()),
            "median_tuning_width": _f(r["tuning_width"].median()),
            "median_peak_change": _f(r["peak_change"].median()),
            "units_silent": int((r["peak"] <= 0).sum()),
        }
        if cls is not None:
            c = cls[v]
            variants[v].update(top1=c.top1, top5=c.top5, n_images=c.n_images)
    return variants


def _metrics(config: EchoConfig, model, family, src_curves, plans: dict, notes: dict, t: _Tuning, cls) -> dict:
    """``metrics.json`` (without the wall time)."""
    results = t.results
    variants = _variant_metrics(results, cls)
    early_medians = {}
    if t.early_results is not None:
        for layer, g in t.early_results.groupby("layer"):
            early_medians[layer] = {"median_echo_ratio": _f(g["echo_ratio"].median()),
                                    "min_echo_ratio": _f(g["echo_ratio"].min()),
                                    "max_echo_ratio": _f(g["echo_ratio"].max())}
    ctrl = {}  # (b) vs (a) control per branch
    for br in ("1x1", "3x3", "5x5"):
        rb = results[(results["variant"] == "b_linearized") & (results["branch"] == br)]
        ctrl[br] = _f(rb["peak_change"].abs().max()) if len(rb) else None
    piv = t.responses.pivot_table(index=["unit", "orientation", "radius"], columns="variant", values="response")
    d_minus_c = float((piv["d_curves_positive"] - piv["c_curves_only"]).min())  # (d) ≥ (c) at every stimulus
    a_med, d_med = variants["a_unedited"]["median_echo_ratio"], variants["d_curves_positive"]["median_echo_ratio"]
    reproduces = bool(a_med is not None and d_med is not None and a_med <= 0.05 and d_med >= 0.1)
    return {
        "checkpoint": model.spec.name,
        "family": {"key": family.key, "units": list(family.units), "branches": notes["branches"]},
        "source_curves": {"key": src_curves.key, "units": list(src_curves.units)},
        "variants": variants,
        "plans": {k: {"validator": notes["validation"].get(k), "file": f"plan_{k}.json"} for k in plans},
        "plan_notes": {"one_by_one": notes["one_by_one_note"], "fallback": notes["fallback"]},
        "control_max_abs_peak_change_by_branch": ctrl,
        "min_response_d_minus_c": d_minus_c,
        "early_layers_unedited": early_medians,
        "lucid_median_echo_ratio": {"before": LUCID_MEDIAN[0], "after": LUCID_MEDIAN[1]},
        "reproduces_lucid": reproduces,
        "classification": None if cls is None else {v: {"top1": cls[v].top1, "top5": cls[v].top5,
                                                        "n_images": cls[v].n_images} for v in VARIANTS},
        "orientation_step": config.orientation_step,
    }


def _write_report(tmp: Path, config: EchoConfig, model, family, plans: dict, t: _Tuning, cls) -> dict:
    """Every file of the report but ``metrics.json``, ``summary.md`` and ``report.html``; returns the provenance."""
    prov = write_config(tmp / "config.yaml", "echo", config, model)
    for k, plan in plans.items():
        plan.save(tmp / f"plan_{k}.json")
    sort_units_df(t.all_results, ["variant", "layer", "unit"]).to_csv(tmp / "results.csv", index=False)
    tun = pd.concat([t.responses, t.early_responses], ignore_index=True) if t.early_responses is not None \
        else t.responses
    tun.to_csv(tmp / "tuning.csv", index=False)
    base = t.results[t.results["variant"] == "a_unedited"].set_index("unit")
    for name, norm in (("radial_tuning.png", True), ("radial_tuning_raw.png", False)):
        plot_radial(t.radial, tmp / name, preferred=base["preferred_orientation"].to_dict(), normalise=norm,
                    variants=list(VARIANTS), title=f"{model.spec.name} {family.key}: radial tuning per variant")
    _plot_echo(t.all_results, tmp / "echo_by_layer.png")
    if cls is not None:
        pd.DataFrame([{"variant": v, "top1": cls[v].top1, "top5": cls[v].top5, "n_images": cls[v].n_images}
                      for v in VARIANTS]).to_csv(tmp / "classification.csv", index=False)
    return prov


def _variant_visualizations(tmp: Path, config: EchoConfig, models: dict, family) -> dict:
    """``featurevis_variants.png``: one neuron feature visualization per unit and variant, the
    same seed and start in every variant (Curve Circuits shows the echo edit this way);
    returns the ``featurevis`` entry of the metrics (median over units of each variant's
    objective: the unit's pre-ReLU activation at the RF centre of its own picture)."""
    from studies.measure.featurevis.units import visualize_variants
    from studies.report.vis_plots import plot_variant_grid

    vis = visualize_variants(models, family, settings=config.vis_settings())
    units = [v.unit for v in next(iter(vis.values()))]
    ors = dict(zip(family, family.orientations)) if family.orientations else None
    plot_variant_grid({k: [v.image for v in vs] for k, vs in vis.items()}, units, tmp / "featurevis_variants.png",
                      ors, values={k: [v.final for v in vs] for k, vs in vis.items()},
                      labels={k: k.replace("_", " ", 1) for k in models},
                      title=f"{family.key}: feature visualizations per variant ({config.vis_steps} steps, same seed; "
                      "number under each picture = its unit's pre-ReLU activation)")
    return {"steps": config.vis_steps, "seed": config.seed,
            "objective": "neuron at the RF centre, pre-ReLU, in each variant (studies.measure.featurevis)",
            "median_objective": {k: _f(np.median([v.final for v in vs])) for k, vs in vis.items()}}


def _f(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _plot_echo(results: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    groups = [("conv2d2", "a_unedited"), ("mixed3a", "a_unedited")] + [(LAYER, v) for v in VARIANTS]
    data, labels = [], []
    for layer, v in groups:
        e = results[(results["layer"] == layer) & (results["variant"] == v)]["echo_ratio"].dropna().to_numpy()
        if len(e):
            data.append(e)
            labels.append(f"{layer}\n{v if layer == LAYER else 'unedited'}")
    fig, ax = plt.subplots(figsize=(1.6 * len(data) + 1, 4.2))
    rng = np.random.default_rng(0)
    for i, e in enumerate(data):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(e)), e, s=14, alpha=0.7)
        ax.hlines(np.median(e), i - 0.3, i + 0.3, color="k")
    ax.set_xticks(range(len(data)), labels, fontsize=8)
    ax.set_ylabel("echo ratio (max within ±30° of peak+180°, / peak)")
    ax.axhline(LUCID_MEDIAN[1], ls=":", color="grey", label="Lucid median after edit (0.20)")
    ax.legend(fontsize=8)
    ax.set_title("Echo ratios by layer and variant (bar = median)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x, spec=".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def _summary(config: EchoConfig, m: dict, results: pd.DataFrame) -> str:
    v = m["variants"]
    a, d = v["a_unedited"]["median_echo_ratio"], v["d_curves_positive"]["median_echo_ratio"]
    verdict = ("**Yes**" if m["reproduces_lucid"] else "**No**")
    lines = [
        f"# Echoes (Curve Circuits edit): {m['checkpoint']} {m['family']['key']}",
        "",
        f"## Does BVLC reproduce the Lucid finding? {verdict}",
        "",
        f"Lucid (InceptionV1, Curve Circuits): median echo ratio of the mixed3b curves {LUCID_MEDIAN[0]:.2f} → "
        f"{LUCID_MEDIAN[1]:.2f} after keeping only the early-curve inputs and dropping their negative weights. "
        f"Measured here: {_fmt(a)} (a, unedited) → {_fmt(v['b_linearized']['median_echo_ratio'])} (b) → "
        f"{_fmt(v['c_curves_only']['median_echo_ratio'])} (c) → {_fmt(d)} (d). "
        "Criterion used for 'reproduces': median (a) ≤ 0.05 and median (d) ≥ 0.10. "
        "Caveats: the control (b) alone already moves the median (removing the bottleneck ReLU is a large "
        "change in BVLC), so compare (d) with (c) as well as with (a); a median (d) well above 0.20 means the "
        "echo comes back more strongly than Lucid reports.",
        "",
        "## Variants",
        "",
        "| variant | what | median echo | median peak | median peak change vs (a) | median width ° | silent units |"
        + (" top-1 | top-5 |" if m["classification"] else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|" if m["classification"] else ""),
    ]
    for k in VARIANTS:
        r = v[k]
        row = (f"| {k} | {r['description']} | {_fmt(r['median_echo_ratio'])} | {_fmt(r['median_peak'], '.1f')} | "
               f"{_fmt(r['median_peak_change'], '+.1%')} | {_fmt(r['median_tuning_width'], '.0f')} | {r['units_silent']} |")
        if m["classification"]:
            row += f" {r['top1']:.4f} | {r['top5']:.4f} |"
        lines.append(row)
    if not m["classification"]:
        lines += ["", "Classification was skipped: no `--images` folder was given."]
    else:
        n = m["classification"]["a_unedited"]["n_images"]
        lines += ["", f"Classification on {n} images of `{config.images}` (one pass, shared prefix)."]
    return "\n".join(lines + _summary_edits(m) + _summary_units(config, m, results) + _summary_featurevis(m))


def _summary_featurevis(m: dict) -> list[str]:
    fv = m.get("featurevis")
    if not fv or not fv.get("median_objective"):
        return []
    med = fv["median_objective"]
    return ["", "## Feature visualizations (featurevis_variants.png)", "",
            f"One picture per unit and variant, {fv['steps']} steps, seed {fv['seed']}, the same start in every "
            "variant; " + fv["objective"] + ". Median objective: "
            + ", ".join(f"{k} {_fmt(x, '.0f')}" for k, x in med.items()) + "."]


def _summary_edits(m: dict) -> list[str]:
    br = m["family"]["branches"]
    ctrl = m["control_max_abs_peak_change_by_branch"]
    lines = [
        "",
        "## Edits",
        "",
        f"- Family branches: 1x1 {br['1x1']}; 3x3 {br['3x3']}; 5x5 {br['5x5']}.",
        f"- {m['plan_notes']['one_by_one']}",
        "- (b) one `Linearize` per bottleneck branch (3x3, 5x5). (c) adds one `PrunePathway(src=<all "
        f"{256 - len(m['source_curves']['units'])} mixed3a units not in mixed3a/curves>, dst=family)`; "
        "(d) adds `PrunePathway(src=mixed3a/curves, dst=family, sign='negative')` — on linearised units these act "
        "on the expanded (bottleneck × spatial) weights, tap by tap.",
        "- Plan validator (claims): " + ", ".join(f"{k} {p['validator']}" for k, p in m["plans"].items()) + ". "
        + ("All three compositions were accepted as single plans (the two prunes have disjoint sources, "
           "Linearize claims do not conflict with pathway edits)." if not m["plan_notes"]["fallback"]
           else f"Fallback: {m['plan_notes']['fallback']}."),
        f"- Control (b) vs (a): max |peak change| by branch: 1x1 {_fmt(ctrl['1x1'], '.1%')}, "
        f"3x3 {_fmt(ctrl['3x3'], '.1%')}, 5x5 {_fmt(ctrl['5x5'], '.1%')} (1x1 units are untouched; "
        "for 3x3/5x5 units removing the bottleneck ReLU lets negative bottleneck pre-activations through, "
        "so (b) is not identical to (a)).",
        f"- (d) − (c) minimum over all stimuli and units (pre-ReLU): {m['min_response_d_minus_c']:.4g} "
        "(removing negative weights from non-negative mixed3a sources can only raise pre-activations).",
        "",
        "## Early layers (unedited)",
        "",
    ]
    for layer, e in m["early_layers_unedited"].items():
        lines.append(f"- {layer} curves: echo ratio median {_fmt(e['median_echo_ratio'])}, range "
                     f"{_fmt(e['min_echo_ratio'])}–{_fmt(e['max_echo_ratio'])} (Lucid: conv2d2 0.19–0.88, "
                     "mixed3a 0.04–0.53, mixed3b ≤ 0.03).")
    return lines


def _summary_units(config: EchoConfig, m: dict, results: pd.DataFrame) -> list[str]:
    lines = ["", "## Per unit", "",
              "| unit | branch | " + " | ".join(f"echo {k[0]}" for k in VARIANTS) + " | "
              + " | ".join(f"peak {k[0]}" for k in VARIANTS) + " | width a | width d | pref ° a |",
              "|---|---|" + "---|" * (2 * len(VARIANTS) + 3)]
    piv = results.set_index(["unit", "variant"])
    for unit in dict.fromkeys(results["unit"]):
        r = {k: piv.loc[(unit, k)] for k in VARIANTS}
        lines.append(f"| {unit} | {r['a_unedited']['branch']} | "
                     + " | ".join(_fmt(_f(r[k]['echo_ratio']), '.2f') for k in VARIANTS) + " | "
                     + " | ".join(f"{r[k]['peak']:.1f}" for k in VARIANTS)
                     + f" | {_fmt(_f(r['a_unedited']['tuning_width']), '.0f')} | "
                       f"{_fmt(_f(r['d_curves_positive']['tuning_width']), '.0f')} | "
                       f"{_fmt(_f(r['a_unedited']['preferred_orientation']), '.0f')} |")
    lines += ["", f"Tuning stimuli: curves at {config.orientation_step}° steps × radii {config.radii} px, stroke "
              f"{config.stroke_width} px. Radial tuning = positive pre-ReLU responses averaged over radius; echo "
              "ratio = max within ±30° of peak orientation + 180°, over the peak; width = degrees at ≥ half peak.",
              f"Wall time: {m.get('wall_time_s', '?')} s.", ""]
    return lines

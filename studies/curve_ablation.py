"""The main job: discover the mixed3b curve family, ablate it, measure what changes.

``run_curve_ablation(config, out)`` (CLI: ``circuits study curve-ablation``):

1. load the checkpoint (verified weights);
2. find the curve family of ``config.layer`` — discovered from synthetic curves and lines
   with the dataset σ taken from ``config.images`` (:mod:`studies.measure.discovery`), or, without
   images, the family frozen in the packaged catalog by the same discovery;
3. zero-ablate it (:class:`edits.Ablate`, compiled to weights on a copy of the model);
4. radial tuning of the family before/after, and of the curve units of the next layer
   (mixed4a for mixed3b) to show the downstream effect;
5. top-1/top-5 on the image folder before/after (skipped, and said so, without images);
6. a report folder, written atomically: ``summary.md``, ``metrics.json``, ``config.yaml``,
   ``edit.json``, ``units.csv`` (per-unit metrics), ``tuning.csv`` (tidy responses),
   ``radial_tuning.png`` (each curve normalised to its peak), ``radial_tuning_raw.png``,
   ``downstream_radial_tuning.png``, ``report.html`` and, with images,
   ``classification.csv`` (per image, before/after).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from circuits.catalog import load_catalog
from circuits.spec import MIXED_LAYERS
from circuits.units import Family, canonical_layer
from edits import Ablate, EditPlan
from studies.base import Opening, StudyConfig, open_study, warn
from studies.measure import stimuli as S
from studies.measure.classify import wnid_index
from studies.measure.discovery import discover_curves
from studies.measure.images import ImageFolderDataset, load_reference_set
from studies.measure.paired import paired_stats
from studies.measure.statistics import MIN_REFERENCE_IMAGES, reference_statistics
from studies.measure.tuning import compare, radial_tuning, tuning_metrics
from studies.report.folder import report_folder, write_json
from studies.report.html import write_report
from studies.report.order import sort_units, sort_units_df
from studies.report.plots import plot_radial
from studies.report.provenance import write_config
from studies.run.sweep import evaluate_study_variants


@dataclass
class CurveAblationConfig(StudyConfig):
    """Everything needed to re-run the study (saved as ``config.yaml``); the common fields
    (model, images, weights, batch_size, limit, device, executor, num_workers, seed) are
    :class:`~studies.base.StudyConfig`'s (``seed``: recorded; nothing here is random).

    Attributes:
        layer: layer whose curve family is ablated (default ``mixed3b``).
        orientation_step: degrees between tuning orientations (default 5°).
        radii: px (default :data:`studies.measure.stimuli.DEFAULT_RADII`).
        stroke_width: px.
        reference_images: images used for the dataset σ in discovery.
        downstream: also measure the next layer's curve units (default True).
    """

    layer: str = "mixed3b"
    orientation_step: float = 5.0
    radii: list[float] = field(default_factory=lambda: list(S.DEFAULT_RADII))
    stroke_width: float = 2.0
    reference_images: int = 100
    downstream: bool = True

    def check(self) -> None:
        try:
            canonical_layer(self.layer)
        except KeyError as e:
            raise KeyError(f"--layer: {e.args[0]}") from None
        super().check()


#: below this many images the summary flags the classification change as a small sample
SMALL_SAMPLE = 200


@dataclass
class _Tuning:
    """Tuning before/after of the family and (optionally) of the next layer's curve units."""

    responses: pd.DataFrame
    radial: pd.DataFrame
    metrics: pd.DataFrame
    downstream_family: Family | None = None
    downstream_radial: pd.DataFrame | None = None


def run_curve_ablation(config: CurveAblationConfig, out: str | Path, overwrite: bool = False,
                       progress: bool = True) -> dict:
    """Run the study and write the report folder ``out``.

    Returns:
        The metrics dict also written to ``metrics.json``.

    Raises:
        ReportExistsError: ``out`` is non-empty and ``overwrite`` is False (checked first).
        WeightsError, FileNotFoundError, ValueError: bad weights, images or settings.
    """
    op = open_study(config, out, overwrite, progress)
    config, model = op.config, op.model
    layer = canonical_layer(config.layer)
    op.log(f"loaded {model.spec.name} from {model.provenance.weights_source or '?'}")
    if config.images:
        _check_labelled_images(model, config.images)
    family, table, family_source, ref = _find_family(op, layer)
    plan = EditPlan([Ablate(family)], name=f"ablate-{layer}-curves")
    edited, record = plan.apply(model)
    op.log(f"ablated: {record.num_changed} weights changed in {len(record.changed)} tensors")
    models = {"before": model, "after": edited}
    tuning = _measure_tuning(op, models, family, layer, ref, progress)
    op.log("tuning measured")
    cls = None
    if config.images:
        op.log("classification before/after (one pass; the unedited prefix up to the edited layer is shared)")
        cls = evaluate_study_variants(models, {"before": None, "after": plan}, config.images, config.executor,
                                      batch_size=config.batch_size, device=config.device, limit=config.limit,
                                      num_workers=config.num_workers, progress=progress)
    metrics = _metrics(model, layer, family, family_source, record, cls, tuning.metrics, config.seed)
    metrics["wall_time_s"] = op.elapsed()
    with report_folder(out, overwrite) as tmp:
        units, metrics["provenance"] = _write_report(tmp, config, model, layer, family, plan, record, tuning, table,
                                                     cls)
        metrics["wall_time_s"] = op.elapsed()
        write_json(tmp / "metrics.json", metrics)
        (tmp / "summary.md").write_text(_summary(config, metrics, units, layer, tuning.downstream_family))
        write_report(tmp, f"Curve-family ablation: {model.spec.name} {family.key}",
                     figures=[f for f in ("radial_tuning.png", "radial_tuning_raw.png", "downstream_radial_tuning.png")
                              if (tmp / f).is_file()],
                     tables={"Per unit (units.csv)": "units.csv"})
    c = metrics["classification"]
    if c and c["n_images"] < SMALL_SAMPLE:
        warn(f"classification on only {c['n_images']} images: top-1 change {c['top1_change']:+.4f}, 95% CI "
             f"[{c['top1_change_ci95'][0]:+.4f}, {c['top1_change_ci95'][1]:+.4f}] (one image = "
             f"{100 / c['n_images']:.2g} pp)")
    op.log(f"report written to {out}")
    return metrics


def _check_labelled_images(model, images: str) -> None:
    """Fail now, not after minutes of tuning, if the folder has no usable labelled image."""
    ds = ImageFolderDataset(images, wnid_index(model))
    if len(ds) == 0:
        reason = f" (e.g. {ds.skipped[0][0]}: {ds.skipped[0][1]})" if ds.skipped else ""
        raise ValueError(f"--images {images} has no usable labelled image{reason}; expected files "
                         f"<wnid>_*.JPEG or <wnid>/*.JPEG")


def _find_family(op: Opening, layer: str):
    """Step 1, the family: discovered with σ from the images, else the frozen one of the
    catalog. Returns ``(family, discovery table or None, source text, reference images or None)``."""
    config, model = op.config, op.model
    ref = table = None
    if config.images:
        ref = load_reference_set(config.images, config.reference_images)
        op.log(f"discovering {layer} curve family (σ from {len(ref.images)} reference images: {ref.description})")
        if len(ref.images) < MIN_REFERENCE_IMAGES or len(ref.images) < config.reference_images:
            warn(f"discovery uses only {len(ref.images)} reference image(s) (asked for {config.reference_images}, "
                 f"reliable from {MIN_REFERENCE_IMAGES}): the discovered family may differ from the catalog's")
        disc = discover_curves(model, layer, reference_statistics(model, layer, ref))
        family, table = disc.family, disc.table
        family_source = f"discovered in this run, σ from {len(ref.images)} reference images"
    else:
        family = load_catalog(model.spec)[f"{layer}/curves"]
        family_source = f"packaged catalog ({family.meta.get('regenerate', '')})"
        op.log(f"no --images: using the frozen {family.key} family from the catalog")
    if len(family) == 0:
        raise ValueError(f"no curve units found in {layer}; nothing to ablate")
    op.log(f"family {family.key}: {len(family)} units {list(family.units)}")
    return family, table, family_source, ref


def _measure_tuning(op: Opening, models: dict, family: Family, layer: str, ref, progress: bool) -> _Tuning:
    """Step 3: radial tuning before/after of the family and of the next layer's curve units."""
    config, model = op.config, op.model
    orientations = [i * config.orientation_step for i in range(int(math.ceil(360 / config.orientation_step)))]
    stim = S.curves(orientations, config.radii, stroke_width=config.stroke_width)
    responses = compare(models, family, stim, progress=progress)
    radial = radial_tuning(responses)
    t = _Tuning(responses, radial, tuning_metrics(radial))
    nxt = MIXED_LAYERS[MIXED_LAYERS.index(layer) + 1] if layer in MIXED_LAYERS[:-1] else None
    if not (config.downstream and nxt is not None):
        return t
    op.log(f"measuring downstream {nxt} curve units before/after")
    cat = load_catalog(model.spec)
    if f"{nxt}/curves" in cat:
        t.downstream_family = cat[f"{nxt}/curves"]
    elif config.images:
        t.downstream_family = discover_curves(model, nxt, reference_statistics(model, nxt, ref)).family
    if t.downstream_family is not None and len(t.downstream_family):
        dt = compare(models, t.downstream_family, stim, progress=progress)
        t.responses = pd.concat([t.responses, dt], ignore_index=True)
        t.downstream_radial = radial_tuning(dt)
        t.metrics = pd.concat([t.metrics, tuning_metrics(t.downstream_radial)], ignore_index=True)
    return t


def _metrics(model, layer: str, family: Family, family_source: str, record, cls, metrics_units, seed: int = 0) -> dict:
    """``metrics.json`` (without the wall time)."""
    metrics: dict = {
        "checkpoint": model.spec.name,
        "layer": layer,
        "family": {"key": family.key, "units": list(family.units), "source": family_source,
                   "preferred_orientations": list(family.orientations or ())},
        "edit": {"weights_changed": record.num_changed, "tensors_changed": sorted(record.changed)},
        "classification": None,
    }
    if cls is not None:
        before, after = cls["before"], cls["after"]
        metrics["classification"] = {
            "n_images": before.n_images, "n_skipped": before.n_skipped,
            "top1_before": before.top1, "top1_after": after.top1,
            "top1_change": after.top1 - before.top1,
            "top5_before": before.top5, "top5_after": after.top5,
            "top5_change": after.top5 - before.top5,
        }
        b1 = before.per_image.sort_values("path")["correct_top1"].to_numpy(bool)
        a1 = after.per_image.sort_values("path")["correct_top1"].to_numpy(bool)
        s = paired_stats(b1, a1, 1000, seed)
        metrics["classification"].update(top1_change_ci95=[s["ci_low"], s["ci_high"]], top1_lost=s["lost"],
                                          top1_gained=s["gained"], top1_mcnemar_p=s["mcnemar_p"])
    fam_before = metrics_units[(metrics_units["variant"] == "before") & (metrics_units["layer"] == layer)]
    metrics["family_tuning_before"] = {
        "median_peak": float(fam_before["peak"].median()),
        "median_selectivity": float(fam_before["selectivity"].median()),
        "median_echo_ratio": float(fam_before["echo_ratio"].median()),
    }
    return metrics


def _write_report(tmp: Path, config: CurveAblationConfig, model, layer: str, family: Family, plan: EditPlan,
                  record, t: _Tuning, table, cls) -> tuple[pd.DataFrame, dict]:
    """Step 5: every file of the report but ``metrics.json``, ``summary.md`` and ``report.html``;
    returns the per-unit table (``units.csv``) and the run's provenance."""
    prov = write_config(tmp / "config.yaml", "curve-ablation", config, model)
    plan.save(tmp / "edit.json")
    write_json(tmp / "edit_record.json", record.to_dict())
    t.responses.to_csv(tmp / "tuning.csv", index=False)
    mu = t.metrics.copy()
    units = mu
    if table is not None:
        extra = table[["index", "branch", "curve_sigma", "line_sigma", "curve_line", "selectivity",
                       "preferred_orientation"]].rename(columns={"selectivity": "discovery_selectivity",
                                                                 "preferred_orientation": "discovery_preferred_orientation"})
        units = units.merge(extra.assign(layer=layer), on=["layer", "index"], how="left")
    units = sort_units_df(units, ["layer", "unit", "variant"])
    units.to_csv(tmp / "units.csv", index=False)
    pref = dict(zip([f"{layer}:{u}" for u in family.units], family.orientations or ()))
    silent = float(t.radial[t.radial["variant"] == "after"]["response"].max()) == 0
    for name, norm in (("radial_tuning.png", True), ("radial_tuning_raw.png", False)):
        plot_radial(t.radial, tmp / name, preferred=pref, variants=["before", "after"], normalise=norm,
                    title=f"{model.spec.name} {family.key}: radial tuning before/after zero ablation",
                    notes={"after": "all ablated units are silent (response 0)"} if silent else None)
    if t.downstream_radial is not None:
        down = mu[(mu["layer"] == t.downstream_family.layer) & (mu["variant"] == "before")]
        dpref = {r["unit"]: r["preferred_orientation"] for _, r in down.iterrows()}
        plot_radial(t.downstream_radial, tmp / "downstream_radial_tuning.png", variants=["before", "after"],
                    preferred=dpref, normalise=False,
                    title=f"{t.downstream_family.key}: radial tuning before/after ablating {family.key}")
    if cls is not None:
        _write_classification(tmp, cls["before"], cls["after"])
    return units, prov


def _write_classification(tmp: Path, before, after) -> None:
    """``classification.csv`` (per image, before/after) and ``skipped_images.csv``."""
    pb = before.per_image.drop(columns=["top5"]).add_suffix("_before").rename(
        columns={"path_before": "path", "wnid_before": "wnid", "label_before": "label"})
    pa = after.per_image[["path", "pred", "pred_wnid", "correct_top1", "correct_top5", "logit_label"]].add_suffix("_after")
    pa = pa.rename(columns={"path_after": "path"})
    pb.merge(pa, on="path").to_csv(tmp / "classification.csv", index=False)
    if before.n_skipped:
        before.skipped.to_csv(tmp / "skipped_images.csv", index=False)


def _summary(config, m, units: pd.DataFrame, layer: str, downstream) -> str:
    fam = m["family"]
    lines = [
        f"# Curve-family ablation: {m['checkpoint']} {fam['key']}",
        "",
        f"- Family ({fam['source']}): {len(fam['units'])} units: "
        + ", ".join(f"{u} ({o:.0f}°)" for u, o in zip(fam["units"], fam["preferred_orientations"])),
        f"- Edit: zero ablation compiled to weights ({m['edit']['weights_changed']} weights in "
        f"{len(m['edit']['tensors_changed'])} tensors changed); see `edit.json`.",
        f"- Tuning stimuli: curves, {config.orientation_step}° steps × radii {config.radii} px, "
        f"stroke {config.stroke_width} px (orientation convention: `studies.measure.stimuli`).",
        "",
        "## Classification",
        "",
    ]
    c = m["classification"]
    if c is None:
        lines.append("Classification was skipped: no `--images` folder was given.")
    else:
        lines += [
            f"On {c['n_images']} images ({c['n_skipped']} skipped) of `{config.images}`:",
            "",
            "| | top-1 | top-5 |",
            "|---|---|---|",
            f"| before | {c['top1_before']:.4f} | {c['top5_before']:.4f} |",
            f"| after | {c['top1_after']:.4f} | {c['top5_after']:.4f} |",
            f"| change | {c['top1_change']:+.4f} | {c['top5_change']:+.4f} |",
            "",
            f"Top-1 change 95 % CI (paired bootstrap over images): [{c['top1_change_ci95'][0]:+.4f}, "
            f"{c['top1_change_ci95'][1]:+.4f}]; {c['top1_lost']} image(s) turned wrong, {c['top1_gained']} right; "
            f"exact McNemar p = {c['top1_mcnemar_p']:.3g}.",
        ]
        if c["n_images"] < SMALL_SAMPLE:
            lines += ["", f"**Warning: small sample.** {c['n_images']} images (one image = "
                      f"{100 / c['n_images']:.2g} percentage points); the change is within noise unless the CI "
                      "excludes 0. Run on ≥ 1000 images (drop `--limit`) before drawing conclusions."]
        lines += ["", "**Random control.** Is the drop specific to curve units? A size-matched random unit set "
                  "(same branches) with a 95 % CI is measured by the family-ablation study:", "",
                  f"    .venv/bin/circuits study family-ablation --images {config.images} --families {fam['key']} "
                  "--modes zero --controls 5 --out runs/family-ablation"]
    lines += ["", "## Tuning of the family (per unit)", "",
              "Radial tuning = positive pre-ReLU responses averaged over radius, per orientation (5° bins by default). "
              "Preferred ° = angle of the response-weighted vector sum of that curve, measured in this run "
              "(the family line above gives the discovery sweep's value); selectivity = 1 − circular variance; "
              "width = degrees at ≥ half the peak; echo ratio = largest response within ±30° of the peak "
              "orientation + 180°, over the peak (Curve Circuits). After a zero ablation every unit is silent.", "",
              "| unit | peak before | peak after | preferred ° | selectivity | width ° | echo ratio |",
              "|---|---|---|---|---|---|---|"]
    fam_rows = units[units["layer"] == layer]
    before = fam_rows[fam_rows["variant"] == "before"].set_index("index")
    after = fam_rows[fam_rows["variant"] == "after"].set_index("index")
    for idx in sorted(before.index):
        b = before.loc[idx]
        a_peak = float(after.loc[idx]["peak"]) if idx in after.index else float("nan")
        lines.append(f"| {layer}:{idx} | {b['peak']:.1f} | {a_peak:.1f} | {b['preferred_orientation']:.1f} | "
                     f"{b['selectivity']:.2f} | {b['tuning_width']:.0f} | {b['echo_ratio']:.2f} |")
    if downstream is not None:
        d = units[units["layer"] == downstream.layer]
        piv = d.pivot_table(index="unit", columns="variant", values="peak")
        lines += ["", f"## Downstream: {downstream.key} ({len(downstream)} units)", "",
                  "Peak radial response before → after ablation:", ""]
        for unit in sort_units(piv.index):
            r = piv.loc[unit]
            ratio = r["after"] / r["before"] if r["before"] > 0 else float("nan")
            lines.append(f"- {unit}: {r['before']:.1f} → {r['after']:.1f} ({ratio:.0%})")
    lines += ["", f"Wall time: {m['wall_time_s']} s.", ""]
    return "\n".join(lines)

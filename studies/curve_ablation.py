"""The main job: discover the mixed3b curve family, ablate it, measure what changes.

``run_curve_ablation(config, out)`` (CLI: ``circuits study curve-ablation``):

1. load the checkpoint (verified weights);
2. find the curve family of ``config.layer`` — discovered from synthetic curves and lines
   with the dataset σ taken from ``config.images`` (:mod:`studies.discovery`), or, without
   images, the family frozen in the packaged catalog by the same discovery;
3. zero-ablate it (:class:`edits.Ablate`, compiled to weights on a copy of the model);
4. radial tuning of the family before/after, and of the curve units of the next layer
   (mixed4a for mixed3b) to show the downstream effect;
5. top-1/top-5 on the image folder before/after (skipped, and said so, without images);
6. a report folder, written atomically: ``summary.md``, ``metrics.json``, ``config.yaml``,
   ``edit.json``, ``units.csv`` (per-unit metrics), ``tuning.csv`` (tidy responses),
   ``radial_tuning.png``, ``downstream_radial_tuning.png`` and, with images,
   ``classification.csv`` (per image, before/after).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from circuits import load_model
from circuits.catalog import load_catalog
from circuits.spec import MIXED_LAYERS
from circuits.units import canonical_layer
from edits import Ablate, EditPlan

from . import stimuli as S
from .discovery import discover_curves, load_reference_images, reference_statistics
from .plots import plot_radial
from .report import check_out_dir, report_folder, write_json, write_yaml
from .report import log_step as _log
from .tuning import compare, radial_tuning, tuning_metrics


@dataclass
class CurveAblationConfig:
    """Everything needed to re-run the study (saved as ``config.yaml``).

    Attributes:
        model: checkpoint name.
        layer: layer whose curve family is ablated (default ``mixed3b``).
        images: labelled image folder for classification and the dataset σ (optional).
        weights: explicit weights file (default: the cache).
        orientation_step: degrees between tuning orientations (default 5°).
        radii: px (default :data:`studies.stimuli.DEFAULT_RADII`).
        stroke_width: px.
        reference_images: images used for the dataset σ in discovery.
        downstream: also measure the next layer's curve units (default True).
        batch_size, limit, device, num_workers: classification settings.
        seed: recorded for determinism (nothing here is random).
    """

    model: str = "inceptionv1_caffe"
    layer: str = "mixed3b"
    images: str | None = None
    weights: str | None = None
    orientation_step: float = 5.0
    radii: list[float] = field(default_factory=lambda: list(S.DEFAULT_RADII))
    stroke_width: float = 2.0
    reference_images: int = 100
    downstream: bool = True
    batch_size: int = 64
    limit: int | None = None
    device: str = "cpu"
    executor: dict = field(default_factory=lambda: {"name": "local"})
    num_workers: int | None = None
    seed: int = 0


def run_curve_ablation(config: CurveAblationConfig, out: str | Path, overwrite: bool = False,
                       progress: bool = True) -> dict:
    """Run the study and write the report folder ``out``.

    Returns:
        The metrics dict also written to ``metrics.json``.

    Raises:
        ReportExistsError: ``out`` is non-empty and ``overwrite`` is False (checked first).
        WeightsError, FileNotFoundError, ValueError: bad weights, images or settings.
    """
    t0 = time.perf_counter()
    quiet = not progress
    check_out_dir(out, overwrite)
    layer = canonical_layer(config.layer)
    if config.limit is not None and config.limit < 1:
        raise ValueError(f"--limit must be ≥ 1, got {config.limit}")
    if config.images is not None:
        if not Path(config.images).is_dir():
            raise FileNotFoundError(f"--images {config.images} is not a folder")
        config = dataclasses.replace(config, images=str(Path(config.images).resolve()))
    torch.manual_seed(config.seed)
    model = load_model(config.model, weights=config.weights, device=config.device)
    _log(f"loaded {model.spec.name} from {getattr(model, 'weights_source', '?')}", t0, quiet)
    if config.images:
        # fail now, not after minutes of tuning, if the folder has no usable labelled image
        from .classify import ImageFolderDataset, wnid_index

        ds = ImageFolderDataset(config.images, wnid_index(model))
        if len(ds) == 0:
            reason = f" (e.g. {ds.skipped[0][0]}: {ds.skipped[0][1]})" if ds.skipped else ""
            raise ValueError(f"--images {config.images} has no usable labelled image{reason}; expected files "
                             f"<wnid>_*.JPEG or <wnid>/*.JPEG")

    # 1. the family
    if config.images:
        _log(f"discovering {layer} curve family (σ from {config.reference_images} images of {config.images})", t0, quiet)
        ref = load_reference_images(config.images, config.reference_images)
        disc = discover_curves(model, layer, reference_statistics(model, layer, ref))
        family, table = disc.family, disc.table
        family_source = "discovered in this run"
    else:
        family = load_catalog(model.spec)[f"{layer}/curves"]
        table = None
        family_source = f"packaged catalog ({family.meta.get('regenerate', '')})"
        _log(f"no --images: using the frozen {family.key} family from the catalog", t0, quiet)
    if len(family) == 0:
        raise ValueError(f"no curve units found in {layer}; nothing to ablate")
    _log(f"family {family.key}: {len(family)} units {list(family.units)}", t0, quiet)

    # 2. the edit
    plan = EditPlan([Ablate(family)], name=f"ablate-{layer}-curves")
    edited, record = plan.apply(model)
    _log(f"ablated: {record.num_changed} weights changed in {len(record.changed)} tensors", t0, quiet)

    # 3. tuning before/after
    orientations = [i * config.orientation_step for i in range(int(math.ceil(360 / config.orientation_step)))]
    stim = S.curves(orientations, config.radii, stroke_width=config.stroke_width)
    models = {"before": model, "after": edited}
    tuning = compare(models, family, stim, progress=progress)
    radial = radial_tuning(tuning)
    metrics_units = tuning_metrics(radial)
    pref = dict(zip([f"{layer}:{u}" for u in family.units], family.orientations or ()))
    downstream_family = None
    down_radial = None
    nxt = MIXED_LAYERS[MIXED_LAYERS.index(layer) + 1] if layer in MIXED_LAYERS[:-1] else None
    if config.downstream and nxt is not None:
        _log(f"measuring downstream {nxt} curve units before/after", t0, quiet)
        cat = load_catalog(model.spec)
        if f"{nxt}/curves" in cat:
            downstream_family = cat[f"{nxt}/curves"]
        elif config.images:
            ref_n = reference_statistics(model, nxt, ref)
            downstream_family = discover_curves(model, nxt, ref_n).family
        if downstream_family is not None and len(downstream_family):
            dt = compare(models, downstream_family, stim, progress=progress)
            tuning = pd.concat([tuning, dt], ignore_index=True)
            down_radial = radial_tuning(dt)
            metrics_units = pd.concat([metrics_units, tuning_metrics(down_radial)], ignore_index=True)
    _log("tuning measured", t0, quiet)

    # 4. classification
    cls_before = cls_after = None
    if config.images:
        from .sweep import evaluate_study_variants

        _log("classification before/after (one pass; the unedited prefix up to the edited layer is shared)", t0, quiet)
        res = evaluate_study_variants(models, {"before": None, "after": plan}, config.images, config.executor,
                                      batch_size=config.batch_size, device=config.device, limit=config.limit,
                                      num_workers=config.num_workers, progress=progress)
        cls_before, cls_after = res["before"], res["after"]

    # 5. report
    metrics: dict = {
        "checkpoint": model.spec.name,
        "layer": layer,
        "family": {"key": family.key, "units": list(family.units), "source": family_source,
                   "preferred_orientations": list(family.orientations or ())},
        "edit": {"weights_changed": record.num_changed, "tensors_changed": sorted(record.changed)},
        "classification": None,
    }
    if cls_before is not None:
        metrics["classification"] = {
            "n_images": cls_before.n_images, "n_skipped": cls_before.n_skipped,
            "top1_before": cls_before.top1, "top1_after": cls_after.top1,
            "top1_change": cls_after.top1 - cls_before.top1,
            "top5_before": cls_before.top5, "top5_after": cls_after.top5,
            "top5_change": cls_after.top5 - cls_before.top5,
        }
    mu = metrics_units.copy()
    fam_before = mu[(mu["variant"] == "before") & (mu["layer"] == layer)]
    metrics["family_tuning_before"] = {
        "median_peak": float(fam_before["peak"].median()),
        "median_selectivity": float(fam_before["selectivity"].median()),
        "median_echo_ratio": float(fam_before["echo_ratio"].median()),
    }
    metrics["wall_time_s"] = round(time.perf_counter() - t0, 1)

    with report_folder(out, overwrite) as tmp:
        write_yaml(tmp / "config.yaml", dataclasses.asdict(config))
        plan.save(tmp / "edit.json")
        write_json(tmp / "edit_record.json", record.to_dict())
        tuning.to_csv(tmp / "tuning.csv", index=False)
        units = mu
        if table is not None:
            extra = table.rename(columns={"index": "index"})[
                ["index", "branch", "curve_sigma", "line_sigma", "curve_line", "selectivity", "preferred_orientation"]
            ].rename(columns={"selectivity": "discovery_selectivity",
                              "preferred_orientation": "discovery_preferred_orientation"})
            extra = extra.assign(layer=layer)
            units = units.merge(extra, on=["layer", "index"], how="left")
        units.to_csv(tmp / "units.csv", index=False)
        plot_radial(radial, tmp / "radial_tuning.png", preferred=pref, variants=["before", "after"],
                    title=f"{model.spec.name} {family.key}: radial tuning before/after zero ablation",
                    notes={"after": "all ablated units are silent (response 0)"}
                    if float(radial[radial["variant"] == "after"]["response"].max()) == 0 else None)
        if down_radial is not None:
            dpref = {r["unit"]: r["preferred_orientation"] for _, r in mu[(mu["layer"] == downstream_family.layer)
                                                                         & (mu["variant"] == "before")].iterrows()}
            plot_radial(down_radial, tmp / "downstream_radial_tuning.png", variants=["before", "after"], preferred=dpref,
                        title=f"{downstream_family.key}: radial tuning before/after ablating {family.key}")
        if cls_before is not None:
            pb = cls_before.per_image.drop(columns=["top5"]).add_suffix("_before").rename(
                columns={"path_before": "path", "wnid_before": "wnid", "label_before": "label"})
            pa = cls_after.per_image[["path", "pred", "pred_wnid", "correct_top1", "correct_top5",
                                      "logit_label"]].add_suffix("_after")
            pa = pa.rename(columns={"path_after": "path"})
            pb.merge(pa, on="path").to_csv(tmp / "classification.csv", index=False)
            if cls_before.n_skipped:
                cls_before.skipped.to_csv(tmp / "skipped_images.csv", index=False)
        metrics["wall_time_s"] = round(time.perf_counter() - t0, 1)
        write_json(tmp / "metrics.json", metrics)
        (tmp / "summary.md").write_text(_summary(config, metrics, units, layer, downstream_family))
    _log(f"report written to {out}", t0, quiet)
    return metrics


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
        f"stroke {config.stroke_width} px (orientation convention: `studies.stimuli`).",
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
        ]
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
        for unit, r in piv.iterrows():
            ratio = r["after"] / r["before"] if r["before"] > 0 else float("nan")
            lines.append(f"- {unit}: {r['before']:.1f} → {r['after']:.1f} ({ratio:.0%})")
    lines += ["", f"Wall time: {m['wall_time_s']} s.", ""]
    return "\n".join(lines)

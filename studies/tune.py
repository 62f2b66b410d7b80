"""The ``circuits tune`` report: every tuning measure of some units, written to one report folder."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from circuits.model import InceptionV1
from circuits.units import resolve_units
from studies.measure import stimuli as S
from studies.measure.dataset import DatasetStats, check_layer_fits, rotation_tuning, unit_statistics
from studies.measure.images import list_images
from studies.measure.tuning import (
    angle_curve_summary,
    angle_vs_curve,
    best_stimulus,
    combing_index,
    curve_line_preference,
    joint_sweep,
    joint_tuning,
    radial_tuning,
    reference_stats,
    tuning_metrics,
)
from studies.report import plots
from studies.report.folder import MARKER, check_out_dir, report_folder, write_json
from studies.report.order import sort_units_df

#: below this many images the dataset statistics are flagged as a small sample
SMALL_SAMPLE = 100


def tune_report(
    model: InceptionV1,
    units,
    out,
    images=None,
    orientation_step: float = 5.0,
    radii: Sequence[float] = S.DEFAULT_RADII,
    stroke_width: float = 2.0,
    top_k: int = 8,
    limit: int | None = None,
    reference_images: int = 100,
    rotation_step: float = 10.0,
    overwrite: bool = False,
    log=print,
    labels: Sequence[str] | None = None,
    vis_steps: int = 0,
    progress: bool = True,
) -> dict:
    """Measure ``units`` and write a report folder ``out`` atomically
    (:func:`studies.report.folder.report_folder`); the ``circuits tune`` command.

    Always: ``joint.csv`` (orientation × radius, pre-ReLU; with images also σ), ``radial.csv``,
    ``units.csv`` (per unit: preferred orientation, tuning width, echo ratio, selectivity,
    best curve vs best line, combing index, angle/curve ratio; with images σ values and the
    dataset statistics), ``lines.csv``, ``combing.csv``, ``angles.csv``, ``radial.png``,
    ``radial_raw.png``, ``joint.png``, ``summary.json``, ``summary.md``, ``report.html``. With ``images`` also ``dataset_summary.csv``,
    ``histogram.csv``, ``top_examples.csv``, ``rotation.csv``, ``rotation_examples.csv``,
    ``histogram.png``, ``top_examples.png``, ``rotation.png``. Without ``images`` the σ units
    and the dataset statistics are skipped (and ``summary.json`` says so). With ``vis_steps`` > 0
    also ``featurevis.png`` (feature visualizations, labelled with the measured preferred
    orientation) and ``vis/<layer>_<index>.png`` (:mod:`studies.measure.featurevis`).

    Stimulus parameters, the units and ``out`` are checked before any compute.

    Returns:
        The ``summary.json`` content.
    """
    t0 = time.perf_counter()
    units = resolve_units(units, model.spec)
    ors = S.orientation_grid(orientation_step)
    S.curves(ors[:1], radii, stroke_width=stroke_width)  # validates radii / stroke before compute
    if rotation_step is not None and not 0 < float(rotation_step) <= 360:
        raise ValueError(f"rotation_step must be in (0, 360] deg; got {rotation_step}")
    if isinstance(vis_steps, bool) or not isinstance(vis_steps, int) or vis_steps < 0:
        raise ValueError(f"vis_steps must be an integer ≥ 0 (0: no feature visualizations); got {vis_steps!r}")
    check_out_dir(out, overwrite)
    files = list_images(images) if images is not None else None
    if files is not None:  # dataset examples are receptive-field crops: the layer must fit the 224 px crop
        for layer in dict.fromkeys(u.layer for u in units):
            check_layer_fits(model.spec, layer)
    summary: dict = dict(model=model.spec.name, units=[str(u) for u in units], targets=list(labels or []),
                         orientation_step=float(orientation_step), n_orientations=len(ors),
                         radii=[float(r) for r in radii], stroke_width=float(stroke_width),
                         responses="pre-ReLU, at the receptive-field centre (studies.measure.tuning.measure)")
    log(f"measuring {len(units)} unit(s) on {len(ors)} orientations × {len(radii)} radii + lines")
    t = _measure_tuning(model, units, images, orientation_step, radii, stroke_width, reference_images, summary, log)
    ds = rot = rot_ex = None
    if files is not None:
        ds, rot, rot_ex = _dataset_statistics(model, units, images, files, top_k, limit, rotation_step, summary, log,
                                              progress)
        dcols = ["mean", "std", "frac_positive", "tail_rate", "tail_rate_sigma"]
        key = ["unit", "layer", "index"]
        t["table"] = t["table"].merge(ds.summary[key + dcols].rename(columns={c: f"dataset_{c}" for c in dcols}),
                                      on=key)
    t["table"] = sort_units_df(t["table"], ["unit"])  # numeric order: 3b:9 before 3b:66 before 3b:195
    summary["per_unit"] = t["table"].to_dict(orient="records")
    vis = _feature_visualizations(model, units, vis_steps, summary, log) if vis_steps else None
    with report_folder(out, overwrite) as tmp:
        _write_tables_and_plots(tmp, model.spec.name, orientation_step, t, ds, rot, rot_ex)
        if vis is not None:
            _write_feature_visualizations(tmp, vis, t["metrics"], vis_steps)
        summary["wall_time_s"] = round(time.perf_counter() - t0, 1)
        summary["files"] = sorted(p.name for p in tmp.iterdir() if p.name != MARKER) + ["report.html", "summary.json",
                                                                                    "summary.md"]
        write_json(tmp / "summary.json", summary)
        _write_page(tmp, summary)
    return summary


def _feature_visualizations(model: InceptionV1, units, vis_steps: int, summary: dict, log) -> list:
    """Neuron feature visualizations of ``units`` (:mod:`studies.measure.featurevis`), recorded in ``summary``."""
    from studies.measure.featurevis import VisSettings, visualize_units

    log(f"feature visualizations ({vis_steps} steps)")
    vis = visualize_units(model, units, settings=VisSettings(steps=int(vis_steps)))
    summary["featurevis"] = dict(steps=int(vis_steps), objective="neuron at the RF centre, pre-ReLU",
                                 final_objective={str(v.unit): v.final for v in vis})
    return vis


def _write_feature_visualizations(tmp: Path, vis: list, metrics: pd.DataFrame, vis_steps: int) -> None:
    """``vis/<layer>_<index>.png`` and ``featurevis.png`` (sorted by measured preferred orientation)."""
    from studies.report import vis_plots

    (tmp / "vis").mkdir()
    for v in vis:
        vis_plots.save_png(v.image, tmp / "vis" / vis_plots.unit_file(v.unit))
    pref = dict(zip(metrics["unit"], metrics["preferred_orientation"]))
    ors = {v.unit: float(pref.get(str(v.unit), math.nan)) for v in vis}
    vis_plots.plot_family_grid([v.image for v in vis], [v.unit for v in vis], tmp / "featurevis.png", ors,
                               [v.final for v in vis], title=f"feature visualizations ({vis_steps} steps), "
                               "sorted by measured preferred orientation")


def _write_page(tmp, summary: dict) -> None:
    """``summary.md`` and ``report.html`` of :func:`tune_report`."""
    from studies.report.html import write_report

    lines = [f"# Tuning of {', '.join(summary['targets'] or summary['units'][:8])} ({summary['model']})", "",
             f"- Stimuli: {summary['n_orientations']} orientations ({summary['orientation_step']:g}° steps) × radii "
             f"{summary['radii']} px, stroke {summary['stroke_width']:g} px; responses {summary['responses']}.",
             f"- {summary.get('sigma') or summary.get('skipped', '')}"]
    if "dataset" in summary:
        d = summary["dataset"]
        lines.append(f"- Dataset statistics on {d['n_images']} images of `{d['images']}` ({d['skipped']} skipped).")
        if d["n_images"] < SMALL_SAMPLE:
            lines += ["", f"**Warning: small sample.** The histograms, tail fits and top examples rest on "
                      f"{d['n_images']} images; the top examples of {SMALL_SAMPLE}+ images differ."]
    lines += ["", "| unit | preferred ° | width ° | echo ratio | selectivity |", "|---|---|---|---|---|"]
    for r in summary["per_unit"]:
        lines.append(f"| {r['unit']} | {r['preferred_orientation']:.1f} | {r['tuning_width']:.0f} | "
                     f"{r['echo_ratio']:.2f} | {r['selectivity']:.2f} |")
    lines += ["", f"Wall time: {summary['wall_time_s']} s.", ""]
    (tmp / "summary.md").write_text("\n".join(lines))
    figs = [f for f in ("radial.png", "joint.png", "featurevis.png", "histogram.png", "top_examples.png", "rotation.png",
                        "radial_raw.png") if (tmp / f).is_file()]
    write_report(tmp, f"circuits tune: {summary['model']}", figures=figs,
                 tables={"Per unit (units.csv)": "units.csv"})


def _measure_tuning(model: InceptionV1, units, images, orientation_step: float, radii: Sequence[float],
                    stroke_width: float, reference_images: int, summary: dict, log) -> dict[str, pd.DataFrame]:
    """The synthetic-stimulus measures of :func:`tune_report`: ``{"sweep", "joint", "radial", "metrics",
    "combing", "angles", "table"}`` (``table``: one row per unit); σ units when ``images``."""
    sweep = joint_sweep(model, units, orientation_step, radii, stroke_width, lines=True)
    stats = None
    if images is not None:
        log(f"reference statistics: {reference_images} evenly spaced images of {images}")
        stats = reference_stats(model, units, images, reference_images)
        summary["sigma"] = (f"response_sigma = (response - mean) / std, mean and std of the unit's pre-ReLU "
                            f"activation over {reference_images} evenly spaced images of {images}, all spatial "
                            f"positions (studies.measure.statistics.reference_statistics)")
    else:
        msg = "no --images: skipping σ units and dataset statistics"
        log(msg)
        summary["skipped"] = msg
    joint = joint_tuning(sweep, stats)
    radial = radial_tuning(sweep)
    met = tuning_metrics(radial)
    clp = curve_line_preference(sweep, stats)
    best = best_stimulus(model, units, tuning=sweep, radii=radii, stroke_width=stroke_width)
    log("combing and angles at each unit's preferred orientation")
    comb = combing_index(model, units, best=best, stroke_width=stroke_width)
    av = angle_vs_curve(model, units, best=best, stroke_width=stroke_width)
    key = ["unit", "layer", "index"]
    table = met.merge(best[key + ["best_radius", "best_response"]], on=key)
    table = table.merge(clp.drop(columns=[c for c in ("preferred_orientation",) if c in clp.columns]), on=key)
    ci = comb.pivot_table(index=key, columns="side", values="combing_index").add_prefix("combing_index_")
    table = table.merge(ci.reset_index(), on=key)
    table = table.merge(angle_curve_summary(av)[key + ["angle_curve_ratio", "sharp_curve_ratio"]], on=key)
    return dict(sweep=sweep, joint=joint, radial=radial, metrics=met, combing=comb, angles=av, table=table)


def _dataset_statistics(model: InceptionV1, units, images, files, top_k: int, limit: int | None,
                        rotation_step: float | None, summary: dict, log, progress: bool = True
                        ) -> tuple[DatasetStats, pd.DataFrame | None, pd.DataFrame | None]:
    """Dataset statistics and rotation tuning of :func:`tune_report`: ``(stats, rotation, rotation examples)``."""
    n_files = min(len(files), limit) if limit else len(files)
    log(f"dataset statistics over {n_files} images (top {top_k} examples)")
    ds = unit_statistics(model, units, files, k=top_k, limit=limit, progress=progress)
    rot = rot_ex = None
    if rotation_step is not None:
        log(f"rotation tuning of the top examples ({rotation_step:g}° steps)")
        rot, rot_ex = rotation_tuning(model, ds, step=rotation_step)
    summary["dataset"] = dict(images=str(images), n_images=ds.n_images, skipped=len(ds.skipped), top_k=top_k,
                              interior_only=ds.interior_only)
    if ds.n_images < SMALL_SAMPLE:
        import sys

        print(f"circuits: warning: dataset statistics on only {ds.n_images} image(s) (histograms, tail fits and "
              f"top examples are unreliable below {SMALL_SAMPLE})", file=sys.stderr, flush=True)
    return ds, rot, rot_ex


def _write_tables_and_plots(tmp, model_name: str, orientation_step: float, t: dict[str, pd.DataFrame],
                            ds: DatasetStats | None, rot: pd.DataFrame | None, rot_ex: pd.DataFrame | None) -> None:
    """The CSV tables and PNG figures of :func:`tune_report` into the report folder ``tmp``."""
    t["joint"].to_csv(tmp / "joint.csv", index=False)
    t["radial"].to_csv(tmp / "radial.csv", index=False)
    t["table"].to_csv(tmp / "units.csv", index=False)
    sweep = t["sweep"]
    sweep[sweep["kind"] == "line"].to_csv(tmp / "lines.csv", index=False)
    t["combing"].to_csv(tmp / "combing.csv", index=False)
    t["angles"].to_csv(tmp / "angles.csv", index=False)
    met = t["metrics"]
    pref = dict(zip(met["unit"], met["preferred_orientation"]))
    for name, norm in (("radial.png", True), ("radial_raw.png", False)):
        plots.plot_radial(t["radial"], tmp / name, preferred=pref, normalise=norm,
                          title=f"{model_name}: radial tuning ({orientation_step:g}° bins)")
    plots.plot_joint(t["joint"], tmp / "joint.png", title=f"{model_name}: joint orientation × radius tuning")
    if ds is None:
        return
    ds.summary.to_csv(tmp / "dataset_summary.csv", index=False)
    ds.histogram.to_csv(tmp / "histogram.csv", index=False)
    ds.top.to_csv(tmp / "top_examples.csv", index=False)
    plots.plot_histogram(ds.histogram, ds.summary, tmp / "histogram.png",
                         title=f"pre-ReLU activations over {ds.n_images} images (all positions)")
    plots.plot_top_examples(ds.crops, ds.top, tmp / "top_examples.png")
    if rot is not None:
        rot.to_csv(tmp / "rotation.csv", index=False)
        rot_ex.to_csv(tmp / "rotation_examples.csv", index=False)
        plots.plot_rotation(rot, tmp / "rotation.png", title="joint tuning by rotation (top examples)")

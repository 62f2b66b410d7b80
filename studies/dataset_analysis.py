"""Dataset and attribution analysis of units (Curve Detectors figs. 3, 6-8, 12-13): the
``circuits dataset`` and ``circuits attribute`` reports. The measures are in
:mod:`studies.measure.activation_stats`, :mod:`studies.measure.attribution` and
:mod:`studies.measure.rotation`; the figures in :mod:`studies.report.dataset_plots`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch

from studies.report.html import write_report
from studies.report.provenance import run_provenance


# ============================================================================ dataset
def overlay_source(layer: str) -> str:
    """The layer range-example overlays attribute to: conv2d2 (56x56 positions: a map fine
    enough to show a curve inside the crop) for the mixed layers, else the previous layer."""
    from studies.measure.attribution import ATTRIBUTABLE, previous_layer

    return "conv2d2" if ATTRIBUTABLE.index(layer) > ATTRIBUTABLE.index("conv2d2") else previous_layer(layer)


def _overlays(model, unit: str, examples: pd.DataFrame, rf_size: int) -> dict[str, torch.Tensor]:
    """``{range: (n, rf, rf)}`` pixel attribution maps of each sampled example (to :func:`overlay_source`)."""
    from studies.measure.attribution import pixel_maps
    from studies.measure.dataset import _crop
    from studies.measure.images import load_image

    ex = examples[examples["unit"] == unit].reset_index(drop=True)
    if ex.empty:
        return {}
    imgs = torch.stack([load_image(p) for p in ex["path"]])
    maps = pixel_maps(model, unit, imgs, ex["row"].tolist(), ex["col"].tolist(), overlay_source(unit.split(":")[0]))
    zero = torch.zeros(3, 1, 1)
    crops = [_crop(m.expand(3, -1, -1), x, y, rf_size, zero)[0] for m, x, y in zip(maps, ex["x"], ex["y"])]
    out: dict[str, list] = {}
    for r, c in zip(ex["range"], crops):
        out.setdefault(r, []).append(c)
    return {r: torch.stack(v) for r, v in out.items()}


def _unit_figures(model, u, rep, stats, folder: Path, overlays: bool, flow_fams: list) -> None:
    """``<unit>_distribution.png``, ``<unit>_ranges.png`` and (with ``flow_fams``) ``<unit>_flow.png``."""
    from circuits.geometry import receptive_field
    from studies.measure.attribution import family_flow
    from studies.measure.images import load_image
    from studies.report import dataset_plots as P

    name, stem = str(u), u.short.replace(":", "_")
    row = rep.summary.set_index("unit").loc[name].copy()
    row["unit"] = name
    P.plot_distribution(rep.expected_value[rep.expected_value["unit"] == name], row,
                        folder / f"{stem}_distribution.png")
    ov = _overlays(model, name, rep.examples, receptive_field(model.spec, u.layer, 224).size) if overlays else None
    P.plot_range_grid(rep.ranges, rep.examples, rep.crops[name], name, ov, folder / f"{stem}_ranges.png",
                      overlay_source(u.layer))
    if flow_fams:
        top = stats.top[stats.top["unit"] == name].sort_values("rank")
        img = load_image(top["path"].iloc[0])
        P.plot_attribution_flow(img, family_flow(model, u, img, flow_fams), name, folder / f"{stem}_flow.png")


def run_dataset(model, targets: list[str], images, out, limit: int | None = None, seed: int = 0, k: int = 8,
                top_k: int = 8, ranges=None, batch_size: int = 32, rotation_step: float = 10.0,
                overlays: bool = True, flow: bool = True, overwrite: bool = False, quiet: bool = False) -> dict:
    """The whole analysis into ``out`` (atomically). Files: ``summary.csv`` (sparsity, mean,
    E[max(x,0)], expected-value shares, tail fit), ``histogram.csv``, ``expected_value.csv``,
    ``ranges.csv``, ``range_examples.csv``, ``top_examples.csv``, ``rotation.csv``;
    with a family also ``family_rotation.csv``, ``family_rotation_neighbours.csv``,
    ``family_rotation.png``; figures ``sparsity.png``, ``units/<unit>_distribution.png``,
    ``units/<unit>_ranges.png``, ``units/<unit>_flow.png`` (attribution of the unit on its
    top example to the conv2d2/3a/3b curve families); ``run.json`` (settings, timings).

    Raises:
        KeyError / IndexError / ValueError / FileNotFoundError: bad targets, ranges, folder.
    """
    from circuits.catalog import catalog
    from circuits.units import resolve_targets
    from studies.measure.activation_stats import DEFAULT_RANGES, ActivationObserver, finish
    from studies.measure.attribution import ATTRIBUTABLE
    from studies.measure.dataset import dataset_files, rotation_tuning, unit_statistics
    from studies.measure.images import report_skipped
    from studies.measure.rotation import family_rotation_tuning, neighbour_average
    from studies.report import dataset_plots as P
    from studies.report.folder import check_out_dir, log_step, report_folder, write_json

    t0 = time.perf_counter()
    units, labels = resolve_targets(targets, model.spec)
    layers = {u.layer for u in units}
    if len(layers) != 1:
        raise ValueError(f"give units of one layer (got {', '.join(sorted(layers))})")
    cat = catalog(model)
    fams = [cat[lab] for lab in labels if "/" in lab]
    files, too_small = dataset_files(model.spec, sorted(layers), images, limit)
    check_out_dir(out, overwrite)
    report_skipped(images, too_small, "are too small for the dataset analysis")
    obs = ActivationObserver(model, ranges or DEFAULT_RANGES, k=k, seed=seed)
    log_step(f"dataset pass over {len(files)} images ({len(units)} units)", t0, quiet)
    stats = unit_statistics(model, units, files, k=top_k, batch_size=batch_size, observers=[obs],
                            progress=not quiet and sys.stderr.isatty())
    t_pass = time.perf_counter() - t0
    report_skipped(images, stats.skipped, "could not be decoded")
    rep = finish(obs, stats, files, model)
    log_step("rotation tuning of the top examples", t0, quiet)
    rot, _ = rotation_tuning(model, stats, step=rotation_step)
    fam_rot = family_rotation_tuning(model, stats, fams[0], rotation_step) if fams else None
    layer = units[0].layer
    flow_fams = [cat[f"{lay}/curves"] for lay in ATTRIBUTABLE[:ATTRIBUTABLE.index(layer) + 1]
                 if f"{lay}/curves" in cat and lay in ("conv2d2", "mixed3a", "mixed3b", layer)]
    with report_folder(out, overwrite) as tmp:
        (tmp / "units").mkdir()
        rep.summary.to_csv(tmp / "summary.csv", index=False)
        stats.histogram.to_csv(tmp / "histogram.csv", index=False)
        rep.expected_value.to_csv(tmp / "expected_value.csv", index=False)
        rep.ranges.to_csv(tmp / "ranges.csv", index=False)
        rep.examples.to_csv(tmp / "range_examples.csv", index=False)
        stats.top.to_csv(tmp / "top_examples.csv", index=False)
        rot.to_csv(tmp / "rotation.csv", index=False)
        P.plot_sparsity(rep.summary, tmp / "sparsity.png", title=f"Sparsity over {stats.n_images} images")
        if fam_rot is not None:
            fam_rot.to_csv(tmp / "family_rotation.csv", index=False)
            nb = neighbour_average(fam_rot) if fams[0].orientations else None
            if nb is not None:
                nb.to_csv(tmp / "family_rotation_neighbours.csv", index=False)
            P.plot_family_rotation(fam_rot, nb, tmp / "family_rotation.png")
        log_step("figures per unit", t0, quiet)
        for u in units:
            _unit_figures(model, u, rep, stats, tmp / "units", overlays, flow_fams if flow else [])
        summary = dict(targets=list(targets), checkpoint=model.spec.name, images=str(images), n_images=stats.n_images,
                       skipped=too_small + stats.skipped, seed=seed, k=k, top_k=top_k, rotation_step=rotation_step,
                       ranges=[dict(label=r.label, lo=r.lo, hi=r.hi, kind=r.kind) for r in obs.ranges],
                       pass_s=round(t_pass, 1), pass_images_per_s=round(stats.n_images / t_pass, 2),
                       wall_time_s=round(time.perf_counter() - t0, 1), provenance=run_provenance(model, seed=seed))
        write_json(tmp / "run.json", summary)
        cmd = (f"circuits dataset {' '.join(targets)} --images {images} --out {out} --seed {seed}"
               + (f" --limit {limit}" if limit else ""))
        comparison_table(rep.summary, model.spec.name, stats.n_images, cmd).to_csv(tmp / "comparison.csv", index=False)
        write_report(tmp, f"Dataset analysis: {model.spec.name}")
    return dict(summary=rep.summary, **summary)


#: Curve Detectors' dataset numbers for Lucid's 3b:379 (section "Dataset Analysis"; figs. 3, 12)
ARTICLE_379 = dict(unit="3b:379 (Lucid inceptionv1, Curve Detectors)", checkpoint="inceptionv1", n_images="",
                   frac_active_pct="≈ 10-11", frac_images_active_pct="", pre_mean="≈ -200", pre_std="",
                   tail="exponential (straight on a log-probability plot)", tail_rate_per_sigma="", tail_r2="",
                   ev_share_top1_pct="", ev_share_top01_pct="",
                   ev_share_note="≥ 55 % from curves + imperfect curves (hand labels, not public)",
                   command="(article)")


def comparison_table(summary: pd.DataFrame, checkpoint: str, n_images: int, command: str) -> pd.DataFrame:
    """The article's 3b:379 row, then one row per unit of ``summary`` (``ActivationReport.summary``):
    sparsity (% of positions and of images active), pre-ReLU mean/std, tail rate (per σ) and
    fit R², share of E[max(x, 0)] from the top 1 % / 0.1 % of (image, position) pairs, and
    the command that regenerates it."""
    rows = [ARTICLE_379]
    for r in summary.itertuples():
        rows.append(dict(unit=r.unit, checkpoint=checkpoint, n_images=n_images,
                         frac_active_pct=round(100 * r.frac_active, 2),
                         frac_images_active_pct=round(100 * r.frac_images_active, 1), pre_mean=round(r.mean, 1),
                         pre_std=round(r.std, 1), tail="exponential fit of x > 0",
                         tail_rate_per_sigma=round(r.tail_rate_sigma, 2), tail_r2=round(r.tail_r2, 3),
                         ev_share_top1_pct=round(100 * r.ev_share_top1, 1),
                         ev_share_top01_pct=round(100 * summary.loc[r.Index, "ev_share_top0.1"], 1),
                         ev_share_note="top activation bins (no labels)", command=command))
    return pd.DataFrame(rows)


# ============================================================================ attribute
def run_attribute(model, unit: str, image, out, positions: str = "active", overwrite: bool = False,
                  vis_steps: int = 0, seed: int = 0) -> dict:
    """One image: ``attribution.csv`` (per source channel: attribution summed over positions,
    for the previous layer and for each earlier curve-family layer, with family labels),
    ``families.csv`` (per family: total and share), ``flow.png`` and ``run.json``; with
    ``vis_steps`` > 0 also ``attribution_vis.png``: a feature visualization of the attribution
    vector to the previous layer used as a direction objective (Curve Detectors fig. 8: what in
    that layer drives the unit on this image), seeded with ``seed``."""
    from circuits.catalog import catalog
    from circuits.units import resolve_targets
    from studies.measure.attribution import ATTRIBUTABLE, attribute, family_flow, previous_layer
    from studies.measure.images import load_image
    from studies.report import dataset_plots as P
    from studies.report.folder import check_out_dir, report_folder, write_json

    units, _ = resolve_targets([unit], model.spec)
    if len(units) != 1:
        raise ValueError(f"attribute takes one unit; got {len(units)}")
    u = units[0]
    if u.layer not in ATTRIBUTABLE or u.layer == "conv2d0":
        raise ValueError(f"cannot attribute {u}: layer must be one of {', '.join(ATTRIBUTABLE[1:])}")
    check_out_dir(out, overwrite)
    img = load_image(image)
    cat = catalog(model)
    fams = {lay: cat[f"{lay}/curves"] for lay in ATTRIBUTABLE if f"{lay}/curves" in cat}
    early = [lay for lay in ("conv2d2", "mixed3a", "mixed3b") if lay in fams
             and ATTRIBUTABLE.index(lay) <= ATTRIBUTABLE.index(u.layer)]
    srcs = list(dict.fromkeys([previous_layer(u.layer)] + [lay for lay in early if lay != u.layer]))
    rows, totals, vectors = [], [], {}
    for src in srcs:
        att = attribute(model, u, img, src, positions)
        vec = vectors[src] = att.vector()[0]
        member = {c: fams[src].key for c in fams[src].units} if src in fams else {}
        rows += [dict(unit=str(u), src=src, channel=c, attribution=float(v), family=member.get(c, ""))
                 for c, v in enumerate(vec.tolist())]
        totals.append(dict(unit=str(u), src=src, target=float(att.target[0]), bias_terms=float(att.bias_terms[0]),
                           attribution_sum=float(vec.sum()), pre_max=float(att.pre.max())))
    fl = family_flow(model, u, img, [fams[lay] for lay in early], positions) if early else []
    vis = _attribution_vis(model, srcs[0], vectors[srcs[0]], vis_steps, seed) if vis_steps else None
    with report_folder(out, overwrite) as tmp:
        if vis is not None:
            P.plot_attribution_vis(img, vis.images[0], str(u), srcs[0], float(vis.final[0]), tmp / "attribution_vis.png")
        pd.DataFrame(rows).to_csv(tmp / "attribution.csv", index=False)
        pd.DataFrame(totals).to_csv(tmp / "totals.csv", index=False)
        pd.DataFrame([{k: v for k, v in f.items() if k not in ("activation", "attribution")} for f in fl]).to_csv(
            tmp / "families.csv", index=False)
        if fl:
            P.plot_attribution_flow(img, fl, str(u), tmp / "flow.png")
        write_json(tmp / "run.json", dict(unit=str(u), image=str(image), positions=positions, method="gated",
                                          target="Σ over the attributed positions of mask·(pre-activation − bias)",
                                          provenance=run_provenance(model, seed=seed),
                                          checkpoint=model.spec.name))
        write_report(tmp, f"Attribution of {u}: {model.spec.name}")
    s = dict(totals=totals, families=[{k: v for k, v in f.items() if k not in ("activation", "attribution")}
                                      for f in fl])
    if vis is not None:
        s["attribution_vis"] = dict(layer=srcs[0], steps=vis_steps, seed=seed, objective=float(vis.final[0]))
    return s


def _attribution_vis(model, layer: str, vector: torch.Tensor, steps: int, seed: int):
    """Feature visualization (:mod:`studies.measure.featurevis`) of ``vector`` ``(units of
    layer,)`` as a direction objective, pre-ReLU, averaged over positions (Lucid's ``direction``)."""
    from studies.measure.featurevis import VisSettings, direction, render

    return render(model, direction(layer, vector, pre_relu=True), settings=VisSettings(steps=steps, seed=seed))



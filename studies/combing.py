"""Combing: measure it, find the pathways that carry it, prune them (CLI: ``circuits study combing``).

Curve Detectors reports that curve detectors are excited by short lines perpendicular to the
curve ("combing") and proposes removing that by editing the circuit; nobody has published the
edit. This study does it, on the curve units of mixed3a and mixed3b (packaged catalog):

(a) **Combing index** (:func:`studies.measure.tuning.combing_index`): at each unit's preferred
    orientation and best radius (:func:`studies.measure.tuning.best_stimulus`, from a plain-curve
    sweep), response(combed curve) / response(same plain curve), pre-ReLU, at the
    receptive-field centre (:func:`circuits.geometry.measurement_window`). Combs: teeth of
    ``length_px`` on each side (``side="both"``; inward/outward also reported), one every
    ``spacing_px`` of arc length, stroke ``stroke_width`` (defaults 8 / 8 / 2 px, as in
    ``tests/reference_bvlc.csv``). > 1 means combing excites the unit.
(b) **Attribution of the difference** (combed − plain) to the units of the previous layer
    (the block's input: conv2d2 after LRN and max-pool for mixed3a, mixed3a for mixed3b):
    ``attr[s] = Σ_w K[d, s, w] · x[s, p − 2 + w]`` with ``K`` the block's expanded kernel
    (:func:`circuits.expanded.block_kernel`) and ``x`` the block input at the unit's 5x5
    window. For a 1x1-branch unit this is exact: Σ_s attr[s] + bias = pre-activation (the
    difference has no bias). For 3x3/5x5-branch units it is the linear approximation through
    the bottleneck (its ReLU and bias are dropped); the residual
    ``pre_diff − Σ attr_diff`` is reported per unit. Sources are ranked per unit and grouped by
    the catalog families of the previous layer (plus ``other``).
(c) **Edit**: for each unit, the ``top_pathways`` sources with the largest positive attribution
    to the difference (or the fewest whose positive attribution reaches ``share`` of the total
    positive attribution) are cut with :class:`edits.PrunePathway` (exact: only that unit
    stops receiving those sources). Re-measured: the combing index (same stimuli), the plain
    tuning (peak, preferred orientation, width), and top-1/top-5 (with ``--images``).
(d) **Attribution maps**: grad × (input − baseline) of a curve unit before/after, on a synthetic
    combed curve (baseline white; the share of |attribution| on the teeth is quantified) and,
    with ``--images``, on the real images where the edited mixed3b curve units fire most
    (baseline the image's mean colour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from circuits.catalog import load_catalog
from circuits.expanded import block_kernel
from circuits.geometry import measurement_window
from circuits.names import hook_name
from edits import EditPlan, PrunePathway
from studies.base import Opening, StudyConfig, open_study
from studies.measure import stimuli as S
from studies.measure.tuning import best_stimulus, combing_index, compare, radial_tuning, tuning_metrics
from studies.report.folder import report_folder, write_json
from studies.report.html import write_report
from studies.report.order import sort_units_df
from studies.report.provenance import write_config
from studies.run.sweep import evaluate_study_variants

#: Layers this study handles and the activation that feeds each block (its input).
BLOCK_INPUT = {"mixed3a": ("maxpool1", "conv2d2"), "mixed3b": ("mixed3a", "mixed3a")}
SIDES = ("both", "inward", "outward")


@dataclass
class CombingConfig(StudyConfig):
    """Settings (saved as ``config.yaml``); the common fields are :class:`~studies.base.StudyConfig`'s
    (``images``: labelled image folder for classification and the real-image maps).

    Attributes:
        units: curve units to study (default: catalog ``mixed3a/curves`` + ``mixed3b/curves``).
        top_pathways: sources pruned per unit (ignored when ``share`` is set).
        share: prune the fewest top sources whose positive attribution reaches this share.
        spacing_px, length_px, stroke_width: combing stimulus (px).
        orientation_step, radii: plain-curve tuning grid.
        map_images: images scanned for the real-image attribution maps; n_maps: maps shown.
    """

    units: list[str] | None = None
    top_pathways: int = 8
    share: float | None = None
    spacing_px: float = 8.0
    length_px: float = 8.0
    stroke_width: float = 2.0
    orientation_step: float = 10.0
    radii: list[float] = field(default_factory=lambda: list(S.DEFAULT_RADII))
    map_images: int = 64
    n_maps: int = 3

    def check(self) -> None:
        super().check()
        if self.units:
            self.check_refs("--units", self.units)
        if self.share is not None and not 0 < self.share <= 1:
            raise ValueError(f"--share must be in (0, 1], got {self.share}")
        if self.top_pathways < 1:
            raise ValueError(f"--top-pathways must be ≥ 1, got {self.top_pathways}")
        for side in SIDES:
            S.combed_curves([0], [10], side, self.spacing_px, self.length_px, self.stroke_width)



# ----------------------------------------------------------------------------- attribution
def unit_bias(model, layer: str, index: int) -> float:
    """Bias of the branch convolution that writes ``layer:index``."""
    branch = model.spec.branch_of(layer, index)
    lo, _ = model.spec.block(layer).branch_offsets()[branch]
    return float(model.block(layer).unit(branch).conv.bias[index - lo])


@torch.no_grad()
def attribute(model, layer: str, index: int, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Attribution of ``layer:index``'s pre-activation at the measurement position to the block input.

    Args:
        images: ``(n, 3, size, size)`` rendered at :func:`measurement_window` of ``layer``.

    Returns:
        ``(attr (n, C_in), pre (n,))``: per source unit, Σ over the 5x5 offsets of expanded
        weight × block-input activation; and the true pre-ReLU activation.
    """
    src, _ = BLOCK_INPUT[layer]
    _, pos, _ = measurement_window(model.spec, layer)
    name = hook_name(layer, pre_relu=True)
    acts = model.run(images, [src, name])
    x = acts[src][:, :, pos - 2:pos + 3, pos - 2:pos + 3].double()
    k = block_kernel(model, layer, [index], dtype=torch.float64)[0]
    attr = (x * k).sum((-1, -2))
    return attr.numpy(), acts[name][:, index, pos, pos].double().numpy()


def _families(cat, layer: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for fam in cat.in_layer(layer):
        for u in fam.units:
            out.setdefault(int(u), fam.key)
    return out


def _select(g: pd.DataFrame, top: int, share: float | None) -> list[int]:
    pos = g[g["attr_diff"] > 0].sort_values("attr_diff", ascending=False)
    if share is None:
        return pos["source_index"].head(top).astype(int).tolist()
    cum = pos["attr_diff"].cumsum() / pos["attr_diff"].sum() if len(pos) else pos["attr_diff"]
    n = int((cum < share).sum()) + 1 if len(pos) else 0
    return pos["source_index"].head(n).astype(int).tolist()


# ----------------------------------------------------------------------------- maps
def grad_x_input(model, img: torch.Tensor, layer: str, index: int, yx: tuple[int, int],
                 baseline: torch.Tensor) -> tuple[np.ndarray, float]:
    """``Σ_c ∂pre/∂x · (x − baseline)`` for the pre-ReLU of ``layer:index`` at ``yx``; and that pre-ReLU."""
    x = img.clone().unsqueeze(0).requires_grad_(True)
    name = hook_name(layer, pre_relu=True)
    with torch.enable_grad(), model.capture([name]) as cap:  # model.run is no_grad
        model.forward(x, stop_at=model.stage_of(name))
        a = cap[name][0, index, yx[0], yx[1]]
        (g,) = torch.autograd.grad(a, x)
    return (g[0] * (img - baseline.view(3, 1, 1))).sum(0).detach().numpy(), float(a.detach())


# ----------------------------------------------------------------------------- the study
def run_combing(config: CombingConfig, out: str | Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Run the study and write the report folder ``out`` (atomically). Returns ``metrics.json``'s dict.

    Raises:
        ReportExistsError: ``out`` non-empty and not ``overwrite`` (checked before any compute).
        ValueError / FileNotFoundError: bad settings or image folder.
    """
    op = open_study(config, out, overwrite, progress)
    config, model = op.config, op.model
    cat = load_catalog(model.spec)
    units = cat.resolve(list(config.units) if config.units else ["mixed3a/curves", "mixed3b/curves"])
    bad = [str(u) for u in units if u.layer not in BLOCK_INPUT]
    if bad:
        raise ValueError(f"combing study handles mixed3a/mixed3b units only; got {bad}")
    op.log(f"{model.spec.name}: {len(units)} curve units")
    before = _measure_before(op, units)  # (a)
    pw, checks = _attribute_combing(op, cat, units, before["best"])  # (b)
    plan, pruned, pw = _prune_plan(pw, config)  # (c)
    edited, record = plan.apply(model)
    op.log(f"pruned {sum(map(len, pruned.values()))} pathways into {len(plan)} units")
    tun_after = compare({"after": edited}, units, before["plain_stim"])
    comb_after = combing_index(edited, units, **before["ci_kw"])
    met = tuning_metrics(radial_tuning(pd.concat([before["tuning"], tun_after], ignore_index=True)))
    op.log("re-measured after the edit")
    cls = _classification(op, edited, plan, progress) if config.images else None
    maps = _maps(model, edited, config, units, before["best"], pruned)  # (d)
    op.log("attribution maps done")
    results = _tidy_results(before["combing"], comb_after, met)
    per_unit = _per_unit_table(results, units, model, pruned)
    metrics = _metrics(model, config, per_unit, checks, cls, record, pruned, pw, maps)
    metrics["wall_time_s"] = op.elapsed()
    with report_folder(out, overwrite) as tmp:
        metrics["provenance"] = _write_report(tmp, config, model, plan, results, pw, checks, per_unit, maps)
        metrics["wall_time_s"] = op.elapsed()
        write_json(tmp / "metrics.json", metrics)
        summary = _summary(config, metrics, per_unit, pw)
        (tmp / "summary.md").write_text(summary)
        fam_tab = (pw[pw["pruned"]].groupby(["layer", "source_family"]).size().rename("n_pruned").reset_index())
        write_report(tmp, f"Combing edit: {model.spec.name}", summary,
                     figures=[f for f in ("combing_before_after.png", "attribution_maps.png") if (tmp / f).is_file()],
                     tables={"Per unit (units.csv)": "units.csv", "Pruned pathways by source family": fam_tab,
                             "Pruned pathways": sort_units_df(pw[pw["pruned"]])})
    op.log(f"report written to {out}")
    return metrics


def _measure_before(op: Opening, units) -> dict:
    """(a) plain tuning, best stimulus and combing index of the unedited model:
    ``{"plain_stim", "tuning", "best", "ci_kw", "combing"}``."""
    config, model = op.config, op.model
    ors = S.orientation_grid(config.orientation_step)
    plain_stim = S.curves(ors, config.radii, stroke_width=config.stroke_width)
    tun_before = compare({"before": model}, units, plain_stim)
    best = best_stimulus(model, units, tuning=tun_before.drop(columns="variant"), radii=config.radii,
                         stroke_width=config.stroke_width)
    ci_kw = dict(best=best, sides=SIDES, spacing_px=config.spacing_px, length_px=config.length_px,
                 stroke_width=config.stroke_width)
    comb_before = combing_index(model, units, **ci_kw)
    op.log("combing index before measured")
    return dict(plain_stim=plain_stim, tuning=tun_before, best=best, ci_kw=ci_kw, combing=comb_before)


def _attribute_combing(op: Opening, cat, units, best: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(b) attribution of (combed − plain) to the block input, per unit and source:
    ``(pathways table, per-unit check of the attribution against the true pre-activation)``."""
    config, model = op.config, op.model
    fam_of = {layer: _families(cat, BLOCK_INPUT[layer][1]) for layer in BLOCK_INPUT}
    rows, checks = [], []
    for u in units:
        b = best.set_index("unit").loc[str(u)]
        o = [0.0 if math.isnan(b["preferred_orientation"]) else float(b["preferred_orientation"])]
        r = [float(b["best_radius"])]
        st = (S.curves(o, r, stroke_width=config.stroke_width)
              + S.combed_curves(o, r, "both", config.spacing_px, config.length_px, config.stroke_width))
        size, _, center = measurement_window(model.spec, u.layer)
        attr, pre = attribute(model, u.layer, u.index, st.at(size, center).render())
        diff = attr[1] - attr[0]
        bias = unit_bias(model, u.layer, u.index)
        branch = model.spec.branch_of(u.layer, u.index)
        checks.append(dict(unit=str(u), branch=branch, pre_plain=pre[0], pre_combed=pre[1],
                           pre_diff=pre[1] - pre[0], attr_diff_sum=diff.sum(), bias=bias,
                           attr_plain_sum_plus_bias=attr[0].sum() + bias,
                           residual=(pre[1] - pre[0]) - diff.sum(), exact=branch == "1x1"))
        src_layer = BLOCK_INPUT[u.layer][1]
        for s in range(attr.shape[1]):
            rows.append(dict(unit=str(u), layer=u.layer, index=u.index, branch=branch, source_layer=src_layer,
                             source_index=s, source=f"{src_layer}:{s}",
                             source_family=fam_of[u.layer].get(s, "other"),
                             attr_plain=attr[0, s], attr_combed=attr[1, s], attr_diff=diff[s]))
    pw = pd.DataFrame(rows)
    checks = pd.DataFrame(checks)
    op.log("attribution done")
    return pw, checks



def _prune_plan(pw: pd.DataFrame, config: CombingConfig) -> tuple[EditPlan, dict[str, list[int]], pd.DataFrame]:
    """(c) one PrunePathway per unit for its top sources. Returns ``(plan, {unit: pruned source
    indices}, pw ranked per unit with a ``pruned`` column)``."""
    pruned: dict[str, list[int]] = {}
    edits_list = []
    for unit, g in pw.groupby("unit", sort=False):
        sel = _select(g, config.top_pathways, config.share)
        pruned[unit] = sel
        if sel:
            src_layer = g["source_layer"].iloc[0]
            edits_list.append(PrunePathway(src=[f"{src_layer}:{s}" for s in sel], dst=unit))
    pw["rank"] = pw.groupby("unit")["attr_diff"].rank(ascending=False, method="first").astype(int)
    pw["pruned"] = [s in pruned.get(u, []) for u, s in zip(pw["unit"], pw["source_index"])]
    pw = pw.sort_values(["unit", "rank"]).reset_index(drop=True)
    if not edits_list:
        raise ValueError("no source has a positive attribution to combing for any unit; nothing to prune")
    return EditPlan(edits_list, name="prune-combing-pathways"), pruned, pw


def _classification(op: Opening, edited, plan: EditPlan, progress: bool) -> dict:
    """Top-1/top-5 before/after on the images (one pass, shared prefix)."""
    config = op.config
    res = evaluate_study_variants({"before": op.model, "after": edited}, {"before": None, "after": plan},
                                  config.images, config.executor, batch_size=config.batch_size,
                                  device=config.device, limit=config.limit, num_workers=config.num_workers,
                                  progress=progress)
    cb, ca = res["before"], res["after"]
    op.log("classification done")
    return dict(n_images=cb.n_images, top1_before=cb.top1, top1_after=ca.top1, top1_change=ca.top1 - cb.top1,
                top5_before=cb.top5, top5_after=ca.top5, top5_change=ca.top5 - cb.top5)


def _tidy_results(comb_before: pd.DataFrame, comb_after: pd.DataFrame, met: pd.DataFrame) -> pd.DataFrame:
    """``results.csv``: one row per (unit, variant, measure)."""
    res_rows = []
    for variant, cdf in (("before", comb_before), ("after", comb_after)):
        for _, r in cdf.iterrows():
            for m in ("combing_index", "teeth_index", "combed", "plain"):
                res_rows.append(dict(unit=r["unit"], layer=r["layer"], index=r["index"], variant=variant,
                                     measure=f"{m}_{r['side']}" if m != "plain" else "plain_best",
                                     value=r[m]))
    for _, r in met.iterrows():
        for m in ("peak", "preferred_orientation", "tuning_width", "selectivity"):
            res_rows.append(dict(unit=r["unit"], layer=r["layer"], index=r["index"], variant=r["variant"],
                                 measure=m, value=r[m]))
    return pd.DataFrame(res_rows).drop_duplicates(["unit", "variant", "measure"]).reset_index(drop=True)


def _write_report(tmp: Path, config: CombingConfig, model, plan: EditPlan, results, pw, checks, per_unit,
                  maps) -> dict:
    """Every file of the report but ``metrics.json``, ``summary.md`` and ``report.html``; returns the provenance."""
    prov = write_config(tmp / "config.yaml", "combing", config, model)
    plan.save(tmp / "plan.json")
    results.to_csv(tmp / "results.csv", index=False)
    pw.to_csv(tmp / "pathways.csv", index=False)
    checks.to_csv(tmp / "attribution_check.csv", index=False)
    sort_units_df(per_unit).to_csv(tmp / "units.csv", index=False)
    if maps["table"] is not None:
        maps["table"].to_csv(tmp / "attribution_maps.csv", index=False)
    _plot_combing(per_unit, tmp / "combing_before_after.png", model.spec.name)
    _plot_maps(maps["panels"], tmp / "attribution_maps.png")
    return prov


def _per_unit_table(results: pd.DataFrame, units, model, pruned) -> pd.DataFrame:
    piv = results.pivot_table(index="unit", columns=["measure", "variant"], values="value", aggfunc="first")
    rows = []
    for u in units:
        n = str(u)

        def g(m, v, n=n):
            try:
                return float(piv.loc[n, (m, v)])
            except KeyError:
                return float("nan")

        pb, pa = g("preferred_orientation", "before"), g("preferred_orientation", "after")
        rows.append(dict(
            unit=n, layer=u.layer, index=u.index, branch=model.spec.branch_of(u.layer, u.index),
            n_pruned=len(pruned.get(n, [])),
            combing_before=g("combing_index_both", "before"), combing_after=g("combing_index_both", "after"),
            inward_before=g("combing_index_inward", "before"), inward_after=g("combing_index_inward", "after"),
            outward_before=g("combing_index_outward", "before"), outward_after=g("combing_index_outward", "after"),
            plain_before=g("plain_best", "before"), plain_after=g("plain_best", "after"),
            peak_before=g("peak", "before"), peak_after=g("peak", "after"),
            pref_before=pb, pref_after=pa,
            pref_shift=abs((pa - pb + 180) % 360 - 180),
            width_before=g("tuning_width", "before"), width_after=g("tuning_width", "after")))
    return pd.DataFrame(rows)


def _metrics(model, config, pu, checks, cls, record, pruned, pw, maps) -> dict:
    def med(c):
        return float(np.nanmedian(pu[c])) if len(pu) else float("nan")

    by_layer = {}
    for layer, g in pu.groupby("layer"):
        by_layer[layer] = dict(
            n_units=len(g),
            median_combing_before=float(np.nanmedian(g["combing_before"])),
            median_combing_after=float(np.nanmedian(g["combing_after"])),
            n_combing_above_1_before=int((g["combing_before"] > 1).sum()),
            n_combing_above_1_after=int((g["combing_after"] > 1).sum()),
            n_combing_fell=int((g["combing_after"] < g["combing_before"]).sum()),
            median_peak_ratio=float(np.nanmedian(g["peak_after"] / g["peak_before"])),
            median_pref_shift_deg=float(np.nanmedian(g["pref_shift"])),
            median_width_change_deg=float(np.nanmedian(g["width_after"] - g["width_before"])))
    exact = checks[checks["exact"]]
    fams = pw[pw["pruned"]].groupby(["layer", "source_family"]).size()
    return {
        "checkpoint": model.spec.name,
        "stimulus": {"side": "both (also inward, outward)", "spacing_px": config.spacing_px,
                     "length_px": config.length_px, "stroke_width": config.stroke_width,
                     "orientation_step": config.orientation_step, "radii": list(config.radii)},
        "units": list(pu["unit"]),
        "selection": {"top_pathways": None if config.share is not None else config.top_pathways,
                      "share": config.share},
        "pruned": pruned,
        "pruned_by_family": {f"{a}|{b}": int(n) for (a, b), n in fams.items()},
        "edit": {"weights_changed": record.num_changed, "tensors_changed": sorted(record.changed)},
        "median_combing_before": med("combing_before"), "median_combing_after": med("combing_after"),
        "by_layer": by_layer,
        "attribution_check": {
            "n_exact_units": int(len(exact)),
            "max_abs_residual_exact": float(exact["residual"].abs().max()) if len(exact) else None,
            "median_abs_rel_residual_bottleneck": float(np.nanmedian(
                (checks.loc[~checks["exact"], "residual"].abs()
                 / checks.loc[~checks["exact"], "pre_diff"].abs().clip(lower=1e-6)))) if (~checks["exact"]).any()
            else None},
        "classification": cls,
        "maps": maps["summary"],
    }


@torch.no_grad()
def _maps(model, edited, config, units, best, pruned) -> dict:
    """Attribution maps before/after: a synthetic combed curve for one edited unit (teeth share
    quantified), plus real images where the edited mixed3b curve units fire most."""
    panels, rows = [], []
    edited_units = [u for u in units if pruned.get(str(u))]
    pick = next((u for u in edited_units if u.layer == "mixed3b"), edited_units[0] if edited_units else None)
    summary: dict = {"synthetic": None, "real": None, "baseline": "synthetic: white; real: image mean colour"}
    if pick is None:
        return {"panels": panels, "table": None, "summary": summary}
    b = best.set_index("unit").loc[str(pick)]
    o = [0.0 if math.isnan(b["preferred_orientation"]) else float(b["preferred_orientation"])]
    r = [float(b["best_radius"])]
    size, pos, center = measurement_window(model.spec, pick.layer)
    st = (S.combed_curves(o, r, "both", config.spacing_px, config.length_px, config.stroke_width)
          + S.curves(o, r, stroke_width=config.stroke_width)).at(size, center)
    img = st.render([0])[0]
    ink = st.ink()
    teeth = (ink[0] > 0.5) & (ink[1] < 0.1)
    white = torch.ones(3)
    syn = {}
    for name, m in (("before", model), ("after", edited)):
        amap, act = grad_x_input(m, img, pick.layer, pick.index, (pos, pos), white)
        a = np.abs(amap)
        syn[name] = dict(map=amap, act=act, teeth_share=float(a[teeth.numpy()].sum() / max(a.sum(), 1e-12)))
    panels.append(dict(title=f"{pick} combed curve ({o[0]:.0f}°, r={r[0]:g})", img=img, syn=syn))
    summary["synthetic"] = {"unit": str(pick), "orientation": o[0], "radius": r[0],
                            **{f"{k}_{n}": v[k] for n, v in syn.items() for k in ("act", "teeth_share")}}
    rows += [dict(kind="synthetic", image="combed_curve", unit=str(pick), variant=n, response=v["act"],
                  teeth_share=v["teeth_share"], abs_mass=float(np.abs(v["map"]).sum())) for n, v in syn.items()]

    if config.images:
        from studies.measure.classify import wnid_index
        from studies.measure.images import ImageFolderDataset

        ds = ImageFolderDataset(config.images, wnid_index(model)).head(config.map_images)
        b3 = [u for u in edited_units if u.layer == "mixed3b"] or edited_units
        layer = b3[0].layer
        b3 = [u for u in b3 if u.layer == layer]
        idx = torch.tensor([u.index for u in b3])
        cands = []
        for i in range(len(ds)):
            x = ds[i].image
            if x is None:
                continue
            a = model.run(x.unsqueeze(0), [hook_name(layer, pre_relu=True)])[hook_name(layer, pre_relu=True)][0, idx]
            v, flat = a.flatten(1).max(1)
            j = int(v.argmax())
            w = a.shape[-1]
            cands.append((float(v[j]), i, b3[j], (int(flat[j]) // w, int(flat[j]) % w), x))
        cands.sort(key=lambda c: -c[0])
        real = []
        for _, i, u, yx, x in cands[:config.n_maps]:
            base = x.mean((1, 2))
            res = {}
            for name, m in (("before", model), ("after", edited)):
                amap, act = grad_x_input(m, x, u.layer, u.index, yx, base)
                res[name] = dict(map=amap, act=act)
            corr = float(np.corrcoef(res["before"]["map"].ravel(), res["after"]["map"].ravel())[0, 1])
            mass = {n: float(np.abs(v["map"]).sum()) for n, v in res.items()}
            panels.append(dict(title=f"{_image_name(ds, i)}: {u} at {yx}", img=x, syn=res))
            real.append(dict(image=_image_name(ds, i), unit=str(u),
                             position=list(yx), act_before=res["before"]["act"], act_after=res["after"]["act"],
                             abs_mass_before=mass["before"], abs_mass_after=mass["after"], map_correlation=corr))
            rows += [dict(kind="real", image=_image_name(ds, i), unit=str(u), variant=n, response=v["act"], teeth_share=float("nan"),
                          abs_mass=mass[n]) for n, v in res.items()]
        summary["real"] = real
    return {"panels": panels, "table": pd.DataFrame(rows), "summary": summary}


def _image_name(ds, i: int) -> str:
    try:
        return str(Path(ds.samples[i][0]).name)
    except (AttributeError, IndexError, TypeError):
        return f"image {i}"


def _plot_combing(pu: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.45 * len(pu) + 5), 4.5),
                             gridspec_kw={"width_ratios": [max(2, len(pu) / 4), 1]})
    x = np.arange(len(pu))
    ax = axes[0]
    ax.bar(x - 0.2, pu["combing_before"], 0.4, label="before")
    ax.bar(x + 0.2, pu["combing_after"], 0.4, label="after prune")
    ax.axhline(1, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, [u.replace("mixed", "") for u in pu["unit"]], rotation=90, fontsize=7)
    ax.set_ylabel("combing index (combed / plain)")
    ax.set_title(f"{title}: combing index (teeth both sides)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for layer, g in pu.groupby("layer"):
        ax.scatter(g["peak_before"], g["peak_after"], label=layer, s=16)
    lim = float(np.nanmax(pu[["peak_before", "peak_after"]].to_numpy())) * 1.05 if len(pu) else 1
    ax.plot([0, lim], [0, lim], "k--", lw=0.8)
    ax.set_xlabel("plain-curve radial peak before")
    ax.set_ylabel("after")
    ax.set_title("plain tuning peak")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_maps(panels: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(panels))
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for row, p in zip(axes, panels):
        row[0].imshow(p["img"].permute(1, 2, 0).clamp(0, 1).numpy())
        row[0].set_title(p["title"], fontsize=7)
        vmax = max(np.abs(p["syn"][k]["map"]).max() for k in ("before", "after")) or 1.0
        for ax, k in zip(row[1:], ("before", "after")):
            v = p["syn"][k]
            ax.imshow(v["map"], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            extra = f", teeth {v['teeth_share']:.0%}" if "teeth_share" in v else ""
            ax.set_title(f"{k}: act {v['act']:.0f}{extra}", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle("grad × (input − baseline), before / after pruning combing pathways", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _summary(config, m, pu: pd.DataFrame, pw: pd.DataFrame) -> str:
    st = m["stimulus"]
    L = [f"# Combing edit: {m['checkpoint']}", "",
         f"Units: {len(pu)} curve units ({', '.join(m['by_layer'])}). Combing stimulus: the unit's plain curve "
         f"(preferred orientation, best radius among {st['radii']} px, stroke {st['stroke_width']} px) with teeth "
         f"{st['length_px']} px long on both sides, one every {st['spacing_px']} px of arc; combing index = "
         "pre-ReLU response to the combed curve / to the plain curve, at the receptive-field centre.",
         "", "## Findings (measured)", ""]
    for layer, b in m["by_layer"].items():
        verdict = ("combing is NOT an excitatory effect here: the median index is below 1 (the teeth reduce the "
                   "response)" if b["median_combing_before"] < 1 else "combing excites the median unit")
        L.append(f"- {layer} ({b['n_units']} units): median combing index {b['median_combing_before']:.3f} → "
                 f"{b['median_combing_after']:.3f} after the edit; {b['n_combing_above_1_before']} → "
                 f"{b['n_combing_above_1_after']} units above 1; the index fell in {b['n_combing_fell']}/"
                 f"{b['n_units']}. Before the edit, {verdict}. Plain tuning: median peak ratio after/before "
                 f"{b['median_peak_ratio']:.2f}, median preferred-orientation shift {b['median_pref_shift_deg']:.1f}°, "
                 f"median width change {b['median_width_change_deg']:+.0f}°.")
    sel = m["selection"]
    L += ["", "## Edit", "",
          f"Per unit, the {'top ' + str(sel['top_pathways']) if sel['share'] is None else 'share ' + str(sel['share'])}"
          " sources with the largest positive attribution to (combed − plain) were cut with PrunePathway (exact: only "
          f"that unit stops receiving them; {m['edit']['weights_changed']} weights changed). Pruned pathways by "
          "source family: " + ", ".join(f"{k.split('|')[1]} ({k.split('|')[0]}): {v}"
                                        for k, v in m["pruned_by_family"].items()) + ".", ""]
    for u, srcs in m["pruned"].items():
        L.append(f"- {u} ← {', '.join(str(s) for s in srcs) or '(none positive)'}")
    ac = m["attribution_check"]
    L += ["", "## Attribution", "",
          "attr[s] = Σ over the unit's 5x5 window of expanded weight × block-input activation (block input: conv2d2 "
          "after LRN+max-pool for mixed3a, mixed3a for mixed3b). Exact for 1x1-branch units (Σ attr + bias = "
          f"pre-activation; max |residual| on the difference {ac['max_abs_residual_exact']}, {ac['n_exact_units']} units). "
          "For 3x3/5x5 units it is the linear approximation through the bottleneck (bottleneck ReLU and bias "
          f"dropped): median relative residual on the difference {ac['median_abs_rel_residual_bottleneck']}. "
          "See attribution_check.csv and pathways.csv.", "", "## Classification", ""]
    c = m["classification"]
    if c is None:
        L.append("Skipped: no `--images` folder was given.")
    else:
        L.append(f"On {c['n_images']} images: top-1 {c['top1_before']:.4f} → {c['top1_after']:.4f} "
                 f"({c['top1_change']:+.4f}); top-5 {c['top5_before']:.4f} → {c['top5_after']:.4f} "
                 f"({c['top5_change']:+.4f}).")
    mp = m["maps"]
    L += ["", "## Attribution maps", "",
          f"grad × (input − baseline) of the unit's pre-ReLU (baseline: {mp['baseline']})."]
    if mp["synthetic"]:
        s = mp["synthetic"]
        L.append(f"- Synthetic combed curve, {s['unit']}: response {s['act_before']:.1f} → {s['act_after']:.1f}; "
                 f"share of |attribution| on the teeth {s['teeth_share_before']:.1%} → {s['teeth_share_after']:.1%}.")
    if mp["real"]:
        for r in mp["real"]:
            L.append(f"- {r['image']}, {r['unit']}: response {r['act_before']:.1f} → {r['act_after']:.1f}; "
                     f"|attribution| mass {r['abs_mass_before']:.1f} → {r['abs_mass_after']:.1f}; "
                     f"before/after map correlation {r['map_correlation']:.2f}.")
    else:
        L.append("- Real-image maps skipped: no `--images` folder was given.")
    L += ["", f"Wall time: {m['wall_time_s']} s.", ""]
    return "\n".join(L)


__all__ = ["CombingConfig", "run_combing", "attribute", "unit_bias", "grad_x_input"]

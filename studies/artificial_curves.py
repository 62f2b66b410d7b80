"""Artificial curve detectors: replace a curve family's weights by a hand-written, rotated template.

Source: Cammarata et al., "Curve Circuits" (Distill 2021), "Artificial Artificial Neural
Network" and "Equivariance". ``run_artificial_curves(config, out)`` (CLI: ``circuits study
artificial-curves``), for the BVLC mixed3b curve family (packaged catalog) and its source
family mixed3a/curves:

1. **equivariance** of the learned family (:mod:`studies.measure.equivariance`): per-unit and
   family scores of the expanded weights mixed3a/curves → mixed3b/curves against a
   shuffled-orientation control; the figure of each unit's pattern next to the rotated
   template unit's;
2. **variants**, each one :class:`edits.EditPlan` run through the sweep runner
   (:func:`studies.sweep.run_sweep`: cached per plan and shard, local or Ray executor):

   - ``natural`` — the checkpoint;
   - ``zero_ablated`` — :class:`edits.Ablate` of the family (zero weights and bias);
   - ``hw_learned`` — :class:`edits.HandwrittenFamily`, template = the learned pattern of the
     template unit (default: the 5x5-branch unit whose rotated pattern best predicts the
     others, i.e. the highest equivariance ``reference_score``), rotated to each unit's
     catalog orientation;
   - ``hw_analytic`` — the analytic template (:func:`edits.handwritten.analytic_pattern`,
     scaled to the family's mean learned pattern norm);

   both hand-written variants with ``rest`` (default ``"zero"``: the units read only the
   eight early curves); ``keep_variants`` adds ``*_keep`` (the other input channels kept);
3. **tuning** of every family unit under every variant, from the sweep's stimulus
   measurements (curves at every ``orientation_step`` × ``radii`` and lines, pre-ReLU):
   radial tuning (preferred orientation, selectivity, tuning width, echo ratio; studies.tuning),
   curve-vs-line preference; the combing index at each unit's own best stimulus
   (:func:`studies.tuning.combing_index`, measured locally on each edited copy);
4. **classification** (with ``images``): top-1/top-5 per variant; paired bootstrap CIs
   (``scipy.stats.bootstrap(paired=True)``, percentile, resampling images) of each variant's
   change versus ``natural`` and of the **fraction of the zero-ablation drop recovered**,
   ``(acc_hw − acc_zero) / (acc_natural − acc_zero)``.

Measured with this code (BVLC, ``imagenet-sample-1000``, defaults + ``--keep-variants``; 838 s on
2 shared cores with 6 of 7 variants from the sweep cache, 1572 s without):

- equivariance: family score 0.264 vs shuffled orientations mean 0.068 (95th percentile
  0.096, max 0.150 over 1000 permutations; p = 0.001); 1x1 units 0.42, 3x3 0.26, 5x5 0.23;
  template unit mixed3b:368 (reference score 0.373);
- tuning (medians over the 19 units, natural / hw_learned / hw_analytic): |Δθ| from the
  target 0.07° / 4.1° / 2.9° (all 19 units within 30°), selectivity 0.94 / 0.70 / 0.82, width
  45° / 100° / 90°, echo ratio 0 / 0.02 / 0.003, best curve/best line 11.8 / 8.7 / 11.2,
  radial-curve correlation with the natural unit 0.79 (learned) / 0.83 (analytic); the 1x1
  units, which only get the centre tap, peak at 16–35% of their natural response;
- top-1 natural 0.745, zero-ablated 0.703 (−4.2 pp [−6.0, −2.4]), hw_learned 0.744 (recovers
  98% [67, 135] of the drop), hw_analytic 0.733 (71% [29, 107]); top-5 0.932 / 0.895 / 0.934
  (105% [89, 127]) / 0.928 (89% [67, 114]). ``rest="keep"`` variants fall to top-1 ≈ 0.20, as
  the ``linearized`` control does (0.178): removing the bottleneck ReLU of 16 units, not the
  template, is what breaks them (the echo study's linearised variant shows the same).

Report folder (atomic): ``config.yaml``, ``metrics.json``, ``summary.md``, ``report.html``,
``units.csv`` (per unit × variant), ``equivariance_units.csv``, ``equivariance_pairs.csv``,
``classification.csv``, ``tuning.csv``, ``plan_<variant>.json``, ``equivariance.png``,
``radial_tuning.png``, ``tuning_comparison.png``, ``accuracy.png``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from circuits.catalog import load_catalog
from circuits.units import canonical_layer
from edits import Ablate, EditPlan, HandwrittenFamily, Linearize, in_branch
from edits.handwritten import RESTS, learned_patterns

from .base import StudyConfig, open_study
from .measure import stimuli as S
from .measure.equivariance import EquivarianceResult, equivariance, plot_patterns
from .measure.tuning import angular_difference, combing_index, curve_line_preference, radial_tuning, tuning_metrics
from .report.folder import log_step as _log
from .report.folder import report_folder, write_json, write_yaml
from .report.html import write_report

BASE_VARIANTS = ("natural", "zero_ablated", "hw_learned", "hw_analytic")
VARIANT_TEXT = {
    "natural": "the checkpoint as is",
    "zero_ablated": "family zero-ablated (weights and bias 0)",
    "hw_learned": "hand-written: learned template unit rotated to each orientation",
    "hw_analytic": "hand-written: analytic template (same-orientation early curves + along the arc, opposite −)",
    "hw_learned_keep": "hw_learned, other input channels kept as learned",
    "hw_analytic_keep": "hw_analytic, other input channels kept as learned",
    "linearized": "control for *_keep: the family's 3x3/5x5 units linearised (bottleneck ReLU removed), nothing else",
}


@dataclass
class ArtificialCurvesConfig(StudyConfig):
    """Settings of the study (saved as ``config.yaml``); the common fields (model, images —
    optional: without it classification is skipped —, weights, batch_size, limit, device,
    executor, num_workers, seed: equivariance shuffles and bootstrap) are
    :class:`~studies.base.StudyConfig`'s.

    Attributes:
        family, src_family: catalog keys of the written family and of its source family.
        template_unit: the learned template (default: chosen by equivariance, see the module).
        rest: ``"zero"`` or ``"keep"`` for the hand-written variants; ``keep_variants`` adds the other.
        orientation_step: degrees between tuning orientations; radii: px; stroke_width: px.
        n_shuffles: equivariance control permutations; bootstrap: resamples.
        combing: measure the combing index (each variant; a few seconds per variant).
        cache_dir, jobs: sweep settings (:mod:`studies.run.sweep`).
    """

    family: str = "mixed3b/curves"
    src_family: str = "mixed3a/curves"
    template_unit: str | None = None
    rest: str = "zero"
    keep_variants: bool = False
    orientation_step: float = 5.0
    radii: list[float] = field(default_factory=lambda: list(S.DEFAULT_RADII))
    stroke_width: float = 2.0
    n_shuffles: int = 1000
    bootstrap: int = 2000
    combing: bool = True
    cache_dir: str | None = None
    jobs: int = 1

    def check(self) -> None:
        """Spec-free checks, before any compute. Raises ValueError naming the option."""
        super().check()
        if not (0 < self.orientation_step <= 90):
            raise ValueError(f"--orientation-step must be in (0, 90] degrees, got {self.orientation_step}")
        if self.rest not in RESTS:
            raise ValueError(f"--rest must be one of {', '.join(RESTS)}, got {self.rest!r}")
        if self.n_shuffles < 1:
            raise ValueError(f"--shuffles must be ≥ 1, got {self.n_shuffles}")
        if self.bootstrap < 100:
            raise ValueError(f"--bootstrap must be ≥ 100, got {self.bootstrap}")
        if self.jobs < 1:
            raise ValueError(f"--jobs must be ≥ 1, got {self.jobs}")
        self.check_refs("--family", self.family)
        self.check_refs("--src-family", self.src_family)
        if self.template_unit is not None:
            self.check_refs("--template-unit", self.template_unit)


def _check_layers(family, src) -> None:
    """The hand-written family reads its source family through one inception block: ``src`` must
    be a family of the mixed layer just before ``family``'s (e.g. mixed3a → mixed3b).

    Raises:
        ValueError: naming both families and the layer expected.
    """
    from circuits.spec import MIXED_LAYERS

    i = MIXED_LAYERS.index(family.layer) if family.layer in MIXED_LAYERS else -1
    if i < 1 or src.layer != MIXED_LAYERS[i - 1]:
        want = f"a family of {MIXED_LAYERS[i - 1]}" if i >= 1 else "a family of the previous mixed layer"
        raise ValueError(f"--family {family.key} with --src-family {src.key}: the source must be {want} "
                         f"(the family must be in {', '.join(MIXED_LAYERS[1:])})")


def measure_equivariance(model, family, src, n_shuffles: int, seed: int) -> tuple[EquivarianceResult, torch.Tensor]:
    """Equivariance of ``family``'s expanded weights from ``src`` (catalog orientations)."""
    pats = learned_patterns(model, family.layer, list(family.units), list(src.units))
    res = equivariance(pats, family.orientations, src.orientations, units=[str(u) for u in family],
                       n_shuffles=n_shuffles, seed=seed)
    return res, pats


def choose_template(model, family, eq: EquivarianceResult) -> str:
    """The 5x5-branch unit with the highest ``reference_score`` (any branch if none is 5x5)."""
    pu = eq.per_unit.copy()
    pu["branch"] = [model.spec.branch_of(family.layer, int(u.split(":")[1])) for u in pu["unit"]]
    pool = pu[pu["branch"] == "5x5"] if (pu["branch"] == "5x5").any() else pu
    return str(pool.sort_values("reference_score", ascending=False)["unit"].iloc[0])


def build_plans(cfg: ArtificialCurvesConfig, template_unit: str, spec) -> dict[str, EditPlan | None]:
    """``{variant: plan}`` (``None`` for ``natural``). With ``keep_variants``, also the
    ``linearized`` control: the family's 3x3/5x5 units computed by :class:`edits.Linearize`
    alone (bottleneck ReLU removed), which is what ``rest="keep"`` keeps for the other channels."""
    layer = canonical_layer(cfg.family.split("/")[0])
    def hw(template: str, rest: str) -> HandwrittenFamily:
        return HandwrittenFamily(cfg.family, cfg.src_family, template=template,
                                 template_unit=template_unit if template == "learned" else None, rest=rest)

    plans: dict[str, EditPlan | None] = {
        "natural": None,
        "zero_ablated": EditPlan([Ablate(cfg.family)], name="zero-ablated"),
        "hw_learned": EditPlan([hw("learned", cfg.rest)], name=f"hw-learned-{cfg.rest}"),
        "hw_analytic": EditPlan([hw("analytic", cfg.rest)], name=f"hw-analytic-{cfg.rest}"),
    }
    if cfg.keep_variants:
        other = "keep" if cfg.rest == "zero" else "zero"
        plans[f"hw_learned_{other}"] = EditPlan([hw("learned", other)], name=f"hw-learned-{other}")
        plans[f"hw_analytic_{other}"] = EditPlan([hw("analytic", other)], name=f"hw-analytic-{other}")
        lin = [Linearize(f"{layer}_{b}", [str(u) for u in us]) for b in ("3x3", "5x5")
               if (us := in_branch(cfg.family, f"{layer}_{b}", spec))]
        plans["linearized"] = EditPlan(lin, name="linearized")  # what rest="keep" keeps: the linearised kernels
    return plans


# ---------------------------------------------------------------------------- statistics
def bootstrap_accuracy(correct: dict[str, np.ndarray], n: int, seed: int) -> pd.DataFrame:
    """Paired bootstrap over images: change vs ``natural`` and recovered fraction, per variant.

    Args:
        correct: ``{variant: bool array over the same images}`` (``natural`` and ``zero_ablated`` required).

    Returns:
        One row per variant: ``acc``, ``delta`` (vs natural) with ``delta_low``/``delta_high``
        (95% percentile CI), ``recovered`` = (acc − acc_zero)/(acc_natural − acc_zero) with
        ``recovered_low``/``recovered_high`` (NaN for natural/zero_ablated or a zero drop).
    """
    from scipy.stats import DegenerateDataWarning, bootstrap

    nat, zero = correct["natural"].astype(float), correct["zero_ablated"].astype(float)

    def ci(stat, *arrays):  # NaN bounds when every resample gives the same value (degenerate)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)
            r = bootstrap(arrays, stat, paired=True, vectorized=True, n_resamples=n, method="percentile",
                          confidence_level=0.95, random_state=np.random.default_rng(seed))
        return float(r.confidence_interval.low), float(r.confidence_interval.high)

    def delta(a, b, axis=-1):
        return (b - a).mean(axis=axis)

    def recovered(a, z, h, axis=-1):
        drop = a.mean(axis=axis) - z.mean(axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (h.mean(axis=axis) - z.mean(axis=axis)) / drop

    rows = []
    for v, c in correct.items():
        c = c.astype(float)
        row = {"variant": v, "acc": float(c.mean()), "delta": float(c.mean() - nat.mean())}
        row["delta_low"], row["delta_high"] = (0.0, 0.0) if v == "natural" else ci(delta, nat, c)
        drop = nat.mean() - zero.mean()
        if v in ("natural", "zero_ablated") or drop == 0:
            row.update(recovered=float("nan"), recovered_low=float("nan"), recovered_high=float("nan"))
        else:
            row["recovered"] = float((c.mean() - zero.mean()) / drop)
            row["recovered_low"], row["recovered_high"] = ci(recovered, nat, zero, c)
        rows.append(row)
    return pd.DataFrame(rows)


def unit_table(tuning: pd.DataFrame, combing: pd.DataFrame | None, family) -> pd.DataFrame:
    """Per (variant, unit): radial-tuning measures, curve/line preference, combing, and the
    comparison with the natural unit (orientation difference, radial-curve correlation)."""
    radial = radial_tuning(tuning)
    met = tuning_metrics(radial)
    clp = curve_line_preference(tuning)[["variant", "unit", "best_curve", "best_line", "ratio"]]
    out = met.merge(clp.rename(columns={"ratio": "curve_line_ratio"}), on=["variant", "unit"], how="left")
    if combing is not None and len(combing):
        cb = combing[combing["side"] == "both"][["variant", "unit", "combing_index"]]
        out = out.merge(cb, on=["variant", "unit"], how="left")
    target = {str(u): float(o) for u, o in zip(family, family.orientations)}
    nat = out[out["variant"] == "natural"].set_index("unit")
    curves = radial.pivot_table(index=["unit", "orientation"], columns="variant", values="response")
    out["target_orientation"] = [target[u] for u in out["unit"]]
    out["orientation_error_vs_target"] = [angular_difference(p, target[u]) if not math.isnan(p) else float("nan")
                                          for p, u in zip(out["preferred_orientation"], out["unit"])]
    out["orientation_diff_vs_natural"] = [
        angular_difference(p, nat.loc[u, "preferred_orientation"]) if not math.isnan(p) else float("nan")
        for p, u in zip(out["preferred_orientation"], out["unit"])]
    corr = []
    for v, u in zip(out["variant"], out["unit"]):
        a, b = curves.loc[u]["natural"].to_numpy(), curves.loc[u][v].to_numpy()
        corr.append(float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan"))
    out["radial_corr_vs_natural"] = corr
    return out


def _medians(units: pd.DataFrame, variants) -> dict:
    cols = ["peak", "selectivity", "tuning_width", "echo_ratio", "curve_line_ratio", "combing_index",
            "orientation_error_vs_target", "orientation_diff_vs_natural", "radial_corr_vs_natural"]
    out = {}
    for v in variants:
        g = units[units["variant"] == v]
        out[v] = {c: _f(g[c].median()) for c in cols if c in g}
        out[v]["units_silent"] = int((g["peak"] <= 0).sum())
        out[v]["within_30deg_of_target"] = int((g["orientation_error_vs_target"] <= 30).sum())
    return out


def _f(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else round(x, 4)


# ---------------------------------------------------------------------------- run
def run_artificial_curves(cfg: ArtificialCurvesConfig, out: str | Path, overwrite: bool = False,
                          progress: bool = True) -> dict:
    """Run the study and write the report folder ``out``; returns the metrics dict.

    Raises:
        ReportExistsError: ``out`` is non-empty and ``overwrite`` is False (checked first).
        KeyError: an unknown family; ValueError/FileNotFoundError: bad settings; WeightsError.
        RuntimeError: a variant failed in the sweep runner.
    """
    from .run.executors import make_executor
    from .run.sweep import run_sweep

    op = open_study(cfg, out, overwrite, progress)
    cfg, model, t0, quiet = op.config, op.model, op.t0, op.quiet
    cat = load_catalog(model.spec)
    family, src = cat[cfg.family], cat[cfg.src_family]
    _check_layers(family, src)
    executor = make_executor(**{"jobs": cfg.jobs, **dict(cfg.executor)})  # local or ray (studies.executors)
    _log(f"loaded {model.spec.name}; {family.key} ({len(family)} units) from {src.key} ({len(src)})", t0, quiet)

    eq, pats = measure_equivariance(model, family, src, cfg.n_shuffles, cfg.seed)
    template = cfg.template_unit or choose_template(model, family, eq)
    _log(f"equivariance {eq.family_score:.3f} (shuffled mean {eq.control['mean']:.3f}); template {template}", t0, quiet)
    plans = build_plans(cfg, template, model.spec)
    for p in plans.values():
        if p is not None:
            p.validate(model.spec)

    ors = S.orientation_grid(cfg.orientation_step)
    stim = S.curves(ors, cfg.radii, stroke_width=cfg.stroke_width) + S.lines([o for o in ors if o < 180],
                                                                            stroke_width=cfg.stroke_width)
    res = run_sweep(plans, cfg.images, model=model, limit=cfg.limit, cache_dir=cfg.cache_dir, jobs=cfg.jobs,
                    batch_size=cfg.batch_size, device=cfg.device, executor=executor, stimuli=stim,
                    units=[str(u) for u in family], progress=progress,
                    log=None if quiet else (lambda m: _log(m, t0, quiet)))
    if res.failed:
        raise RuntimeError("variants failed: " + "; ".join(f"{n}: {e}" for n, e in res.failed.items()))
    _log(f"sweep done: computed {res.computed}, cached {res.loaded}", t0, quiet)
    variants = list(plans)
    edited, records = {"natural": model}, {}
    for v, p in plans.items():
        if p is not None:
            edited[v], records[v] = p.apply(model)
    applied = {v: (None if p is None else records[v].applied_plan) for v, p in plans.items()}

    comb = measure_combing(edited, family, res.tuning, cfg.stroke_width) if cfg.combing else None
    if comb is not None:
        _log("combing measured", t0, quiet)
    units = unit_table(res.tuning, comb, family)
    nat = units[units["variant"] == "natural"].set_index("unit")
    measured = [float(nat.loc[str(u), "preferred_orientation"]) for u in family]
    eq_measured = equivariance(pats, measured, src.orientations, units=[str(u) for u in family],
                               n_shuffles=cfg.n_shuffles, seed=cfg.seed)
    units["branch"] = [model.spec.branch_of(family.layer, int(i)) for i in units["index"]]

    acc = None
    if cfg.images:
        acc = accuracy_table(res.per_image, variants, cfg.bootstrap, cfg.seed)
        _log("bootstrap done", t0, quiet)

    metrics = _metrics(model, cfg, family, src, template, eq, units, acc, variants, records, res)
    metrics["equivariance"]["with_measured_orientations"] = {
        "family_score": eq_measured.family_score, "control": eq_measured.control,
        "orientations": measured, "note": "destination orientations measured here (natural variant, "
        f"{cfg.orientation_step}° grid, vector sum); source orientations from the catalog"}
    _write_report(out, overwrite, cfg, model, family, src, template, eq, pats, res, units, comb, acc, applied,
                  variants, metrics, t0)
    _log(f"report written to {out}", t0, quiet)
    return metrics


def _metrics(model, cfg, family, src, template, eq, units, acc, variants, records, res) -> dict:
    m: dict = {
        "checkpoint": model.spec.name,
        "family": {"key": family.key, "units": list(family.units), "orientations": list(family.orientations),
                   "branches": [model.spec.branch_of(family.layer, u) for u in family.units]},
        "source_family": {"key": src.key, "units": list(src.units), "orientations": list(src.orientations)},
        "template_unit": template,
        "equivariance": {"family_score": eq.family_score, "control": eq.control, "offsets": list(eq.offsets),
                         "orientations": "catalog (studies.measure.discovery radial tuning, 10° grid, vector sum)",
                         "by_branch": {b: _f(g["score"].mean()) for b, g in eq.per_unit.assign(
                             branch=[model.spec.branch_of(family.layer, int(u.split(':')[1])) for u in eq.per_unit["unit"]]
                         ).groupby("branch")}},
        "variants": {v: VARIANT_TEXT.get(v, v) for v in variants},
        "tuning_medians": _medians(units, variants),
        "sweep": {"computed": res.computed, "loaded_from_cache": res.loaded, "tasks": res.tasks,
                  "executor": dict(cfg.executor)},
        "edited_tensors": {v: {"changed": dict(r.changed), "structure": [dict(s) for s in r.structure]}
                           for v, r in records.items()},
        "classification": None,
    }
    if acc is not None:
        m["classification"] = acc.replace({np.nan: None}).to_dict(orient="records")
    return m


def measure_combing(models: dict, family, tuning: pd.DataFrame, stroke_width: float) -> pd.DataFrame:
    """:func:`studies.tuning.combing_index` of the family's units in each variant's model, at each
    unit's own best stimulus (from that variant's ``tuning``); a ``variant`` column first."""
    parts = []
    for v, m in models.items():
        c = combing_index(m, [str(u) for u in family], stroke_width=stroke_width,
                          tuning=tuning[tuning["variant"] == v].drop(columns="variant"))
        c.insert(0, "variant", v)
        parts.append(c)
    return pd.concat(parts, ignore_index=True)


def accuracy_table(per_image: pd.DataFrame, variants: list[str], n_boot: int, seed: int) -> pd.DataFrame:
    """Top-1 and top-5 :func:`bootstrap_accuracy` columns (``top1_*``, ``top5_*``) per variant.

    Raises:
        RuntimeError: the variants were not evaluated on the same images.
    """
    correct1, correct5, paths = {}, {}, None
    for v in variants:
        pi = per_image[per_image["variant"] == v].sort_values("path")
        if paths is None:
            paths = pi["path"].tolist()
        elif pi["path"].tolist() != paths:
            raise RuntimeError(f"variant {v} was evaluated on other images than natural")
        correct1[v], correct5[v] = pi["correct_top1"].to_numpy(bool), pi["correct_top5"].to_numpy(bool)
    acc = bootstrap_accuracy(correct1, n_boot, seed).add_prefix("top1_").rename(columns={"top1_variant": "variant"})
    acc = acc.merge(bootstrap_accuracy(correct5, n_boot, seed).add_prefix("top5_").rename(
        columns={"top5_variant": "variant"}), on="variant")
    acc.insert(1, "n_images", len(paths or []))
    return acc


def _write_report(out, overwrite, cfg, model, family, src, template, eq, pats, res, units, comb, acc, applied,
                  variants, metrics, t0) -> None:
    from .report.artificial_plots import plot_accuracy, plot_tuning_comparison, summary_markdown
    from .report.plots import plot_radial

    names, src_names = [str(u) for u in family], [str(u) for u in src]
    with report_folder(out, overwrite) as tmp:
        write_yaml(tmp / "config.yaml", dataclasses.asdict(cfg))
        for v, p in applied.items():
            if p is not None:
                p.save(tmp / f"plan_{v}.json")
        units.to_csv(tmp / "units.csv", index=False)
        eq.per_unit.to_csv(tmp / "equivariance_units.csv", index=False)
        eq.pairs.to_csv(tmp / "equivariance_pairs.csv", index=False)
        res.tuning.to_csv(tmp / "tuning.csv", index=False)
        if comb is not None:
            comb.to_csv(tmp / "combing.csv", index=False)
        figs = ["equivariance.png", "radial_tuning.png", "tuning_comparison.png"]
        plot_patterns(pats, family.orientations, src.orientations, names, src_names, names.index(template),
                      tmp / "equivariance.png", scores=eq.per_unit["score"].tolist(),
                      title=f"{model.spec.name}: {src.key} → {family.key}, family score {eq.family_score:.3f} "
                      f"(shuffled {eq.control['mean']:.3f})")
        plot_radial(radial_tuning(res.tuning), tmp / "radial_tuning.png", variants=variants,
                    preferred={str(u): float(o) for u, o in zip(family, family.orientations)},
                    title=f"{model.spec.name} {family.key}: radial tuning per variant")
        plot_tuning_comparison(units, variants, tmp / "tuning_comparison.png")
        if acc is not None:
            acc.to_csv(tmp / "classification.csv", index=False)
            plot_accuracy(acc, tmp / "accuracy.png")
            figs.append("accuracy.png")
        metrics["wall_time_s"] = round(time.perf_counter() - t0, 1)
        write_json(tmp / "metrics.json", metrics)
        summary = summary_markdown(cfg, metrics)
        (tmp / "summary.md").write_text(summary)
        write_report(tmp, f"Artificial curve detectors: {model.spec.name} {family.key}", summary,
                     figures=figs, tables={"Per unit and variant": units})

"""``circuits study sweep``: evaluate a list of edit plans (files, or every single-unit
ablation of a family) on an image folder and/or on curve stimuli (radial tuning of units),
cached per (plan, shard) so an interrupted sweep resumes — locally or on a Ray cluster
(``--executor ray``, :mod:`studies.run.executors`)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from circuits.units import canonical_layer, resolve_units
from edits import Ablate, EditPlan
from studies.base import StudyConfig, open_study, warn
from studies.measure.paired import paired_stats
from studies.measure.stimuli import curves, orientation_grid, radius_grid
from studies.measure.tuning import radial_tuning, tuning_metrics
from studies.report.folder import report_folder, write_json
from studies.report.html import write_report
from studies.report.order import sort_units_df
from studies.report.provenance import write_config
from studies.report.sweep_plots import plot_sweep_changes
from studies.run.executors import make_executor
from studies.run.sweep import run_sweep


@dataclass
class SweepConfig(StudyConfig):
    """Everything needed to re-run a sweep (saved as ``config.yaml``); the common fields are
    :class:`~studies.base.StudyConfig`'s (``images``: the folder to classify, optional when
    ``tune`` is given; ``seed``: the resample ablations' seed)."""

    images: str = ""
    plans: list[str] = field(default_factory=list)
    single_unit_ablations: str | None = None
    mode: str = "zero"
    jobs: int = 1
    tune: list[str] = field(default_factory=list)
    orientation_step: float = 5.0
    radii: int = 16
    plans_per_pass: int = 8
    shard_size: int | None = None
    stimulus_batch: int = 512
    cache_dir: str | None = None

    def check(self) -> None:
        if not self.images and not self.tune:
            raise ValueError("nothing to measure: give --images and/or --tune UNITS")
        if self.mode == "mean":
            raise ValueError("--mode mean needs reference images; use `circuits study family-ablation` for mean "
                             "ablation")
        if self.tune:  # units range-checked before any compute (``3b:999`` is a user error, not an IndexError)
            from circuits.spec import get_spec
            from circuits.units import resolve_targets

            try:
                resolve_targets(self.tune, get_spec(self.model))
            except IndexError as e:
                raise ValueError(f"--tune: {e}") from None
        super().check()


#: The variant name of the unedited model in a sweep's tables (reserved: no plan may take it).
BASELINE = "unedited"


def plan_file_name(name: str) -> str:
    """The file name (``plans/<name>.json``) of a variant: characters other than letters, digits,
    ``.``, ``_`` and ``-`` become ``_`` (``ablate-mixed3b:379`` → ``ablate-mixed3b_379.json``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".json"


def _add_plan(plans: dict[str, EditPlan], files: dict[str, str], name: str, plan: EditPlan, origin: str) -> None:
    """Add one variant; refuses the baseline's name and names that equal, or sanitise to the same
    file name (case-insensitively) as, a variant already there."""
    f = plan_file_name(name).casefold()
    if f == plan_file_name(BASELINE).casefold():
        raise ValueError(f"{origin}: the variant name {name!r} is reserved for the unedited baseline; rename it")
    if f in files:
        raise ValueError(f"{origin}: the variant name {name!r} collides with {files[f]!r} (both would be "
                         f"plans/{plan_file_name(name)}); variant names must be unique — rename one")
    files[f] = name
    plans[name] = plan


def build_plans(cfg: SweepConfig, model) -> dict[str, EditPlan]:
    """Plans from files (variant = file stem) and/or one Ablate per unit of a family
    (``mixed3b/curves``) or of a whole layer (``mixed3b``: 480 plans; ``3b`` also works).

    Raises:
        KeyError: an unknown family or layer (the message lists the valid ones).
        ValueError: no plans, a plan named like the baseline (:data:`BASELINE`, e.g. a file
            ``unedited.json``), two variants whose names are equal or give the same file name
            (:func:`plan_file_name`, case-insensitively), or a plan that does not validate.
    """
    plans: dict[str, EditPlan] = {}
    files: dict[str, str] = {}
    for f in cfg.plans:
        _add_plan(plans, files, Path(f).stem, EditPlan.load(f), f"plan file {f}")
    if cfg.single_unit_ablations:
        target = cfg.single_unit_ablations
        if "/" in target:  # a family key, through the one unit/family parser; else a whole layer
            fam = resolve_units(target, model.spec)
            layer, units = fam[0].layer, [u.index for u in fam]
        else:
            layer = canonical_layer(target, model.spec)
            units = list(range(model.spec.layer_width(layer)))
        for u in units:
            name = f"ablate-{layer}:{u}"
            edit = (Ablate(f"{layer}:{u}", mode=cfg.mode, seed=cfg.seed) if cfg.mode == "resample"
                    else Ablate(f"{layer}:{u}", mode=cfg.mode))
            _add_plan(plans, files, name, EditPlan([edit], name=name), "--single-unit-ablations")
    if not plans:
        raise ValueError("no plans: pass --plans FILE ... and/or --single-unit-ablations FAMILY")
    for p in plans.values():
        p.validate(model)
    return plans


def tuning_stimuli(cfg: SweepConfig):
    """Curves on ``orientation_step`` × ``radii`` (geometric, :func:`studies.measure.stimuli.radius_grid`
    from 8 to 200 px), as in Curve Detectors' radial tuning."""
    return curves(orientation_grid(cfg.orientation_step), radius_grid(cfg.radii))


def run_sweep_study(cfg: SweepConfig, out: str | Path, overwrite: bool = False, progress: bool = True,
                    log=None) -> dict:
    """Run the sweep and write ``out``: ``results.csv`` (per variant: top-1/top-5, the change
    vs the unedited model and any error), ``per_image.csv``, with ``tune``: ``tuning.csv``
    (every response) and ``tuning_metrics.csv`` (radial tuning peak, preferred orientation,
    width, echo ratio per variant × unit), ``config.yaml``, ``plans/`` (every plan as JSON),
    ``summary.md``, ``report.html``, ``metrics.json``.

    Raises:
        FileNotFoundError: ``images`` is not a folder. ValueError: bad settings, no plans,
            mean mode, neither images nor units to tune. ImportError: the Ray executor
            without Ray. All before any compute.
    """
    op = open_study(cfg, out, overwrite, progress)
    cfg, model = op.config, op.model
    executor = make_executor(**cfg.executor, jobs=cfg.jobs)
    plans = build_plans(cfg, model)
    stim = tuning_stimuli(cfg) if cfg.tune else None
    t_sweep = time.perf_counter()
    res = run_sweep({BASELINE: None, **plans}, cfg.images or None, model=model, limit=cfg.limit,
                    batch_size=cfg.batch_size, device=cfg.device, progress=progress, executor=executor,
                    plans_per_pass=cfg.plans_per_pass, shard_size=cfg.shard_size, cache_dir=cfg.cache_dir,
                    stimuli=stim, units=cfg.tune or None, stimulus_batch=cfg.stimulus_batch, log=log)
    sweep_s = time.perf_counter() - t_sweep
    summ = res.summary()
    lines = _accuracy_lines(summ) if cfg.images and "unedited" not in res.failed else []
    met = None
    if res.tuning is not None:
        met, tuning_lines = _tuning_metrics(res.tuning, cfg, len(stim))
        lines += tuning_lines
    if res.failed:
        lines += ["Failed plans (after retries):", "", *[f"- {n}: {e}" for n, e in res.failed.items()], ""]
    n_eval = len(res.per_image[res.per_image["variant"].isin(res.computed)]) if cfg.images else 0
    metrics = {"variants": len(plans), "computed": res.computed, "loaded_from_cache": res.loaded,
               "sweep_seconds": round(sweep_s, 2), "image_plan_evaluations": n_eval,
               "image_plan_evaluations_per_s": round(n_eval / sweep_s, 2) if n_eval and sweep_s > 0 else None,
               "failed": res.failed, "tasks": res.tasks, "executor": executor.describe(),
               "n_images": int(summ["n_images"].max()) if cfg.images and summ["n_images"].notna().any() else 0,
               "wall_time_s": op.elapsed()}
    with report_folder(out, overwrite) as tmp:
        _write_report(tmp, cfg, plans, res, summ, met, metrics, lines, executor, model)
    if cfg.images and 0 < metrics["n_images"] < SMALL_SAMPLE:
        warn(f"sweep on {metrics['n_images']} images: {metrics.get('significant_changes', 0)} plan(s) change top-1 "
             f"beyond noise (McNemar p < 0.05); one image = {100 / metrics['n_images']:.2g} pp (see summary.md)")
    return metrics


def _accuracy_lines(summ) -> list[str]:
    """Adds the change vs the unedited model to ``summ`` (in place); the summary's accuracy lines."""
    base = summ[summ["variant"] == "unedited"].iloc[0]
    summ["top1_change"] = summ["top1"] - base["top1"]
    summ["top5_change"] = summ["top5"] - base["top5"]
    worst = summ[(summ["variant"] != "unedited") & (summ["error"] == "")]
    worst = worst.sort_values("top1_change", kind="stable").head(10)
    return [f"Unedited: top-1 {base['top1']:.4f}, top-5 {base['top5']:.4f} on {int(base['n_images'])} images.",
            "", "Largest top-1 drops:", "",
            *[f"- {r['variant']}: top-1 {r['top1']:.4f} ({r['top1_change']:+.4f}), top-5 {r['top5']:.4f} "
              f"({r['top5_change']:+.4f})" for _, r in worst.iterrows()], ""]


def _tuning_metrics(tuning, cfg: SweepConfig, n_stimuli: int):
    """Radial-tuning metrics per variant × unit (with the peak ratio vs unedited) and the summary's lines."""
    met = tuning_metrics(radial_tuning(tuning))
    base_t = met[met["variant"] == "unedited"].set_index("unit")
    if len(base_t):
        met["peak_ratio"] = [r.peak / base_t.loc[r.unit, "peak"] if base_t.loc[r.unit, "peak"] > 0 else float("nan")
                             for r in met.itertuples()]
    lines = [f"Radial tuning of {met['unit'].nunique()} unit(s) on {n_stimuli} curves "
             f"({cfg.orientation_step:g}° × {cfg.radii} radii): median peak ratio vs unedited per variant:", ""]
    if "peak_ratio" in met.columns:
        med = met.groupby("variant", sort=False)["peak_ratio"].median()
        lines += [f"- {v}: {x:.3f}" for v, x in med.items()] + [""]
    return met, lines


def _write_report(tmp: Path, cfg: SweepConfig, plans: dict, res, summ, met, metrics: dict, lines: list[str],
                  executor, model=None) -> None:
    metrics["provenance"] = write_config(tmp / "config.yaml", "sweep", cfg, model)
    (tmp / "plans").mkdir()
    for name, p in plans.items():
        p.save(tmp / "plans" / plan_file_name(name))
    summ.to_csv(tmp / "results.csv", index=False)
    if cfg.images:
        res.per_image.drop(columns=["top5"], errors="ignore").to_csv(tmp / "per_image.csv", index=False)
    if met is not None:
        res.tuning.to_csv(tmp / "tuning.csv", index=False)
        sort_units_df(met, ["variant", "unit"]).to_csv(tmp / "tuning_metrics.csv", index=False)
    figures = []
    if cfg.images and "top1_change" in summ.columns:
        changes = _paired_changes(res.per_image, cfg.seed)
        if len(changes):
            changes.to_csv(tmp / "changes.csv", index=False)
            base = summ[summ["variant"] == "unedited"].iloc[0]
            plot_sweep_changes(changes, float(base["top1"]), int(base["n_images"]), tmp / "accuracy_changes.png")
            figures.append("accuracy_changes.png")
            lines = [*_noise_lines(changes, int(base["n_images"])), *lines]
            metrics["significant_changes"] = int((changes["mcnemar_p"] < 0.05).sum())
    write_json(tmp / "metrics.json", metrics)
    text = "\n".join([
        f"# Sweep: {len(plans)} plans (and the unedited model)" + (f" on {cfg.images}" if cfg.images else ""),
        "",
        f"Executor: {executor.name}; {res.tasks} task(s) run. Computed {len(res.computed)} variant(s), "
        f"loaded {len(res.loaded)} from the cache.",
        "",
        *lines,
    ])
    (tmp / "summary.md").write_text(text)
    tables = {"Results (results.csv)": "results.csv"}
    if met is not None:
        tables["Radial tuning (tuning_metrics.csv)"] = "tuning_metrics.csv"
    write_report(tmp, f"Sweep of {len(plans)} plans", text, figures=figures, tables=tables)


#: below this many images a sweep's accuracy changes are flagged as small-sample
SMALL_SAMPLE = 200


def _paired_changes(per_image, seed: int, n_resamples: int = 1000):
    """Per plan: top-1 change vs unedited with the paired bootstrap 95 % CI and exact McNemar
    (:mod:`studies.measure.paired`), one row per plan evaluated on the same images."""
    import pandas as pd

    pi = per_image
    base = pi[pi["variant"] == "unedited"].sort_values("path").reset_index(drop=True)
    rows = []
    for name, v in pi[pi["variant"] != "unedited"].groupby("variant", sort=False):
        v = v.sort_values("path").reset_index(drop=True)
        if len(v) != len(base) or not (v["path"].to_numpy() == base["path"].to_numpy()).all():
            continue
        s = paired_stats(base["correct_top1"].to_numpy(bool), v["correct_top1"].to_numpy(bool), n_resamples, seed)
        rows.append({"variant": name, **s})
    return pd.DataFrame(rows, columns=["variant", "delta", "ci_low", "ci_high", "lost", "gained", "mcnemar_p"])


def _noise_lines(changes, n: int) -> list[str]:
    """Summary lines saying which changes are distinguishable from noise."""
    sig = changes[changes["mcnemar_p"] < 0.05]
    out = [f"Noise: on {n} images one image is {100 / n:.2g} percentage points. "
           f"{len(sig)} of {len(changes)} plans change top-1 with exact McNemar p < 0.05; the others are within "
           "noise (see `changes.csv` for every 95 % CI, paired bootstrap over images).", ""]
    if n < SMALL_SAMPLE:
        out = [f"**Warning: small sample ({n} images).** Changes of a few images are within noise; "
               f"use ≥ {SMALL_SAMPLE} images (drop `--limit`) before drawing conclusions.", "", *out]
    return out

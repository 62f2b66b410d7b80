"""``circuits study sweep``: evaluate a list of edit plans (files, or every single-unit
ablation of a family) on an image folder, cached per plan so an interrupted sweep resumes."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from circuits import load_model
from circuits.catalog import catalog
from edits import Ablate, EditPlan

from .report import check_out_dir, report_folder, write_html_report, write_json, write_yaml
from .sweep import run_sweep


@dataclass
class SweepConfig:
    """Everything needed to re-run a sweep (saved as ``config.yaml``)."""

    model: str = "inceptionv1_caffe"
    images: str = ""
    plans: list[str] = field(default_factory=list)
    single_unit_ablations: str | None = None
    mode: str = "zero"
    limit: int | None = None
    jobs: int = 1
    batch_size: int = 64
    device: str = "cpu"
    seed: int = 0


def build_plans(cfg: SweepConfig, model) -> dict[str, EditPlan]:
    """Plans from files (variant = file stem) and/or one Ablate per unit of a family."""
    plans: dict[str, EditPlan] = {}
    for f in cfg.plans:
        name = Path(f).stem
        if name in plans:
            raise ValueError(f"two plan files are named {name!r}; variant names must be unique")
        plans[name] = EditPlan.load(f)
    if cfg.single_unit_ablations:
        fam = catalog(model)[cfg.single_unit_ablations]
        for u in fam.units:
            plans[f"ablate-{fam.layer}:{u}"] = EditPlan([Ablate(f"{fam.layer}:{u}", mode=cfg.mode, seed=cfg.seed)
                                                         if cfg.mode == "resample" else Ablate(f"{fam.layer}:{u}",
                                                                                               mode=cfg.mode)],
                                                        name=f"ablate-{fam.layer}:{u}")
    if not plans:
        raise ValueError("no plans: pass --plans FILE ... and/or --single-unit-ablations FAMILY")
    for p in plans.values():
        p.validate(model)
    return plans


def run_sweep_study(cfg: SweepConfig, out: str | Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Run the sweep and write ``out``: ``results.csv`` (per variant: top-1/top-5 and the change
    vs the unedited model), ``per_image.csv``, ``config.yaml``, ``plans/`` (every plan as
    JSON), ``summary.md``, ``report.html``, ``metrics.json``."""
    t0 = time.perf_counter()
    check_out_dir(out, overwrite)
    if not cfg.images or not Path(cfg.images).is_dir():
        raise FileNotFoundError(f"--images {cfg.images!r} is not a folder")
    if cfg.mode == "mean":
        raise ValueError("--mode mean needs reference images; use `circuits study family-ablation` for mean ablation")
    cfg = dataclasses.replace(cfg, images=str(Path(cfg.images).resolve()))
    model = load_model(cfg.model, device=cfg.device)
    plans = build_plans(cfg, model)
    res = run_sweep({"unedited": None, **plans}, cfg.images, model=model, limit=cfg.limit, jobs=cfg.jobs,
                    batch_size=cfg.batch_size, device=cfg.device, progress=progress)
    summ = res.summary().reset_index() if "variant" not in res.summary().columns else res.summary()
    base = summ[summ["variant"] == "unedited"].iloc[0]
    summ["top1_change"] = summ["top1"] - base["top1"]
    summ["top5_change"] = summ["top5"] - base["top5"]
    metrics = {"variants": len(plans), "computed": res.computed, "loaded_from_cache": res.loaded,
               "n_images": int(base.get("n_images", 0)) if "n_images" in summ.columns else None,
               "wall_time_s": round(time.perf_counter() - t0, 1)}
    with report_folder(out, overwrite) as tmp:
        write_yaml(tmp / "config.yaml", dataclasses.asdict(cfg))
        (tmp / "plans").mkdir()
        for name, p in plans.items():
            p.save(tmp / "plans" / f"{name.replace(':', '_')}.json")
        summ.to_csv(tmp / "results.csv", index=False)
        res.per_image.drop(columns=["top5"], errors="ignore").to_csv(tmp / "per_image.csv", index=False)
        write_json(tmp / "metrics.json", metrics)
        worst = summ[summ["variant"] != "unedited"].sort_values("top1_change", kind="stable").head(10)
        text = "\n".join([
            f"# Sweep: {len(plans)} plans (and the unedited model) on {cfg.images}",
            "",
            f"Unedited: top-1 {base['top1']:.4f}, top-5 {base['top5']:.4f}.",
            f"Computed {len(res.computed)} variant(s), loaded {len(res.loaded)} from the per-plan cache.",
            "",
            "Largest top-1 drops:",
            "",
            *[f"- {r['variant']}: top-1 {r['top1']:.4f} ({r['top1_change']:+.4f}), top-5 {r['top5']:.4f} "
              f"({r['top5_change']:+.4f})" for _, r in worst.iterrows()],
            "",
        ])
        (tmp / "summary.md").write_text(text)
        write_html_report(tmp, f"Sweep of {len(plans)} plans", [("Summary", text)],
                          tables={"Results": summ})
    return metrics

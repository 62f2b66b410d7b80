"""Ablate each curve family (zero / mean / resample) and size-matched random controls; measure
top-1/top-5 with paired bootstrap CIs and McNemar tests against the unedited model.

``run_family_ablation(config, out)`` (CLI: ``circuits study family-ablation``):

1. load the checkpoint; check ``--out`` and the image folder before any compute;
2. for each family (packaged catalog) build ``Ablate(family, mode)`` for every mode, and the
   same for ``controls`` random unit sets per family: drawn from the same branch(es) of the
   same layer as the family, the same number of units per branch, never a family unit,
   seeded by ``(seed, family, control number)``;
3. mean ablation measures each unit's mean activation on reference images: ``reference_images``
   images of the folder spread evenly over the files that are *not* evaluated (disjoint when
   ``limit`` leaves enough; otherwise evenly spaced over all files, and the report says so);
   resample draws donor images within each batch (seed ``seed``);
4. all variants run through :func:`studies.run.sweep.run_sweep` (cached per plan, resumable);
5. statistics per variant vs the unedited model, paired over images: change of top-1/top-5,
   percentile bootstrap 95 % CI (``bootstrap`` resamples of the images, seeded; the same
   resamples for every variant), exact two-sided McNemar test (binomial on the discordant
   pairs, any count);
6. the report folder (atomic): ``config.yaml``, ``results.csv`` (+ ``.parquet`` with pyarrow),
   ``per_image.csv``, ``class_changes.csv``, ``accuracy_deltas.png``, ``most_affected.png``,
   ``summary.md``, ``report.html``, ``metrics.json``.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from circuits.catalog import load_catalog
from circuits.labels import class_names
from edits import ABLATE_MODES, Ablate, EditPlan
from studies.base import Opening, StudyConfig, open_study, warn
from studies.measure.classify import wnid_index
from studies.measure.images import ImageFolderDataset, list_images, load_image
from studies.measure.paired import mcnemar_exact, paired_stats
from studies.report.folder import report_folder, write_json
from studies.report.html import write_report
from studies.report.provenance import write_config
from studies.run.executors import make_executor
from studies.run.sweep import run_sweep

DEFAULT_FAMILIES = ("conv2d2/curves", "mixed3a/curves", "mixed3b/curves", "mixed4a/curves")
DEFAULT_MODES = ("zero", "mean", "resample")
BASELINE = "unedited"


@dataclass
class FamilyAblationConfig(StudyConfig):
    """Everything needed to re-run the study (saved as ``config.yaml``); the common fields are
    :class:`~studies.base.StudyConfig`'s (``images`` is required; ``seed`` draws the controls,
    the bootstrap resamples and the resample donors). ``families``/``modes`` may be given as
    comma-separated strings.
    """

    images: str = ""
    families: list[str] = field(default_factory=lambda: list(DEFAULT_FAMILIES))
    modes: list[str] = field(default_factory=lambda: list(DEFAULT_MODES))
    controls: int = 1
    bootstrap: int = 1000
    reference_images: int = 50
    jobs: int = 1
    plans_per_pass: int = 8
    cache_dir: str | None = None
    hurt_examples: int = 8

    images_required = True

    def __post_init__(self) -> None:
        self.families, self.modes = _split(self.families), _split(self.modes)

    def check(self) -> None:
        bad = [m for m in self.modes if m not in ABLATE_MODES]
        if bad or not self.modes:
            raise ValueError(f"--modes {','.join(bad) if bad else '(none given)'}: choose from {', '.join(ABLATE_MODES)}")
        if not self.families:
            raise ValueError("--families: none given")
        if self.controls < 0 or self.bootstrap < 1 or self.jobs < 1:
            raise ValueError("--controls must be ≥ 0, --bootstrap and --jobs ≥ 1")
        super().check()
        for f in self.families:
            self.check_refs("--families", f)

    def check_images(self) -> None:
        try:
            ImageFolderDataset(self.images, {})
        except OSError as e:
            raise FileNotFoundError(f"--images {self.images}: cannot read the folder ({e})") from None


# ---------------------------------------------------------------------------- statistics
#: below this many images the summary and the figure flag a small sample
SMALL_SAMPLE = 200

# mcnemar_exact and paired_stats live in studies.measure.paired (scipy.stats); re-exported here
__all__ = ["mcnemar_exact", "paired_stats"]


# ---------------------------------------------------------------------------- controls
def control_units(spec, family, k: int, seed: int) -> list[int]:
    """Random units of ``family.layer``: per branch of the family, as many units of that
    branch, none of the family's; seeded by ``(seed, family key, k)``."""
    from circuits.spec import CONV_LAYERS

    rng = random.Random(f"{seed}|{family.key}|{k}")
    fam = set(family.units)
    width = spec.layer_width(family.layer)
    if family.layer in CONV_LAYERS:
        pool = {"all": [i for i in range(width) if i not in fam]}
        need = {"all": len(fam)}
    else:
        pool, need = {}, {}
        for u in family.units:
            need[spec.branch_of(family.layer, u)] = need.get(spec.branch_of(family.layer, u), 0) + 1
        for i in range(width):
            br = spec.branch_of(family.layer, i)
            if br in need and i not in fam:
                pool.setdefault(br, []).append(i)
    out: list[int] = []
    for br in sorted(need):
        if len(pool.get(br, [])) < need[br]:
            raise ValueError(f"{family.key}: branch {br} has too few non-family units for a control")
        out += rng.sample(pool[br], need[br])
    return sorted(out)


def reference_for(images: str, evaluated: set[str], n: int) -> tuple[torch.Tensor, str]:
    """``n`` images evenly spaced over the folder's images not in ``evaluated`` (all images if
    fewer than ``n`` remain), preprocessed like classification; and a description."""
    files = list_images(images)
    rest = [p for p in files if str(p) not in evaluated and str(p.resolve()) not in evaluated]
    disjoint = len(rest) >= n
    pool = rest if disjoint else files
    step = max(1, len(pool) // n)
    out, used = [], []
    for p in pool[::step]:
        if len(out) == n:
            break
        try:
            out.append(load_image(p))
            used.append(p.name)
        except Exception:  # noqa: BLE001 - unreadable files are skipped, as in classification
            continue
    if not out:
        raise ValueError(f"no readable reference image in {images}")
    desc = (f"{len(out)} images evenly spaced over the {len(pool)} {'non-evaluated' if disjoint else ''} "
            f"images of {Path(images).name} ({'disjoint from' if disjoint else 'OVERLAPPING'} the evaluated set); "
            f"first {used[0]}, last {used[-1]}").replace("  ", " ")
    return torch.stack(out), desc


# ---------------------------------------------------------------------------- the study
def _split(v) -> list[str]:
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    return list(v)


def run_family_ablation(config: FamilyAblationConfig, out: str | Path, overwrite: bool = False,
                        progress: bool = True) -> dict:
    """Run the study and write the report folder ``out``; returns ``metrics.json``'s dict.

    Raises:
        ReportExistsError: ``out`` non-empty without ``overwrite`` (checked first).
        FileNotFoundError, ValueError: bad images folder, families, modes or settings (before compute).
    """
    op = open_study(config, out, overwrite, progress)
    config, model = op.config, op.model
    ds_eval = _evaluation_set(config, model)
    fams = _catalog_families(config, model)
    op.log(f"loaded {model.spec.name}; {len(ds_eval)} images; families " + ", ".join(f"{f.key} ({len(f)})" for f in fams))
    plans, rows, unit_sets = _build_plans(config, model, fams)
    reference, ref_desc = None, None
    if "mean" in config.modes:
        reference, ref_desc = reference_for(config.images, {s[0] for s in ds_eval.samples}, config.reference_images)
        op.log(f"reference for mean ablation: {ref_desc}")
    op.log(f"sweep: {len(plans)} variants")
    t_sweep = time.perf_counter()
    sw = run_sweep(plans, config.images, model=model, weights=config.weights, limit=config.limit,
                   reference=reference, cache_dir=config.cache_dir, jobs=config.jobs,
                   executor=make_executor(**config.executor, jobs=config.jobs),
                   plans_per_pass=config.plans_per_pass, batch_size=config.batch_size, device=config.device,
                   num_workers=0, progress=progress, log=op.log)
    sweep_s = time.perf_counter() - t_sweep
    names = class_names(model.spec)
    st = _statistics(sw.per_image, rows, config, names)
    b1, b5 = st["baseline"]
    metrics = {
        "checkpoint": model.spec.name,
        "n_images": st["n"], "n_skipped": int(len(sw.skipped)),
        "baseline": {"top1": float(b1.mean()), "top5": float(b5.mean())},
        "unit_sets": unit_sets,
        "reference": ref_desc,
        "variants": {r["variant"]: {k: r[k] for k in r if k != "variant"} for r in st["results"][1:]},
        "sweep": {"plans": len(plans), "computed": len(sw.computed), "loaded": len(sw.loaded),
                  "seconds": round(sweep_s, 1), "jobs": config.jobs},
    }
    with report_folder(out, overwrite) as tmp:
        metrics["provenance"] = write_config(
            tmp / "config.yaml", "family-ablation", config, model,
            extra={"reference_description": ref_desc, "unit_sets": unit_sets, "bootstrap_seed": config.seed,
                   "resample_seed": config.seed, "control_seed": config.seed})
        _write_report(tmp, config, model, st, metrics, names, ref_desc, op)
    if metrics["n_images"] < SMALL_SAMPLE:
        warn(f"family ablation on only {metrics['n_images']} images: one image = {100 / metrics['n_images']:.2g} "
             "percentage points; see the CIs in summary.md")
    op.log(f"report written to {out}")
    return metrics


def _evaluation_set(config: FamilyAblationConfig, model) -> ImageFolderDataset:
    """The labelled images evaluated (first ``limit``); an error if none is usable."""
    ds = ImageFolderDataset(config.images, wnid_index(model))
    try:
        ds_eval = ds.head(config.limit)
    except PermissionError as e:
        raise FileNotFoundError(str(e)) from None
    if len(ds_eval) == 0:
        reason = f" (e.g. {ds.skipped[0][0]}: {ds.skipped[0][1]})" if ds.skipped else ""
        raise ValueError(f"--images {config.images} has no usable labelled image{reason}; expected files "
                         f"<wnid>_*.JPEG or <wnid>/*.JPEG")
    return ds_eval


def _catalog_families(config: FamilyAblationConfig, model) -> list:
    cat = load_catalog(model.spec)
    fams = []
    for key in config.families:
        if key not in cat:
            raise ValueError(f"--families: {key!r} is not in the {model.spec.name} catalog; "
                             f"valid: {', '.join(k for k in cat if k.endswith('/curves'))}")
        fams.append(cat[key])
    return fams


def _build_plans(config: FamilyAblationConfig, model, fams) -> tuple[dict, list[dict], dict[str, dict]]:
    """One Ablate plan per (family or control set) × mode: ``(plans with the baseline first,
    variant metadata rows, unit sets)``."""
    plans: dict = {BASELINE: None}
    rows = []  # variant metadata
    unit_sets: dict[str, dict] = {}
    for f in fams:
        sets = [(f.key, "family", 0, list(f.units))]
        for k in range(1, config.controls + 1):
            sets.append((f"{f.key}~control{k}", "control", k, control_units(model.spec, f, k, config.seed)))
        for set_name, kind, k, units in sets:
            unit_sets[set_name] = {"layer": f.layer, "units": units, "kind": kind}
            for mode in config.modes:
                name = f"{set_name}|{mode}"
                refs = f if kind == "family" else [f"{f.layer}:{u}" for u in units]
                plans[name] = EditPlan([Ablate(refs, mode=mode, seed=config.seed if mode == "resample" else None)],
                                       name=name)
                rows.append({"variant": name, "family": f.key, "layer": f.layer, "kind": kind, "control": k,
                             "mode": mode, "n_units": len(units)})
    return plans, rows, unit_sets


def _statistics(pi: pd.DataFrame, rows: list[dict], config: FamilyAblationConfig, names) -> dict:
    """Per variant vs the baseline: accuracy, paired bootstrap CIs, McNemar; per-class changes."""
    base = pi[pi["variant"] == BASELINE].reset_index(drop=True)
    n = len(base)
    b1, b5 = base["correct_top1"].to_numpy(bool), base["correct_top5"].to_numpy(bool)
    results = [{"variant": BASELINE, "family": "", "layer": "", "kind": "baseline", "control": 0, "mode": "",
                "n_units": 0, "n_images": n, "top1": float(b1.mean()), "top5": float(b5.mean())}]
    class_rows = []
    for meta in rows:
        v = pi[pi["variant"] == meta["variant"]].reset_index(drop=True)
        assert (v["path"].to_numpy() == base["path"].to_numpy()).all()
        v1, v5 = v["correct_top1"].to_numpy(bool), v["correct_top5"].to_numpy(bool)
        r = dict(meta, n_images=n, top1=float(v1.mean()), top5=float(v5.mean()))
        for tag, bb, vv in (("top1", b1, v1), ("top5", b5, v5)):
            r.update({f"{tag}_{k}": val for k, val in paired_stats(bb, vv, config.bootstrap, config.seed).items()})
        results.append(r)
        class_rows += _class_changes(meta["variant"], base, b1, v1, names)
    class_changes = pd.DataFrame(class_rows, columns=["variant", "wnid", "class", "n_images", "top1_before",
                                                       "top1_after", "top1_change", "lost"])
    class_changes = class_changes.sort_values(["variant", "top1_change", "wnid"], kind="stable")
    per_image = pi.drop(columns=["top5"]).assign(top5=pi["top5"].map(lambda t: " ".join(map(str, t))))
    return dict(results=results, res=pd.DataFrame(results), class_changes=class_changes, per_image=per_image,
                pi=pi, base=base, n=n, baseline=(b1, b5))


def _class_changes(variant: str, base: pd.DataFrame, b1, v1, names) -> list[dict]:
    """Per class: top-1 change (flips when one image per class), classes that changed only."""
    df = pd.DataFrame({"wnid": base["wnid"], "label": base["label"], "b": b1, "v": v1, "lost": b1 & ~v1})
    g = df.groupby(["wnid", "label"]).agg(n=("b", "size"), before=("b", "mean"), after=("v", "mean"),
                                          lost=("lost", "sum")).reset_index()
    g["change"] = g["after"] - g["before"]
    g = g[g["change"] != 0]
    return [{"variant": variant, "wnid": c["wnid"], "class": names[int(c["label"])], "n_images": int(c["n"]),
             "top1_before": float(c["before"]), "top1_after": float(c["after"]), "top1_change": float(c["change"]),
             "lost": int(c["lost"])} for _, c in g.iterrows()]


def _write_report(tmp: Path, config: FamilyAblationConfig, model, st: dict, metrics: dict, names, ref_desc,
                  op: Opening) -> None:
    """Tables, figures, ``metrics.json``, ``summary.md`` and ``report.html`` (``config.yaml`` is the caller's)."""
    res = st["res"]
    res.to_csv(tmp / "results.csv", index=False)
    try:
        import pyarrow  # noqa: F401

        res.to_parquet(tmp / "results.parquet", index=False)
    except ImportError:
        pass
    st["per_image"].to_csv(tmp / "per_image.csv", index=False)
    st["class_changes"].to_csv(tmp / "class_changes.csv", index=False)
    _plot_deltas(res, tmp / "accuracy_deltas.png", st["n"])
    worst = _worst_family_variant(res)
    hurt = _hurt_examples(st["pi"], st["base"], worst, config.hurt_examples, names) if worst else []
    _plot_examples(hurt, worst, tmp / "most_affected.png")
    metrics["most_affected_variant"] = worst
    metrics["wall_time_s"] = op.elapsed()
    write_json(tmp / "metrics.json", metrics)
    summary = _summary(config, metrics, res, st["class_changes"], worst, ref_desc)
    (tmp / "summary.md").write_text(summary)
    write_report(tmp, f"Curve-family ablation: {model.spec.name}", summary,
                 figures=["accuracy_deltas.png", "most_affected.png"],
                 tables={"Results per variant (results.csv)": "results.csv",
                         "Per-class changes (class_changes.csv)": "class_changes.csv"})


def _worst_family_variant(res: pd.DataFrame) -> str | None:
    fam = res[res["kind"] == "family"]
    if fam.empty:
        return None
    return str(fam.sort_values(["top1_delta", "variant"], kind="stable").iloc[0]["variant"])


def _hurt_examples(pi, base, variant, k, names) -> list[dict]:
    v = pi[pi["variant"] == variant].reset_index(drop=True)
    lost = base["correct_top1"].to_numpy(bool) & ~v["correct_top1"].to_numpy(bool)
    out = []
    for i in np.flatnonzero(lost)[:k]:
        out.append({"path": base.loc[i, "path"], "true": names[int(base.loc[i, "label"])],
                    "before": names[int(base.loc[i, "pred"])], "after": names[int(v.loc[i, "pred"])]})
    return out


def _plot_deltas(res: pd.DataFrame, path: Path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = res[res["kind"] != "baseline"].reset_index(drop=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.35 * len(r) + 1.8), sharey=True, layout="constrained")
    y = np.arange(len(r))[::-1]
    for ax, tag in zip(axes, ("top1", "top5")):
        for kind, color in (("family", "tab:red"), ("control", "tab:gray")):
            m = (r["kind"] == kind).to_numpy()
            d = 100 * r[f"{tag}_delta"].to_numpy()[m]
            lo = 100 * r[f"{tag}_ci_low"].to_numpy()[m]
            hi = 100 * r[f"{tag}_ci_high"].to_numpy()[m]
            ax.errorbar(d, y[m], xerr=[d - lo, hi - d], fmt="o", color=color, capsize=3,
                        label="curve family" if kind == "family" else "random control (same branches)")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel(f"{tag} change vs unedited (percentage points, 95% bootstrap CI)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(r["variant"], fontsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="outside lower center", ncol=2)
    fig.suptitle(f"Accuracy change per ablation ({n} images)"
                 + (f"; small sample: 1 image = {100 / n:.2g} pp" if n < SMALL_SAMPLE else ""))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_examples(hurt: list[dict], variant: str | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    if not hurt:
        fig, ax = plt.subplots(figsize=(6, 1.5), layout="constrained")
        ax.axis("off")
        ax.text(0.5, 0.5, f"no image turned wrong under {variant}", ha="center", va="center")
    else:
        cols = min(4, len(hurt))
        rows = math.ceil(len(hurt) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 4.0 * rows), squeeze=False, layout="constrained")
        for ax in axes.flat:
            ax.axis("off")
        for ax, h in zip(axes.flat, hurt):
            ax.imshow(load_image(h["path"]).permute(1, 2, 0).numpy())
            ax.set_title(f"true: {h['true'][:30]}\nbefore: {h['before'][:28]}\nafter: {h['after'][:29]}",
                         fontsize=7, loc="left")
        fig.suptitle(f"Images turned wrong (top-1) by {variant}", fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(r, tag) -> str:
    return (f"{100 * r[f'{tag}_delta']:+.1f} [{100 * r[f'{tag}_ci_low']:+.1f}, {100 * r[f'{tag}_ci_high']:+.1f}]")


def _summary(config, m, res: pd.DataFrame, class_changes: pd.DataFrame, worst, ref_desc) -> str:
    b = m["baseline"]
    lines = [
        f"# Curve-family ablation: {m['checkpoint']}", "",
        f"- Images: {m['n_images']} of `{config.images}` (limit {config.limit}; {m['n_skipped']} skipped).",
        f"- Unedited: top-1 {b['top1']:.4f}, top-5 {b['top5']:.4f}.",
        f"- Modes: {', '.join(config.modes)}; {config.controls} random control(s) per family: the same number "
        f"of units per branch of the same layer, no family unit, seed {config.seed}.",
        f"- Mean ablation reference: {ref_desc or 'not used'}.",
        *(["- Resample: each ablated unit takes its activation from another image of the same batch "
           f"(derangement, seed {config.seed}, batch size {config.batch_size})."] if "resample" in config.modes else []),
        f"- Statistics: change vs unedited, paired over images; 95% percentile bootstrap CI "
        f"({config.bootstrap} resamples, seed {config.seed}); exact two-sided McNemar test on the "
        "discordant images (lost = right→wrong, gained = wrong→right).", "",
        *([f"**Warning: small sample ({m['n_images']} images; one image = {100 / m['n_images']:.2g} percentage "
           "points).** Changes whose CI includes 0 are within noise; run on ≥ 1000 images before drawing "
           "conclusions.", ""] if m["n_images"] < SMALL_SAMPLE else []),
        "## Results (percentage points)", "",
        "| variant | units | top-1 | Δ top-1 [95% CI] | lost/gained | McNemar p | top-5 | Δ top-5 [95% CI] | p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in res[res["kind"] != "baseline"].iterrows():
        lines.append(f"| {str(r['variant']).replace('|', ' / ')} | {r['n_units']} | {r['top1']:.3f} | {_fmt(r, 'top1')} | "
                     f"{int(r['top1_lost'])}/{int(r['top1_gained'])} | {r['top1_mcnemar_p']:.3g} | {r['top5']:.3f} | "
                     f"{_fmt(r, 'top5')} | {r['top5_mcnemar_p']:.3g} |")
    if worst:
        cc = class_changes[class_changes["variant"] == worst].head(15)
        one = bool((cc["n_images"] == 1).all()) if len(cc) else True
        lines += ["", f"## Classes most hurt by {worst}", "",
                  "One image per class in this sample: each row is a correct→wrong flip." if one else
                  "Per-class top-1 change.", ""]
        lines += [f"- {c['class']} ({c['wnid']}): {c['top1_before']:.2f} → {c['top1_after']:.2f}"
                  for _, c in cc[cc["top1_change"] < 0].iterrows()] or ["- none"]
        lines += ["", "Examples: `most_affected.png`; all variants: `class_changes.csv`."]
    s = m["sweep"]
    lines += ["", f"Sweep: {s['plans']} plans ({s['computed']} computed, {s['loaded']} from the cache), "
              f"{s['seconds']} s, jobs={s['jobs']}. Wall time {m['wall_time_s']} s.", ""]
    return "\n".join(lines)

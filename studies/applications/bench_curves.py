"""``circuits bench-curves``: curve extraction (ours, before/after the combing edit) vs Canny, and
spline tracing, on the seeded synthetic scenes (:mod:`.scenes`), with the metrics of :mod:`.benchmark`.

Protocol: scenes ``0 … n_tune − 1`` tune every free parameter (Canny's σ and thresholds over
:data:`~.benchmark.CANNY_GRID`; our map's blur σ, thinning and threshold — quantiles of the
tuning maps' values); scenes ``10000 … 10000 + n_test − 1`` are the test split, measured once
with those settings. The edited model (combing pathways pruned, :mod:`.combing_plan`) is tuned
the same way on the same tuning split. Spline tracing runs on ``n_trace`` further test scenes
(``20000 …``) drawn with two occluders each; for every true curve the fitted spline closest to it
(mean distance from the spline's points to the true arc, px) is its match; the table reports the
share of curves whose match lies within 2 px on average, the mean coverage (share of the arc
within 2 px of its match; partial traces score low here, not in the distance) and the time per
curve (map + fit of the scene, divided by its curves).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from studies.report.html import write_report

from .benchmark import CANNY_GRID, Counts, score_set, tune
from .extraction import binarize, canny, curve_families, curve_map, gaussian_blur
from .scenes import make_scenes
from .splines import bezier_np, mean_distance, trace

TEST_START, TRACE_START = 10000, 20000
QUANTILES = (0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99)


@dataclass
class BenchConfig:
    """Settings of the benchmark (saved with the table).

    Attributes:
        model, weights: checkpoint. families: curve families (None: the defaults of
            :func:`~.extraction.curve_families`). power: objective exponent.
        n_tune, n_test, n_trace: scenes per split. size: scene side (px). seed: set seed.
        tol: match tolerance (px). combing_plan: a saved plan (default: built).
        top_pathways: pathways cut per unit when building it.
    """

    model: str = "inceptionv1_caffe"
    weights: str | None = None
    families: str | None = None
    power: float = 4.0
    n_tune: int = 24
    n_test: int = 48
    n_trace: int = 24
    size: int = 128
    seed: int = 0
    tol: float = 2.0
    combing_plan: str | None = None
    top_pathways: int = 8
    edit: bool = True


def _maps(model, scenes, cfg: BenchConfig) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    m = curve_map(model, torch.stack([s.image for s in scenes]), cfg.families, cfg.power)
    return m.numpy(), (time.perf_counter() - t) / len(scenes)


def tune_map(raw: np.ndarray, scenes, tol: float) -> tuple[dict, float]:
    """Best (blur σ, thinning, threshold) of curve maps ``raw (N, H, W)`` on ``scenes``."""
    best, best_f1 = None, -1.0
    for sm in (1.0, 2.0):
        m = gaussian_blur(torch.from_numpy(raw), sm).numpy()
        qs = [float(q) for q in np.quantile(m, QUANTILES)]
        for thin in (True, False):
            p, f1 = tune(lambda i, q, m=m, thin=thin: binarize(m[i], q["threshold"], thin), len(scenes),
                         dict(threshold=qs), scenes, tol)
            if f1 > best_f1:
                best, best_f1 = dict(smooth_px=sm, thin=thin, **p), f1
    return best, best_f1


def apply_map(raw: np.ndarray, p: dict) -> list[np.ndarray]:
    """Marked pixels of maps ``raw (N, H, W)`` with tuned settings ``p``."""
    m = gaussian_blur(torch.from_numpy(raw), p["smooth_px"]).numpy()
    return [binarize(x, p["threshold"], p["thin"]) for x in m]


def _row(method: str, c: Counts, params: dict, tune_f1: float, sec: float) -> dict:
    return dict(method=method, **{k: round(v, 4) for k, v in c.summary().items()},
                tune_f1=round(tune_f1, 4), seconds_per_image=round(sec, 4), params=str(params))


def _by_background(name: str, preds, scenes, tol: float) -> list[dict]:
    rows = []
    for bg in sorted({s.background for s in scenes}):
        idx = [i for i, s in enumerate(scenes) if s.background == bg]
        c = score_set([preds[i] for i in idx], [scenes[i] for i in idx], tol)
        rows.append(dict(method=name, background=bg, n=len(idx), **{k: round(v, 4) for k, v in c.summary().items()}))
    return rows


def extraction_table(model, cfg: BenchConfig, log=print) -> dict:
    """Ours vs Canny (and ours after the combing edit) on the test split. → dict of tables and examples."""
    tune_s = make_scenes(cfg.n_tune, cfg.size, cfg.seed)
    test_s = make_scenes(cfg.n_test, cfg.size, cfg.seed, start=TEST_START)
    t = time.perf_counter()
    cp, cf1 = tune(lambda i, p: canny(tune_s[i].image, **p), len(tune_s), CANNY_GRID, tune_s, cfg.tol)
    t = time.perf_counter()
    canny_pred = [canny(s.image, **cp) for s in test_s]
    canny_sec = (time.perf_counter() - t) / len(test_s)
    rows = [_row("Canny (skimage)", score_set(canny_pred, test_s, cfg.tol), cp, cf1, canny_sec)]
    bgs = _by_background("Canny (skimage)", canny_pred, test_s, cfg.tol)
    log(f"Canny tuned {cp}: tune F1 {cf1:.3f}")
    variants = {"curve map": model}
    if cfg.edit:
        from edits import EditPlan

        from .combing_plan import load_or_build_plan

        plan: EditPlan = load_or_build_plan(model, cfg.combing_plan, cfg.top_pathways)
        variants["curve map, combing edit"] = plan.apply(model)[0]
        log(f"combing plan: {len(plan.edits)} PrunePathway edits")
    examples = dict(scenes=test_s[:4], canny=canny_pred[:4])
    for name, mdl in variants.items():
        raw_tune, _ = _maps(mdl, tune_s, cfg)
        raw_test, sec = _maps(mdl, test_s, cfg)
        p, f1 = tune_map(raw_tune, tune_s, cfg.tol)
        pred = apply_map(raw_test, p)
        rows.append(_row(name, score_set(pred, test_s, cfg.tol), p, f1, sec))
        bgs += _by_background(name, pred, test_s, cfg.tol)
        examples[name] = (raw_test[:4], pred[:4])
        log(f"{name}: tuned {p}, tune F1 {f1:.3f}")
    return dict(table=pd.DataFrame(rows), by_background=pd.DataFrame(bgs), examples=examples)


def trace_table(model, cfg: BenchConfig, log=print) -> dict:
    """Spline tracing on scenes with two occluders each. → per-curve table, summary, examples."""
    scenes = make_scenes(cfg.n_trace, cfg.size, cfg.seed, start=TRACE_START, occluders=2)
    rows, examples = [], []
    for s in scenes:
        t = time.perf_counter()
        m = curve_map(model, s.image, cfg.families, cfg.power)[0]
        res = trace(m)
        sec = time.perf_counter() - t
        polys = [bezier_np(c) for c in res.ctrl]
        cmeta = [x for x in s.meta if x["kind"] == "curve"]
        for k, arc in enumerate(s.arcs):
            if len(arc) < 4:
                continue
            d = [mean_distance(p, arc) for p in polys]
            j = int(np.argmin(d)) if d else -1
            cov = float(np.mean(_point_dist(arc, polys[j]) <= 2.0)) if j >= 0 else 0.0
            occluded = bool(s.occluder[np.clip(arc[:, 1].round().astype(int), 0, cfg.size - 1),
                                       np.clip(arc[:, 0].round().astype(int), 0, cfg.size - 1)].any())
            rows.append(dict(scene=s.index, curve=k, background=s.background, radius=round(cmeta[k]["radius"], 2),
                             occluded=occluded, mean_distance_px=d[j] if d else np.inf, coverage=cov,
                             splines=len(polys), seconds_per_curve=sec / max(1, len(s.arcs))))
        if len(examples) < 4:
            examples.append((s, res))
    df = pd.DataFrame(rows)
    summ = dict(curves=len(df), within_2px=float((df["mean_distance_px"] <= 2).mean()),
                within_2px_occluded=float((df[df["occluded"]]["mean_distance_px"] <= 2).mean()),
                median_distance_px=float(df["mean_distance_px"].median()), mean_coverage=float(df["coverage"].mean()),
                seconds_per_curve=float(df["seconds_per_curve"].mean()))
    bins = pd.cut(df["radius"], [0, 25, 40, np.inf], labels=["r < 25 px", "25-40 px", "r > 40 px"])
    summ["within_2px_by_radius"] = {str(k): dict(curves=int(len(g)), within_2px=round(float((g["mean_distance_px"] <= 2)
                                                                                           .mean()), 3))
                                    for k, g in df.groupby(bins, observed=True)}
    log(f"tracing: {summ}")
    return dict(table=df, summary=summ, examples=examples)


def _point_dist(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    from .splines import _seg_distance

    return _seg_distance(torch.as_tensor(poly, dtype=torch.float64)[None],
                         torch.as_tensor(points, dtype=torch.float64))[0].numpy()


def markdown_table(ext: pd.DataFrame, summ: dict, cfg: BenchConfig) -> str:
    """The benchmark table as markdown (ours vs Canny; F1, line FP, combing; splines)."""
    lines = [f"Test split: {cfg.n_test} scenes of {cfg.size} px (seed {cfg.seed}); tuning split: {cfg.n_tune} scenes; "
             f"tolerance {cfg.tol:g} px; model {cfg.model}.", "",
             "| method | curve F1 | precision | recall | line FP rate | angle rate | combing band marked | s/image |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in ext.iterrows():
        lines.append(f"| {r['method']} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['line_fp']:.3f} "
                     f"| {r['angle_rate']:.3f} | {r['combing']:.3f} | {r['seconds_per_image']:.3f} |")
    c = ext.set_index("method")
    ours, base = c.loc["curve map"], c.loc["Canny (skimage)"]
    ratio = ours["line_fp"] / base["line_fp"] if base["line_fp"] else float("nan")
    lines += ["", f"Goals: curve F1 ≥ Canny's: {ours['f1']:.3f} vs {base['f1']:.3f} "
              f"({'met' if ours['f1'] >= base['f1'] else 'NOT met'}); line FP ≤ 0.25 × Canny's: "
              f"{ours['line_fp']:.3f} = {ratio:.2f} × {base['line_fp']:.3f} ({'met' if ratio <= 0.25 else 'NOT met'}).",
              "", f"Spline tracing ({summ['curves']} curves in {cfg.n_trace} scenes with 2 occluders each): "
              f"{100 * summ['within_2px']:.0f} % of curves have a fitted spline within 2 px mean distance "
              f"(goal ≥ 80 %: {'met' if summ['within_2px'] >= 0.8 else 'NOT met'}; occluded curves: "
              f"{100 * summ['within_2px_occluded']:.0f} %); median distance {summ['median_distance_px']:.2f} px; "
              f"mean coverage of the true arc {100 * summ['mean_coverage']:.0f} %; "
              f"{summ['seconds_per_curve']:.2f} s per curve (map + fit). By radius: "
              + "; ".join(f"{k}: {100 * v['within_2px']:.0f} % of {v['curves']}"
                          for k, v in summ["within_2px_by_radius"].items()) + "."]
    return "\n".join(lines) + "\n"


def run_bench_curves(cfg: BenchConfig, out: str | Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Run the benchmark and write ``out/``: ``extraction.csv``, ``by_background.csv``, ``tracing.csv``,
    ``table.md``, ``config.json``, ``examples.png``, ``tracing.png``. Returns the summary dict.

    Raises:
        ReportExistsError: ``out`` non-empty without ``overwrite`` (before any compute).
        ValueError: split sizes < 1, power ≤ 0. KeyError: an unknown family (all before the model is loaded).
    """
    from circuits import load_model
    from circuits.spec import get_spec
    from studies.report.folder import check_out_dir, log_step, report_folder, write_json

    from .figures import plot_bench_examples, plot_traces

    check_out_dir(out, overwrite)
    for k in ("n_tune", "n_test", "n_trace"):
        if getattr(cfg, k) < 1:
            raise ValueError(f"--{k.replace('_', '-')} must be ≥ 1; got {getattr(cfg, k)}")
    if not cfg.power > 0:
        raise ValueError(f"--power must be > 0; got {cfg.power}")
    curve_families(get_spec(cfg.model), cfg.families)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        log_step(msg, t0, not progress)

    model = load_model(cfg.model, weights=cfg.weights)
    ext = extraction_table(model, cfg, log)
    tr = trace_table(model, cfg, log)
    md = markdown_table(ext["table"], tr["summary"], cfg)
    with report_folder(out, overwrite) as tmp:
        ext["table"].to_csv(tmp / "extraction.csv", index=False)
        ext["by_background"].to_csv(tmp / "by_background.csv", index=False)
        tr["table"].to_csv(tmp / "tracing.csv", index=False)
        (tmp / "table.md").write_text(md)
        write_json(tmp / "config.json", dict(asdict(cfg), wall_time_s=round(time.perf_counter() - t0, 1),
                                              tracing=tr["summary"]))
        plot_bench_examples(ext["examples"], tmp / "examples.png")
        plot_traces(tr["examples"], tmp / "tracing.png")
        write_report(tmp, "Curve extraction benchmark: curve map vs Canny, spline tracing")
    log(f"wrote {out}")
    return dict(extraction=ext["table"], tracing=tr["summary"], markdown=md)


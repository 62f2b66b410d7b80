"""``circuits bench-curves``: curve extraction (ours, before/after the combing edit) vs Canny, and
spline tracing, on the seeded synthetic scenes (:mod:`.scenes`), with the metrics of :mod:`.benchmark`.

Protocol: scenes ``0 … n_tune − 1`` tune every free parameter (Canny's σ and thresholds over
:data:`~.benchmark.CANNY_GRID`; our map's blur σ, thinning and threshold — quantiles of the
tuning maps' values); scenes ``10000 … 10000 + n_test − 1`` are the test split, measured once
with those settings. The edited model (combing pathways pruned, :mod:`.combing_plan`) is tuned
the same way on the same tuning split. Spline tracing has its own splits of scenes drawn with two
occluders each: ``n_trace_tune`` tuning scenes (``30000 …``; the tracer's defaults were chosen
there) and ``n_trace`` test scenes (``20000 …``). For every true curve the fitted spline closest
to it (mean distance from the spline's points to the true arc, px) is its match; the table reports
the share of curves whose match lies within 2 px on average, the coverage (share of the arc within
2 px of a spline matched to it: partial traces score low here, not in the distance), the fitted
splines' share on true curves, and the time per curve (map + fit of the scene, divided by its
curves); see :func:`trace_table`.
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
from .splines import bezier_np, mean_distance, trace_image

TEST_START, TRACE_START, TRACE_TUNE_START = 10000, 20000, 30000
QUANTILES = (0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99)


@dataclass
class BenchConfig:
    """Settings of the benchmark (saved with the table).

    Attributes:
        model, weights: checkpoint. families: curve families (None: the defaults of
            :func:`~.extraction.curve_families`). power: objective exponent.
        n_tune, n_test, n_trace, n_trace_tune: scenes per split (n_trace_tune: tracing's tuning split,
            reported beside the test split; 0 skips it). size: scene side (px). seed: set seed.
        tol: match tolerance (px). combing_plan: a saved plan (default: built).
        top_pathways: pathways cut per unit when building it.
    """

    model: str = "inceptionv1_caffe"
    weights: str | None = None
    families: str | None = None
    power: float = 4.0
    n_tune: int = 24
    n_test: int = 48
    n_trace: int = 48
    n_trace_tune: int = 96
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


def match_curve(polys: list[np.ndarray], arc: np.ndarray, tol: float = 2.0) -> tuple[float, float, int]:
    """How fitted splines trace one true curve.

    Args:
        polys: fitted splines as polylines ``(n, 2)`` (px). arc: the true curve's points ``(K, 2)``
            (px, every ~0.5 px, occluded parts included). tol: tolerance (px).

    Returns:
        ``(distance, coverage, matched)``: the smallest mean distance (px) from a spline's points
        to the arc (inf without splines); the share of the arc's points within ``tol`` of a
        *matched* spline — one whose mean distance is ≤ ``tol`` (0 when none); the number matched.
    """
    d = [mean_distance(p, arc) for p in polys]
    near = [p for p, dd in zip(polys, d) if dd <= tol]
    cov = float((np.min([_point_dist(arc, p) for p in near], 0) <= tol).mean()) if near else 0.0
    return (min(d) if d else float("inf")), cov, len(near)


def on_curve(polys: list[np.ndarray], arcs: list[np.ndarray], tol: float = 2.0) -> float:
    """Mean over fitted splines ``polys`` of the share of their points within ``tol`` px of a true
    curve in ``arcs`` (the splines' precision; nan without splines, 0 without curves)."""
    if not polys:
        return float("nan")
    if not arcs:
        return 0.0
    return float(np.mean([(np.min([_point_dist(p, a) for a in arcs], 0) <= tol).mean() for p in polys]))


def _trace_rows(model, scenes, cfg: BenchConfig) -> tuple[list[dict], list[dict], list]:
    """Trace every scene; → per-curve rows, per-scene rows (spline precision), examples."""
    rows, srows, examples = [], [], []
    for s in scenes:
        t = time.perf_counter()
        res, _ = trace_image(model, s.image, cfg.families, cfg.power)
        sec = time.perf_counter() - t
        polys = [bezier_np(c) for c in res.ctrl]
        arcs = [a for a in s.arcs if len(a) >= 4]
        srows.append(dict(scene=s.index, splines=len(polys), on_curve=on_curve(polys, arcs, cfg.tol)))
        cmeta = [x for x in s.meta if x["kind"] == "curve"]
        for k, arc in enumerate(s.arcs):
            if len(arc) < 4:
                continue
            dist, cov, n_match = match_curve(polys, arc, cfg.tol)
            ij = np.clip(arc.round().astype(int), 0, cfg.size - 1)
            rows.append(dict(scene=s.index, curve=k, background=s.background, radius=round(cmeta[k]["radius"], 2),
                             occluded=bool(s.occluder[ij[:, 1], ij[:, 0]].any()),
                             mean_distance_px=dist, coverage=cov, matched_splines=n_match,
                             splines=len(polys), seconds_per_curve=sec / max(1, len(arcs))))
        if len(examples) < 4:
            examples.append((s, res))
    return rows, srows, examples


def trace_summary(df: pd.DataFrame, scenes: pd.DataFrame, tol: float = 2.0) -> dict:
    """Summary of per-curve tracing rows (see :func:`trace_table`)."""
    ok = df["mean_distance_px"] <= tol
    occ = df["occluded"]
    summ = dict(curves=len(df), within_2px=float(ok.mean()), occluded_share=float(occ.mean()),
                within_2px_occluded=float(ok[occ].mean()) if occ.any() else float("nan"),
                median_distance_px=float(df["mean_distance_px"].median()), mean_coverage=float(df["coverage"].mean()),
                mean_coverage_matched=float(df.loc[ok, "coverage"].mean()) if ok.any() else 0.0,
                traced_half=float((ok & (df["coverage"] >= 0.5)).mean()),
                spline_on_curve=float(scenes["on_curve"].mean()), splines_per_scene=float(scenes["splines"].mean()),
                seconds_per_curve=float(df["seconds_per_curve"].mean()))
    bins = pd.cut(df["radius"], [0, 25, 40, np.inf], labels=["r < 25 px", "25-40 px", "r > 40 px"])
    summ["within_2px_by_radius"] = {str(k): dict(curves=int(len(g)),
                                                 within_2px=round(float((g["mean_distance_px"] <= tol).mean()), 3),
                                                 coverage=round(float(g["coverage"].mean()), 3))
                                    for k, g in df.groupby(bins, observed=True)}
    return summ


def trace_table(model, cfg: BenchConfig, log=print) -> dict:
    """Spline tracing on scenes with two occluders each: the tuning split (scenes ``30000 …``, on which
    :func:`~.splines.trace`'s defaults were chosen) and the test split (``20000 …``, measured once).

    Per true curve (arc, occluded parts included): its **distance** is the smallest mean distance
    (px) from a fitted spline's points to the arc; its **matched splines** are the fitted splines
    whose mean distance is ≤ ``tol``; its **coverage** is the share of the arc's points within
    ``tol`` of a matched spline (0 when none), so a short partial trace passes the distance test
    but scores low coverage. Per scene, **on curve** is the mean over fitted splines of the share
    of their points within ``tol`` of a true curve (the splines' precision: splines on lines,
    angles, occluder edges or texture lower it). → ``table`` (test curves), ``tune_table``,
    ``summary``, ``tune_summary``, ``examples``.
    """
    out = {}
    for key, start, n in (("tune", TRACE_TUNE_START, cfg.n_trace_tune), ("test", TRACE_START, cfg.n_trace)):
        if n < 1:
            continue
        scenes = make_scenes(n, cfg.size, cfg.seed, start=start, occluders=2)
        rows, srows, examples = _trace_rows(model, scenes, cfg)
        df = pd.DataFrame(rows)
        summ = trace_summary(df, pd.DataFrame(srows), cfg.tol)
        log(f"tracing ({key} split): {summ}")
        out[key] = (df, summ, examples)
    return dict(table=out["test"][0], summary=out["test"][1], examples=out["test"][2],
                tune_table=out["tune"][0] if "tune" in out else None, tune_summary=out["tune"][1] if "tune" in out else None)


def _point_dist(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance (px) from each of ``points (K, 2)`` to the polyline ``poly (L, 2)`` → ``(K,)``."""
    from .splines import _seg_distance

    return _seg_distance(torch.as_tensor(poly, dtype=torch.float64)[None],
                         torch.as_tensor(points, dtype=torch.float64))[0].numpy()


def markdown_table(ext: pd.DataFrame, summ: dict, cfg: BenchConfig, tune_summ: dict | None = None) -> str:
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
              "", "Spline tracing (scenes with 2 occluders each; distance: closest spline's mean distance to the true "
              "arc; coverage: share of the arc within 2 px of the splines matched to it):", "",
              "| split | curves | within 2 px | r < 25 px | 25-40 px | r > 40 px | occluded: share, within 2 px "
              "| mean coverage | within 2 px and ≥ 50 % covered | spline points on a curve | s/curve |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, sm in (("tuning", tune_summ), ("test", summ)):
        if sm is None:
            continue
        rad = sm["within_2px_by_radius"]
        band = [f"{100 * rad[k]['within_2px']:.0f} % of {rad[k]['curves']}" if k in rad else "-"
                for k in ("r < 25 px", "25-40 px", "r > 40 px")]
        lines.append(f"| {name} | {sm['curves']} | {100 * sm['within_2px']:.0f} % | " + " | ".join(band)
                     + f" | {100 * sm['occluded_share']:.0f} %, {100 * sm['within_2px_occluded']:.0f} % "
                     f"| {100 * sm['mean_coverage']:.0f} % | {100 * sm['traced_half']:.0f} % "
                     f"| {100 * sm['spline_on_curve']:.0f} % | {sm['seconds_per_curve']:.2f} |")
    lines += ["", f"Goal ≥ 80 % of test curves within 2 px: {100 * summ['within_2px']:.0f} % "
              f"({'met' if summ['within_2px'] >= 0.8 else 'NOT met'}); median distance "
              f"{summ['median_distance_px']:.2f} px."]
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
    if cfg.n_trace_tune < 0:
        raise ValueError(f"--n-trace-tune must be ≥ 0; got {cfg.n_trace_tune}")
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        log_step(msg, t0, not progress)

    model = load_model(cfg.model, weights=cfg.weights)
    ext = extraction_table(model, cfg, log)
    tr = trace_table(model, cfg, log)
    md = markdown_table(ext["table"], tr["summary"], cfg, tr["tune_summary"])
    with report_folder(out, overwrite) as tmp:
        ext["table"].to_csv(tmp / "extraction.csv", index=False)
        ext["by_background"].to_csv(tmp / "by_background.csv", index=False)
        tr["table"].to_csv(tmp / "tracing.csv", index=False)
        if tr["tune_table"] is not None:
            tr["tune_table"].to_csv(tmp / "tracing_tune.csv", index=False)
        (tmp / "table.md").write_text(md)
        write_json(tmp / "config.json", dict(asdict(cfg), wall_time_s=round(time.perf_counter() - t0, 1),
                                              tracing=tr["summary"], tracing_tune=tr["tune_summary"]))
        plot_bench_examples(ext["examples"], tmp / "examples.png")
        plot_traces(tr["examples"], tmp / "tracing.png")
        write_report(tmp, "Curve extraction benchmark: curve map vs Canny, spline tracing")
    log(f"wrote {out}")
    return dict(extraction=ext["table"], tracing=tr["summary"], markdown=md)


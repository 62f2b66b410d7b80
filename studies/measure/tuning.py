"""Tuning curves: responses of units to synthetic stimuli, and the measures derived from them.

Measurement: each unit is read at the spatial position whose receptive field is centred on
the stimulus (:func:`circuits.geometry.measurement_window`), pre-ReLU by default. Two ways
give the same values (tested to rtol 1e-4 / atol 1e-3 against ``model.run`` on 224-px
images):

* **fast path** (default): the receptive-field cone of one output position
  (:mod:`circuits.cone`). Stimuli are rendered only over the input pixels that position
  depends on (e.g. 91x91 px for mixed3b 5x5, 59x59 px for mixed3b 1x1) and only the stages
  and branches the units need are computed. Used when the model is a plain
  :class:`~circuits.model.InceptionV1` (weights may be edited) without hooks; otherwise:
* **naive path**: render in the measurement window and ``model.run`` up to the layer (hooks
  and interventions are honoured).

On CPU the fast path spreads batches over ``torch.get_num_threads()`` Python threads
(:func:`circuits.cone.run_cone`). A full
720-orientation × 32-radius sweep of ten mixed3b units (23,040 stimuli) takes about 13 s on
two idle cores (26 CPU-s): about 10x less than the measurement-window path and 58x less than
224-px images through the whole network (``bench/bench_tuning.py``).

Measures (all tidy DataFrames): :func:`radial_tuning` (any resolution, e.g. 0.5°),
:func:`joint_tuning` (orientation × radius, in σ of the dataset activation),
:func:`tuning_metrics` (preferred orientation, tuning width, echo ratio),
:func:`curve_line_preference`, :func:`combing_index`, :func:`angle_vs_curve`;
:func:`studies.tune.tune_report` writes them all (``circuits tune``).

Orientation convention: see :mod:`studies.measure.stimuli`. Measures return tidy DataFrames (one
row per unit × stimulus, or per unit), keyed by ``unit`` ("mixed3b:379"), ``layer``,
``index`` and, after :func:`compare`, ``variant``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from circuits.cone import Cone, cone_problem, plan_for_units, run_cone
from circuits.geometry import measurement_window
from circuits.model import (
    InceptionV1,
)
from circuits.names import hook_name
from circuits.units import Family, Unit, group_by_layer, resolve_units
from edits.interventions import batch_coupled, group_batches, resample_groups
from studies.measure import stimuli as S
from studies.measure.statistics import as_reference, reference_statistics
from studies.measure.stimuli import Stimuli


# ============================================================================ measure
def measure(
    model: InceptionV1,
    units: str | Unit | Family | Iterable,
    stimuli: Stimuli,
    pre_relu: bool = True,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
    fast: bool | None = None,
    first_index: int = 0,
) -> pd.DataFrame:
    """Response of each unit to each stimulus, at the receptive-field centre.

    Args:
        model: an :class:`~circuits.model.InceptionV1`.
        units: units or families (``"3b:379"``, ``Unit``, ``Family``, lists of those).
        stimuli: a :class:`~studies.measure.stimuli.Stimuli` table (re-rendered per layer).
        pre_relu: report the pre-ReLU value (default; the articles' tuning plots use it);
            ``False`` gives post-ReLU.
        batch_size: stimuli per forward pass.
        device: defaults to the model's device.
        progress: show a progress bar (stderr).
        fast: ``None`` (default) uses the fast cone path when the model allows it (module
            docstring), ``True`` requires it (``ValueError`` otherwise), ``False`` never uses it.
        first_index: index of the first stimulus in a larger table (a sweep's stimulus batch):
            a model that resamples from the batch runs whole resample groups of stimuli per pass,
            numbered from it (:func:`edits.interventions.resample_groups`), so ``batch_size``
            never changes a response.

    Returns:
        Tidy DataFrame, one row per (unit, stimulus): ``unit`` ("mixed3b:379"), ``layer``,
        ``index``, the stimulus columns (``orientation`` deg, ``radius`` px, …) and
        ``response`` (activation units of the layer).

    Raises:
        KeyError / IndexError: a unit not in the model (before any compute).
        ValueError: ``fast=True`` and the fast path is not possible.
    """
    with torch.no_grad():  # a block, not a decorator: mutmut mutates the body
        units = resolve_units(units, model.spec)
        if not units:
            raise ValueError("no units to measure")
        if not isinstance(stimuli, Stimuli) or len(stimuli) == 0:
            raise ValueError("stimuli must be a non-empty studies.measure.stimuli.Stimuli table")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1; got {batch_size}")
        device = device or next(model.parameters()).device
        frames = []
        for layer, idx in group_by_layer(units).items():
            resp = None
            if fast is not False:
                plan = plan_for_units(model.spec, layer, idx)
                why = cone_problem(model, layer, idx, plan, device)
                if why is None:
                    resp = _measure_fast(model, plan, idx, stimuli, pre_relu, batch_size, device, progress)
                elif fast:
                    raise ValueError(f"fast path unavailable for {layer}: {why}")
            if resp is None:
                resp = _measure_naive(model, layer, idx, stimuli, pre_relu, batch_size, device, progress, first_index)
            for j, i in enumerate(idx):
                df = stimuli.meta.copy()
                df.insert(0, "index", i)
                df.insert(0, "layer", layer)
                df.insert(0, "unit", f"{layer}:{i}")
                df["response"] = resp[:, j]
                frames.append(df)
        return pd.concat(frames, ignore_index=True)


def _measure_fast(model, plan, idx, stimuli, pre_relu, batch_size, device, progress) -> np.ndarray:
    cone = Cone(model, plan, idx)
    stim = stimuli.at(plan.crop, plan.center)
    r = run_cone(cone, len(stim), stim.render, device, batch_size, progress, f"stimuli → {plan.layer}")
    return (r if pre_relu else r.relu()).numpy()


def _measure_naive(model, layer, idx, stimuli, pre_relu, batch_size, device, progress, first_index) -> np.ndarray:
    size, pos, center = measurement_window(model.spec, layer)
    stim = stimuli.at(size, center)
    name = hook_name(layer, pre_relu=pre_relu)
    sel = torch.tensor(idx)
    chunks = []
    if batch_coupled(model):  # resampling from the batch: whole resample groups of stimuli per pass
        for a, b, ids in tqdm(group_batches(len(stim), batch_size, first_index), disable=not progress,
                              desc=f"stimuli → {layer}", unit="batch", leave=False):
            with resample_groups(ids):
                act = model.run(stim.render(slice(a, b)).to(device), [name])[name]
            chunks.append(act[:, sel, pos, pos].float().cpu())
        return torch.cat(chunks).numpy()
    n_batches = -(-len(stim) // batch_size)
    for _, imgs in tqdm(stim.batches(batch_size), total=n_batches, disable=None if progress else True,
                        desc=f"stimuli → {layer}", unit="batch", leave=False):
        act = model.run(imgs.to(device), [name])[name]
        chunks.append(act[:, sel, pos, pos].float().cpu())
    return torch.cat(chunks).numpy()


def compare(
    models: Mapping[str, InceptionV1],
    units,
    stimuli: Stimuli,
    **kwargs,
) -> pd.DataFrame:
    """:func:`measure` for several models (e.g. ``{"before": m, "after": edited}``), stacked
    with a ``variant`` column."""
    frames = []
    for name, m in models.items():
        df = measure(m, units, stimuli, **kwargs)
        df.insert(0, "variant", name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def joint_sweep(
    model: InceptionV1,
    units,
    orientation_step: float = 5.0,
    radii: Sequence[float] = S.DEFAULT_RADII,
    stroke_width: float = 2.0,
    lines: bool = True,
    **kwargs,
) -> pd.DataFrame:
    """:func:`measure` on the orientation × radius grid of curves (``orientation_step`` deg:
    0.5 gives the published 720 orientations), plus straight lines at the same orientations
    in [0, 180) when ``lines`` (for :func:`curve_line_preference`).

    Raises:
        StimulusError: a bad step, radius or stroke (before any compute); and as :func:`measure`.
    """
    units = resolve_units(units, model.spec)
    ors = S.orientation_grid(orientation_step)
    stim = S.curves(ors, radii, stroke_width=stroke_width)
    if lines:
        stim = stim + S.lines([o for o in ors if o < 180], stroke_width=stroke_width)
    return measure(model, units, stim, **kwargs)


# ============================================================================ measures
def _group_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in ("variant", "unit", "layer", "index") if c in df.columns]


def radial_tuning(df: pd.DataFrame, kind: str = "curve") -> pd.DataFrame:
    """Radial tuning curve: positive responses averaged over radius, per orientation.

    Source: Curve Detectors, "radial tuning curve" (positive activations averaged over
    curvature, per orientation; the published data has 720 bins of 0.5°). The resolution is
    that of the measured orientations (:func:`joint_sweep` ``orientation_step``).

    Args:
        df: output of :func:`measure`/:func:`compare` (rows of ``kind`` are used).

    Returns:
        One row per (variant, unit, orientation): ``orientation`` (deg), ``response``
        (mean of max(response, 0) over radii).
    """
    d = df[df["kind"] == kind].copy()
    d["positive"] = d["response"].clip(lower=0)
    keys = _group_cols(d) + ["orientation"]
    out = d.groupby(keys, sort=True)["positive"].mean().rename("response").reset_index()
    return out


def _circ_dist(a, b):
    return np.abs((np.asarray(a) - b + 180.0) % 360.0 - 180.0)


def tuning_metrics(radial: pd.DataFrame) -> pd.DataFrame:
    """Per-unit measures of a radial tuning curve.

    Columns: ``peak`` (max of the curve), ``preferred_orientation`` (deg, angle of the
    response-weighted vector sum), ``peak_orientation`` (deg, argmax), ``selectivity``
    (1 − circular variance, in [0, 1]; 1 = a single orientation), ``tuning_width`` (deg,
    full width of the orientations whose response is ≥ half the peak), ``echo_ratio`` (max
    within ±30° of peak orientation + 180°, over the peak; Curve Circuits).
    """
    rows = []
    for key, g in radial.groupby(_group_cols(radial), sort=True):
        o = g["orientation"].to_numpy(float)
        r = g["response"].to_numpy(float)
        row = dict(zip(_group_cols(radial), key))  # a list of keys: pandas gives tuples; groups are never empty
        peak = float(r.max())
        total = r.sum()
        if total > 0:
            vec = (r * np.exp(1j * np.radians(o))).sum()
            pref = float(np.degrees(np.angle(vec)) % 360.0)
            sel = float(abs(vec) / total)
        else:
            pref, sel = float("nan"), 0.0
        pk_o = float(o[int(np.argmax(r))]) if peak > 0 else float("nan")
        if peak > 0:
            step = np.median(np.diff(np.sort(np.unique(o)))) if len(np.unique(o)) > 1 else 360.0
            width = float((r >= peak / 2).sum() * step)
            opp = _circ_dist(o, (pk_o + 180.0) % 360.0) <= 30.0
            echo = float(r[opp].max() / peak) if opp.any() else float("nan")
        else:
            width, echo = float("nan"), float("nan")
        row.update(peak=peak, preferred_orientation=pref, peak_orientation=pk_o, selectivity=sel,
                   tuning_width=width, echo_ratio=echo)
        rows.append(row)
    return pd.DataFrame(rows)


def _stats_for(stats, layer: str) -> pd.DataFrame:
    if isinstance(stats, Mapping):
        if layer not in stats:
            raise KeyError(f"no reference statistics for {layer}; have {', '.join(stats)}")
        return stats[layer]
    if isinstance(stats, pd.DataFrame) and "layer" in stats.columns:
        return stats[stats["layer"] == layer].set_index("index")
    return stats


def add_sigma(df: pd.DataFrame, stats) -> pd.DataFrame:
    """``df`` with ``mean``, ``std`` (the unit's reference statistics) and ``response_sigma``
    = (response − mean) / std.

    Args:
        stats: :func:`studies.measure.statistics.reference_statistics` of the layer (indexed by unit
            index), a ``{layer: table}`` mapping, or a table with a ``layer`` column.

    Raises:
        KeyError: a unit without statistics.
    """
    out = []
    for layer, g in df.groupby("layer", sort=False):
        st = _stats_for(stats, layer)
        missing = sorted(set(g["index"]) - set(st.index))
        if missing:
            raise KeyError(f"no reference statistics for {layer} units {missing[:5]}")
        g = g.copy()
        g["mean"] = st.loc[g["index"], "mean"].to_numpy()
        g["std"] = st.loc[g["index"], "std"].to_numpy()
        g["response_sigma"] = (g["response"] - g["mean"]) / g["std"]
        out.append(g)
    return pd.concat(out).loc[df.index]


def reference_stats(model: InceptionV1, units, images, n_images: int = 100) -> dict[str, pd.DataFrame]:
    """Reference statistics (pre-ReLU, all spatial positions, ``n_images`` evenly spaced images
    of a folder or a tensor) of every layer of ``units``: ``{layer: table}`` from
    :func:`studies.measure.statistics.reference_statistics`."""
    units = resolve_units(units, model.spec)
    images = as_reference(images, n_images)
    return {layer: reference_statistics(model, layer, images) for layer in group_by_layer(units)}


def joint_tuning(df: pd.DataFrame, stats=None, kind: str = "curve") -> pd.DataFrame:
    """Joint orientation × radius tuning (the heat map of Curve Detectors), in σ of the unit's
    activation over a reference image set.

    σ units: ``response_sigma = (response − mean) / std`` where ``mean`` and ``std`` are the
    unit's **pre-ReLU** activation statistics over reference images at **all spatial
    positions** (:func:`studies.measure.statistics.reference_statistics`); ``df`` must hold pre-ReLU
    responses (:func:`measure`'s default). Curve Detectors reports ≈24σ for the best stimuli
    of Lucid's 3b:379.

    Args:
        df: :func:`measure` / :func:`joint_sweep` output.
        stats: reference statistics (see :func:`add_sigma`); ``None`` leaves responses in
            activation units (no ``response_sigma`` column).

    Returns:
        One row per (variant, unit, orientation, radius): ``orientation``, ``radius``,
        ``curvature``, ``response`` and, with ``stats``, ``mean``, ``std``, ``response_sigma``.
    """
    d = df[df["kind"] == kind]
    keys = _group_cols(d) + ["orientation", "radius"]
    cols = keys + [c for c in ("curvature",) if c in d.columns] + ["response"]
    out = d[cols].groupby(keys, sort=True, as_index=False).mean()
    if stats is not None:
        out = add_sigma(out, stats)
    return out.reset_index(drop=True)


def curve_line_preference(df: pd.DataFrame, stats=None) -> pd.DataFrame:
    """Best curve versus best straight line, per unit.

    Columns: ``best_curve`` (max pre-ReLU response over curves), ``best_curve_orientation``,
    ``best_curve_radius``, ``best_line``, ``best_line_orientation``, ``ratio`` =
    best_curve / best_line (NaN when the best line does not excite the unit, ≤ 0) and, with
    ``stats``, ``curve_sigma``, ``line_sigma`` (σ units as in :func:`joint_tuning`) and
    ``ratio_sigma`` = (best_curve − mean) / (best_line − mean) (how many times further above
    the unit's dataset mean the best curve drives it; denominator floored at 1e-9, as in
    :mod:`studies.measure.discovery`).

    Raises:
        ValueError: ``df`` lacks curve or line rows.
    """
    if not {"curve", "line"} <= set(df["kind"]):
        raise ValueError("curve_line_preference needs curve and line responses (e.g. joint_sweep(..., lines=True))")
    rows = []
    for key, g in df.groupby(_group_cols(df), sort=True):
        row = dict(zip(_group_cols(df), key))  # a list of keys: pandas gives tuples
        c = g[g["kind"] == "curve"]
        ln = g[g["kind"] == "line"]
        bc, bl = c.loc[c["response"].idxmax()], ln.loc[ln["response"].idxmax()]
        row.update(best_curve=float(bc["response"]), best_curve_orientation=float(bc["orientation"]),
                   best_curve_radius=float(bc["radius"]), best_line=float(bl["response"]),
                   best_line_orientation=float(bl["orientation"]))
        row["ratio"] = row["best_curve"] / row["best_line"] if row["best_line"] > 0 else float("nan")
        rows.append(row)
    out = pd.DataFrame(rows)
    if stats is not None:
        parts = []
        for layer, g in out.groupby("layer", sort=False):
            st = _stats_for(stats, layer)
            g = g.copy()
            mean, std = st.loc[g["index"], "mean"].to_numpy(), st.loc[g["index"], "std"].to_numpy()
            g["curve_sigma"] = (g["best_curve"] - mean) / std
            g["line_sigma"] = (g["best_line"] - mean) / std
            g["ratio_sigma"] = (g["best_curve"] - mean) / np.clip(g["best_line"] - mean, 1e-9, None)
            parts.append(g)
        out = pd.concat(parts).loc[out.index]
    return out.reset_index(drop=True)


def best_stimulus(
    model: InceptionV1,
    units,
    tuning: pd.DataFrame | None = None,
    orientation_step: float = 10.0,
    radii: Sequence[float] = S.DEFAULT_RADII,
    stroke_width: float = 2.0,
    **kwargs,
) -> pd.DataFrame:
    """Each unit's preferred orientation and best radius.

    The preferred orientation is the vector-sum angle of the radial tuning curve
    (:func:`tuning_metrics`, from ``tuning`` or a :func:`joint_sweep` at
    ``orientation_step``); the best radius is the radius (among ``radii``) whose curve at
    exactly that orientation drives the unit most (measured).

    Returns:
        One row per unit: ``unit``, ``layer``, ``index``, ``preferred_orientation``,
        ``best_radius``, ``best_response`` (pre-ReLU), ``selectivity``.
    """
    units = resolve_units(units, model.spec)
    if tuning is None:
        tuning = joint_sweep(model, units, orientation_step, radii, stroke_width, lines=False, **kwargs)
    met = tuning_metrics(radial_tuning(tuning)).set_index("unit")
    names = [str(u) for u in units]
    missing = [n for n in names if n not in met.index]
    if missing:
        raise ValueError(f"tuning lacks units {missing[:5]}")
    prefs = {n: float(met.loc[n, "preferred_orientation"]) for n in names}
    # units with no positive response at all get NaN; measure them at 0° so the row exists
    ors = sorted({0.0 if math.isnan(p) else p for p in prefs.values()})
    df = measure(model, units, S.curves(ors, radii, stroke_width=stroke_width), **kwargs)
    rows = []
    for u in units:
        n = str(u)
        p = prefs[n]
        g = df[(df["unit"] == n) & np.isclose(df["orientation"], 0.0 if math.isnan(p) else p)]
        b = g.loc[g["response"].idxmax()]
        rows.append(dict(unit=n, layer=u.layer, index=u.index, preferred_orientation=p,
                         best_radius=float(b["radius"]), best_response=float(b["response"]),
                         selectivity=float(met.loc[n, "selectivity"])))
    return pd.DataFrame(rows)


def _best_stimulus_only(kwargs: dict) -> dict:
    """Removes and returns the keywords of ``kwargs`` that only :func:`best_stimulus` takes
    (``orientation_step``, ``radii``): :func:`measure` would reject them."""
    return {k: kwargs.pop(k) for k in ("orientation_step", "radii") if k in kwargs}


def _per_unit(model, units, best: pd.DataFrame, make, **kwargs) -> pd.DataFrame:
    """Measure each unit on its own stimuli ``make(row) -> Stimuli``; one table."""
    stims = []
    for _, b in best.iterrows():
        st = make(b)
        st.meta["for_unit"] = b["unit"]
        stims.append(st)
    allst = stims[0]
    for st in stims[1:]:
        allst = allst + st
    df = measure(model, units, allst, **kwargs)
    return df[df["unit"] == df["for_unit"]].drop(columns="for_unit").reset_index(drop=True)


def combing_index(
    model: InceptionV1,
    units,
    best: pd.DataFrame | None = None,
    sides: Sequence[str] = ("inward", "outward", "both"),
    spacing_px: float = 8.0,
    length_px: float = 8.0,
    stroke_width: float = 2.0,
    tuning: pd.DataFrame | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Combing: how much short lines perpendicular to a curve change a unit's response.

    For each unit, at its preferred orientation and best radius (:func:`best_stimulus`), the
    plain curve, the combed curve (:func:`studies.measure.stimuli.combed_curves`, each of ``sides``)
    and the teeth alone (:func:`studies.measure.stimuli.combing_lines`) are measured (pre-ReLU).
    ``combing_index`` = response(combed curve) / response(plain curve): > 1 means the
    combing excites the unit (Curve Detectors reports curve detectors excited by combing,
    inward and outward); ``teeth_index`` = response(teeth alone) / response(plain curve).
    Both are NaN when the plain curve does not excite the unit (≤ 0).

    Args:
        best: :func:`best_stimulus` output; ``None`` finds it (from ``tuning`` if given).
        **kwargs: ``orientation_step`` and ``radii`` go to :func:`best_stimulus` only (when
            ``best`` is ``None``), the rest to :func:`measure` (e.g. ``batch_size``).

    Returns:
        One row per (unit, side): ``unit``, ``layer``, ``index``, ``side``, ``orientation``,
        ``radius``, ``plain``, ``combed``, ``teeth``, ``combing_index``, ``teeth_index``.

    Raises:
        StimulusError: bad side/spacing/length (before any compute).
    """
    units = resolve_units(units, model.spec)
    for s in sides:  # validate before compute
        S.combed_curves([0], [10], s, spacing_px, length_px, stroke_width)
    search = _best_stimulus_only(kwargs)
    if best is None:
        best = best_stimulus(model, units, tuning=tuning, stroke_width=stroke_width, **search, **kwargs)

    def make(b):
        o, r = [b["preferred_orientation"] if not math.isnan(b["preferred_orientation"]) else 0.0], [b["best_radius"]]
        return (S.curves(o, r, stroke_width=stroke_width)
                + S.combed_curves(o, r, list(sides), spacing_px, length_px, stroke_width)
                + S.combing_lines(o, r, list(sides), spacing_px, length_px, stroke_width))

    df = _per_unit(model, units, best, make, **kwargs)
    rows = []
    for (unit, layer, index), g in df.groupby(["unit", "layer", "index"], sort=False):
        plain = float(g[g["kind"] == "curve"]["response"].iloc[0])
        for s in sides:
            comb = float(g[(g["kind"] == "combed_curve") & (g["side"] == s)]["response"].iloc[0])
            teeth = float(g[(g["kind"] == "combing") & (g["side"] == s)]["response"].iloc[0])
            ok = plain > 0
            rows.append(dict(unit=unit, layer=layer, index=index, side=s,
                             orientation=float(g["orientation"].iloc[0]), radius=float(g["radius"].iloc[0]),
                             plain=plain, combed=comb, teeth=teeth,
                             combing_index=comb / plain if ok else float("nan"),
                             teeth_index=teeth / plain if ok else float("nan")))
    return pd.DataFrame(rows)


def angle_vs_curve(
    model: InceptionV1,
    units,
    best: pd.DataFrame | None = None,
    opening_degrees: Sequence[float] = (45.0, 90.0, 135.0),
    corner_radii: Sequence[float] = (0.0, 4.0, 8.0, 16.0, 32.0, 64.0),
    stroke_width: float = 2.0,
    tuning: pd.DataFrame | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Angles versus curves at each unit's preferred orientation (:func:`best_stimulus`).

    Measures (pre-ReLU) the stroked angles of every opening × corner radius (the angle →
    curve series: r = 0 is sharp, large r approaches the curve of radius r) and the curves
    of every non-zero corner radius plus the unit's best radius, all of the preferred
    orientation. ``ratio_to_best_curve`` = response / response to the curve of the best
    radius (NaN if that is ≤ 0).

    Args:
        best, **kwargs: as :func:`combing_index`.

    Returns:
        One row per (unit, stimulus): ``unit``, ``layer``, ``index``, ``kind`` (``angle`` or
        ``curve``), ``orientation``, ``opening_degrees`` (NaN for curves), ``radius`` (corner
        radius for angles), ``response``, ``ratio_to_best_curve``.
    """
    units = resolve_units(units, model.spec)
    S.angles([0], opening_degrees, corner_radii, stroke_width)  # validate before compute
    search = _best_stimulus_only(kwargs)
    if best is None:
        best = best_stimulus(model, units, tuning=tuning, stroke_width=stroke_width, **search, **kwargs)

    def make(b):
        o = [b["preferred_orientation"] if not math.isnan(b["preferred_orientation"]) else 0.0]
        radii = sorted({float(r) for r in corner_radii if r > 0} | {float(b["best_radius"])})
        return S.curves(o, radii, stroke_width=stroke_width) + S.angles(o, opening_degrees, corner_radii,
                                                                          stroke_width)

    df = _per_unit(model, units, best, make, **kwargs)
    cols = ["unit", "layer", "index", "kind", "orientation", "opening_degrees", "radius", "response"]
    out = df[cols].copy()
    ref = best.set_index("unit")["best_radius"]
    for unit, g in out.groupby("unit", sort=False):
        c = g[(g["kind"] == "curve") & np.isclose(g["radius"], ref[unit])]["response"].iloc[0]
        out.loc[g.index, "ratio_to_best_curve"] = g["response"] / c if c > 0 else float("nan")
    return out


def angle_curve_summary(av: pd.DataFrame) -> pd.DataFrame:
    """Per unit from :func:`angle_vs_curve`: ``best_angle`` (max response over angles),
    ``sharp_angle`` (max over sharp angles, r = 0), ``best_curve`` and their ratios
    ``angle_curve_ratio`` = best_angle / best_curve, ``sharp_curve_ratio``."""
    rows = []
    for (unit, layer, index), g in av.groupby(["unit", "layer", "index"], sort=False):
        a, c = g[g["kind"] == "angle"], g[g["kind"] == "curve"]
        bc = float(c["response"].max())
        ba = float(a["response"].max())
        sh = a[a["radius"] == 0]
        sa = float(sh["response"].max()) if len(sh) else float("nan")
        rows.append(dict(unit=unit, layer=layer, index=index, best_angle=ba, sharp_angle=sa, best_curve=bc,
                         angle_curve_ratio=ba / bc if bc > 0 else float("nan"),
                         sharp_curve_ratio=sa / bc if bc > 0 else float("nan")))
    return pd.DataFrame(rows)


def angular_difference(a: float, b: float) -> float:
    """Smallest absolute difference between two orientations in degrees (0–180)."""
    return float(_circ_dist(a, b))

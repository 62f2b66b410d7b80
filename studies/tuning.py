"""Tuning curves: responses of units to synthetic stimuli, and the measures derived from them.

Measurement: each unit is read at the spatial position whose receptive field is centred on
the stimulus. Stimuli are rendered in the smallest square that holds that receptive field
(:func:`circuits.geometry.measurement_window`), and the forward pass stops at the unit's
layer, so a sweep costs a fraction of full 224-px images through the whole network while
giving the same values (receptive-field cropping; tested against the full pass).

Orientation convention: see :mod:`studies.stimuli`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from circuits.geometry import measurement_window
from circuits.model import InceptionV1
from circuits.units import Family, Unit, group_by_layer, resolve_units

from .stimuli import Stimuli


def _activation_name(layer: str, pre_relu: bool) -> str:
    return f"{layer}_pre_relu" if pre_relu else layer


@torch.no_grad()
def measure(
    model: InceptionV1,
    units: "str | Unit | Family | Iterable",
    stimuli: Stimuli,
    pre_relu: bool = True,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Response of each unit to each stimulus, at the receptive-field centre.

    Args:
        model: an :class:`~circuits.model.InceptionV1`.
        units: units or families (``"3b:379"``, ``Unit``, ``Family``, lists of those).
        stimuli: a :class:`~studies.stimuli.Stimuli` table (re-rendered per layer).
        pre_relu: report the pre-ReLU value (default; the articles' tuning plots use it);
            ``False`` gives post-ReLU.
        batch_size: stimuli per forward pass.
        device: defaults to the model's device.
        progress: show a progress bar (stderr).

    Returns:
        Tidy DataFrame, one row per (unit, stimulus): ``unit`` ("mixed3b:379"), ``layer``,
        ``index``, the stimulus columns (``orientation`` deg, ``radius`` px, …) and
        ``response`` (activation units of the layer).

    Raises:
        KeyError / IndexError: a unit not in the model.
    """
    units = resolve_units(units, model.spec)
    device = device or next(model.parameters()).device
    frames = []
    for layer, idx in group_by_layer(units).items():
        size, pos, center = measurement_window(model.spec, layer)
        stim = stimuli.at(size, center)
        name = _activation_name(layer, pre_relu)
        sel = torch.tensor(idx)
        chunks = []
        n_batches = -(-len(stim) // batch_size)
        for _, imgs in tqdm(stim.batches(batch_size), total=n_batches, disable=not progress,
                            desc=f"stimuli → {layer}", unit="batch", leave=False):
            act = model.run(imgs.to(device), [name])[name]
            chunks.append(act[:, sel, pos, pos].float().cpu())
        resp = torch.cat(chunks).numpy()  # (n_stim, n_units)
        for j, i in enumerate(idx):
            df = stimuli.meta.copy()
            df.insert(0, "index", i)
            df.insert(0, "layer", layer)
            df.insert(0, "unit", f"{layer}:{i}")
            df["response"] = resp[:, j]
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


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


def _group_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in ("variant", "unit", "layer", "index") if c in df.columns]


def radial_tuning(df: pd.DataFrame, kind: str = "curve") -> pd.DataFrame:
    """Radial tuning curve: positive responses averaged over radius, per orientation.

    Source: Curve Detectors, "radial tuning curve" (positive activations averaged over
    curvature, per orientation).

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
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(_group_cols(radial), key))
        peak = float(r.max()) if len(r) else 0.0
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


def angular_difference(a: float, b: float) -> float:
    """Smallest absolute difference between two orientations in degrees (0–180)."""
    return float(_circ_dist(a, b))


def orientation_colour(deg: float):
    """A colour for an orientation (hue wheel), used in every radial plot."""
    import matplotlib.colors as mcolors

    h = (deg % 360.0) / 360.0 if not math.isnan(deg) else 0.0
    return mcolors.hsv_to_rgb((h, 0.75, 0.85))

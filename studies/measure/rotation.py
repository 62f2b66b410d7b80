"""Family joint tuning by rotation on natural examples (Curve Detectors, Cammarata et al.,
Distill 2020, fig. 13).

:func:`studies.dataset.rotation_tuning` rotates each unit's top dataset examples and
re-measures that unit. Fig. 13 records *every* unit of the family on those rotated
examples: aligned on the source unit's preferred orientation (each example shifted so the
source's own best angle is 0) and averaged, the source has a bump at 0 and its orientation
neighbours take over as it fades — a neighbour whose preferred orientation is Δθ further
counter-clockwise should peak near rotation +Δθ (rotating the image counter-clockwise by α
turns a curve oriented at θ to θ + α; orientations as in :mod:`studies.stimuli`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from circuits.cone import cone_plan, cone_responses, fast_path_problem
from circuits.model import InceptionV1
from circuits.spec import MIXED_LAYERS
from circuits.units import Family

from .dataset import DatasetStats, _mean_colour, _rotated_windows, _rotation_offsets
from .images import load_image


def _signed(deg: float) -> float:
    """Angle in (−180, 180]."""
    d = (deg + 180.0) % 360.0 - 180.0
    return 180.0 if d == -180.0 else d


@torch.no_grad()
def family_rotation_tuning(model: InceptionV1, stats: DatasetStats, family: Family, step: float = 10.0) -> pd.DataFrame:
    """Every family unit's pre-ReLU response to each source unit's rotated top examples.

    Args:
        model: the network (fast path: no hooks, unedited structure).
        stats: :func:`studies.dataset.unit_statistics` of the family's units (its ``top``
            examples are rotated).
        family: the family (its ``orientations``, when known, give ``expected_peak``).
        step: degrees between rotations, in (0, 360].

    Returns:
        One row per (source, unit, rotation): ``source``, ``unit``, ``rotation`` (deg from
        each example's best angle for ``source``, signed, counter-clockwise), ``response``
        (mean pre-ReLU over the source's examples), ``relative`` (response / the source's own
        peak mean response), ``n_examples``, ``delta_orientation`` (unit − source preferred
        orientation, signed deg; NaN without orientations), ``peak_rotation`` (rotation of
        this unit's highest mean response).

    Raises:
        ValueError: bad ``step``; the fast path is unavailable; a source without examples.
    """
    if not (isinstance(step, (int, float)) and 0 < step <= 360) or math.isnan(step):
        raise ValueError(f"step must be in (0, 360] deg; got {step!r}")
    layer = family.layer
    why = fast_path_problem(model, layer)
    if why:
        raise ValueError(f"family_rotation_tuning needs the fast path: {why}")
    angles = [i * step for i in range(int(math.floor(360 / step + 1e-9)))]
    idx = list(family.units)
    branches = {model.spec.branch_of(layer, i) for i in idx} if layer in MIXED_LAYERS else None
    plan = cone_plan(model.spec, layer, branches)
    fill = _mean_colour(model)
    offsets = _rotation_offsets(angles, plan.crop, plan.center)
    dev = next(model.parameters()).device
    ori = dict(zip(idx, family.orientations)) if family.orientations else {}
    images: dict[str, torch.Tensor] = {}
    rows = []
    na = len(angles)
    for s in idx:
        name = f"{layer}:{s}"
        t = stats.top[stats.top["unit"] == name].sort_values("rank")
        if t.empty:
            raise ValueError(f"no top examples of {name} in stats")
        for p in t["path"]:
            if p not in images:
                images[p] = load_image(p, stats.size)
        wins = torch.cat([_rotated_windows(images[r.path], r.x, r.y, angles, plan.crop, plan.center, fill, offsets)
                          for r in t.itertuples()])
        resp = cone_responses(model, layer, idx, wins.to(dev), plan).float().cpu().numpy()  # (n_ex·na, n_units)
        resp = resp.reshape(len(t), na, len(idx))
        me = idx.index(s)
        aligned = np.stack([np.roll(r, -int(np.argmax(r[:, me])), axis=0) for r in resp])  # (n_ex, na, n_units)
        mean = aligned.mean(0)
        peak = mean[0, me]
        rot = np.array([_signed(a) for a in angles])
        for j, v in enumerate(idx):
            d = _signed(ori[v] - ori[s]) if ori else float("nan")
            pk = float(rot[int(np.argmax(mean[:, j]))])
            for a, val in zip(rot, mean[:, j]):
                rows.append(dict(source=name, unit=f"{layer}:{v}", rotation=float(a), response=float(val),
                                 relative=float(val / peak) if peak else float("nan"), n_examples=len(t),
                                 delta_orientation=d, peak_rotation=pk))
    return pd.DataFrame(rows)


def neighbour_average(df: pd.DataFrame, max_rank: int = 3) -> pd.DataFrame:
    """Curves of the source's orientation neighbours, averaged over sources (fig. 13's
    summary): rank 0 is the source itself, +1 its nearest neighbour counter-clockwise, −1
    clockwise, … up to ±``max_rank`` (ranks by ``delta_orientation``; needs orientations).

    Returns:
        One row per (rank, rotation): ``rank``, ``rotation`` (deg), ``relative`` (mean over
        sources of response / source peak), ``delta_orientation`` (mean Δθ of that rank),
        ``n_sources``.
    """
    rows = []
    for src, g in df.groupby("source", sort=False):
        d = g.drop_duplicates("unit").set_index("unit")["delta_orientation"]
        if d.isna().any():
            raise ValueError("neighbour_average needs the family's orientations")
        ccw = d[d > 0].sort_values()
        cw = d[d < 0].sort_values(ascending=False)
        ranks = {src: 0, **{u: i + 1 for i, u in enumerate(ccw.index[:max_rank])},
                 **{u: -(i + 1) for i, u in enumerate(cw.index[:max_rank])}}
        for u, r in ranks.items():
            gu = g[g["unit"] == u]
            rows.extend(dict(source=src, rank=r, rotation=a, relative=v, delta_orientation=d[u])
                        for a, v in zip(gu["rotation"], gu["relative"]))
    t = pd.DataFrame(rows)
    out = t.groupby(["rank", "rotation"], as_index=False).agg(relative=("relative", "mean"),
                                                              delta_orientation=("delta_orientation", "mean"),
                                                              n_sources=("source", "nunique"))
    return out.sort_values(["rank", "rotation"]).reset_index(drop=True)

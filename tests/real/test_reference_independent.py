"""The golden file ``tests/reference_bvlc.csv`` cross-checked against an independent computation
(issue 14, item 5). The CSV is written by ``studies.reference`` (the fast cone path and the
project's measures); its regenerate command is on its first line and ``tests/test_reference.py``
checks the file is what that command produces. A bug regenerated into the file would be
enshrined there, so here a few rows are recomputed another way:

* every measure written out below in a few lines of numpy from the raw responses — not
  ``studies.tuning``'s radial_tuning / tuning_metrics / best_stimulus / combing_index;
* the brute-force searches (best radius, combing) run the stimuli through ``model.run`` in the
  full measurement window (the naive path, ``fast=False``), not the cone the CSV was made with.
  The 5° × 9-radius sweep itself uses :func:`studies.tuning.measure`'s default (cone) path, to
  stay fast; ``tests/test_stimuli_tuning.py`` checks the cone against ``model.run``.

Units: BVLC mixed3b:330 (5x5 branch, echo ratio 0.15), mixed3b:324 (5x5, small echo) and
mixed3b:9 (1x1 branch, no echo), on the CSV's grid (5° orientations × the layer's radii).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studies.measure import stimuli as S
from studies.measure import tuning as T
from studies.measure.discovery import default_radii
from studies.measure.reference import ORIENTATION_STEP, STROKE_WIDTH, read_reference

CSV = Path(__file__).resolve().parents[1] / "reference_bvlc.csv"
UNITS = ["mixed3b:330", "mixed3b:324", "mixed3b:9"]


def circ(a, b):
    return np.abs((np.asarray(a, float) - b + 180.0) % 360.0 - 180.0)


def own_measures(g: pd.DataFrame, step: float) -> dict:
    """One unit's curve responses → the CSV's radial-curve columns, by hand."""
    ors = np.sort(g["orientation"].unique())
    resp = np.stack([g[g["orientation"] == o]["response"].to_numpy() for o in ors])  # orientation × radius
    radial = np.maximum(resp, 0).mean(1)
    peak = radial.max()
    k = int(radial.argmax())
    vec = np.sum(radial * np.exp(1j * np.deg2rad(ors)))
    far = circ(ors, ors[k]) >= 150.0  # within 30° of the peak orientation + 180°
    best = g.loc[g["response"].idxmax()]
    return {"peak": peak, "preferred_orientation": np.rad2deg(np.angle(vec)) % 360.0,
            "tuning_width": float(np.count_nonzero(radial >= 0.5 * peak)) * step,
            "echo_ratio": radial[far].max() / peak, "best_curve_orientation": float(best["orientation"])}


@pytest.fixture(scope="module")
def ref():
    return read_reference(CSV).set_index("unit").loc[UNITS]


@pytest.fixture(scope="module")
def raw(caffe_model):
    ors = list(np.arange(0, 360, ORIENTATION_STEP))
    radii = list(default_radii(caffe_model.spec, "mixed3b"))
    stim = S.curves(ors, radii, stroke_width=STROKE_WIDTH)
    return T.measure(caffe_model, UNITS, stim), radii


def test_golden_rows_match_independent_tuning_measures(raw, ref):
    df, radii = raw
    assert len(df) == len(UNITS) * 72 * len(radii)
    for unit in UNITS:
        own = own_measures(df[df["unit"] == unit], ORIENTATION_STEP)
        row = ref.loc[unit]
        assert own["peak"] == pytest.approx(row["peak"], rel=1e-3)
        assert circ(own["preferred_orientation"], row["preferred_orientation"]) < 0.01, unit
        assert own["tuning_width"] == row["tuning_width"], unit
        assert own["echo_ratio"] == pytest.approx(row["echo_ratio"], abs=1e-3), unit
        assert own["best_curve_orientation"] == row["best_curve_orientation"], unit
    # the rows chosen span a real echo and none
    assert ref.loc["mixed3b:330", "echo_ratio"] > 0.1 and ref.loc["mixed3b:9", "echo_ratio"] == 0


def test_golden_best_radius_and_combing_by_brute_force(caffe_model, raw, ref):
    """At each unit's (independently computed) preferred orientation: the radius whose curve
    drives the unit most, and combed curve / plain curve for the ``both`` and ``inward`` sides."""
    df, radii = raw
    pref = {u: own_measures(df[df["unit"] == u], ORIENTATION_STEP)["preferred_orientation"] for u in UNITS}
    plain = T.measure(caffe_model, UNITS, S.curves(list(pref.values()), radii, stroke_width=STROKE_WIDTH), fast=False)
    best = {}
    for u in UNITS:
        g = plain[(plain["unit"] == u) & np.isclose(plain["orientation"], pref[u])]
        assert len(g) == len(radii)
        best[u] = g.loc[g["response"].idxmax()]
        assert best[u]["radius"] == ref.loc[u, "best_radius"], u
    stim = S.combed_curves([pref[UNITS[0]]], [best[UNITS[0]]["radius"]], ["both", "inward"], 8.0, 8.0, STROKE_WIDTH)
    for u in UNITS[1:]:
        stim = stim + S.combed_curves([pref[u]], [best[u]["radius"]], ["both", "inward"], 8.0, 8.0, STROKE_WIDTH)
    comb = T.measure(caffe_model, UNITS, stim, fast=False)
    for j, u in enumerate(UNITS):
        both, inward = comb[comb["unit"] == u]["response"].to_numpy()[2 * j:2 * j + 2]
        assert both / best[u]["response"] == pytest.approx(ref.loc[u, "combing_index"], rel=2e-3, abs=2e-3), u
        assert inward / best[u]["response"] == pytest.approx(ref.loc[u, "combing_inward"], rel=2e-3, abs=2e-3), u

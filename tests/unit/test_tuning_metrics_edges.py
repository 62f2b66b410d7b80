"""Tuning measures (studies.measure.tuning) at their edges, on hand-built tables whose answers
are written out: the echo window's exact borders, sparse and two-orientation grids, small
totals, output order and columns, σ statistics per layer and the error messages (mutation
testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from studies.measure import tuning as T


def _radial(unit: str, values: dict[float, float], step: float = 1.0) -> pd.DataFrame:
    o = np.arange(0, 360, step)
    return pd.DataFrame({"unit": unit, "layer": unit.split(":")[0], "index": int(unit.split(":")[1]),
                         "orientation": o.astype(float), "response": [values.get(float(x), 0.0) for x in o]})


def test_circular_distance_wraps_at_360():
    assert T._circ_dist([350.0, 10.0, 180.0, 0.0], 0.0).tolist() == [10.0, 10.0, 180.0, 0.0]
    assert T._circ_dist([185.0], 5.0).tolist() == [180.0]


def test_echo_window_borders_on_a_one_degree_grid():
    # peak 4 at 0°: the window is 150°…210° (±30° of 180°), borders included
    m = T.tuning_metrics(pd.concat([
        _radial("mixed3b:1", {0.0: 4.0, 150.0: 1.0}),  # on the lower border: counted
        _radial("mixed3b:2", {0.0: 4.0, 211.0: 3.0}),  # 31° away: not counted
        _radial("mixed3b:3", {270.0: 4.0, 120.0: 2.0}),  # peak 270°: window 60°…120° (wraps past 360°)
    ])).set_index("unit")
    assert m.loc["mixed3b:1", "echo_ratio"] == 0.25
    assert m.loc["mixed3b:2", "echo_ratio"] == 0.0
    assert m.loc["mixed3b:3", "echo_ratio"] == 0.5


def test_sparse_grids_small_totals_and_single_orientations():
    m = T.tuning_metrics(pd.concat([
        pd.DataFrame({"unit": "mixed3b:1", "layer": "mixed3b", "index": 1, "orientation": [0.0, 90.0],
                      "response": [1.0, 0.5]}),  # two orientations, none within 30° of 180°
        _radial("mixed3b:2", {0.0: 0.2, 180.0: 0.2}, step=180.0),  # two orientations, total 0.4 < 1
        pd.DataFrame({"unit": "mixed3b:3", "layer": "mixed3b", "index": 3, "orientation": [45.0],
                      "response": [0.5]}),  # one orientation: one full turn wide
    ])).set_index("unit")
    a, b, c = m.loc["mixed3b:1"], m.loc["mixed3b:2"], m.loc["mixed3b:3"]
    assert math.isnan(a["echo_ratio"]) and a["tuning_width"] == 180.0 and a["peak_orientation"] == 0.0
    # two equal opposite responses: the vector sum cancels (selectivity 0); each is one 180° bin
    assert b["selectivity"] == pytest.approx(0.0, abs=1e-12) and b["tuning_width"] == 360.0
    assert b["echo_ratio"] == 1.0 and b["peak"] == 0.2
    assert c["tuning_width"] == 360.0 and c["preferred_orientation"] == pytest.approx(45.0, abs=1e-9)
    assert c["selectivity"] == pytest.approx(1.0, abs=1e-12) and c["echo_ratio"] != c["echo_ratio"]


def _table(units, curve, line=None, curvature=False):
    rows = []
    for u in units:
        layer, idx = u.split(":")
        for o in (0.0, 90.0):
            for r in (10.0, 20.0):
                row = dict(unit=u, layer=layer, index=int(idx), kind="curve", orientation=o, radius=r,
                           response=curve(u, o, r))
                if curvature:
                    row["curvature"] = 1.0 / r
                rows.append(row)
            if line is not None:
                rows.append(dict(unit=u, layer=layer, index=int(idx), kind="line", orientation=o, radius=math.inf,
                                 response=line(u, o), **({"curvature": 0.0} if curvature else {})))
    return pd.DataFrame(rows)


def test_outputs_are_sorted_by_unit_and_keep_their_columns():
    units = ["mixed3b:9", "mixed3b:1"]  # given out of order
    df = _table(units, lambda u, o, r: r / 10 + (o == 0), lambda u, o: {"mixed3b:9": 0.0, "mixed3b:1": 0.5}[u],
                curvature=True)
    radial = T.radial_tuning(df)
    assert radial["unit"].tolist() == ["mixed3b:1"] * 2 + ["mixed3b:9"] * 2
    assert list(radial.columns) == ["unit", "layer", "index", "orientation", "response"]
    m = T.tuning_metrics(radial.iloc[::-1])
    assert m["unit"].tolist() == ["mixed3b:1", "mixed3b:9"]
    jt = T.joint_tuning(df)
    assert list(jt.columns) == ["unit", "layer", "index", "orientation", "radius", "curvature", "response"]
    assert jt["unit"].tolist()[0] == "mixed3b:1" and jt["curvature"].tolist()[:2] == [0.1, 0.05]
    assert list(jt.index) == list(range(8))
    clp = T.curve_line_preference(df)
    assert clp["unit"].tolist() == ["mixed3b:1", "mixed3b:9"] and list(clp.index) == [0, 1]
    assert list(clp.columns) == ["unit", "layer", "index", "best_curve", "best_curve_orientation",
                                 "best_curve_radius", "best_line", "best_line_orientation", "ratio"]
    # best curve 3 (0°, radius 20); best line 0.5 → ratio 6; a best line of exactly 0 → NaN
    assert clp["ratio"].tolist()[0] == 6.0 and math.isnan(clp["ratio"].tolist()[1])


def test_sigma_statistics_per_layer_and_messages():
    df = pd.concat([_table(["mixed3b:1"], lambda u, o, r: 5.0, lambda u, o: 3.0),
                    _table(["mixed3a:2"], lambda u, o, r: 7.0, lambda u, o: 1.0)])
    stats = {"mixed3b": pd.DataFrame({"mean": [1.0], "std": [2.0]}, index=pd.Index([1], name="index")),
             "mixed3a": pd.DataFrame({"mean": [3.0], "std": [4.0]}, index=pd.Index([2], name="index"))}
    clp = T.curve_line_preference(df, stats).set_index("unit")
    assert clp.loc["mixed3b:1", ["curve_sigma", "line_sigma", "ratio_sigma"]].tolist() == [2.0, 1.0, 2.0]
    assert clp.loc["mixed3a:2", ["curve_sigma", "line_sigma"]].tolist() == [1.0, -0.5]
    assert clp.loc["mixed3a:2", "ratio_sigma"] == 4.0 / 1e-9  # line below the mean: denominator floored
    with pytest.raises(KeyError) as e:
        T.add_sigma(df, {"mixed3b": stats["mixed3b"]})
    assert e.value.args[0] == "no reference statistics for mixed3a; have mixed3b"
    many = _table([f"mixed3b:{i}" for i in range(10, 17)], lambda u, o, r: 1.0)
    with pytest.raises(KeyError) as e:
        T.add_sigma(many, stats)
    assert e.value.args[0] == "no reference statistics for mixed3b units [10, 11, 12, 13, 14]"
    with pytest.raises(ValueError) as e:
        T.curve_line_preference(df[df["kind"] == "curve"])
    assert e.value.args[0] == ("curve_line_preference needs curve and line responses "
                               "(e.g. joint_sweep(..., lines=True))")

"""Stimuli, receptive-field geometry and tuning measures (real BVLC weights where needed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from circuits import InceptionV1
from circuits.cone import fast_path_problem
from studies.measure import stimuli as S
from studies.measure.tuning import measure, radial_tuning, tuning_metrics

FAMILIES = {
    "curve": lambda **kw: S.curves([60], [20], **kw),
    "line": lambda **kw: S.lines([60], **kw),
    "filled_curve": lambda **kw: S.filled_curves([60], [20], **kw),
    "angle": lambda **kw: S.angles([60], 90, 6, **kw),
    "filled_angle": lambda **kw: S.angles([60], 90, 6, filled=True, **kw),
    "combed_curve": lambda **kw: S.combed_curves([60], [20], "both", **kw),
    "combing": lambda **kw: S.combing_lines([60], [20], "inward", **kw),
    "concentric_curves": lambda **kw: S.concentric_curves([60], [20], 3, 5, **kw),
}


# ----------------------------------------------------------------------------- stimuli
def test_render_is_deterministic_and_in_range():
    st = S.curves([0, 33.3, 200], [10, 50, math.inf], stroke_width=2.5).at(96, (46.0, 47.5))
    a, b = st.render(), st.render()
    assert torch.equal(a, b)
    assert a.shape == (9, 3, 96, 96) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    # anti-aliased: intermediate grey levels exist
    assert ((a > 0.05) & (a < 0.95)).any()


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_every_family_renders_deterministically_antialiased_and_coloured(kind):
    st = FAMILIES[kind](fg=(1, 0, 0), bg=(0, 0, 1)).at(64, 31.5)
    a = st.render()
    assert torch.equal(a, st.render()) and a.shape == (1, 3, 64, 64)
    assert st.meta["kind"].tolist() == [kind]
    ink = st.ink()[0]
    assert ((ink > 0.05) & (ink < 0.95)).any(), "edges are anti-aliased"
    assert (ink > 0.99).any() and (ink < 0.01).any()
    # colour = bg + (fg - bg) · ink, for every kind
    expect = torch.tensor([0.0, 0, 1]).view(3, 1, 1) + torch.tensor([1.0, 0, -1]).view(3, 1, 1) * ink
    assert torch.allclose(a[0], expect, atol=1e-6)


def test_mixed_kinds_render_in_order():
    st = S.curves([0], [20]) + S.lines([45]) + S.angles([90], 60, 0) + S.curves([10], [30])
    assert st.meta["stimulus"].tolist() == [0, 1, 2, 3]
    a = st.at(48).render()
    for i, part in enumerate([S.curves([0], [20]), S.lines([45]), S.angles([90], 60, 0), S.curves([10], [30])]):
        assert torch.equal(a[i], part.at(48).render()[0])


@pytest.mark.parametrize("orientation,side", [(90, "above"), (270, "below"), (0, "right"), (180, "left")])
def test_orientation_convention(orientation, side):
    """θ is the direction of the circle's centre (y up): a 90° curve is a '∪' through the
    stimulus centre, opening upwards, so all its ink lies at or above the centre row."""
    size, c = 101, 50.0
    img = S.curves([orientation], [20], stroke_width=2).at(size, c).render()[0, 0]
    ink = 1 - img
    rows, cols = torch.nonzero(ink > 0.5, as_tuple=True)
    tol = 2
    check = {"below": rows >= c - tol, "above": rows <= c + tol, "left": cols <= c + tol, "right": cols >= c - tol}
    # the circle's centre is 20 px away in direction θ; ink is on the near side of the centre point only
    assert bool(check[side].all())
    assert ink[int(c), int(c)] > 0.5  # the arc passes through the centre


def _ink_direction(st: S.Stimuli, size: int = 81) -> float:
    """Direction (deg, y up) of the ink's centroid from the stimulus centre."""
    ax = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    inside = (ax.view(1, -1) ** 2 + ax.view(-1, 1) ** 2) <= ((size - 1) / 2) ** 2  # a disc: no square clipping
    ink = st.at(size).ink()[0] * inside
    x = (ink * ax.view(1, -1)).sum() / ink.sum()
    y = (ink * -ax.view(-1, 1)).sum() / ink.sum()
    return math.degrees(math.atan2(float(y), float(x))) % 360


@pytest.mark.parametrize("theta", [0.0, 37.0, 90.0, 200.0, 301.5])
@pytest.mark.parametrize("make", [
    lambda o: S.curves([o], [25]),
    lambda o: S.filled_curves([o], [25]),
    lambda o: S.angles([o], 90, 0),
    lambda o: S.angles([o], 60, 12),
    lambda o: S.angles([o], 90, 0, filled=True),
    lambda o: S.combed_curves([o], [25], "inward"),
    lambda o: S.concentric_curves([o], [25], 3, 6),
], ids=["curve", "filled", "sharp_angle", "rounded_angle", "filled_angle", "combed", "concentric"])
def test_every_family_bulges_the_same_way(theta, make):
    """A curve, an angle, a filled curve … of orientation θ all open towards θ."""
    d = _ink_direction(make(theta))
    assert abs((d - theta + 180) % 360 - 180) < 3, d


def test_infinite_radius_is_a_line():
    a = S.curves([30, 120], [math.inf]).at(64, 31.5).render()
    b = S.lines([30, 120]).at(64, 31.5).render()
    assert torch.equal(a, b)


def test_arc_degrees_limits_the_arc():
    full = S.curves([90], [20], arc_degrees=360).at(96, 47).render()
    half = S.curves([90], [20], arc_degrees=90).at(96, 47).render()
    assert (1 - half).sum() < 0.4 * (1 - full).sum()


def test_position_offsets_move_the_stimulus():
    """dx right, dy up: the same as moving the render centre."""
    moved = S.curves([30, 250], [20], positions=[(5.0, -3.0), (0.0, 0.0)]).at(64, 31.0)
    assert moved.meta[["dx", "dy"]].values.tolist() == [[5, -3], [0, 0], [5, -3], [0, 0]]
    a = moved.render()
    b = S.curves([30, 250], [20]).at(64, (36.0, 34.0)).render()
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[2], b[1], atol=1e-5)
    assert torch.equal(a[1], S.curves([30], [20]).at(64, 31.0).render()[0])


def test_filled_curve_fills_the_disc_side():
    ink = S.filled_curves([90], [20]).at(101).ink()[0]
    c = 50
    assert ink[c - 20, c] == 1.0  # the circle's centre, 20 px above
    assert ink[c + 5, c] == 0.0 and ink[c - 43, c] == 0.0 and ink[c - 20, c + 23] == 0.0  # outside the disc
    assert 0.3 < float(ink[c, c]) < 0.7  # the edge passes through the stimulus centre
    seg = S.filled_curves([90], [20], arc_degrees=180).at(101).ink()[0]
    assert seg[c - 25, c] == 0.0 and seg[c - 10, c] == 1.0  # cut by the chord 20 px above


def test_angle_corner_and_angle_to_curve():
    # sharp angle: ink at the corner, arms along ±45° from the bisector (θ = 90: up-left, up-right)
    sharp = S.angles([90], 90, 0).at(81).ink()[0]
    assert sharp[40, 40] > 0.5 and sharp[40 - 20, 40 - 20] > 0.5 and sharp[40 - 20, 40 + 20] > 0.5
    assert sharp[40 - 20, 40] < 0.01  # the inside is empty
    # a rounded corner of radius r is the curve of radius r near the stimulus centre
    ang = S.angles([90], 90, 30).at(81).ink()[0]
    cur = S.curves([90], [30]).at(81).ink()[0]
    near = slice(40 - 8, 40 + 9)
    assert torch.allclose(ang[near, near], cur[near, near], atol=1e-4)
    # ... and in a 91-px window a 90° angle with r = 128 is exactly the curve (arms start outside)
    assert torch.allclose(S.angles([33], 90, 128).at(91).ink(), S.curves([33], [128]).at(91).ink(), atol=1e-4)
    series = S.angle_to_curve_series(45, [16, 0, 4])
    assert series.meta["corner_radius"].tolist() == [0, 4, 16] and series.meta["step"].tolist() == [0, 1, 2]
    assert series.meta["arc_degrees"].tolist() == [90, 90, 90]
    assert series.meta["curvature"].iloc[0] == math.inf


def test_combing_teeth_sides_and_spacing():
    r, length, sp, w = 25.0, 8.0, 8.0, 2.0
    plain = S.curves([90], [r]).at(101).ink()
    teeth = {s: S.combing_lines([90], [r], s, sp, length).at(101).ink()[0] for s in S.COMB_SIDES}
    combed = S.combed_curves([90], [r], "inward", sp, length).at(101).ink()
    # combed = curve ∪ teeth (coverage of the nearer stroke)
    assert torch.allclose(combed, torch.maximum(plain, teeth["inward"].unsqueeze(0)), atol=1e-6)
    ax = torch.arange(101, dtype=torch.float32) - 50
    rho = torch.sqrt(ax.view(1, -1) ** 2 + (-ax.view(-1, 1) - r) ** 2)  # distance to the circle's centre
    assert float(rho[teeth["inward"] > 0.01].max()) <= r + w / 2 + 1
    assert float(rho[teeth["outward"] > 0.01].min()) >= r - w / 2 - 1
    assert float(rho[teeth["both"] > 0.01].min()) < r - length + 2 and float(rho[teeth["both"] > 0.01].max()) > r + length - 2
    # a tooth at the stimulus centre; a combed straight line has a tooth every spacing_px
    assert teeth["inward"][50 - 4, 50] > 0.9
    row = S.combing_lines([90], [math.inf], "inward", sp, length).at(101).ink()[0, 50 - 4]
    runs = int(((row[1:] > 0.5) & (row[:-1] <= 0.5)).sum())
    assert runs in (12, 13)  # 101 px / 8 px


def test_concentric_curves_count():
    ink = S.concentric_curves([90], [30], n=4, gap_px=6).at(161).ink()[0]  # radii 21, 27, 33, 39
    col = ink[:, 80]
    runs = int(((col[1:] > 0.5) & (col[:-1] <= 0.5)).sum())
    assert runs == 8  # each of 4 circles crosses the vertical through the centre twice
    st = S.concentric_curves([0], [math.inf], n=3, gap_px=5).at(41)
    assert st.ink()[0][:, 20].min() > 0.9  # odd n: the middle line passes through the centre


def test_grids():
    assert len(S.orientation_grid(0.5)) == 720 and S.orientation_grid(0.5)[1] == 0.5
    assert S.orientation_grid(7)[-1] < 360
    r = S.radius_grid(32)
    assert len(r) == 32 and r[0] == 8 and abs(r[-1] - 200) < 1e-9
    assert len(S.curves(S.orientation_grid(0.5), r)) == 23040


@pytest.mark.parametrize("make,match", [
    (lambda: S.curves(orientations=[float("nan")]), "orientations"),
    (lambda: S.curves(radii=[-5]), "radii"),
    (lambda: S.curves(radii=[0]), "radii"),
    (lambda: S.curves(radii=[float("nan")]), "radii"),
    (lambda: S.curves(stroke_width=0), "stroke_width"),
    (lambda: S.curves(arc_degrees=0), "arc_degrees"),
    (lambda: S.curves(size=0), "size"),
    (lambda: S.curves(fg=(0, 0, 2)), "fg"),
    (lambda: S.curves(positions=[(float("nan"), 0)]), "positions"),
    (lambda: S.curves([0], [10]).at(0), "size"),
    (lambda: S.lines(length=-1), "length"),
    (lambda: S.filled_curves(radii=[math.inf]), "radii"),
    (lambda: S.angles([0], opening_degrees=0), "opening_degrees"),
    (lambda: S.angles([0], opening_degrees=180), "opening_degrees"),
    (lambda: S.angles([0], corner_radius=-1), "corner_radius"),
    (lambda: S.angles([float("nan")]), "orientations"),
    (lambda: S.angle_to_curve_series(float("nan")), "orientation"),
    (lambda: S.angle_to_curve_series(0, [-1]), "corner_radii"),
    (lambda: S.combed_curves(side="sideways"), "side"),
    (lambda: S.combed_curves(spacing_px=0), "spacing_px"),
    (lambda: S.combing_lines(length_px=-2), "length_px"),
    (lambda: S.concentric_curves(n=0), "n"),
    (lambda: S.concentric_curves(gap_px=0), "gap_px"),
    (lambda: S.concentric_curves([0], [5], n=3, gap_px=6), "innermost"),
    (lambda: S.orientation_grid(0), "orientation_step"),
    (lambda: S.radius_grid(0), "n"),
])
def test_bad_stimulus_parameters_raise(make, match):
    with pytest.raises(S.StimulusError, match=match) as e:
        make()
    assert any(w in str(e.value) for w in ("must be", "range", "one of")), str(e.value)


def test_colours():
    st = S.curves([0], [30], fg=(1, 0, 0), bg=(0, 0, 1), stroke_width=4).at(64, 31)
    img = st.render()[0]
    assert torch.allclose(img[:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    assert img[0].max() == 1.0 and img[1].max() == 0.0


def test_fast_path_with_lucid_padding():
    """Lucid's TF 'SAME' geometry (random weights: its numerics, not its weights, are tested)."""
    torch.manual_seed(0)
    m = InceptionV1("inceptionv1").eval()
    st = S.curves([0, 130], [12, 50]) + S.angles([250], 70, 0)
    units = ["3a:5", "3a:100", "3a:200", "3a:250", "3b:10", "3b:200", "3b:400", "3b:470", "conv2d2:7"]
    fast = measure(m, units, st, fast=True)
    naive = measure(m, units, st, fast=False)
    assert fast_path_problem(m) is None
    np.testing.assert_allclose(fast["response"], naive["response"], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- measures
def _fake(resp_by_orientation, radii=(10, 20)):
    rows = []
    for o, r in resp_by_orientation.items():
        for rad in radii:
            rows.append(dict(unit="mixed3b:1", layer="mixed3b", index=1, kind="curve", orientation=o, radius=rad,
                             response=r))
    return pd.DataFrame(rows)


def test_radial_tuning_averages_positive_parts():
    df = _fake({0: 10.0, 90: -5.0})
    df.loc[1, "response"] = -10.0  # orientation 0, radius 20 negative → counts as 0
    rad = radial_tuning(df).set_index("orientation")["response"]
    assert rad[0] == 5.0 and rad[90] == 0.0


def test_tuning_metrics_preferred_width_and_echo():
    ors = np.arange(0, 360, 5.0)
    resp = {o: max(0.0, math.cos(math.radians(o - 100))) ** 4 + (0.2 if abs(((o - 280) + 180) % 360 - 180) <= 10 else 0)
            for o in ors}
    m = tuning_metrics(radial_tuning(_fake(resp))).iloc[0]
    assert abs(m["preferred_orientation"] - 100) < 1e-9  # lobe and echo symmetric about the 100°/280° axis
    assert m["peak_orientation"] == 100
    assert m["echo_ratio"] == pytest.approx(0.2, abs=1e-9)
    # half-max of cos^4 is at ±arccos(0.5^¼) = ±32.8°: the 13 5° bins 70 … 130 lie within it
    assert math.degrees(math.acos(0.5 ** 0.25)) == pytest.approx(32.765, abs=1e-3)
    assert m["tuning_width"] == 13 * 5.0
    assert 0.5 < m["selectivity"] <= 1

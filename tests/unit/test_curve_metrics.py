"""Curve-extraction metrics (studies.applications.benchmark) on tiny hand-checkable images."""

from __future__ import annotations

import numpy as np
import pytest

from studies.applications.benchmark import Counts, score, score_set


def _vertical(col: int, rows=range(5, 25), shape=(32, 32)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[list(rows), col] = True
    return m


def test_perfect_map_scores_f1_one():
    gt = _vertical(10)
    c = score(gt.copy(), gt)
    assert (c.precision, c.recall, c.f1) == (1.0, 1.0, 1.0)
    assert c.marked == c.curve == 20


def test_empty_map_scores_zero():
    c = score(np.zeros((32, 32), bool), _vertical(10))
    assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)
    assert c.curve == 20 and c.curve_found == 0


def test_shift_within_and_outside_tolerance():
    gt = _vertical(10)
    assert score(_vertical(12), gt, tol=2.0).f1 == 1.0  # 2 px away: matched
    assert score(_vertical(13), gt, tol=2.0).f1 == 0.0  # 3 px away: no match
    assert score(_vertical(13), gt, tol=3.0).f1 == 1.0
    # one pixel shifted by (1, 1) is sqrt(2) px away: inside 1.5, outside 1.0
    dot, diag = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    dot[3, 3], diag[4, 4] = True, True
    assert score(diag, dot, tol=1.5).f1 == 1.0
    assert score(diag, dot, tol=1.0).f1 == 0.0


def test_half_marked_curve_precision_recall():
    gt = _vertical(10)
    pred = _vertical(10, rows=range(5, 10))  # rows 5..9 marked; with tol 2 rows 5..11 are found
    c = score(pred, gt, tol=2.0)
    assert c.precision == 1.0
    assert c.recall == pytest.approx(7 / 20)
    assert c.f1 == pytest.approx(2 * (7 / 20) / (1 + 7 / 20))


def test_line_false_positive_rate():
    curve = _vertical(3)
    line = _vertical(25, rows=range(0, 20))
    pred = _vertical(25, rows=range(0, 10))  # line rows 0..11 are within 2 px of a marked pixel
    c = score(pred, curve, line, tol=2.0)
    assert c.line == 20 and c.line_marked == 12
    assert c.line_fp == pytest.approx(0.6)
    assert c.precision == 0.0  # every marked pixel is off the curve


def test_line_pixels_near_a_curve_are_not_counted():
    curve = _vertical(10)
    line = _vertical(13)  # 3 px from the curve: within tol + 2
    c = score(line, curve, line, tol=2.0)
    assert c.line == 0 and c.line_fp == 0.0


def test_combing_band_counts_marks_perpendicular_to_the_curve():
    curve = _vertical(10)
    pred = curve.copy()
    pred[15, 14] = True  # 4 px to the side of the curve: in the band (2, 8]
    pred[15, 20] = True  # 10 px away: outside the band
    c = score(pred, curve, tol=2.0, band_px=6.0)
    assert c.band_marked == 1
    # band: columns at distance 3..8 on both sides over rows 5..24, plus the end caps
    assert c.band > 2 * 6 * 20
    assert c.combing == pytest.approx(1 / c.band)


def test_counts_are_micro_averaged():
    gt = _vertical(10)
    a = score(gt, gt)
    b = score(np.zeros_like(gt), gt)
    tot = a + b
    assert tot.curve == 40 and tot.curve_found == 20
    assert tot.recall == 0.5 and tot.precision == 1.0

    class _S:
        def __init__(self, m):
            self.curve, self.line, self.angle = m, np.zeros_like(m), np.zeros_like(m)

    assert score_set([gt, np.zeros_like(gt)], [_S(gt), _S(gt)]) == tot
    assert Counts().f1 == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="shapes differ"):
        score(np.zeros((4, 4), bool), np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="tol"):
        score(np.zeros((4, 4), bool), np.zeros((4, 4), bool), tol=-1)


def test_trace_summary_shares_by_hand():
    import pandas as pd

    from studies.applications.bench_curves import trace_summary

    df = pd.DataFrame(dict(mean_distance_px=[0.5, 1.5, 3.0, np.inf], coverage=[1.0, 0.3, 0.0, 0.0],
                           radius=[10.0, 30.0, 50.0, 20.0], occluded=[True, False, True, False],
                           seconds_per_curve=[1.0, 1.0, 2.0, 2.0]))
    s = trace_summary(df, pd.DataFrame(dict(on_curve=[0.5, 1.0], splines=[2, 4])))
    assert (s["curves"], s["within_2px"], s["occluded_share"], s["within_2px_occluded"]) == (4, 0.5, 0.5, 0.5)
    assert s["mean_coverage"] == pytest.approx(0.325) and s["mean_coverage_matched"] == pytest.approx(0.65)
    assert s["traced_half"] == 0.25  # within 2 px but only 30 % covered does not count here
    assert (s["spline_on_curve"], s["splines_per_scene"], s["seconds_per_curve"]) == (0.75, 3.0, 1.5)
    assert {k: v["within_2px"] for k, v in s["within_2px_by_radius"].items()} == {
        "r < 25 px": 0.5, "25-40 px": 1.0, "r > 40 px": 0.0}

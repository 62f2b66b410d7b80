"""Bézier renderer geometry, gradients and the tracer (studies.applications.splines)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from studies.applications.bench_curves import _point_dist, match_curve, on_curve
from studies.applications.scenes import arc_points
from studies.applications.splines import _arc_ctrl, bezier, bezier_np, mean_distance, render, trace
from studies.measure import stimuli as S

CTRL = torch.tensor([[[6.0, 40.0], [14.0, 4.0], [44.0, 8.0], [56.0, 50.0]],
                     [[10.0, 10.0], [30.0, 30.0], [20.0, 55.0], [50.0, 58.0]]], dtype=torch.float64)


@functools.cache
def _analytic_distance(size: int) -> np.ndarray:
    """Distance of every pixel centre to the curves of CTRL sampled at 6,000 points each
    (spacing < 0.03 px, so the error is < 0.015 px)."""
    ctrl = CTRL
    p = bezier(ctrl, 6000)  # (B, n, 2)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=ctrl.dtype), torch.arange(size, dtype=ctrl.dtype), indexing="ij")
    xy = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    out = []
    for b in range(ctrl.shape[0]):
        d = torch.cdist(xy, p[b]).amin(1)
        out.append(d.view(size, size).numpy())
    return np.stack(out)


@pytest.mark.parametrize("width", [1.0, 2.0, 4.0])
def test_rendered_pixels_lie_within_half_stroke_plus_ramp(width):
    ink = render(CTRL, 64, width=width, samples=128).numpy()
    d = _analytic_distance(64)
    chord = 0.05  # polyline of 128 points: chord error ℓ²/(8r) < 0.05 px here
    assert (d[ink > 0] <= width / 2 + 0.5 + chord).all()
    assert (ink[d <= width / 2 - 0.5 - chord] == 1).all()  # fully inside the stroke: full ink
    assert (ink[d >= width / 2 + 0.5 + chord] == 0).all()
    # the ramp: ink = clamp(w/2 + 0.5 - d) to the polyline error
    np.testing.assert_allclose(ink, np.clip(width / 2 + 0.5 - d, 0, 1), atol=chord)


def test_straight_bezier_matches_the_stimulus_line_renderer():
    size, length = 64, 40.0
    c = (size - 1) / 2
    # stimuli.lines: orientation 0° → the line is vertical (perpendicular to +x), centred
    ref = S.lines([0.0], length=length, size=size).ink()[0].double()
    y0, y1 = c - length / 2, c + length / 2
    ctrl = torch.tensor([[[c, y0], [c, y0 + length / 3], [c, y0 + 2 * length / 3], [c, y1]]], dtype=torch.float64)
    ink = render(ctrl, size, width=2.0, samples=16)[0]
    torch.testing.assert_close(ink, ref, atol=1e-5, rtol=0)


def test_render_is_differentiable_and_batched():
    ctrl = CTRL.clone().float().requires_grad_(True)
    ink = render(ctrl, 64)
    assert ink.shape == (2, 64, 64)
    (ink * torch.linspace(0, 1, 64).view(1, 1, 64)).sum().backward()  # reward moving right
    assert torch.isfinite(ctrl.grad).all() and ctrl.grad[..., 0].sum() > 0
    one = render(CTRL[1:], 64)
    torch.testing.assert_close(render(CTRL, 64)[1:], one)


def test_bezier_endpoints_and_errors():
    p = bezier(CTRL, 5)
    torch.testing.assert_close(p[:, 0], CTRL[:, 0])
    torch.testing.assert_close(p[:, -1], CTRL[:, 3])
    with pytest.raises(ValueError, match=r"\(B, 4, 2\)"):
        bezier(torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="width"):
        render(CTRL, 8, width=0)


def _arc_map(size=96):
    stim = S.curves([60.0], [30.0], arc_degrees=150, size=size)
    return stim.ink()[0].numpy(), arc_points(60.0, 30.0, 150, 0.0, 0.0, size)


def test_trace_fits_a_clean_arc_and_is_deterministic():
    m, arc = _arc_map()
    r1 = trace(m, n_splines=2, steps=120, seeds=4, rounds=2)
    r2 = trace(m, n_splines=2, steps=120, seeds=4, rounds=2)
    np.testing.assert_array_equal(r1.ctrl, r2.ctrl)
    assert len(r1.ctrl) >= 1
    best = min(mean_distance(bezier_np(c), arc) for c in r1.ctrl)
    assert best < 1.0
    assert r1.length.max() > 30  # it grew along the arc from a 16-px seed
    d = r1.svg_paths()[0]
    assert d.startswith("M ") and " C " in d and d.count(",") == 2


def test_trace_avoid_mask_pushes_splines_off_it():
    m, _ = _arc_map()
    avoid = np.zeros_like(m)
    avoid[:, 48:] = 1.0
    free = trace(m, n_splines=1, steps=120, seeds=4, rounds=1)
    pen = trace(m, n_splines=1, steps=120, seeds=4, rounds=1, avoid=avoid, mu=5.0)
    inside = lambda r: np.mean(bezier_np(r.ctrl[0])[:, 0] >= 48)  # noqa: E731
    assert inside(pen) < inside(free)
    with pytest.raises(ValueError, match="shape"):
        trace(m, avoid=np.zeros((3, 3)))


def test_arc_points_lie_on_the_rendered_curve():
    size = 96
    ink = S.curves([200.0], [25.0], arc_degrees=120, positions=[(5.0, -7.0)], size=size).ink()[0].numpy()
    pts = arc_points(200.0, 25.0, 120, 5.0, -7.0, size)
    vals = ink[np.round(pts[:, 1]).astype(int), np.round(pts[:, 0]).astype(int)]
    assert vals.min() >= 0.5
    assert math.isclose(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum(), 25.0 * math.radians(120), rel_tol=0.01)


@pytest.mark.parametrize("curvature", [0.0, 0.1, -0.05])
def test_arc_seed_lies_on_its_circle(curvature):
    centre, tangent = np.array([30.0, 20.0]), np.array([0.6, 0.8])
    c = _arc_ctrl(centre, tangent, 12.0, curvature)
    p = bezier_np(c, 257)
    assert np.linalg.norm(p[128] - centre) < 1e-9  # centred on the peak
    np.testing.assert_allclose(np.linalg.norm(np.diff(p, axis=0), axis=1).sum(), 12.0, rtol=1e-3)
    if curvature:
        normal = np.array([-tangent[1], tangent[0]]) * np.sign(curvature)
        r = 1 / abs(curvature)
        np.testing.assert_allclose(np.linalg.norm(p - (centre + normal * r), axis=1), r, atol=1e-3)
    else:
        np.testing.assert_allclose((p - centre) @ np.array([-tangent[1], tangent[0]]), 0, atol=1e-9)


def test_trace_follows_an_occluded_small_arc_within_1px():
    size = 64
    stim = S.curves([30.0], [12.0], arc_degrees=180, size=size)
    arc = arc_points(30.0, 12.0, 180, 0.0, 0.0, size)
    m = stim.ink()[0].numpy()
    gap = (np.abs(np.arange(size)[None, :] - arc[len(arc) // 3, 0]) <= 2) & (
        np.abs(np.arange(size)[:, None] - arc[len(arc) // 3, 1]) <= 2)
    m[gap] = 0  # a 5-px occluder across the arc
    r = trace(m, rounds=2, seeds=4, steps=120)
    polys = [bezier_np(c) for c in r.ctrl]
    dist, cov, n = match_curve(polys, arc, tol=1.0)
    assert dist < 1.0 and n >= 1  # the best spline lies within 1 px of the arc on average
    assert cov > 0.85  # and the splines within 1 px of it cover it on both sides of the occluder
    k = len(arc) // 3
    for part in (arc[:k - 6], arc[k + 6:]):
        assert (np.min([_point_dist(part, p) for p in polys], 0) <= 1.0).mean() > 0.8


def test_match_curve_reports_partial_coverage():
    arc = arc_points(0.0, 20.0, 180, 0.0, 0.0, 96)
    half = arc[: len(arc) // 2]
    dist, cov, n = match_curve([half, arc[len(arc) // 2:] + [40.0, 0.0]], arc, tol=2.0)
    assert dist < 1e-5 and n == 1  # the half on the arc matches; the shifted half does not
    assert 0.5 <= cov <= 0.5 + 2 * 2.0 / (20.0 * np.pi)  # but it covers only half the arc (+ tol at its end)
    assert match_curve([], arc) == (float("inf"), 0.0, 0)
    assert on_curve([half, half + [40.0, 0.0]], [arc]) == pytest.approx(0.5, abs=0.02)


def test_band_agrees_with_render_to_the_rasterisation_error():
    """band() = clamp(w/2 + 0.5 − d) with d the distance to the rounded sample pixels: within
    √0.5 px (rounding) + 0.125 px (samples every ≤ 0.25 px) of render()'s exact polyline distance."""
    from studies.applications.splines import band

    for width in (2.0, 6.0, 8.0):
        b = band(CTRL.numpy(), (64, 64), width)
        exact = render(CTRL, 64, width=width, samples=512).amax(0).numpy()
        assert b.shape == (64, 64) and b.dtype == np.float32
        assert np.abs(b - exact).max() <= math.sqrt(0.5) + 0.125 + 0.01
        d = _analytic_distance(64).min(0)
        assert (b[d <= 0.5] == 1).all()  # on the curve: fully inside the band
        assert (b[d >= width / 2 + 0.5 + 0.85] == 0).all()  # beyond the band + the rasterisation error: outside


def test_band_of_no_spline_or_a_spline_outside_the_image_is_empty():
    from studies.applications.splines import band

    assert not band(np.zeros((0, 4, 2)), (20, 30), 6.0).any()
    outside = np.array([[[-50.0, -50.0], [-40.0, -45.0], [-30.0, -45.0], [-20.0, -50.0]]])
    assert not band(outside, (20, 30), 6.0).any()
    assert band(np.zeros((0, 4, 2)), (20, 30), 6.0).shape == (20, 30)


@pytest.mark.parametrize("kwargs, match", [
    (dict(explain_rounds=0), "explain_rounds"), (dict(n_splines=0), "n_splines"), (dict(rounds=0), "rounds"),
    (dict(mask_px=0.0), "mask_px"), (dict(mask_px=float("nan")), "mask_px"),
])
def test_trace_image_rejects_bad_settings_before_any_compute(kwargs, match):
    from studies.applications.splines import trace_image

    with pytest.raises(ValueError, match=match):
        trace_image(None, torch.zeros(3, 40, 40), **kwargs)  # no model needed: the check comes first


def test_trace_image_names_unknown_options_and_bad_images():
    from studies.applications.splines import trace_image

    with pytest.raises(TypeError, match=r"unknown trace option\(s\) \['kapa'\]; valid: .*'kappa'"):
        trace_image(None, torch.zeros(3, 40, 40), kapa=0.1)
    with pytest.raises(ValueError, match=r"image must be \(3, H, W\) RGB in \[0, 1\]; got \(1, 3, 40, 40\)"):
        trace_image(None, torch.zeros(1, 3, 40, 40))


def test_curve_map_baseline_shape_is_checked_before_any_compute():
    from studies.applications.extraction import curve_map

    with pytest.raises(ValueError, match=r"baseline must be \(3,\) or \(2, 3\) colours; got \(4,\)"):
        curve_map(None, torch.zeros(2, 3, 40, 40), baseline=torch.zeros(4))


@pytest.mark.parametrize("kwargs, match", [
    (dict(tau=float("nan")), "tau must be finite"), (dict(kappa=-0.1), r"kappa must be finite and ≥ 0"),
    (dict(lr=0.0), r"lr must be finite and > 0"), (dict(steps=0), r"steps must be an integer ≥ 1"),
    (dict(min_sep=float("nan")), r"min_sep must be finite and > 0 px"), (dict(novelty=2), r"novelty must be in \[0, 1\]"),
    (dict(seed_length=float("inf")), r"seed_length must be finite and > 0 px"), (dict(mu=float("inf")), "mu must be finite"),
])
def test_trace_settings_are_checked_by_name(kwargs, match):
    m = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match=match):
        trace(m, **kwargs)
    from studies.applications.splines import trace_image

    with pytest.raises(ValueError, match=match):  # passed through trace_image: checked before the model is used
        trace_image(None, torch.zeros(3, 40, 40), **kwargs)


def test_trace_rejects_a_map_with_nan_or_inf():
    m = np.zeros((32, 32), np.float32)
    m[3, 4] = np.nan
    with pytest.raises(ValueError, match="cmap has NaN or infinite values"):
        trace(m)


def test_trace_image_returns_no_spline_for_a_flat_image_without_computing_a_map():
    from circuits.spec import get_spec
    from studies.applications.splines import FLAT, trace_image

    # a spec, not a model: the families are checked, then the flat image returns before any map
    res, m = trace_image(get_spec("inceptionv1_caffe"), torch.full((3, 40, 48), 0.3))
    assert res.ctrl.shape == (0, 4, 2) and len(res.map_index) == 0 and m.shape == (40, 48) and not m.any()
    assert FLAT == 0.5 / 255
    with pytest.raises(ValueError, match=r"avoid mask \(10, 10\) must have the image's shape \(40, 40\)"):
        trace_image(None, torch.zeros(3, 40, 40), avoid=np.zeros((10, 10)))
    with pytest.raises(ValueError, match="explain_rounds, n_splines and rounds must be integers"):
        trace_image(None, torch.zeros(3, 40, 40), explain_rounds=2.5)
    with pytest.raises(ValueError, match="mask_px"):
        trace_image(None, torch.zeros(3, 40, 40), mask_px=float("inf"))


def test_curve_map_baseline_values_are_checked():
    from studies.applications.extraction import curve_map

    for bad in ([float("nan"), 0.5, 0.5], [128.0, 128.0, 128.0], [-5.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match=r"baseline colours must lie in \[0, 1\]"):
            curve_map(None, torch.zeros(1, 3, 40, 40), baseline=torch.tensor(bad))


def test_cli_trace_defaults_are_the_benchmarked_ones():
    import argparse
    import inspect

    from studies.applications.commands import run_trace
    from studies.applications.splines import trace_image
    from studies.cli.applications import add_trace

    sub = argparse.ArgumentParser().add_subparsers()
    add_trace(sub)
    args = sub.choices["trace"].parse_args(["x.png", "--out", "o"])
    sig, api = inspect.signature(run_trace).parameters, inspect.signature(trace_image).parameters
    assert (args.explain_rounds, args.rounds) == (4, 2)
    assert (sig["explain_rounds"].default, sig["rounds"].default) == (4, 2)
    assert (api["explain_rounds"].default, api["rounds"].default, api["mask_px"].default) == (4, 2, 6.0)
    assert (args.fill, args.floor) == (sig["fill"].default, sig["floor"].default) == (api["fill"].default,
                                                                                      api["floor"].default)
    assert (api["fill"].default, api["floor"].default) == ("local", 0.75)


def test_local_fill_restores_a_flat_or_linear_background_under_a_stroke():
    """Normalised convolution: a dark stroke on a flat background is filled with exactly that
    background; on a horizontal ramp the fill on the stroke's centre line is the ramp exactly (the
    weights are symmetric about it, so the weighted mean of a linear function is its value there)
    and within σ × slope of it across the band — no edge is left for the next curve map."""
    from studies.applications.splines import band, local_fill

    ctrl = np.array([[[20.0, 4.0], [20.0, 20.0], [20.0, 40.0], [20.0, 59.0]]])  # a vertical stroke at x = 20
    mask = band(ctrl, (64, 48), 6.0)
    flat = torch.full((3, 64, 48), 0.25)
    flat[:, mask > 0] = 0.9
    fill = local_fill(flat, mask, 4.0, torch.zeros(3, 1, 1))
    torch.testing.assert_close(fill[:, mask > 0], torch.full_like(fill[:, mask > 0], 0.25), rtol=0, atol=1e-6)
    ramp = torch.arange(48.0).div(100).expand(3, 64, 48).clone()
    painted = ramp.clone()
    painted[:, mask > 0] = 1.0
    fill = local_fill(painted, mask, 4.0, torch.zeros(3, 1, 1))
    rows = slice(16, 48)  # away from the stroke's ends and the mirrored image border
    torch.testing.assert_close(fill[:, rows, 20], ramp[:, rows, 20], rtol=0, atol=1e-6)
    inside = torch.from_numpy(mask[rows] > 0)
    err = (fill[:, rows] - ramp[:, rows]).abs()[:, inside]
    assert 0 < float(err.max()) <= 4.0 * 0.01
    assert fill.dtype == torch.float32 and fill.shape == (3, 64, 48)


def test_local_fill_falls_back_where_no_background_is_near():
    from studies.applications.splines import local_fill

    mask = np.ones((40, 40), np.float32)  # everything painted: no pixel to borrow from
    fill = local_fill(torch.rand(3, 40, 40), mask, 2.0, torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1))
    torch.testing.assert_close(fill, torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1).expand(3, 40, 40), rtol=0, atol=0)


def test_trace_with_a_given_scale_equals_tracing_the_map_on_its_own_scale():
    """``scale`` replaces the map's own 99.5th percentile: tracing ``m`` with ``scale=q`` (its own
    percentile) or ``2m`` with ``2q`` gives the same splines, bit for bit; a larger scale (a
    later map held to the first map's) lowers every value under τ."""
    yy, xx = np.mgrid[:48, :48]
    m = np.exp(-(np.hypot(xx - 24, yy - 24) - 14) ** 2 / 2).astype(np.float32)  # a ring, r = 14 px
    q = float(torch.from_numpy(m).flatten().quantile(0.995))
    a, b, c = trace(m, steps=20), trace(m, steps=20, scale=q), trace(2 * m, steps=20, scale=2 * q)
    assert len(a.ctrl) >= 1
    np.testing.assert_array_equal(a.ctrl, b.ctrl)
    np.testing.assert_allclose(c.ctrl, a.ctrl, rtol=0, atol=1e-4)
    assert len(trace(m, steps=20, scale=100 * q).ctrl) == 0  # the whole map is below τ = 0.15 of it
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be finite and > 0"):
            trace(m, scale=bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(fill="median"), r"fill must be one of \['local', 'mean'\]; got 'median'"),
    (dict(fill=None), r"fill must be one of \['local', 'mean'\]; got None"),
    (dict(floor=-0.5), r"floor must be a finite number ≥ 0; got -0.5"),
    (dict(floor=float("nan")), r"floor must be a finite number ≥ 0; got nan"),
    (dict(floor=True), r"floor must be a finite number ≥ 0; got True"),
])
def test_trace_image_checks_fill_and_floor_before_any_compute(kwargs, match):
    from studies.applications.splines import trace_image

    with pytest.raises(ValueError, match=match):
        trace_image(None, torch.zeros(3, 40, 40), **kwargs)

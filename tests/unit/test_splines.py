"""Bézier renderer geometry, gradients and the tracer (studies.applications.splines)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from studies.applications.scenes import arc_points
from studies.applications.splines import bezier, bezier_np, mean_distance, render, trace
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
    r1 = trace(m, n_splines=2, steps=120)
    r2 = trace(m, n_splines=2, steps=120)
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
    free = trace(m, n_splines=1, steps=120)
    pen = trace(m, n_splines=1, steps=120, avoid=avoid, mu=5.0)
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

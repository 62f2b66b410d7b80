"""Stimuli, receptive-field geometry and tuning measures (real BVLC weights where needed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from circuits.geometry import measurement_window, receptive_field
from studies import stimuli as S
from studies.tuning import measure, radial_tuning, tuning_metrics


# ----------------------------------------------------------------------------- stimuli
def test_render_is_deterministic_and_in_range():
    st = S.curves([0, 33.3, 200], [10, 50, math.inf], stroke_width=2.5).at(96, (46.0, 47.5))
    a, b = st.render(), st.render()
    assert torch.equal(a, b)
    assert a.shape == (9, 3, 96, 96) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    # anti-aliased: intermediate grey levels exist
    assert ((a > 0.05) & (a < 0.95)).any()


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


def test_infinite_radius_is_a_line():
    a = S.curves([30, 120], [math.inf]).at(64, 31.5).render()
    b = S.lines([30, 120]).at(64, 31.5).render()
    assert torch.equal(a, b)


def test_arc_degrees_limits_the_arc():
    full = S.curves([90], [20], arc_degrees=360).at(96, 47).render()
    half = S.curves([90], [20], arc_degrees=90).at(96, 47).render()
    assert (1 - half).sum() < 0.4 * (1 - full).sum()


@pytest.mark.parametrize("kwargs,match", [
    (dict(orientations=[float("nan")]), "orientations"),
    (dict(radii=[-5]), "radii"),
    (dict(radii=[0]), "radii"),
    (dict(stroke_width=0), "stroke_width"),
    (dict(arc_degrees=0), "arc_degrees"),
    (dict(size=0), "size"),
    (dict(fg=(0, 0, 2)), "fg"),
])
def test_bad_stimulus_parameters_raise(kwargs, match):
    with pytest.raises(S.StimulusError, match=match):
        S.curves(**kwargs)


def test_colours():
    st = S.curves([0], [30], fg=(1, 0, 0), bg=(0, 0, 1), stroke_width=4).at(64, 31)
    img = st.render()[0]
    assert torch.allclose(img[:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    assert img[0].max() == 1.0 and img[1].max() == 0.0


# ----------------------------------------------------------------------------- geometry
def test_receptive_field_matches_the_gradient(caffe_model):
    """The analytic receptive field equals the support of the input gradient of one unit."""
    size, pos, center = measurement_window(caffe_model.spec, "mixed3b")
    rf = receptive_field(caffe_model.spec, "mixed3b")
    assert (rf.size, rf.stride, rf.offset) == (91, 8, 6.0)  # 'about 91 px' (Branch Specialization)
    # random input: no max-pool ties (a tie sends the gradient to one side only)
    x = torch.rand((4, 3, size, size), generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    with torch.enable_grad():
        y = caffe_model(x, stop_at="mixed3b")
        y[:, :, pos, pos].sum().backward()
    g = x.grad.abs().sum((0, 1))
    rows = torch.nonzero(g.sum(1) > 0).flatten()
    cols = torch.nonzero(g.sum(0) > 0).flatten()
    lo, hi = rf.span(pos)
    assert (int(rows.min()), int(rows.max())) == (int(lo), int(hi)) == (int(cols.min()), int(cols.max()))
    assert center == rf.center(pos)


def test_cropped_measurement_equals_full_image(caffe_model):
    """Receptive-field cropping gives the same responses as 224-px images (to float tolerance)."""
    st = S.curves([0, 90, 200], [15, 60])
    units = ["3b:358", "3b:386", "3b:9", "3a:10"]
    fast = measure(caffe_model, units, st)
    for layer in ("mixed3b", "mixed3a"):
        rf = receptive_field(caffe_model.spec, layer)
        pos = 13
        imgs = st.at(224, rf.center(pos)).render()
        act = caffe_model.run(imgs, [f"{layer}_pre_relu"])[f"{layer}_pre_relu"][:, :, pos, pos]
        for u in [u for u in units if ("3b" if layer == "mixed3b" else "3a") in u]:
            idx = int(u.split(":")[1])
            got = fast[fast["unit"] == f"{layer}:{idx}"]["response"].to_numpy()
            np.testing.assert_allclose(got, act[:, idx].numpy(), rtol=1e-4, atol=1e-3)


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
    assert abs(m["preferred_orientation"] - 100) < 3
    assert m["peak_orientation"] == 100
    assert m["echo_ratio"] == pytest.approx(0.2, abs=1e-9)
    # half-max of cos^4 is at ±32.8°: the width counts 5° bins within it
    assert 55 <= m["tuning_width"] <= 70
    assert 0.5 < m["selectivity"] <= 1


def test_measure_rejects_units_outside_the_model(caffe_model):
    with pytest.raises(IndexError, match="0..479"):
        measure(caffe_model, ["3b:480"], S.curves([0], [10]))
    with pytest.raises(KeyError, match="valid layers"):
        measure(caffe_model, ["9z:1"], S.curves([0], [10]))

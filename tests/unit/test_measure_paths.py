"""``measure`` (studies.measure.tuning) on random weights against a third computation: the
stimulus rendered in a full 224 px image, centred on one position's receptive field, and that
position read from a plain forward pass — for the fast (cone) and the naive path, pre- and
post-ReLU; the table it returns, ``compare``, ``joint_sweep`` and ``angle_curve_summary`` on
hand tables, and the errors (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from circuits.geometry import receptive_field
from circuits.model import InceptionV1
from circuits.names import hook_name
from circuits.spec import get_spec
from studies.measure import stimuli as S
from studies.measure import tuning as T

SPEC = get_spec("inceptionv1_caffe")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = InceptionV1(SPEC)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.05)
    return m.eval()


def _in_full_image(model, layer, idx, stim, pre_relu=True):
    rf = receptive_field(SPEC, layer, 224)
    p = 14  # an interior position of mixed3a (28 × 28)
    images = stim.at(224, rf.center(p)).render()
    name = hook_name(layer, pre_relu=pre_relu)
    with torch.no_grad():
        return model.run(images, [name])[name][:, idx, p, p].numpy()


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("pre_relu", [True, False])
def test_measure_equals_the_full_image_response(model, fast, pre_relu):
    stim = S.curves([0.0, 90.0, 200.0], [10.0])
    df = T.measure(model, ["3a:5", "mixed3a:17"], stim, pre_relu=pre_relu, fast=fast, batch_size=2)
    assert list(df.columns) == ["unit", "layer", "index"] + list(stim.meta.columns) + ["response"]
    assert df["unit"].tolist() == ["mixed3a:5"] * 3 + ["mixed3a:17"] * 3
    assert df["index"].tolist() == [5] * 3 + [17] * 3 and set(df["layer"]) == {"mixed3a"}
    assert df["orientation"].tolist() == [0.0, 90.0, 200.0] * 2
    expect = _in_full_image(model, "mixed3a", [5, 17], stim, pre_relu)  # (stimulus, unit)
    np.testing.assert_allclose(df["response"].to_numpy().reshape(2, 3).T, expect, rtol=1e-4, atol=1e-5)
    if not pre_relu:
        assert (df["response"] >= 0).all()
    else:
        assert (df["response"] < 0).any()  # pre-ReLU values keep their sign


def test_compare_and_joint_sweep_tables(model):
    stim = S.curves([0.0], [10.0])
    both = T.compare({"a": model, "b": model}, "3a:5", stim)
    assert both["variant"].tolist() == ["a", "b"] and both["response"].iloc[0] == both["response"].iloc[1]
    js = T.joint_sweep(model, "3a:5", orientation_step=90.0, radii=(10.0, 20.0), stroke_width=3.0, lines=True)
    assert js["kind"].tolist() == ["curve"] * 8 + ["line"] * 2
    assert js["orientation"].tolist() == [0.0, 0.0, 90.0, 90.0, 180.0, 180.0, 270.0, 270.0, 0.0, 90.0]
    assert js["radius"].tolist()[:2] == [10.0, 20.0] and set(js["stroke_width"]) == {3.0}
    no_lines = T.joint_sweep(model, "3a:5", orientation_step=180.0, radii=(10.0,), lines=False)
    assert no_lines["kind"].tolist() == ["curve", "curve"] and set(no_lines["stroke_width"]) == {2.0}


@pytest.mark.parametrize("units, stim, kwargs, message", [
    ([], "curves", {}, "no units to measure"),
    ("3a:5", None, {}, "stimuli must be a non-empty studies.measure.stimuli.Stimuli table"),
    ("3a:5", "curves", {"batch_size": 0}, "batch_size must be ≥ 1; got 0"),
])
def test_measure_errors(model, units, stim, kwargs, message):
    stim = S.curves([0.0], [10.0]) if stim == "curves" else stim
    with pytest.raises(ValueError) as e:
        T.measure(model, units, stim, **kwargs)
    assert e.value.args[0] == message


def test_angle_curve_summary_on_a_hand_table():
    rows = []
    for unit, angle, sharp, curve in (("mixed3b:2", [3.0, 1.0], 2.0, 4.0), ("mixed3b:1", [1.0], None, -1.0)):
        layer, index = unit.split(":")
        for i, a in enumerate(angle):
            rows.append(dict(unit=unit, layer=layer, index=int(index), kind="angle", radius=8.0 * (i + 1),
                             response=a))
        if sharp is not None:
            rows.append(dict(unit=unit, layer=layer, index=int(index), kind="angle", radius=0.0, response=sharp))
        rows.append(dict(unit=unit, layer=layer, index=int(index), kind="curve", radius=10.0, response=curve))
        rows.append(dict(unit=unit, layer=layer, index=int(index), kind="curve", radius=20.0, response=curve - 5))
    got = T.angle_curve_summary(pd.DataFrame(rows))
    assert list(got.columns) == ["unit", "layer", "index", "best_angle", "sharp_angle", "best_curve",
                                 "angle_curve_ratio", "sharp_curve_ratio"]
    first = got.iloc[0].to_dict()  # first-seen order
    assert first == {"unit": "mixed3b:2", "layer": "mixed3b", "index": 2, "best_angle": 3.0, "sharp_angle": 2.0,
                     "best_curve": 4.0, "angle_curve_ratio": 0.75, "sharp_curve_ratio": 0.5}
    second = got.iloc[1]
    assert (second["unit"], second["best_angle"], second["best_curve"]) == ("mixed3b:1", 1.0, -1.0)
    assert all(math.isnan(second[c]) for c in ("sharp_angle", "angle_curve_ratio", "sharp_curve_ratio"))

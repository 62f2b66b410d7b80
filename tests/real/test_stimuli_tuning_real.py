"""Stimuli, receptive-field geometry and tuning measures (real BVLC weights where needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuits.cone import cone_plan, fast_path_problem
from circuits.geometry import measurement_window, receptive_field
from studies.measure import stimuli as S
from studies.measure.tuning import measure


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


def test_cone_plan_crops_to_the_branch_receptive_field(caffe_model):
    spec = caffe_model.spec
    assert cone_plan(spec, "mixed3b", {"5x5"}).crop == 91
    assert cone_plan(spec, "mixed3b", {"1x1"}).crop == receptive_field(spec, "mixed3b_1x1").size
    assert cone_plan(spec, "mixed3b", {"1x1", "3x3"}).crop == receptive_field(spec, "mixed3b_3x3").size
    assert cone_plan(spec, "conv2d2").crop == receptive_field(spec, "conv2d2").size
    assert fast_path_problem(caffe_model) is None


# ----------------------------------------------------------------------------- fast path = model.run
MIXED_STIMULI = (S.curves([0, 90, 200], [15, 60]) + S.lines([10]) + S.angles([45], 90, 5)
                 + S.combed_curves([300], [25], "outward") + S.filled_curves([120], [30], fg=(0.2, 0.5, 0.9))
                 + S.curves([33], [40], positions=[(4, -7)]) + S.concentric_curves([150], [20], 3, 6, bg=0.7))

#: units of every branch of mixed3a and mixed3b (first and last of each), and conv layers
FAST_UNITS = {
    "mixed3a": [0, 63, 64, 191, 192, 223, 224, 255],
    "mixed3b": [0, 127, 128, 319, 320, 358, 415, 416, 479],
    "conv2d2": [0, 146, 191],
    "conv2d0": [0, 63],
    "conv2d1": [5],
}


@pytest.mark.parametrize("layer", list(FAST_UNITS))
def test_fast_path_equals_model_run_on_224px_images(caffe_model, layer):
    """The receptive-field cone (crop, valid convolutions, only the needed branches and
    channels, preprocessing folded into conv2d0) gives model.run's values on full images."""
    idx = FAST_UNITS[layer]
    units = [f"{layer}:{i}" for i in idx]
    fast = measure(caffe_model, units, MIXED_STIMULI, fast=True)
    naive = measure(caffe_model, units, MIXED_STIMULI, fast=False)
    rf = receptive_field(caffe_model.spec, layer)
    pos = 13 if layer.startswith("mixed") else 30
    imgs = MIXED_STIMULI.at(224, rf.center(pos)).render()
    act = caffe_model.run(imgs, [f"{layer}_pre_relu"])[f"{layer}_pre_relu"][:, :, pos, pos]
    for i in idx:
        ref = act[:, i].numpy()
        np.testing.assert_allclose(fast[fast["index"] == i]["response"].to_numpy(), ref, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(naive[naive["index"] == i]["response"].to_numpy(), ref, rtol=1e-4, atol=1e-3)


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


def test_hooks_send_measure_down_the_naive_path(caffe_model):
    """An intervention (a forward hook) must be honoured: the fast path steps aside."""
    st = S.curves([0, 180], [20])

    def zero(mod, inp, out):
        return out * 0

    clean = measure(caffe_model, ["3b:358"], st)
    h = caffe_model.hook_points["mixed3a"].register_forward_hook(zero)
    try:
        assert "hooks" in fast_path_problem(caffe_model)
        with pytest.raises(ValueError, match="fast path unavailable"):
            measure(caffe_model, ["3b:358"], st, fast=True)
        hooked = measure(caffe_model, ["3b:358"], st)
    finally:
        h.remove()
    assert not np.allclose(hooked["response"], clean["response"])
    assert np.ptp(hooked["response"]) < 1e-3  # mixed3a zeroed: every stimulus gives the same value
    assert fast_path_problem(caffe_model) is None


def test_post_relu_and_thread_count(caffe_model):
    st = S.curves([0, 90, 180, 270], [20, 60])
    n = torch.get_num_threads()
    pre = measure(caffe_model, ["3b:358", "3b:9"], st)
    post = measure(caffe_model, ["3b:358", "3b:9"], st, pre_relu=False)
    assert torch.get_num_threads() == n  # the worker threads do not leak their setting
    np.testing.assert_allclose(post["response"], pre["response"].clip(lower=0), rtol=1e-6)


def test_measure_rejects_units_outside_the_model(caffe_model):
    with pytest.raises(IndexError, match="0..479"):
        measure(caffe_model, ["3b:480"], S.curves([0], [10]))
    with pytest.raises(KeyError, match="valid layers"):
        measure(caffe_model, ["9z:1"], S.curves([0], [10]))


def test_edited_and_linearised_models(caffe_model):
    """Weight edits keep the fast path (and its values); a linearised copy, or a structure the
    cone does not know, falls back to model.run."""
    import copy

    from circuits.model import linearized

    st = S.curves([0, 90, 180, 270], [20, 60])
    edited = copy.deepcopy(caffe_model)
    with torch.no_grad():
        edited.mixed3a.b5x5.conv.weight.mul_(-1.0)
    assert fast_path_problem(edited) is None
    np.testing.assert_allclose(measure(edited, ["3b:358"], st, fast=True)["response"],
                               measure(edited, ["3b:358"], st, fast=False)["response"], rtol=1e-4, atol=1e-3)
    lin = linearized(caffe_model)
    assert "linear" in fast_path_problem(lin)
    with pytest.raises(ValueError, match="fast path unavailable"):
        measure(lin, ["3b:358"], st, fast=True)
    np.testing.assert_allclose(measure(lin, ["3b:358"], st)["response"],
                               measure(lin, ["3b:358"], st, fast=False)["response"], rtol=1e-6)


def test_self_check_catches_changes_the_structural_checks_miss(caffe_model):
    import copy

    m = copy.deepcopy(caffe_model)
    orig = m.mixed3a.forward
    m.mixed3a.forward = lambda x: orig(x) * 0.5  # same modules, different function
    st = S.curves([0, 180], [20])
    assert fast_path_problem(m) is None
    with pytest.raises(ValueError, match="self-check"):
        measure(m, ["3b:358"], st, fast=True)
    np.testing.assert_allclose(measure(m, ["3b:358"], st)["response"],
                               measure(m, ["3b:358"], st, fast=False)["response"], rtol=1e-6)

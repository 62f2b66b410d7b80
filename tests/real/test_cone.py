"""circuits.cone: the receptive-field cone equals the full forward pass (real BVLC weights)."""

from __future__ import annotations

import copy

import pytest
import torch

from circuits.cone import cone_plan, cone_problem, cone_responses, fast_path_problem, plan_for_units
from circuits.geometry import receptive_field
from circuits.model import observer
from circuits.names import hook_name

#: first and last unit of every branch of mixed3b (BVLC widths 128/192/96/64), mixed4a's 5x5 and conv2d2
CASES = {"mixed3b": [0, 127, 128, 319, 320, 415, 416, 479], "mixed4a": [496, 511], "conv2d2": [0, 191]}


@pytest.mark.parametrize("layer", list(CASES))
def test_cone_equals_full_224px_forward(caffe_model, layer):
    """cone_responses on crops of 224-px images = model.run at the position the crop is centred on."""
    idx = CASES[layer]
    plan = plan_for_units(caffe_model.spec, layer, idx)
    rf = receptive_field(caffe_model.spec, layer)
    pos = 13 if layer.startswith("mixed3") else (6 if layer == "mixed4a" else 30)
    imgs = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    name = hook_name(layer, pre_relu=True)
    ref = caffe_model.run(imgs, [name])[name][:, idx, pos, pos]
    off = int(round(rf.center(pos) - plan.center))
    crops = imgs[:, :, off:off + plan.crop, off:off + plan.crop]
    got = cone_responses(caffe_model, layer, idx, crops, plan)
    assert got.shape == (3, len(idx))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-3)


def test_cone_plan_sizes_and_branch_selection(caffe_model):
    spec = caffe_model.spec
    assert cone_plan(spec, "mixed3b", {"5x5"}).crop == 91  # 'about 91 px' (Branch Specialization)
    assert plan_for_units(spec, "mixed3b", [379]).branches == ("5x5",)
    assert plan_for_units(spec, "mixed3b", [0, 479]).branches == ("1x1", "pool_reduce")
    assert cone_plan(spec, "logits") is None


def test_observer_is_shared_by_model_and_cone(caffe_model):
    """One 'observed?' check: a backward hook is seen by both, and removing it restores the cone."""
    m = copy.deepcopy(caffe_model)
    assert observer(m) is None and fast_path_problem(m) is None
    h = m.mixed3a.b1x1.conv.register_full_backward_hook(lambda *a: None)
    try:
        assert observer(m) == "module mixed3a.b1x1.conv has hooks"
        assert fast_path_problem(m) == observer(m)
        assert m._observed()
        with pytest.raises(ValueError, match="fast path unavailable for mixed3b: module mixed3a.b1x1.conv has hooks"):
            cone_responses(m, "mixed3b", [379], torch.zeros(1, 3, 91, 91))
    finally:
        h.remove()
    assert cone_problem(m, "mixed3b", [379], plan_for_units(m.spec, "mixed3b", [379])) is None


def test_cone_rejects_wrong_crop_size(caffe_model):
    with pytest.raises(ValueError, match="crops must be 91x91 px for mixed3b"):
        cone_responses(caffe_model, "mixed3b", [379], torch.zeros(1, 3, 90, 90))

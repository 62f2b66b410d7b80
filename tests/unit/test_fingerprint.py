"""circuits.fingerprint: one identity of a model (issue 13, kind 1) — everything that changes its
outputs changes the fingerprint, nothing else does; what cannot be fingerprinted is refused; edits
copy only the model itself."""

import pytest
import torch
from torch.nn.modules import module as torch_module

from circuits.fingerprint import FingerprintError, fingerprint, own_copy
from circuits.model import InceptionV1, linearized
from edits import Ablate, EditPlan, intervene, mean_units, zero_units
from edits.interventions import has_hook


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return InceptionV1("inceptionv1_caffe")


def test_same_model_same_fingerprint_and_copies_agree(model):
    f = fingerprint(model)
    assert f == fingerprint(model) and len(f) == 64
    assert fingerprint(own_copy(model)) == f


@pytest.mark.parametrize("change", [
    "linearized", "bgr", "scale", "mean_buffer", "weight_bit", "relu_flag", "pool_flag", "widened", "provenance_surrogate",
])
def test_every_forward_change_changes_the_fingerprint(model, change):
    f = fingerprint(model)
    if change == "linearized":
        m = linearized(model)
    else:
        m = own_copy(model)
        with torch.no_grad():
            if change == "bgr":  # channel order of the preprocessing
                m.preprocess.fn.bgr = not m.preprocess.fn.bgr
            elif change == "scale":
                m.preprocess.fn.scale = m.preprocess.fn.scale * 2
            elif change == "mean_buffer":  # a non-persistent buffer: not in the state dict
                assert "preprocess.fn.mean" not in m.state_dict()
                m.preprocess.fn.mean.add_(1.0)
            elif change == "weight_bit":
                w = m.mixed4a.b1x1.conv.weight.view(-1)
                w[123] = torch.nextafter(w[123], torch.tensor(1.0))
            elif change == "relu_flag":
                m.mixed5b.b1x1.relu = False
            elif change == "pool_flag":
                m.maxpool4.fn.linear = True
            elif change == "widened":
                m.mixed3b.resize_conv("5x5_bottleneck", out_channels=m.mixed3b.b5x5_bottleneck.conv.out_channels + 1)
            elif change == "provenance_surrogate":
                m.provenance = m.provenance.replace(linear_surrogate=True)
    assert fingerprint(m) != f


def test_history_and_execution_only_settings(model):
    m = own_copy(model)
    m.provenance = m.provenance.replace(weights_source="/elsewhere/weights.safetensors")
    assert fingerprint(m) == fingerprint(model)  # where the weights came from is not behaviour


def test_interventions_are_fingerprinted_by_what_they_do(model):
    f = fingerprint(model)
    with intervene(model, {"mixed3b": zero_units([1, 2])}):
        a = fingerprint(model)
    with intervene(model, {"mixed3b": zero_units([1, 3])}):
        b = fingerprint(model)
    with intervene(model, {"mixed3b": mean_units([1, 2], [0.5, 0.25])}):
        c = fingerprint(model)
    with intervene(model, {"mixed3b": zero_units([1, 2])}):
        assert fingerprint(model) == a  # the same intervention again: the same identity
    assert len({f, a, b, c}) == 4
    assert fingerprint(model) == f  # gone with the context
    r0 = EditPlan([Ablate("3b:379", mode="resample", seed=0)]).apply(model)[0]
    r1 = EditPlan([Ablate("3b:379", mode="resample", seed=1)]).apply(model)[0]
    assert len({f, fingerprint(r0), fingerprint(r1)}) == 3


def test_unknown_hooks_are_refused_with_their_place(model):
    h = model.mixed4a.post.register_forward_hook(lambda mod, i, o: o * 2)
    try:
        with pytest.raises(FingerprintError, match=r"mixed4a\.post.*fingerprint_key"):
            fingerprint(model)
    finally:
        h.remove()
    with intervene(model, {"mixed3b": lambda a: a * 0}):
        with pytest.raises(FingerprintError, match="hook point 'mixed3b'"):
            fingerprint(model)
    g = torch_module.register_module_forward_hook(lambda mod, i, o: None)
    try:
        with pytest.raises(FingerprintError, match="global"):
            fingerprint(model)
    finally:
        g.remove()
    m = own_copy(model)
    m.mixed3a.forward = lambda x: x  # a forward replaced on the instance
    with pytest.raises(FingerprintError, match="mixed3a"):
        fingerprint(m)
    assert fingerprint(model)  # the model itself is fine again


def test_hooks_on_the_callers_model_do_not_travel_into_edited_copies(model):
    plain = EditPlan([Ablate("3b:379")]).apply(model)[0]
    calls = []
    h = model.mixed3b.post.register_forward_hook(lambda mod, i, o: calls.append(1))
    try:
        with intervene(model, {"mixed4a": zero_units([0])}):
            edited, _ = EditPlan([Ablate("3b:379")]).apply(model)
            lin = linearized(model)
    finally:
        h.remove()
    assert fingerprint(edited) == fingerprint(plain)  # no foreign hook: fingerprintable, same identity
    assert not any(m._forward_hooks for m in edited.modules()) and not any(m._forward_hooks for m in lin.modules())
    edited(torch.rand(1, 3, 64, 64))
    assert calls == []
    # the interventions a plan installed are part of the edited model and stay with it
    r, rec = EditPlan([Ablate("3b:379", mode="resample")]).apply(model)
    again, _ = EditPlan([Ablate("3b:1")]).apply(r)
    assert has_hook(again, rec.interventions[0])
    assert fingerprint(again) != fingerprint(EditPlan([Ablate("3b:1")]).apply(model)[0])


def test_saving_refuses_what_the_file_cannot_reproduce(model, tmp_path):
    from edits import save_edited

    with pytest.raises(ValueError, match=r"cannot save this model.*linear_surrogate.*conv2d0\.relu"):
        save_edited(linearized(model), tmp_path / "lin.safetensors")
    bgr = own_copy(model)
    bgr.preprocess.fn.bgr = not bgr.preprocess.fn.bgr
    with pytest.raises(ValueError, match=r"preprocess\.fn\.bgr"):
        save_edited(bgr, tmp_path / "bgr.safetensors")
    assert list(tmp_path.iterdir()) == []
    widened = own_copy(model)
    widened.mixed3b.resize_conv("5x5_bottleneck", out_channels=widened.mixed3b.b5x5_bottleneck.conv.out_channels + 1)
    assert save_edited(widened, tmp_path / "w.safetensors").exists()  # structure is in the file

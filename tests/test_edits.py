"""Edit plans on the real BVLC weights and real images: Ablate, EditPlan, EditRecord."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from circuits import Family, Unit
from edits import Ablate, EditError, EditPlan, EditRecord, producing_conv

# Units of mixed3b, one or more per branch (BVLC offsets: 1x1 [0,128), 3x3 [128,320),
# 5x5 [320,416), pool_reduce [416,480)).
UNITS = ["3b:5", "3b:200", "3b:379", "3b:385", "3b:450"]
UNIT_IDX = [5, 200, 379, 385, 450]
# (state-dict prefix, branch-local channel) that produce each unit above.
PRODUCERS = {
    5: ("mixed3b.b1x1.conv", 5),
    200: ("mixed3b.b3x3.conv", 72),
    379: ("mixed3b.b5x5.conv", 59),
    385: ("mixed3b.b5x5.conv", 65),
    450: ("mixed3b.bpool_reduce.conv", 34),
}


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _hashes(model: torch.nn.Module) -> dict[str, str]:
    out = {f"param:{k}": _digest(v) for k, v in model.named_parameters()}
    out.update({f"buffer:{k}": _digest(v) for k, v in model.named_buffers()})
    return out


def _load_images(images_dir, n: int = 4, size: int = 224) -> torch.Tensor:
    """The first ``n`` sample images: shorter side resized to ``size``, centre crop, RGB in [0, 1]."""
    paths = sorted(images_dir.glob("*.JPEG"))[:n]
    assert len(paths) == n
    batch = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        w, h = im.size
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        batch.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(batch)


@pytest.fixture(scope="module")
def images(images_dir) -> torch.Tensor:
    return _load_images(images_dir)


@pytest.fixture(scope="module")
def ablated(caffe_model):
    """(before-hashes, after-hashes, edited model, record) for zero-ablating UNITS of mixed3b."""
    before = _hashes(caffe_model)
    edited, record = EditPlan([Ablate(UNITS)], name="test").apply(caffe_model)
    after = _hashes(caffe_model)
    return before, after, edited, record


# ---------------------------------------------------------------------------- construction
def test_ablate_normalises_units_to_strings():
    fam = Family("curves", "mixed3b", (379, 385))
    a = Ablate([Unit("mixed3b", 5), "3b:200", ("mixed3b", 450), fam])
    assert a.units == ("mixed3b:5", "mixed3b:200", "mixed3b:450", "mixed3b:379", "mixed3b:385")
    assert Ablate("3b:379, mixed3b:385").units == ("mixed3b:379", "mixed3b:385")
    assert Ablate(Unit("mixed3b", 379)) == Ablate("mixed3b:379") == Ablate(["3b:379"])
    assert Ablate("mixed3b_5x5_bottleneck:3").units == ("mixed3b_5x5_bottleneck:3",)
    assert Ablate("3b:1").mode == "zero"
    with pytest.raises(dataclasses.FrozenInstanceError):
        Ablate("3b:1").mode = "mean"  # type: ignore[misc]


def test_producing_conv(caffe_model):
    spec = caffe_model.spec
    assert producing_conv(Unit("mixed3b", 379), spec) == ("mixed3b_5x5", 59)
    assert producing_conv(Unit("mixed3b", 0), spec) == ("mixed3b_1x1", 0)
    assert producing_conv(Unit("mixed3b", 479), spec) == ("mixed3b_pool_reduce", 63)
    assert producing_conv(Unit("conv2d2", 7), spec) == ("conv2d2", 7)
    assert producing_conv(Unit("mixed3b_5x5_bottleneck", 3), spec) == ("mixed3b_5x5_bottleneck", 3)


# ---------------------------------------------------------------------------- apply
def test_apply_returns_new_model_and_leaves_caller_unchanged(caffe_model, ablated):
    before, after, edited, record = ablated
    assert edited is not caffe_model
    assert isinstance(record, EditRecord)
    assert before == after, "the caller's model was modified"
    # No parameter storage is shared between the two models.
    ptrs = {p.data_ptr() for p in caffe_model.parameters()}
    assert not any(p.data_ptr() in ptrs for p in edited.parameters())


def test_apply_changes_exactly_the_expected_entries(caffe_model, ablated):
    _, _, edited, record = ablated
    orig_sd, new_sd = caffe_model.state_dict(), edited.state_dict()
    assert orig_sd.keys() == new_sd.keys()
    expected_masks: dict[str, torch.Tensor] = {}
    for prefix, ch in PRODUCERS.values():
        for p in ("weight", "bias"):
            key = f"{prefix}.{p}"
            m = expected_masks.setdefault(key, torch.zeros_like(orig_sd[key], dtype=torch.bool))
            m[ch] = True
    for key in orig_sd:
        a, b = orig_sd[key], new_sd[key]
        if key not in expected_masks:
            assert _digest(a) == _digest(b), f"{key} changed but no ablated unit lives there"
            continue
        mask = expected_masks[key]
        assert torch.all(b[mask] == 0), f"{key}: ablated entries are not zero"
        assert torch.equal(a[~mask], b[~mask]), f"{key}: entries outside the ablated rows changed"
        assert torch.equal(a != b, mask & (a != 0)), f"{key}: changed entries differ from the ablated rows"
    assert set(record.tensors) == set(expected_masks)
    assert record.num_changed == sum(int((orig_sd[k][m] != 0).sum()) for k, m in expected_masks.items())


def test_edited_model_carries_its_plan(ablated):
    _, _, edited, record = ablated
    assert edited.edit_plan == record.plan == EditPlan([Ablate(UNITS)], name="test").to_dict()
    assert edited.edit_history == [record.plan]
    json.dumps(edited.edit_plan)  # embeddable in a report


def test_ablated_units_are_zero_and_others_bitwise_equal(caffe_model, ablated, images):
    _, _, edited, _ = ablated
    names = ["mixed3b", "mixed3b_pre_relu"]
    ref = caffe_model.run(images, names)
    out = edited.run(images, names)
    keep = [i for i in range(ref["mixed3b"].shape[1]) if i not in UNIT_IDX]
    for name in names:
        assert out[name].shape == ref[name].shape == (4, 480, 28, 28)
        assert torch.all(out[name][:, UNIT_IDX] == 0), f"{name}: ablated units are not exactly 0"
        assert torch.equal(out[name][:, keep], ref[name][:, keep]), f"{name}: other units changed"
    # The test is not vacuous: every ablated unit fired on these images before the edit.
    assert torch.all(ref["mixed3b"][:, UNIT_IDX].amax(dim=(0, 2, 3)) > 0)


def test_zero_ablation_equals_zeroing_the_activation_with_a_hook(caffe_model, ablated, images):
    _, _, edited, _ = ablated

    def zero_units(module, inputs, output):
        output = output.clone()
        output[:, UNIT_IDX] = 0
        return output

    handle = caffe_model.hook_points["mixed3b"].register_forward_hook(zero_units)
    try:
        with torch.no_grad():
            hooked = caffe_model(images)
    finally:
        handle.remove()
    assert not caffe_model.hook_points["mixed3b"]._forward_hooks
    with torch.no_grad():
        logits = edited(images)
        plain = caffe_model(images)
    torch.testing.assert_close(logits, hooked, atol=1e-4, rtol=0)
    assert not torch.allclose(logits, plain, atol=1e-4), "ablation had no effect on the logits"


def test_branch_internal_unit_ablation(caffe_model, images):
    edited, record = EditPlan([Ablate("mixed3b_5x5_bottleneck:3")]).apply(caffe_model)
    assert record.tensors == ("mixed3b.b5x5_bottleneck.conv.weight", "mixed3b.b5x5_bottleneck.conv.bias")
    assert record.num_changed == 256 + 1  # mixed3a has 256 channels, 1x1 kernel, + bias
    acts = edited.run(images, ["mixed3b_5x5_bottleneck", "mixed3b_5x5_bottleneck_pre_relu"])
    for t in acts.values():
        assert torch.all(t[:, 3] == 0)


# ---------------------------------------------------------------------------- record / undo
def test_undo_restores_every_parameter_bitwise(caffe_model, ablated):
    before, _, edited, record = ablated
    edited_hashes = _hashes(edited)
    restored = record.undo(edited)
    assert _hashes(restored) == before
    assert _hashes(edited) == edited_hashes, "undo modified the edited model"
    assert not hasattr(restored, "edit_plan") and not hasattr(restored, "edit_history")
    with pytest.raises(EditError, match="cannot undo"):
        record.undo(caffe_model)  # not the model this record came from


def test_changed_weight_count_for_5x5_units(caffe_model):
    units = ["3b:379", "3b:385", "3b:342"]
    spec = caffe_model.spec
    w = caffe_model.mixed3b.b5x5.conv.weight
    in_ch = w.shape[1]
    assert in_ch == spec.block("mixed3b").c5x5_bottleneck == 32
    rows = [producing_conv(Unit.parse(u), spec)[1] for u in units]
    assert all(bool((w[r] != 0).any()) for r in rows), "pick units whose weights are not all zero"
    _, record = EditPlan([Ablate(units)]).apply(caffe_model)
    assert record.num_changed == len(units) * (in_ch * 5 * 5 + 1) == 3 * 801
    assert record.changed == {"mixed3b.b5x5.conv.weight": 3 * 800, "mixed3b.b5x5.conv.bias": 3}


def test_applying_twice_composes_and_undo_peels_one_plan(caffe_model):
    first, r1 = EditPlan([Ablate("3b:379")], name="a").apply(caffe_model)
    second, r2 = EditPlan([Ablate("3b:385")], name="b").apply(first)
    assert [p["name"] for p in second.edit_history] == ["a", "b"]
    back = r2.undo(second)
    assert _hashes(back) == _hashes(first)
    assert back.edit_plan == r1.plan and back.edit_history == [r1.plan]


# ---------------------------------------------------------------------------- serialisation
def test_json_round_trip_and_files(tmp_path):
    plan = EditPlan([Ablate(UNITS), Ablate("mixed3b_5x5_bottleneck:3")], name="round-trip")
    d = plan.to_dict()
    assert d == {
        "schema_version": 1,
        "name": "round-trip",
        "edits": [
            {"type": "Ablate", "units": [str(Unit.parse(u)) for u in UNITS], "mode": "zero"},
            {"type": "Ablate", "units": ["mixed3b_5x5_bottleneck:3"], "mode": "zero"},
        ],
    }
    assert EditPlan.from_json(plan.to_json()) == plan
    assert EditPlan.from_dict(json.loads(json.dumps(d))) == plan
    for name in ("plan.json", "plan.yaml"):
        path = plan.save(tmp_path / name)
        assert EditPlan.load(path) == plan
    assert json.loads((tmp_path / "plan.json").read_text())["schema_version"] == 1


@pytest.mark.parametrize(
    "doc, match",
    [
        ({"schema_version": 2, "edits": []}, r"schema_version.*valid choices: \[1\]"),
        ({"edits": []}, "schema_version"),
        ({"schema_version": 1, "edits": [{"type": "Frobnicate", "units": ["3b:1"]}]}, r"edits\[0\].*'type'.*Ablate"),
        ({"schema_version": 1, "edits": [{"type": "Ablate", "unit": ["3b:1"]}]}, r"edits\[0\] \(Ablate\).*'unit'"),
        ({"schema_version": 1, "edits": [{"type": "Ablate", "mode": "zero"}]}, r"'units'.*missing"),
        (
            {"schema_version": 1, "edits": [{"type": "Ablate", "units": ["3b:1"]}, {"type": "Ablate", "units": ["3b:2"], "mode": "mean"}]},
            r"edits\[1\] \(Ablate\) field 'mode'.*\['zero'\]",
        ),
    ],
)
def test_from_dict_rejects_bad_documents(doc, match):
    with pytest.raises(EditError, match=match):
        EditPlan.from_dict(doc)


def test_bad_json_and_suffix(tmp_path):
    with pytest.raises(EditError, match="JSON"):
        EditPlan.from_json("{not json")
    with pytest.raises(EditError, match="valid choices"):
        EditPlan([Ablate("3b:1")]).save(tmp_path / "plan.txt")


# ---------------------------------------------------------------------------- validation
def test_index_out_of_range_names_the_valid_range(caffe_model):
    plan = EditPlan([Ablate("3b:9999")])
    with pytest.raises(EditError, match=r"edits\[0\] \(Ablate\) field 'units'.*0\.\.479") as e:
        plan.validate(caffe_model)
    assert (e.value.index, e.value.edit_type, e.value.field) == (0, "Ablate", "units")
    with pytest.raises(EditError, match=r"0\.\.31"):
        EditPlan([Ablate("mixed3b_5x5_bottleneck:32")]).validate(caffe_model.spec)


def test_unknown_layer_lists_valid_layers():
    with pytest.raises(EditError, match=r"field 'units'.*'7z'.*valid layers: conv2d0.*mixed3b.*mixed5b"):
        Ablate("7z:1")


def test_unknown_mode_names_field_and_choices():
    with pytest.raises(EditError, match=r"Ablate field 'mode'.*'mean'.*valid choices: \['zero'\]") as e:
        Ablate("3b:1", mode="mean")
    assert e.value.field == "mode" and e.value.choices == ["zero"]


@pytest.mark.parametrize(
    "edits",
    [
        [Ablate(["3b:379", "mixed3b:379"])],
        [Ablate("3b:379"), Ablate(Unit("mixed3b", 379))],
        # The same BVLC channel under two names: mixed3b:330 is mixed3b_5x5:10.
        [Ablate("3b:330"), Ablate("mixed3b_5x5:10")],
    ],
)
def test_duplicate_or_aliased_units_are_rejected(caffe_model, edits):
    with pytest.raises(EditError, match=r"field 'units'.*already set by edits\[0\]"):
        EditPlan(edits).validate(caffe_model)


def test_apply_validates_before_copying(caffe_model, monkeypatch):
    calls = []
    real = copy.deepcopy

    def spy(obj, *args, **kwargs):
        calls.append(type(obj).__name__)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(copy, "deepcopy", spy)
    with pytest.raises(EditError, match=r"0\.\.479"):
        EditPlan([Ablate("3b:480")]).apply(caffe_model)
    with pytest.raises(EditError, match="appears twice"):
        EditPlan([Ablate("3b:1,3b:1")]).apply(caffe_model)
    assert "InceptionV1" not in calls
    EditPlan([Ablate("3b:1")]).apply(caffe_model)
    assert "InceptionV1" in calls  # the spy does see the copy of a valid plan


def test_plan_rejects_non_edits():
    with pytest.raises(EditError, match=r"edits\[1\].*not an edit"):
        EditPlan([Ablate("3b:1"), "3b:2"])  # type: ignore[list-item]

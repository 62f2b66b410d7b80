"""Edit plans on the real BVLC weights and real images: Ablate, EditPlan, EditRecord."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json

import pytest
import torch

from circuits import Unit
from edits import Ablate, Edit, EditError, EditPlan, EditRecord, producing_conv

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


@pytest.fixture(scope="module")
def images(sample_batch) -> torch.Tensor:
    return sample_batch(0, 4)


@pytest.fixture(scope="module")
def ablated(caffe_model):
    """(before-hashes, after-hashes, edited model, record) for zero-ablating UNITS of mixed3b."""
    before = _hashes(caffe_model)
    edited, record = EditPlan([Ablate(UNITS)], name="test").apply(caffe_model)
    after = _hashes(caffe_model)
    return before, after, edited, record


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


# ---------------------------------------------------------------------------- validation
def test_index_out_of_range_names_the_valid_range(caffe_model):
    plan = EditPlan([Ablate("3b:9999")])
    with pytest.raises(EditError, match=r"edits\[0\] \(Ablate\) field 'units'.*0\.\.479") as e:
        plan.validate(caffe_model)
    assert (e.value.index, e.value.edit_type, e.value.field) == (0, "Ablate", "units")
    with pytest.raises(EditError, match=r"0\.\.31"):
        EditPlan([Ablate("mixed3b_5x5_bottleneck:32")]).validate(caffe_model.spec)


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
    with pytest.raises(EditError, match=r"edits\[1\] \(Ablate\) field 'means'.*reference"):
        EditPlan([Ablate("3b:1"), Ablate("3b:2", mode="mean")]).apply(caffe_model)
    with pytest.raises(EditError, match=r"field 'reference'"):
        EditPlan([Ablate("3b:2", mode="mean")]).apply(caffe_model, reference=torch.zeros(2, 1, 8, 8))
    assert "InceptionV1" not in calls
    EditPlan([Ablate("3b:1")]).apply(caffe_model)
    assert "InceptionV1" in calls  # the spy does see the copy of a valid plan


# ---------------------------------------------------------------------------- mean ablation
MEAN_UNITS = ["3b:5", "3b:379", "mixed3b_5x5_bottleneck:3"]


@pytest.fixture(scope="module")
def reference(images_dir) -> torch.Tensor:
    from studies.measure.images import load_reference_images

    return load_reference_images(images_dir, 6)


@pytest.fixture(scope="module")
def mean_ablated(caffe_model, reference):
    return EditPlan([Ablate(MEAN_UNITS, mode="mean")], name="mean").apply(caffe_model, reference=reference)


def test_mean_ablation_equals_the_mean_intervention(caffe_model, mean_ablated, reference, images):
    from edits import intervene, mean_units

    edited, record = mean_ablated
    means = record.plan["edits"][0]["means"]
    assert len(means) == 3 and all(m > 0 for m in means)
    # the means are those of the unedited model over the reference set (all positions, post-ReLU)
    acts = caffe_model.run(reference, ["mixed3b", "mixed3b_5x5_bottleneck"])
    expected = [acts["mixed3b"][:, 5].double().mean(), acts["mixed3b"][:, 379].double().mean(),
                acts["mixed3b_5x5_bottleneck"][:, 3].double().mean()]
    assert means == pytest.approx([float(e) for e in expected], rel=1e-6)
    assert means == [float(torch.tensor(m, dtype=torch.float32)) for m in means], "means are float32 values"
    # constant activations, equal to the means, pre- and post-ReLU
    out = edited.run(images, ["mixed3b", "mixed3b_pre_relu", "mixed3b_5x5_bottleneck"])
    assert torch.all(out["mixed3b"][:, 5] == means[0]) and torch.all(out["mixed3b_pre_relu"][:, 379] == means[1])
    assert torch.all(out["mixed3b_5x5_bottleneck"][:, 3] == means[2])
    # logits equal those of the unedited model with the activations replaced by hooks
    with torch.no_grad(), intervene(caffe_model, {
        "mixed3b_5x5_bottleneck": mean_units([3], means[2:]),
        "mixed3b": mean_units([5, 379], means[:2]),
    }):
        hooked = caffe_model(images)
    with torch.no_grad():
        logits = edited(images)
        plain = caffe_model(images)
    torch.testing.assert_close(logits, hooked, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(logits, plain, atol=1e-3), "mean ablation had no effect"
    assert record.changed["mixed3b.b1x1.conv.bias"] == 1 and record.changed["mixed3b.b1x1.conv.weight"] == 256


def test_applied_mean_plan_reapplies_without_images(caffe_model, mean_ablated, tmp_path):
    edited, record = mean_ablated
    assert edited.edit_plan == record.plan
    applied = record.applied_plan
    assert applied.edits[0].means is not None and applied.needs_reference() == []
    for name in ("applied.json", "applied.yaml"):
        again = EditPlan.load(applied.save(tmp_path / name))
        assert again == applied and again.to_dict() == record.plan  # lossless, floats included
        edited2, record2 = again.apply(caffe_model)  # no reference needed
        assert _hashes(edited2) == _hashes(edited)
        assert record2.plan == record.plan
    restored = record.undo(edited)
    assert _hashes(restored) == _hashes(caffe_model)


def test_family_keys_resolve_through_the_catalog(caffe_model, reference):
    from circuits.catalog import load_catalog

    fam = load_catalog("inceptionv1_caffe")["mixed3b/curves"]
    a = Ablate("3b/curves")
    assert a.units == ("mixed3b/curves",) and a.families is None
    with pytest.raises(EditError, match="validate first"):
        a.unit_list()
    plan = EditPlan([a], name="curves")
    plan.validate(caffe_model)
    edited, record = plan.apply(caffe_model)
    d = record.plan["edits"][0]
    assert d["units"] == [f"mixed3b:{u}" for u in fam.units]
    assert d["families"] == {"mixed3b/curves": list(fam.units)}
    assert record.num_changed > 0
    # the stored unit list wins over the catalog: a resolved plan keeps its meaning
    b = Ablate(["mixed3b/curves"], families={"mixed3b/curves": [1, 2]})
    assert b.units == ("mixed3b:1", "mixed3b:2")
    with pytest.raises(EditError, match=r"edits\[0\] \(Ablate\) field 'units'.*no family 'mixed3b/nope'.*mixed3b/curves"):
        EditPlan([Ablate("mixed3b/nope")]).validate(caffe_model)
    # a family and one of its units in one plan: the same unit twice
    with pytest.raises(EditError, match=f"mixed3b:{fam.units[0]} appears twice"):
        EditPlan([Ablate("mixed3b/curves"), Ablate(f"3b:{fam.units[0]}", mode="resample")]).validate(caffe_model)


# ---------------------------------------------------------------------------- resample ablation
def test_resample_ablation_is_an_intervention_on_the_copy(caffe_model, images):
    from edits import derangement, intervene, resample_units

    units = ["3b:5", "3b:379", "4a:10"]
    before = _hashes(caffe_model)
    edited, record = EditPlan([Ablate(units, mode="resample", seed=7)]).apply(caffe_model)
    assert record.num_changed == 0 and record.changed == {}
    assert [(h.name, h.note) for h in record.interventions] == [
        ("mixed3b", "resample mixed3b:5, mixed3b:379 (seed 7)"), ("mixed4a", "resample mixed4a:10 (seed 7)")]
    assert _hashes(caffe_model) == before
    assert not any(h._forward_hooks for h in caffe_model.hook_points.values()), "hook leaked onto the caller's model"
    assert record.plan["edits"][0]["seed"] == 7
    assert record.to_dict()["interventions"][0]["hook_point"] == "mixed3b"
    with torch.no_grad():
        a, b = edited(images), edited(images)
        plain = caffe_model(images)
    assert torch.equal(a, b), "resample ablation is not deterministic"
    assert not torch.allclose(a, plain, atol=1e-4)
    # the channel values come from the donor images of the seeded derangement
    orig = caffe_model.run(images, "mixed3b")["mixed3b"]
    out = edited.run(images, "mixed3b")["mixed3b"]
    perm = derangement(len(images), 7)
    assert torch.equal(out[:, [5, 379]], orig[perm][:, [5, 379]])
    # equal to the intervention context manager on the unedited model
    with torch.no_grad(), intervene(caffe_model, {"mixed3b": resample_units([5, 379], 7),
                                                  "mixed4a": resample_units([10], 7)}):
        hooked = caffe_model(images)
    assert torch.equal(a, hooked)
    # another seed (with another donor permutation: 4 images have only 6 cyclic orders) gives other outputs
    seed = next(s for s in range(8, 100) if not torch.equal(derangement(len(images), s), perm))
    other, _ = EditPlan([Ablate(units, mode="resample", seed=seed)]).apply(caffe_model)
    with torch.no_grad():
        assert not torch.equal(other(images), a)
    # undo removes the hooks; deep copies and re-installation carry them
    restored = record.undo(edited)
    assert not any(h._forward_hooks for h in restored.hook_points.values())
    assert edited.hook_points["mixed3b"]._forward_hooks, "undo modified the edited model"
    with pytest.raises(EditError, match="cannot undo.*intervention"):
        record.undo(caffe_model)
    fresh = copy.deepcopy(caffe_model)
    hooks = record.applied_plan.install_interventions(fresh)
    assert len(hooks) == 2
    with torch.no_grad():
        assert torch.equal(fresh(images), a)
        assert torch.equal(copy.deepcopy(edited)(images), a)
    with pytest.raises(ValueError, match="at least 2 images"):
        edited(images[:1])


def test_resample_default_seed_is_recorded(caffe_model):
    a = Ablate("3b:1", mode="resample")
    assert a.seed is None and "seed" not in a.to_dict()
    _, record = EditPlan([a]).apply(caffe_model)
    assert record.plan["edits"][0]["seed"] == 0


# ---------------------------------------------------------------------------- validation & conflicts
@dataclasses.dataclass(frozen=True)
class _Columns(Edit):
    """Test-only edit claiming single input columns of a row (not registered)."""

    type_name = "_Columns"
    dst: str
    cols: tuple

    def claims(self, spec):
        conv, ch = producing_conv(Unit.parse(self.dst), spec)
        return [((conv, ch, c), self.dst, "dst") for c in self.cols]


def test_plan_validate_runs_every_edit_validate_before_conflicts(caffe_model):
    with pytest.raises(EditError, match=r"edits\[2\] \(Ablate\) field 'units'.*0\.\.479"):
        EditPlan([Ablate("3b:1"), Ablate("3b:1"), Ablate("3b:999")]).validate(caffe_model)
    with pytest.raises(EditError, match=r"no edits"):
        EditPlan([]).validate(caffe_model)


@pytest.mark.parametrize(
    "edits, match",
    [
        ([Ablate("3b:379", mode="mean", means=[1.0]), Ablate("3b:379", mode="resample")], r"edits\[1\].*appears twice"),
        ([_Columns("3b:379", (1, 2)), _Columns("3b:379", (2, 3))], r"edits\[1\] \(_Columns\) field 'dst'.*also writes"),
        ([_Columns("3b:379", (1,)), Ablate("3b:379")], r"edits\[1\] \(Ablate\) field 'units'.*edits\[0\]"),
        ([Ablate("3b:379"), _Columns("3b:379", (5,))], r"edits\[1\] \(_Columns\) field 'dst'.*edits\[0\]"),
    ],
)
def test_conflicting_edits_on_the_same_weights(caffe_model, edits, match):
    with pytest.raises(EditError, match=match):
        EditPlan(edits).validate(caffe_model)


def test_disjoint_columns_of_one_row_do_not_conflict(caffe_model):
    plan = EditPlan([_Columns("3b:379", (1, 2)), _Columns("3b:379", (3,)), Ablate("3b:380")])
    assert plan.validate(caffe_model) is plan
    # the check is per column: one shared column of the same row conflicts
    with pytest.raises(EditError, match=r"edits\[1\] \(_Columns\) field 'dst'.*also writes"):
        EditPlan([_Columns("3b:379", (1, 2)), _Columns("3b:379", (3, 2))]).validate(caffe_model)


def test_an_edit_that_changes_nothing_warns(caffe_model):
    from edits import EditWarning

    edited, _ = EditPlan([Ablate("3b:5")]).apply(caffe_model)
    with pytest.warns(EditWarning, match=r"edits\[0\] \(Ablate\) changed no weight"):
        EditPlan([Ablate("3b:5")]).apply(edited)


# ---------------------------------------------------------------------------- CLI
def _write_plan(tmp_path, plan: EditPlan, name: str = "plan.yaml"):
    return str(plan.save(tmp_path / name))


def test_cli_edit_apply_and_diff(tmp_path, capsys, caffe_model, images_dir):
    from circuits import load_model
    from edits import load_edited
    from studies.cli import main

    plan = _write_plan(tmp_path, EditPlan([Ablate(["3b:379", "3b:385"]), Ablate("4a:3", mode="resample")], name="c"))
    out = tmp_path / "edited.safetensors"
    assert main(["edit", "apply", plan, "--model", "inceptionv1_caffe", "--out", str(out),
                 "--save-plan", str(tmp_path / "applied.json")]) == 0
    text = capsys.readouterr().out
    assert "1,602 weights changed in 2 tensor(s), 1 intervention(s)" in text and f"wrote {out}" in text
    reference, _ = EditPlan([Ablate(["3b:379", "3b:385"])]).apply(caffe_model)
    assert _hashes(load_model("inceptionv1_caffe", weights=out)) == _hashes(reference)
    loaded = load_edited(out)
    assert _hashes(loaded) == _hashes(reference)
    hooks = EditPlan.from_dict(loaded.edit_plan).install_interventions(loaded)
    assert [h.name for h in hooks] == ["mixed4a"]
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["edit_plan"]) == EditPlan.load(tmp_path / "applied.json").to_dict()
    assert main(["edit", "apply", plan, "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err

    assert main(["edit", "diff", plan, "--model", "inceptionv1_caffe", "--top", "2"]) == 0
    text = capsys.readouterr().out
    assert "2 tensor(s) differ, 1,602 entries changed; 1 intervention(s)" in text
    assert "mixed3b.b5x5.conv.weight  (96×32×5×5)  changed 1,600 / 76,800" in text
    assert "intervention on mixed4a: resample mixed4a:3 (seed 0)" in text
    assert main(["edit", "diff", plan, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    w = {t["key"]: t for t in d["tensors"]}["mixed3b.b5x5.conv.weight"]
    assert w["changed"] == 1600 and len(w["top"]) == 3 and w["top"][0]["after"] == 0.0
    assert w["max_abs"] == pytest.approx(abs(w["top"][0]["before"]))

    mean = _write_plan(tmp_path, EditPlan([Ablate("3b:379", mode="mean")]), "mean.json")
    assert main(["edit", "diff", mean]) == 2
    assert "--reference" in capsys.readouterr().err
    assert main(["edit", "diff", mean, "--reference", str(images_dir), "--n-reference", "2"]) == 0
    text = capsys.readouterr().out
    assert "mixed3b.b5x5.conv.bias  (96)  changed 1 / 96" in text


def test_cli_edit_diff_shows_added_channels(tmp_path, capsys):
    from studies.cli import main

    p = tmp_path / "prune.yaml"
    p.write_text("schema_version: 1\nedits:\n"
                 "- {type: PrunePathway, src: mixed3a/curves, dst: ['mixed3b:379'], sign: negative}\n")
    assert main(["edit", "diff", str(p)]) == 0
    out = capsys.readouterr().out
    assert "mixed3b.b5x5_bottleneck.conv.weight" in out and "added channels: dim 0" in out


@pytest.mark.parametrize(
    "make",
    [
        # ablating a unit whose incoming weights another edit rewrites
        lambda E: [E.Ablate("3b:379"), E.PrunePathway(src="3a:1", dst="3b:379", sign="negative")],
        lambda E: [E.PrunePathway(src="mixed3a/curves", dst="3b:379", sign="negative"), E.Ablate("3b:379", mode="mean",
                                                                                               means=[1.0])],
        lambda E: [E.Ablate("3b:379", mode="resample"), E.Scale(src="3a:1", dst="3b:379", factor=2.0)],
        # two edits rewriting the same weights
        lambda E: [E.Scale(src="3a:1", dst="3b:379", factor=2.0), E.PrunePathway(src="3a:1", dst="3b:379")],
    ],
    ids=["ablate+prune", "prune+mean", "resample+scale", "scale+prune"],
)
def test_structural_and_ablation_edits_on_the_same_unit_conflict(caffe_model, make):
    import edits

    with pytest.raises(EditError, match=r"edits\[1\]"):
        EditPlan(make(edits)).validate(caffe_model)

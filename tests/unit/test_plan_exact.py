"""EditPlan and EditRecord (edits.plan) on a random model: the counts of changed weights are the number of
entries that differ from the original (counted by hand on a row written with known values), the backups,
touched keys, interventions and provenance of a record, its exact repr and summary, bitwise undo and each
reason it refuses; the conflict rules of ``validate`` on hand-made claims (whole rows, single weights, aliases,
first claim reported); every rejection of a plan document and of ``apply`` with its exact message; the text of
``to_json``/``to_yaml`` and file suffixes (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch
from random_models import random_inception

from circuits.model import InceptionV1
from circuits.spec import get_spec
from edits import EditError, EditPlan, EditRecord, EditWarning, Linearize, PrunePathway, SetWeights
from edits.base import EDIT_TYPES, Edit, SliceBackup, StructOp, WeightOp
from edits.interventions import InstalledHook
from edits.plan import SCHEMA_VERSION, SUPPORTED_SCHEMA_VERSIONS, _claim_parts, _spec_of

SPEC = get_spec("inceptionv1_caffe")
CHOICES = sorted(EDIT_TYPES)


@pytest.fixture(scope="module")
def model():
    return random_inception(SPEC)


def _msg(fn, kind=EditError) -> str:
    with pytest.raises(kind) as e:
        fn()
    return str(e.value)


# ---------------------------------------------------------------------------- hand-made edits
@dataclass(frozen=True)
class Claims(Edit):
    """An edit that claims what it is given (and writes nothing)."""

    type_name: ClassVar[str] = "Claims"
    items: tuple = ()
    fail: str = ""  # "validate-key", "claims-edit", "claims-key"

    def validate(self, spec):
        if self.fail == "validate-key":
            raise KeyError("no such thing")
        if self.fail == "validate-edit":  # no edit type: the plan adds it
            raise EditError("bad value", field="items")

    def claims(self, spec):
        if self.fail == "claims-edit":
            raise EditError("bad claim", field="items", choices=["a"])
        if self.fail == "claims-key":
            raise IndexError("claim out of range")
        return list(self.items)


@dataclass(frozen=True)
class Ops(Edit):
    """An edit whose compiled ops / interventions / prepare are chosen by ``kind``."""

    type_name: ClassVar[str] = "Ops"
    kind: str = "reshape"

    def prepare(self, model, reference=None):
        if self.kind == "prepare-error":  # no edit type: the plan adds it
            raise EditError("cannot measure", field="kind")
        if self.kind == "prepared":
            return dataclasses.replace(self, kind="resolved")
        if self.kind == "measure":  # what it reads: the copy as edited so far, and the reference images
            bias = model.conv_unit("conv2d1").conv.bias[0].item()
            return dataclasses.replace(self, kind=f"bias {bias} images {tuple(reference.shape)}")
        return self

    def needs_reference(self):
        return "kind" if self.kind == "needs" else None

    def compile(self, model):
        if self.kind == "reshape":
            return [WeightOp("conv2d1.conv.bias", (slice(0, 2),), lambda t: torch.zeros(3), "widen the bias")]
        if self.kind == "same":
            return [WeightOp("conv2d1.conv.bias", (0,), lambda t: t.clone(), "write the same value")]
        if self.kind == "twice":  # the same slice written twice: undo must replay backwards
            return [WeightOp("conv2d1.conv.bias", (0,), lambda t: torch.full_like(t, 1.0), "one"),
                    WeightOp("conv2d1.conv.bias", (0,), lambda t: t + 1.0, "two")]
        if self.kind == "compile-error":
            raise EditError("does not fit", field="kind")
        return []

    def interventions(self, model):
        if self.kind == "hook":
            if not isinstance(model, InceptionV1):
                raise TypeError(f"interventions are installed on a model, got {model!r}")
            return [("mixed3b", lambda t: t * 2, "double mixed3b")]
        if self.kind == "hook-error":
            raise EditError("no hook point", field="kind")
        return []


# ---------------------------------------------------------------------------- construction
def test_a_plan_holds_a_tuple_of_edits():
    e = SetWeights("3b:5", torch.zeros(256, 1, 1))
    assert EditPlan(e).edits == (e,) and EditPlan([e, e]).edits == (e, e) and len(EditPlan([e, e])) == 2
    assert EditPlan(iter([e])).edits == (e,) and EditPlan([]).edits == () and EditPlan(e).name == ""
    assert EditPlan(e, name="x").name == "x"


@pytest.mark.parametrize("edits, name, message", [
    ("3b:1", "", "field 'edits': 'edits' must be a list of edits, got str"),
    (b"x", "", "field 'edits': 'edits' must be a list of edits, got bytes"),
    ({"type": "Ablate"}, "", "field 'edits': 'edits' must be a list of edits, got dict"),
    (3, "", "field 'edits': 'edits' must be a list of edits, got int"),
    ([Claims(), 3], "", f"edits[1] field 'type': 3 is not an edit; valid choices: {CHOICES!r}"),
    ([Claims()], 3, "field 'name': plan name must be a string, got int"),
])
def test_plan_construction_errors(edits, name, message):
    assert _msg(lambda: EditPlan(edits, name=name)) == message


def test_spec_of_and_claim_parts(model):
    assert _spec_of(SPEC) is SPEC and _spec_of(model) is model.spec and _spec_of("inceptionv1_caffe") is SPEC

    class Fake:
        spec = "inceptionv1_caffe"

    assert _msg(lambda: _spec_of(Fake()), TypeError) == (
        "expected a ModelSpec, an InceptionV1 or a checkpoint name, got Fake")
    assert _msg(lambda: _spec_of(3), TypeError) == "expected a ModelSpec, an InceptionV1 or a checkpoint name, got int"
    assert _claim_parts((("c", 1), "A")) == (("c", 1), "A", "units")
    assert _claim_parts((("c", 1, 2), "A", "dst")) == (("c", 1, 2), "A", "dst")
    assert EditPlan(SetWeights("3b:5", torch.zeros(256, 1, 1))).validate("inceptionv1_caffe").edits[0].dst == (
        "mixed3b:5",)


# ---------------------------------------------------------------------------- validate: conflicts
def _conflict(*claims_per_edit) -> str:
    plan = EditPlan([Claims(tuple(c)) for c in claims_per_edit])
    return _msg(lambda: plan.validate(SPEC))


ONCE = "; a unit may be edited once per plan"
SAME = "; two edits may not rewrite the same weights"


def test_conflicting_claims_name_both_edits():
    assert _conflict([(("c", 1), "A")], [(("c", 1), "A")]) == (
        "edits[1] (Claims) field 'units': A appears twice, already set by edits[0]" + ONCE)
    assert _conflict([(("c", 1), "A"), (("c", 1), "A")]) == (
        "edits[0] (Claims) field 'units': A appears twice, already set by edits[0]" + ONCE)
    assert _conflict([(("c", 1), "A")], [(("d", 0), "B")], [(("c", 1), "B", "dst")]) == (
        "edits[2] (Claims) field 'dst': B is the same channel as A (c:1), already set by edits[0]" + ONCE)
    assert _conflict([(("c", 1, 5), "A")], [(("c", 1), "B")]) == (
        "edits[1] (Claims) field 'units': B writes weights of c:1 that edits[0] (A) also writes" + SAME)
    assert _conflict([(("c", 1), "A")], [(("c", 1, 5), "B", "src")]) == (
        "edits[1] (Claims) field 'src': B writes weights of c:1 that edits[0] (A) also writes" + SAME)
    assert _conflict([(("c", 1, 5), "A")], [(("c", 1, 5), "B")]) == (
        "edits[1] (Claims) field 'units': B writes weights of c:1 that edits[0] (A) also writes" + SAME)
    assert _conflict([(("c", 1, 5), "A")], [(("c", 1, 5), "A")]) == (
        "edits[1] (Claims) field 'units': A writes weights of c:1 that edits[0] (A) also writes" + SAME)
    # the first partial claim of a row is the one reported
    assert _conflict([(("c", 1, 5), "A")], [(("c", 1, 6), "B")], [(("c", 1), "C")]) == (
        "edits[2] (Claims) field 'units': C writes weights of c:1 that edits[0] (A) also writes" + SAME)
    assert _conflict([(("c", 1, 5), "A")], [(("c", 1), "A")]) == (
        "edits[1] (Claims) field 'units': A appears twice, already set by edits[0]" + ONCE)


def test_claims_that_do_not_overlap_validate():
    plan = EditPlan([Claims(((("c", 1), "A"), (("c", 2), "B"))), Claims(((("d", 1), "C"), (("c", 3, 1), "D"))),
                     Claims(((("c", 3, 2), "E"), (("c", 4, 2), "F"))), Claims(((("e", 1, 1), "G"), (("e", 2), "H")))])
    assert plan.validate(SPEC) is plan


@pytest.mark.parametrize("fail, message", [
    ("validate-key", "edits[1] (Claims): no such thing"),
    ("validate-edit", "edits[1] (Claims) field 'items': bad value"),
    ("claims-edit", "edits[1] (Claims) field 'items': bad claim; valid choices: ['a']"),
    ("claims-key", "edits[1] (Claims): claim out of range"),
])
def test_validation_errors_are_located(fail, message):
    plan = EditPlan([Claims(), Claims(fail=fail)])
    assert _msg(lambda: plan.validate(SPEC)) == message
    with pytest.raises(EditError) as e:
        plan.validate(SPEC)
    assert e.value.index == 1 and e.value.edit_type == "Claims"


def test_an_empty_plan_does_not_validate(model):
    assert _msg(lambda: EditPlan([]).validate(SPEC)) == "field 'edits': the plan has no edits; it would change nothing"
    assert _msg(lambda: EditPlan([]).apply(model)) == "field 'edits': the plan has no edits; it would change nothing"
    assert _msg(lambda: EditPlan([]).install_interventions(model)) == (
        "field 'edits': the plan has no edits; it would change nothing")


# ---------------------------------------------------------------------------- apply
def test_apply_counts_exactly_the_entries_that_changed(model):
    row = model.conv_unit("conv2d1").conv.weight[3].detach().clone()
    bias = model.conv_unit("conv2d1").conv.bias[3].item()
    k = row.clone()
    k[:10] = 0.5  # 10 entries differ (random normal weights are never exactly 0.5)
    plan = EditPlan([SetWeights("conv2d1:3", k, bias=bias)], name="ten")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edited, record = plan.apply(model)
    assert record.changed == {"conv2d1.conv.weight": 10} and record.num_changed == 10
    assert record.touched == ("conv2d1.conv.weight", "conv2d1.conv.bias") and record.tensors == ("conv2d1.conv.weight",)
    assert [type(b) for b in record.inverse] == [SliceBackup, SliceBackup]
    w, b = record.inverse
    assert (w.key, w.index, b.key, b.index) == ("conv2d1.conv.weight", (3,), "conv2d1.conv.bias", (3,))
    assert torch.equal(w.before, row) and torch.equal(w.after, k) and b.before.item() == b.after.item() == bias
    assert repr(record) == "EditRecord(plan='ten', tensors_changed=1, weights_changed=10)"
    assert record.structure == () and record.added_channels == {} and record.interventions == ()
    assert record.plan == plan.to_dict() | {"edits": [SetWeights("conv2d1:3", k, bias=bias).to_dict()]}
    assert record.to_dict() == {"plan": record.plan, "changed": {"conv2d1.conv.weight": 10}, "num_changed": 10,
                                "interventions": [], "structure": []}
    assert record.applied_plan == EditPlan([SetWeights("conv2d1:3", k, bias=bias)], name="ten")
    assert edited.provenance.edit_plan == record.plan and edited.provenance.edit_history == (record.plan,)
    assert model.provenance.edit_plan is None and torch.equal(model.conv_unit("conv2d1").conv.weight[3], row)


def test_changes_are_counted_against_the_original_over_several_edits(model):
    w = model.conv_unit("conv2d1").conv.weight.detach()
    plan = EditPlan([SetWeights("conv2d1:3", torch.full((64, 1, 1), 0.5), bias=0.5),
                     SetWeights("conv2d1:4", torch.full((64, 1, 1), 0.5))])
    edited, record = plan.apply(model)
    assert record.changed == {"conv2d1.conv.weight": 128, "conv2d1.conv.bias": 1} and record.num_changed == 129
    assert record.touched == ("conv2d1.conv.weight", "conv2d1.conv.bias")
    assert [b.index for b in record.inverse] == [(3,), (3,), (4,)]
    assert torch.equal(record.inverse[2].before, w[4])
    again, record2 = EditPlan([SetWeights("conv2d1:5", torch.full((64, 1, 1), 0.5))], name="second").apply(edited)
    assert again.provenance.edit_history == (record.plan, record2.plan) and again.provenance.edit_plan == record2.plan
    back = record2.undo(again)
    assert back.provenance.edit_plan == record.plan and back.provenance.edit_history == (record.plan,)
    assert all(torch.equal(v, edited.state_dict()[k]) for k, v in back.state_dict().items())
    orig = record.undo(back)
    assert orig.provenance.edit_plan is None and orig.provenance.edit_history == ()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in orig.state_dict().items())


def test_a_tensor_widened_by_a_structural_edit_is_compared_zero_extended(model):
    plan = EditPlan([SetWeights("3b:330", torch.full((32, 5, 5), 0.5)), PrunePathway(src="3a:5", dst="3b:331")])
    edited, record = plan.apply(model)
    old = model.block("mixed3b").unit("5x5").conv.weight.detach()
    new = edited.block("mixed3b").unit("5x5").conv.weight.detach()
    assert new.shape[1] > old.shape[1] == 32
    by_hand = int((new[:, :32] != old).sum()) + int((new[:, 32:] != 0).sum())
    assert int((new[10, :32] != old[10]).sum()) == 32 * 25 and new[11, 32:].any()  # row 10 all 0.5; row 11 reads copies
    assert record.changed["mixed3b.b5x5.conv.weight"] == by_hand
    assert isinstance(record.inverse[2], StructOp) or any(isinstance(b, StructOp) for b in record.inverse)
    assert record.structure == tuple(dict(b.summary) for b in record.inverse if isinstance(b, StructOp))
    copies = sum(int(s["channels"]) for s in record.structure if s.get("channels"))
    assert record.added_channels == {"mixed3b_5x5_bottleneck": copies} and copies == new.shape[1] - 32
    restored = record.undo(edited)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in restored.state_dict().items())


def test_added_channels_sum_over_the_structure():
    rec = EditRecord(plan={"name": "p"}, changed={"a": 2, "b": 3}, touched=("a", "b", "c"), inverse=(
        StructOp(None, None, {"op": "add_channels", "conv": "x", "channels": 2}),
        SliceBackup("a", (0,), torch.zeros(1), torch.ones(1)),
        StructOp(None, None, {"op": "add_channels", "conv": "x", "channels": 3}),
        StructOp(None, None, {"op": "linear_path", "conv": "y", "rows": 1}),
        StructOp(None, None, {"op": "add_channels", "conv": "y", "channels": 0}),
        StructOp(None, None, {"op": "add_channels", "conv": "z", "channels": "4"})))
    assert rec.added_channels == {"x": 5, "z": 4} and rec.num_changed == 5 and rec.tensors == ("a", "b")
    assert rec.structure[0] == {"op": "add_channels", "conv": "x", "channels": 2} and len(rec.structure) == 5
    assert repr(rec) == "EditRecord(plan='p', tensors_changed=2, weights_changed=5)"
    assert repr(dataclasses.replace(rec, plan=[])) == "EditRecord(plan='', tensors_changed=2, weights_changed=5)"
    assert repr(dataclasses.replace(rec, plan={})) == "EditRecord(plan='', tensors_changed=2, weights_changed=5)"
    hooks = (InstalledHook("mixed3b", 1, "double"), InstalledHook("mixed4a", 2, ""))
    d = dataclasses.replace(rec, interventions=hooks).to_dict()
    assert d["interventions"] == [{"hook_point": "mixed3b", "note": "double"}, {"hook_point": "mixed4a", "note": ""}]
    assert d["structure"] == [dict(s) for s in rec.structure] and d["num_changed"] == 5
    assert d["changed"] == {"a": 2, "b": 3} and d["plan"] == {"name": "p"}


def test_an_edit_that_changes_nothing_warns_with_its_index(model):
    row = model.conv_unit("conv2d1").conv.weight[3].detach().clone()
    plan = EditPlan([SetWeights("conv2d1:4", torch.full((64, 1, 1), 0.5)), SetWeights("conv2d1:3", row)])
    with pytest.warns(EditWarning) as rec:
        plan.apply(model)
    assert [str(w.message) for w in rec] == ["edits[1] (SetWeights) changed no weight and installed no intervention"]
    with pytest.warns(EditWarning) as rec:
        EditPlan([Ops("same")]).apply(model)
    assert [str(w.message) for w in rec] == ["edits[0] (Ops) changed no weight and installed no intervention"]
    # stacklevel 2: reported at the caller of apply (under mutmut, ``make mutation``, the call goes through
    # mutmut's trampoline, one more frame: the warning lands there)
    assert rec[0].filename.endswith("trampoline.py") if "MUTANT_UNDER_TEST" in os.environ else rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EditPlan([Linearize("3b_5x5", ["mixed3b_5x5:3"])]).apply(model)  # adds a linear path: a change
        edited, record = EditPlan([Ops("hook")]).apply(model)  # installs a hook: a change
    assert record.changed == {} and record.touched == () and len(record.interventions) == 1


def test_interventions_are_installed_recorded_and_removed(model):
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    edited, record = EditPlan([Ops("hook")]).apply(model)
    (h,) = record.interventions
    assert (h.name, h.note) == ("mixed3b", "double mixed3b")
    with torch.no_grad():
        a, b = model.run(x, ["mixed3b"])["mixed3b"], edited.run(x, ["mixed3b"])["mixed3b"]
    assert torch.equal(b, 2 * a) and record.to_dict()["interventions"] == [
        {"hook_point": "mixed3b", "note": "double mixed3b"}]
    restored = record.undo(edited)
    with torch.no_grad():
        assert torch.equal(restored.run(x, ["mixed3b"])["mixed3b"], a)
        assert torch.equal(edited.run(x, ["mixed3b"])["mixed3b"], b)  # undo works on a copy
    assert _msg(lambda: record.undo(restored)) == (
        "cannot undo: the model does not carry the intervention 'double mixed3b' on mixed3b")
    hooks = EditPlan([Ops("hook"), Ops("none")]).install_interventions(model)
    try:
        assert [(h.name, h.note) for h in hooks] == [("mixed3b", "double mixed3b")]
        with torch.no_grad():
            assert torch.equal(model.run(x, ["mixed3b"])["mixed3b"], b)
    finally:
        from edits.interventions import remove_hook
        for h in hooks:
            remove_hook(model, h)
    assert _msg(lambda: EditPlan([Ops("none"), Ops("hook-error")]).install_interventions(model)) == (
        "edits[1] (Ops) field 'kind': no hook point")
    assert _msg(lambda: EditPlan([Claims(fail="validate-key")]).install_interventions(model)) == (
        "edits[0] (Claims): no such thing")


def test_undo_refuses_a_model_that_does_not_carry_the_edit(model):
    edited, record = EditPlan([SetWeights("conv2d1:3", torch.full((64, 1, 1), 0.5))]).apply(model)
    assert _msg(lambda: record.undo(model)) == (
        "cannot undo: conv2d1.conv.weight[(3,)] is not what this plan wrote; the model is not the one this record "
        "came from, or it changed since")
    fake = dataclasses.replace(record, inverse=(SliceBackup("nope.weight", (0,), torch.zeros(1), torch.zeros(1)),))
    assert _msg(lambda: fake.undo(edited)) == "cannot undo: model has no parameter or buffer 'nope.weight'"
    fake = dataclasses.replace(record, inverse=(SliceBackup("conv2d1.conv.bias", (64,), torch.zeros(()),
                                                            torch.zeros(())),))
    assert _msg(lambda: fake.undo(edited)).startswith("cannot undo: index 64 is out of bounds")
    restored = record.undo(edited)
    assert torch.equal(restored.conv_unit("conv2d1").conv.weight, model.conv_unit("conv2d1").conv.weight)
    assert edited.conv_unit("conv2d1").conv.weight[3].eq(0.5).all()  # the edited model is not modified
    with torch.no_grad():
        edited.conv_unit("conv2d1").conv.weight[3, 0] = 0.25  # changed since: the record kept its own copy
    assert _msg(lambda: record.undo(edited)).startswith("cannot undo: conv2d1.conv.weight[(3,)] is not what")


def test_apply_rejections(model):
    assert _msg(lambda: EditPlan([Ops()]).apply("model"), TypeError) == "EditPlan.apply needs an InceptionV1, got str"
    assert _msg(lambda: EditPlan([Ops(), Ops("needs")]).apply(model)) == (
        "edits[1] (Ops) field 'kind': needs reference images to measure it: pass EditPlan.apply(model, "
        "reference=images) (CLI: --reference DIR) or store the values in the plan")
    assert EditPlan([Ops(), Ops("needs"), Ops("needs")]).needs_reference() == [(1, "Ops", "kind"), (2, "Ops", "kind")]
    assert _msg(lambda: EditPlan([Ops("same")]).apply(model, reference=torch.zeros(2, 3, 8))) == (
        "field 'reference': reference images must be a float tensor (N ≥ 1, 3, H, W), RGB in [0, 1]; got shape "
        "(2, 3, 8) dtype torch.float32")
    assert _msg(lambda: EditPlan([Ops("hook"), Ops("prepare-error")]).apply(model)) == (
        "edits[1] (Ops) field 'kind': cannot measure")
    assert _msg(lambda: EditPlan([Ops("hook"), Ops("compile-error")]).apply(model)) == (
        "edits[1] (Ops) field 'kind': does not fit")
    assert _msg(lambda: EditPlan([Ops("reshape")]).apply(model), RuntimeError) == (
        "widen the bias: transform changed shape (2,) → (3,)")
    assert _msg(lambda: EditPlan([Claims(fail="claims-key")]).apply(model)) == "edits[0] (Claims): claim out of range"


def test_prepare_sees_the_copy_as_edited_so_far_and_the_reference(model):
    plan = EditPlan([SetWeights("conv2d1:0", torch.zeros(64, 1, 1), bias=0.5), Ops("measure")])
    with pytest.warns(EditWarning):
        _, record = plan.apply(model, reference=torch.zeros(2, 3, 8, 8))
    assert record.plan["edits"][1] == {"type": "Ops", "kind": "bias 0.5 images (2, 3, 8, 8)"}


def test_undo_replays_backwards(model):
    edited, record = EditPlan([Ops("twice")]).apply(model)
    assert edited.conv_unit("conv2d1").conv.bias[0].item() == 2.0
    assert [(b.before.item(), b.after.item()) for b in record.inverse] == [
        (model.conv_unit("conv2d1").conv.bias[0].item(), 1.0), (1.0, 2.0)]
    assert record.changed == {"conv2d1.conv.bias": 1}
    restored = record.undo(edited)
    assert torch.equal(restored.conv_unit("conv2d1").conv.bias, model.conv_unit("conv2d1").conv.bias)


def test_the_applied_plan_stores_the_prepared_edits(model, monkeypatch):
    monkeypatch.setitem(EDIT_TYPES, "Ops", Ops)
    with pytest.warns(EditWarning):
        edited, record = EditPlan([Ops("prepared")], name="p").apply(model, reference=torch.zeros(1, 3, 8, 8))
    assert record.plan == {"schema_version": 1, "name": "p", "edits": [{"type": "Ops", "kind": "resolved"}]}
    assert record.applied_plan == EditPlan([Ops("resolved")], name="p")
    assert edited.provenance.edit_plan == record.plan


# ---------------------------------------------------------------------------- documents
def test_to_json_and_to_yaml_text():
    plan = EditPlan([SetWeights("3b:5", [[[0.5]]], bias=1.0)], name="n")
    assert plan.to_dict() == {"schema_version": SCHEMA_VERSION, "name": "n", "edits": [
        {"type": "SetWeights", "dst": ["mixed3b:5"], "kernel": [[[0.5]]], "bias": 1.0, "reads": "conv"}]}
    assert SCHEMA_VERSION == 1 and SUPPORTED_SCHEMA_VERSIONS == (1,)
    assert plan.to_json() == json.dumps(plan.to_dict(), indent=2)
    assert plan.to_json(indent=None) == (
        '{"schema_version": 1, "name": "n", "edits": [{"type": "SetWeights", "dst": ["mixed3b:5"], '
        '"kernel": [[[0.5]]], "bias": 1.0, "reads": "conv"}]}')
    assert plan.to_yaml() == ("schema_version: 1\nname: n\nedits:\n- type: SetWeights\n  dst:\n  - mixed3b:5\n"
                              "  kernel:\n  - - - 0.5\n  bias: 1.0\n  reads: conv\n")
    assert EditPlan.from_yaml(plan.to_yaml()) == plan == EditPlan.from_json(plan.to_json())


@pytest.mark.parametrize("name", ["p.json", "p.JSON", "p.yaml", "p.yml", "p.YML"])
def test_save_and_load_every_suffix(tmp_path, name):
    plan = EditPlan([SetWeights("3b:5", [[[0.5]]])], name="n")
    path = plan.save(str(tmp_path / name))
    assert path == tmp_path / name and EditPlan.load(str(path)) == plan
    text = path.read_text(encoding="utf-8")
    assert text == (plan.to_json() + "\n" if name.lower().endswith(".json") else plan.to_yaml())


def test_file_errors(tmp_path):
    plan = EditPlan([SetWeights("3b:5", [[[0.5]]])])
    assert _msg(lambda: plan.save(tmp_path / "p.txt")) == (
        "field 'path': cannot save a plan as 'p.txt'; valid choices: ['.json', '.yaml', '.yml']")
    assert not (tmp_path / "p.txt").exists()
    (tmp_path / "p.txt").write_text(plan.to_json())
    assert _msg(lambda: EditPlan.load(tmp_path / "p.txt")) == (
        "field 'path': cannot load a plan from 'p.txt'; valid choices: ['.json', '.yaml', '.yml']")
    with pytest.raises(FileNotFoundError):
        EditPlan.load(tmp_path / "missing.json")
    (tmp_path / "d.json").mkdir()
    assert _msg(lambda: EditPlan.load(tmp_path / "d.json")) == f"plan {tmp_path / 'd.json'} is not a regular file"
    (tmp_path / "bad.yaml").write_text("a: [1")
    assert _msg(lambda: EditPlan.load(tmp_path / "bad.yaml")) == (
        "not valid YAML (only plain YAML is read, no python/* tags): expected ',' or ']', but got '<stream end>' "
        "(line 1, column 6)")
    (tmp_path / "bad.json").write_text("{")
    assert _msg(lambda: EditPlan.load(tmp_path / "bad.json")) == (
        "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")


@pytest.mark.parametrize("doc, message", [
    ([1], "a plan must be a mapping, got list"),
    ({"edits": [], "extra": 1}, "field 'extra': unknown plan field 'extra'; valid choices: "
                                "['schema_version', 'name', 'edits']"),
    ({"schema_version": 2, "edits": []}, "field 'schema_version': unsupported plan schema_version 2; valid choices: [1]"),
    ({"schema_version": True, "edits": []},
     "field 'schema_version': unsupported plan schema_version True; valid choices: [1]"),
    ({"schema_version": "1", "edits": []},
     "field 'schema_version': unsupported plan schema_version '1'; valid choices: [1]"),
    ({"schema_version": 1.0, "edits": []},
     "field 'schema_version': unsupported plan schema_version 1.0; valid choices: [1]"),
    ({"name": ["n"], "edits": []}, "field 'name': plan name must be a string, got list"),
    ({"edits": ({"type": "Ablate", "units": "3b:1"},)}, "field 'edits': 'edits' must be a list, got tuple"),
    ({}, "field 'edits': 'edits' must be a list, got NoneType"),
    ({"edits": [{"type": "Ablate", "units": "3b:1"}, ["Ablate"]]}, "edits[1]: an edit must be a mapping, got list"),
    ({"edits": [{"units": "3b:1"}]}, f"edits[0] field 'type': unknown edit type None; valid choices: {CHOICES!r}"),
    ({"edits": [{"type": "ablate"}]}, f"edits[0] field 'type': unknown edit type 'ablate'; valid choices: {CHOICES!r}"),
    ({"edits": [{"type": "Ablate", "units": "3b:1"}, {"type": "Ablate"}]},
     "edits[1] (Ablate) field 'units': missing required field"),
])
def test_document_rejections(doc, message):
    assert _msg(lambda: EditPlan.from_dict(doc)) == message


def test_document_defaults_and_constructor_errors(monkeypatch):
    plan = EditPlan.from_dict({"name": None, "edits": [{"type": "Ablate", "units": "3b:1"}]})
    assert plan.name == "" and plan.edits[0].units == ("mixed3b:1",)
    assert EditPlan.from_dict({"edits": []}) == EditPlan([]) and EditPlan.from_dict({"edits": []}).name == ""
    assert EditPlan.from_dict({"schema_version": 1, "name": "x", "edits": []}).name == "x"

    @dataclass(frozen=True)
    class Boom(Edit):
        type_name: ClassVar[str] = "Boom"
        how: Any = "type"

        def __post_init__(self):
            if self.how == "edit":  # an EditError without an edit type: the plan adds the type it read
                raise EditError("cannot build", field="how")
            raise {"type": TypeError, "recursion": RecursionError, "attr": AttributeError}[self.how]("cannot build")

    monkeypatch.setitem(EDIT_TYPES, "Boom", Boom)
    for how in ("type", "recursion", "attr"):
        assert _msg(lambda how=how: EditPlan.from_dict({"edits": [{"type": "Ablate", "units": "3b:1"},
                                                                  {"type": "Boom", "how": how}]})) == (
            "edits[1] (Boom): invalid Boom: cannot build")
    assert _msg(lambda: EditPlan.from_dict({"edits": [{"type": "Boom", "how": "edit"}]})) == (
        "edits[0] (Boom) field 'how': cannot build")

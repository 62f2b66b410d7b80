"""Linearize (edits.linearize) on random weights against the formula written out with
``torch.nn.functional``: the branch's pre-ReLU output for the linearised units is
``W_s ⋆ pad(W_b x + b_b) + b_s`` (no ReLU after the bottleneck), at every position including the
border; every other unit is unchanged; the errors name the branch's range (mutation testing,
issue 14; see docs/mutation.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from circuits.catalog import load_catalog
from circuits.model import InceptionV1
from circuits.spec import get_spec
from edits import EditError, EditPlan, Linearize, PrunePathway
from edits.linearize import linear_kernel

SPEC = get_spec("inceptionv1_caffe")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = InceptionV1(SPEC)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.1)  # random biases: the bottleneck's ReLU matters
    return m.eval().double()


def _branch(model, x):
    with torch.no_grad():
        return model.run(x, ["mixed3a", "mixed3b_5x5_pre_relu"])


@pytest.mark.parametrize("units", [["mixed3b_5x5:3", "mixed3b_5x5:7"], ["3b:325"]])
def test_linearised_units_follow_the_formula_and_others_are_unchanged(model, units):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    edited, _ = EditPlan([Linearize("3b_5x5", units)]).apply(model)
    before, after = _branch(model, x), _branch(edited, x)
    chans = [3, 7] if len(units) == 2 else [325 - 320]  # mixed3b's 5x5 branch is units 320…415
    blk = model.block("mixed3b")
    b, s = blk.unit("5x5_bottleneck").conv, blk.unit("5x5").conv
    with torch.no_grad():
        expect = F.conv2d(F.conv2d(before["mixed3a"], b.weight, b.bias), s.weight[chans], s.bias[chans], padding=2)
    got = after["mixed3b_5x5_pre_relu"]
    torch.testing.assert_close(got[:, chans], expect, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(before["mixed3b_5x5_pre_relu"][:, chans], expect)  # the ReLU did matter
    others = [c for c in range(96) if c not in chans]
    assert torch.equal(got[:, others], before["mixed3b_5x5_pre_relu"][:, others])
    w, bias = linear_kernel(model, "mixed3b", "5x5", chans)
    assert w.shape == (len(chans), 256 + 1, 5, 5) and w.dtype == torch.float64
    torch.testing.assert_close(bias, s.bias[chans].double(), rtol=0, atol=0)
    hand = torch.einsum("obhw,bi->oihw", s.weight[chans].double(), b.weight[:, :, 0, 0].double())
    torch.testing.assert_close(w[:, :256], hand, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(w[:, 256], torch.einsum("obhw,b->ohw", s.weight[chans].double(), b.bias.double()),
                               rtol=1e-12, atol=1e-12)


def test_linear_kernel_of_an_already_linearised_unit_is_its_path(model):
    edited, _ = EditPlan([Linearize("3b_5x5", ["mixed3b_5x5:3"])]).apply(model)
    lp = edited.block("mixed3b").linear_paths["5x5"].conv
    w, b = linear_kernel(edited, "mixed3b", "5x5", [3])
    assert torch.equal(w[0], lp.weight[0].double()) and torch.equal(b, lp.bias[:1].double())
    assert linear_kernel(model, "mixed3b", "5x5", [])[0].shape == (0, 257, 5, 5)
    with pytest.raises(EditError, match="already linearised"):
        EditPlan([Linearize("3b_5x5", ["mixed3b_5x5:3"])]).apply(edited)


@pytest.mark.parametrize("branch, units, field, message", [
    ("3b_5x5", ["3b:5"], "units", "mixed3b:5 is not in branch mixed3b_5x5: its units are mixed3b:320..415 "
                                  "(mixed3b_5x5:0..95)"),
    ("3b_5x5", ["3b:416"], "units", "mixed3b:416 is not in branch mixed3b_5x5: its units are mixed3b:320..415 "
                                    "(mixed3b_5x5:0..95)"),
])
def test_units_outside_the_branch_are_refused_with_its_range(model, branch, units, field, message):
    with pytest.raises(EditError) as e:
        EditPlan([Linearize(branch, units)]).apply(model)
    assert e.value.field == field and str(e.value) == f"edits[0] (Linearize) field '{field}': {message}"


def test_kernel_of_a_pruned_linear_path_claims_prepare_and_the_already_linearised_error(model):
    assert linear_kernel(model, "mixed3b", "5x5", [])[0].dtype == torch.float64  # an empty kernel too
    # after a prune, the unit's kernel is its (pruned) linear path, not the bottleneck × spatial product
    edited, _ = EditPlan([Linearize("3b_5x5", ["mixed3b_5x5:3"]),
                          PrunePathway(src="3a:0", dst="mixed3b_5x5:3", sign="all")]).apply(model)
    lp = edited.block("mixed3b").linear_paths["5x5"].conv
    w, _ = linear_kernel(edited, "mixed3b", "5x5", [3])
    assert torch.equal(w[0], lp.weight[0].double()) and torch.equal(w[0, 0], torch.zeros(5, 5, dtype=torch.float64))
    assert not torch.equal(w[0], linear_kernel(model, "mixed3b", "5x5", [3])[0][0])
    assert Linearize("3b_5x5", ["3b:330", "mixed3b_5x5:3"]).claims(SPEC) == [
        (("mixed3b_5x5", 10, "linearize"), "mixed3b:330"), (("mixed3b_5x5", 3, "linearize"), "mixed3b_5x5:3")]
    plain = Linearize("3b_5x5", ["3b:330"])
    assert plain.prepare(model) is plain
    fam = load_catalog(SPEC)["mixed3b/curves"]
    assert Linearize("3b_5x5", "mixed3b/curves").prepare(model) == Linearize(
        "mixed3b_5x5", [f"mixed3b:{i}" for i in fam.units])
    assert Linearize("3b_5x5", "mixed3b/curves").prepare(model).units == tuple(f"mixed3b:{i}" for i in fam.units)
    twice, _ = EditPlan([Linearize("3b_5x5", ["3b:330", "mixed3b_5x5:3"])]).apply(model)
    with pytest.raises(EditError) as e:
        Linearize("3b_5x5", ["mixed3b_5x5:10", "mixed3b_5x5:3"]).compile(twice)
    assert e.value.field == "units" and str(e.value) == \
        "Linearize field 'units': mixed3b_5x5:10, mixed3b_5x5:3 already linearised"


def test_a_second_linearize_appends_rows_and_keeps_the_first(model):
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    first, _ = EditPlan([Linearize("3b_5x5", ["mixed3b_5x5:3"])]).apply(model)
    second, _ = EditPlan([Linearize("3b_5x5", ["mixed3b_5x5:7", "mixed3b_5x5:9"])]).apply(first)
    assert second.block("mixed3b").linear_units("5x5") == [3, 7, 9]
    before, after = _branch(model, x), _branch(second, x)
    blk = model.block("mixed3b")
    b, s = blk.unit("5x5_bottleneck").conv, blk.unit("5x5").conv
    chans = [3, 7, 9]
    with torch.no_grad():
        expect = F.conv2d(F.conv2d(before["mixed3a"], b.weight, b.bias), s.weight[chans], s.bias[chans], padding=2)
    torch.testing.assert_close(after["mixed3b_5x5_pre_relu"][:, chans], expect, rtol=1e-9, atol=1e-9)
    others = [c for c in range(96) if c not in chans]
    assert torch.equal(after["mixed3b_5x5_pre_relu"][:, others], before["mixed3b_5x5_pre_relu"][:, others])


@pytest.mark.parametrize("units, message", [
    ("mixed3b/curves", "mixed3b:9 is not in branch mixed3b_5x5: its units are mixed3b:320..415 (mixed3b_5x5:0..95)"),
    ("mixed3b/nothing", "no family 'mixed3b/nothing' for inceptionv1_caffe (mixed3b has: mixed3b/curves)"),
    (["conv2d2:3"], "conv2d2:3 is not in branch mixed3b_5x5: its units are mixed3b:320..415 (mixed3b_5x5:0..95)"),
])
def test_validation_of_family_keys_and_units_outside_any_block(units, message):
    with pytest.raises(EditError) as e:
        Linearize("3b_5x5", units).validate(SPEC)
    text, expect = str(e.value), f"Linearize field 'units': {message}"
    assert e.value.field == "units" and (text == expect or text.startswith(expect + "; "))


def test_compiled_steps_are_described():
    ops = Linearize("3b_5x5", ["3b:330", "mixed3b_5x5:3"]).compile(InceptionV1(SPEC))
    assert ops[0].note == "mixed3b_5x5: linear path for 2 unit(s) (Linearize)"
    assert ops[0].summary == {"op": "linear_path", "block": "mixed3b", "branch": "mixed3b_5x5", "rows": 2,
                              "units": [10, 3], "reason": "Linearize"}
    assert [(op.key, op.index, op.note) for op in ops[1:]] == [
        ("mixed3b.linear_paths.5x5.conv.weight", (slice(0, 2),), "linearise 2 unit(s) of mixed3b_5x5"),
        ("mixed3b.linear_paths.5x5.conv.bias", (slice(0, 2),), "bias of mixed3b_5x5's linearised units")]


@pytest.mark.parametrize("branch, units, field, message", [
    ("3b_7x7", "3b:1", "branch", "'3b_7x7' is not a bottleneck branch; expected '<block>_3x3' or '<block>_5x5', "
                                 "e.g. 'mixed3b_5x5'"),
    ("mixed3b_1x1", "3b:1", "branch", "'mixed3b_1x1' is not a bottleneck branch"),
    (5, "3b:1", "branch", "branch must be a string such as 'mixed3b_5x5', got 5"),
    ("3b_5x5", "zz", "units", "cannot parse 'zz': expected a unit such as '3b:379' or a family such as 'mixed3b/curves'"),
    ("3b_5x5", [], "units", "names no unit; give at least one, e.g. '3b:379'"),
])
def test_construction_rejections(branch, units, field, message):
    with pytest.raises(EditError) as e:
        Linearize(branch, units)
    text, expect = str(e.value), f"Linearize field '{field}': {message}"
    assert e.value.field == field and (text == expect or text.startswith(expect + "; "))


def test_fields_are_normalised_and_units_of_another_blocks_branch_are_refused():
    assert Linearize("3b_5x5", "3b:330, mixed3b_5x5:3") == Linearize("mixed3b_5x5", ["mixed3b:330", "mixed3b_5x5:3"])
    assert Linearize("3b_5x5", "3b:330").units == ("mixed3b:330",) and Linearize("3b_3x3", "3b:129").branch == "mixed3b_3x3"
    with pytest.raises(EditError) as e:
        Linearize("3b_5x5", ["mixed3a_5x5:1"]).validate(SPEC)
    assert e.value.field == "units" and "mixed3a_5x5:1 is not in branch mixed3b_5x5" in str(e.value)

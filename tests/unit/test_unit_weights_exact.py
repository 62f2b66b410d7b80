"""SetWeights and ReplaceUnits (edits.unit_weights) on random weights: the edited rows hold exactly the given
kernel and bias (zeros past the kernel's channels), every other weight is bitwise unchanged; a kernel on the
block input (``reads="input"``) is a linear-path row whose output equals ``conv2d([x, ones], K) + b`` written
with ``torch.nn.functional``; ``ReplaceUnits.from_model`` round-trips another model's rows. The accepted kernel
shapes are derived by hand from the BVLC widths (and from a spec with made-up stem widths), and every
rejection's message is pinned (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from random_models import random_inception

from circuits.catalog import load_catalog
from circuits.model import InceptionV1
from circuits.spec import get_spec
from edits import EditError, EditPlan, Linearize, PrunePathway, ReplaceUnits, SetWeights
from edits.linearize import linear_kernel
from edits.unit_weights import READS

SPEC = get_spec("inceptionv1_caffe")
#: the stem with three different widths: conv2d1 reads conv2d0 (48), conv2d2 reads conv2d1 (40)
STEM = dataclasses.replace(SPEC, conv_widths=(48, 40, 192))
F32_MAX = float(torch.finfo(torch.float32).max)


@pytest.fixture(scope="module")
def model():
    return random_inception(SPEC).double()


def _k(*shape, seed=0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _params(m) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _only_rows_changed(before: dict, after: dict, changed: dict[str, int]) -> None:
    """Every tensor of ``after`` equals ``before`` bitwise, except row ``changed[key]`` of the listed keys."""
    for key, t in before.items():
        if key not in changed:
            assert torch.equal(after[key], t), key
        else:
            rows = [r for r in range(t.shape[0]) if r != changed[key]]
            assert torch.equal(after[key][rows], t[rows]), key


def _deep(x):
    """Nested lists as nested tuples (the stored form, written out by hand)."""
    return tuple(_deep(v) for v in x) if isinstance(x, list) else x


def _msg(fn) -> tuple[str, EditError]:
    with pytest.raises(EditError) as e:
        fn()
    return str(e.value), e.value


# ---------------------------------------------------------------------------- construction
def test_kernels_are_stored_as_exact_nested_float_tuples():
    t = torch.tensor([[[0.1, -2.0]], [[3.5, 0.0]]], dtype=torch.float32, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a tensor that requires grad is detached first (no conversion warning)
        e = SetWeights("3b:5", t, bias=2)
    expect = (((float(np.float32(0.1)), -2.0),), ((3.5, 0.0),))
    assert e.kernel == expect and all(type(v) is float for v in e.kernel[0][0])
    assert e.bias == 2.0 and type(e.bias) is float
    assert SetWeights("3b:5", [[[1, 2]]]).kernel == (((1.0, 2.0),),)
    assert SetWeights("3b:5", [[[0.1]]]).kernel == (((0.1,),),)  # read as float64, not rounded to float32
    assert SetWeights("3b:5", torch.tensor([[[0.1]]], dtype=torch.float64)).kernel == (((0.1,),),)
    assert SetWeights("3b:5", np.full((1, 1, 1), 0.25)).kernel == (((0.25,),),)
    assert SetWeights("3b:5", [[[F32_MAX]]]).kernel == (((F32_MAX,),),)  # the float32 range, inclusive
    assert SetWeights("3b:5", torch.zeros(0, 1, 1)).kernel == ()  # an empty kernel is a well-formed array
    assert SetWeights("3b:5", [[[1.0]]]).bias is None and SetWeights("3b:5", [[[1.0]]]).reads == "conv"
    assert SetWeights("3b:5, 3b:5, 3b:6", [[[1.0]]]).dst == ("mixed3b:5", "mixed3b:6")
    assert READS == ("conv", "input")


def test_bool_and_integer_tensors_are_read_as_float64_values():
    """Every tensor is cast to float64 before it is checked (``abs`` is not defined on bool tensors)."""
    e = SetWeights("3b:5", torch.tensor([[[True, False]]]))
    assert e.kernel == (((1.0, 0.0),),) and all(type(v) is float for v in e.kernel[0][0])
    assert SetWeights("3b:5", torch.tensor([[[3, -2]]], dtype=torch.int8)).kernel == (((3.0, -2.0),),)
    r = ReplaceUnits(["3b:5"], torch.ones(1, 1, 1, 2, dtype=torch.bool), biases=torch.tensor([True]))
    assert r.weights == ((((1.0, 1.0),),),) and r.biases == (1.0,)
    assert ReplaceUnits(["3b:5"], [torch.zeros(1, 1, 1, dtype=torch.bool)]).weights == ((((0.0,),),),)


def test_to_dict_writes_lists_and_round_trips():
    e = SetWeights(["3b:5", "3b:6"], [[[1.0, 2.0]], [[3.0, 4.0]]], bias=-1.0, reads="input")
    assert e.to_dict() == {"type": "SetWeights", "dst": ["mixed3b:5", "mixed3b:6"],
                           "kernel": [[[1.0, 2.0]], [[3.0, 4.0]]], "bias": -1.0, "reads": "input"}
    assert SetWeights.from_dict(e.to_dict()) == e
    r = ReplaceUnits(["3b:5"], [torch.ones(1, 1, 2)], biases=[0.5])
    assert r.to_dict() == {"type": "ReplaceUnits", "units": ["mixed3b:5"], "weights": [[[[1.0, 1.0]]]],
                           "biases": [0.5], "reads": "conv"}
    assert ReplaceUnits.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("kwargs, message", [
    ({"kernel": [[[float("nan")]]]}, "field 'kernel': contains NaN or infinite values"),
    ({"kernel": [[[float("-inf")]]]}, "field 'kernel': contains NaN or infinite values"),
    ({"kernel": [[[3.5e38]]]}, "field 'kernel': has values beyond the float32 range of the weights"),
    ({"kernel": [[[-3.5e38]]]}, "field 'kernel': has values beyond the float32 range of the weights"),
    ({"kernel": [[1.0, 2.0]]}, "field 'kernel': expected a kernel of shape (C, kh, kw), got (1, 2)"),
    ({"kernel": torch.zeros(1, 1, 1, 1)}, "field 'kernel': expected a kernel of shape (C, kh, kw), got (1, 1, 1, 1)"),
    ({"kernel": [[[1.0]]], "bias": True}, "field 'bias': bias must be a finite number or None, got True"),
    ({"kernel": [[[1.0]]], "bias": "1"}, "field 'bias': bias must be a finite number or None, got '1'"),
    ({"kernel": [[[1.0]]], "bias": float("inf")}, "field 'bias': bias must be a finite number or None, got inf"),
    ({"kernel": [[[1.0]]], "reads": "inputs"},
     "field 'reads': 'inputs' is not a valid choice; valid choices: ['conv', 'input']"),
    ({"kernel": [[[1.0]]], "reads": 1}, "field 'reads': 1 is not a valid choice; valid choices: ['conv', 'input']"),
    ({"kernel": [[[1.0]]], "dst": []}, "field 'dst': names no unit; give at least one, e.g. '3b:379'"),
    # complex input: torch and numpy would drop the imaginary part with only a warning
    ({"kernel": torch.ones(1, 1, 1, dtype=torch.complex64)},
     "field 'kernel': complex values (torch.complex64) cannot be weights"),
    ({"kernel": np.ones((1, 1, 1), dtype=np.complex128)}, "field 'kernel': complex values (complex128) cannot be weights"),
])
def test_set_weights_rejections(kwargs, message):
    kwargs = {"dst": "3b:5", **kwargs}
    text, err = _msg(lambda: SetWeights(**kwargs))
    assert text == "SetWeights " + message and err.edit_type == "SetWeights" and err.index is None


def test_a_ragged_kernel_is_not_a_numeric_array():
    text, err = _msg(lambda: SetWeights("3b:5", [[[1.0]], [[1.0, 2.0]]]))
    assert text.startswith("SetWeights field 'kernel': not a numeric array (") and err.field == "kernel"
    text, err = _msg(lambda: SetWeights("3b:5", "abc"))
    assert text.startswith("SetWeights field 'kernel': not a numeric array (") and text.endswith(")")
    text, _ = _msg(lambda: ReplaceUnits(["3b:5"], [[[[1.0]], [[1.0, 2.0]]]]))
    assert text.startswith("ReplaceUnits field 'weights': not a numeric array (")


def test_replace_units_accepts_an_array_or_a_list_of_kernels():
    w = _k(2, 3, 1, 1)
    a = ReplaceUnits(["3b:5", "3b:6"], w)
    b = ReplaceUnits(["3b:5", "3b:6"], w.numpy())
    c = ReplaceUnits(["3b:5", "3b:6"], [w[0], w[1].tolist()])
    d = ReplaceUnits(("3b:5", "3b:6"), (w[0].numpy(), w[1]))
    assert a.weights == b.weights == c.weights == d.weights == _deep(w.tolist())
    assert type(c.weights) is tuple and type(c.weights[0]) is tuple
    assert a.units == ("mixed3b:5", "mixed3b:6") and a.biases is None
    assert ReplaceUnits(["3b:5", "3b:6"], w, biases=[1, 2.5]).biases == (1.0, 2.5)
    assert ReplaceUnits(["3b:5", "3b:6"], w, biases=np.array([1.0, 2.5])).biases == (1.0, 2.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"units": "mixed3b/curves"},
     "field 'units': family keys cannot be matched to weights; list the units (or pass a Family)"),
    ({"units": []}, "field 'units': names no unit; give at least one, e.g. '3b:379'"),
    ({"weights": torch.zeros(2, 1, 1)}, "field 'weights': expected weights of shape (n, C, kh, kw), got (2, 1, 1)"),
    ({"weights": [torch.zeros(1, 1, 1), torch.zeros(1, 1)]},
     "field 'weights': weights[1]: expected a kernel (C, kh, kw), got shape (1, 1)"),
    ({"weights": 3.0}, "field 'weights': expected one kernel per unit, got float"),
    ({"weights": "abc"}, "field 'weights': expected one kernel per unit, got str"),
    ({"weights": torch.zeros(3, 1, 1, 1)}, "field 'weights': 3 kernel(s) for 2 unit(s)"),
    ({"weights": [torch.zeros(1, 1, 1)]}, "field 'weights': 1 kernel(s) for 2 unit(s)"),
    ({"weights": [[[[float("nan")]]], [[[1.0]]]]}, "field 'weights': contains NaN or infinite values"),
    ({"weights": torch.full((2, 1, 1, 1), float("inf"))}, "field 'weights': contains NaN or infinite values"),
    ({"biases": [1.0]}, "field 'biases': expected 2 biases, got shape (1,)"),
    ({"biases": [[1.0, 2.0]]}, "field 'biases': expected 2 biases, got shape (1, 2)"),
    ({"biases": [[1.0], [2.0]]}, "field 'biases': expected 2 biases, got shape (2, 1)"),
    ({"biases": 1.0}, "field 'biases': expected 2 biases, got shape ()"),
    ({"biases": [1.0, float("nan")]}, "field 'biases': contains NaN or infinite values"),
    ({"reads": "Conv"}, "field 'reads': 'Conv' is not a valid choice; valid choices: ['conv', 'input']"),
])
def test_replace_units_rejections(kwargs, message):
    kwargs = {"units": ["3b:5", "3b:6"], "weights": torch.zeros(2, 1, 1, 1), **kwargs}
    text, err = _msg(lambda: ReplaceUnits(**kwargs))
    assert text == "ReplaceUnits " + message and err.edit_type == "ReplaceUnits"


# ---------------------------------------------------------------------------- shapes (validate, claims)
@pytest.mark.parametrize("unit, reads, spec, shape, src", [
    ("conv2d0:1", "conv", SPEC, (3, 7, 7), "conv2d0's input, 3 channels, 7x7"),
    ("conv2d1:1", "conv", STEM, (48, 1, 1), "conv2d1's input, 48 channels, 1x1"),
    ("conv2d2:1", "conv", STEM, (40, 3, 3), "conv2d2's input, 40 channels, 3x3"),
    ("mixed3a:0", "conv", SPEC, (192, 1, 1), "mixed3a_1x1's input, 192 channels, 1x1"),
    ("3b:5", "conv", SPEC, (256, 1, 1), "mixed3b_1x1's input, 256 channels, 1x1"),
    ("3b:5", "input", SPEC, (256, 1, 1), "the input of mixed3b, 256 channels, 1x1"),
    ("3b:200", "conv", SPEC, (128, 3, 3), "mixed3b_3x3's input, 128 channels, 3x3"),
    ("3b:330", "conv", SPEC, (32, 5, 5), "mixed3b_5x5's input, 32 channels, 5x5"),
    ("3b:450", "conv", SPEC, (256, 1, 1), "mixed3b_pool_reduce's input, 256 channels, 1x1"),
    ("mixed3b_5x5_bottleneck:3", "conv", SPEC, (256, 1, 1), "mixed3b_5x5_bottleneck's input, 256 channels, 1x1"),
    ("mixed3b_3x3_bottleneck:3", "input", SPEC, (256, 1, 1), "the input of mixed3b, 256 channels, 1x1"),
    ("mixed4a_5x5:0", "conv", SPEC, (16, 5, 5), "mixed4a_5x5's input, 16 channels, 5x5"),
])
def test_the_kernel_shape_of_each_kind_of_unit(unit, reads, spec, shape, src):
    SetWeights(unit, torch.zeros(shape), reads=reads).validate(spec)
    bad = (shape[0] + 1, shape[1], shape[2])
    text, err = _msg(lambda: EditPlan([SetWeights(unit, torch.zeros(bad), reads=reads)]).validate(spec))
    u = str(SetWeights(unit, [[[0.0]]]).dst[0])
    assert text == (f"edits[0] (SetWeights) field 'kernel': {u}: expected a kernel of shape {shape} ({src}), "
                    f"got {bad}")
    text, _ = _msg(lambda: ReplaceUnits([unit], [torch.zeros(bad)], reads=reads).validate(spec))
    assert text == f"ReplaceUnits field 'weights': {u}: expected a kernel of shape {shape} ({src}), got {bad}"


@pytest.mark.parametrize("unit, cin, k", [("3b:330", 256, 5), ("3b:200", 256, 3), ("mixed4a_3x3:0", 480, 3)])
def test_a_kernel_on_the_block_input_may_carry_the_ones_map(unit, cin, k):
    for c in (cin, cin + 1):
        SetWeights(unit, torch.zeros(c, k, k), reads="input").validate(SPEC)
    block = "mixed4a" if "4a" in unit else "mixed3b"
    u = SetWeights(unit, [[[0.0]]]).dst[0]
    text, _ = _msg(lambda: SetWeights(unit, torch.zeros(cin + 2, k, k), reads="input").validate(SPEC))
    assert text == (f"SetWeights field 'kernel': {u}: expected a kernel of shape ({cin}, {k}, {k}) or "
                    f"({cin + 1}, {k}, {k}) (the input of {block}, {cin} channels, {k}x{k}), got ({cin + 2}, {k}, {k})")


@pytest.mark.parametrize("unit, message", [
    ("conv2d1:3", "reads='input' is for units of inception blocks; conv2d1:3 reads its input already"),
    ("3b:450", "mixed3b:450 reads the 3x3 max-pool of the block input; reads='input' is not supported there"),
])
def test_units_that_cannot_read_the_block_input(unit, message):
    text, err = _msg(lambda: SetWeights(unit, torch.zeros(256, 1, 1), reads="input").validate(SPEC))
    assert text == f"SetWeights field 'dst': {message}" and err.field == "dst"
    text, err = _msg(lambda: ReplaceUnits([unit], [torch.zeros(256, 1, 1)], reads="input").validate(SPEC))
    assert text == f"ReplaceUnits field 'units': {message}" and err.field == "units"


def test_unknown_or_out_of_range_units_name_their_field():
    text, _ = _msg(lambda: SetWeights("3b:480", torch.zeros(1, 1, 1)).validate(SPEC))
    assert text.startswith("SetWeights field 'dst': ") and "480" in text
    text2, _ = _msg(lambda: ReplaceUnits(["3b:480"], [torch.zeros(1, 1, 1)]).validate(SPEC))
    assert text2 == text.replace("SetWeights field 'dst'", "ReplaceUnits field 'units'")
    text, _ = _msg(lambda: SetWeights("mixed3b/nosuchfamily", torch.zeros(1, 1, 1)).validate(SPEC))
    assert text.startswith("SetWeights field 'dst': ") and "nosuchfamily" in text


def test_claims_are_the_units_rows():
    assert SetWeights("3b:330, 3b:321", torch.zeros(32, 5, 5)).claims(SPEC) == [
        (("mixed3b_5x5", 10), "mixed3b:330", "dst"), (("mixed3b_5x5", 1), "mixed3b:321", "dst")]
    assert SetWeights("conv2d1:2", torch.zeros(64, 1, 1)).claims(SPEC) == [(("conv2d1", 2), "conv2d1:2", "dst")]
    assert SetWeights("mixed3b_5x5_bottleneck:4", torch.zeros(256, 1, 1)).claims(SPEC) == [
        (("mixed3b_5x5_bottleneck", 4), "mixed3b_5x5_bottleneck:4", "dst")]
    assert ReplaceUnits(["3b:200", "conv2d0:1"], [torch.zeros(128, 3, 3), torch.zeros(3, 7, 7)]).claims(SPEC) == [
        (("mixed3b_3x3", 72), "mixed3b:200", "units"), (("conv2d0", 1), "conv2d0:1", "units")]
    text, _ = _msg(lambda: EditPlan([SetWeights("3b:330", torch.zeros(32, 5, 5)),
                                     ReplaceUnits(["mixed3b_5x5:10"], [torch.zeros(32, 5, 5)])]).validate(SPEC))
    assert text == ("edits[1] (ReplaceUnits) field 'units': mixed3b_5x5:10 is the same channel as mixed3b:330 "
                    "(mixed3b_5x5:10), already set by edits[0]; a unit may be edited once per plan")


def test_family_keys_are_resolved_by_prepare(model):
    e = SetWeights("mixed3b/curves", torch.zeros(32, 5, 5))
    fam = load_catalog(SPEC)["mixed3b/curves"]
    assert e.prepare(model) == SetWeights([f"mixed3b:{i}" for i in fam.units], torch.zeros(32, 5, 5))
    assert e.prepare(model).dst == tuple(f"mixed3b:{i}" for i in fam.units) and len(fam.units) > 1
    plain = SetWeights("3b:330", torch.zeros(32, 5, 5))
    assert plain.prepare(model) is plain


# ---------------------------------------------------------------------------- compile / apply
@pytest.mark.parametrize("unit, key, row, shape", [
    ("conv2d1:3", "conv2d1.conv", 3, (64, 1, 1)),
    ("3b:330", "mixed3b.b5x5.conv", 10, (32, 5, 5)),
    ("3b:5", "mixed3b.b1x1.conv", 5, (256, 1, 1)),
    ("mixed3b_5x5_bottleneck:3", "mixed3b.b5x5_bottleneck.conv", 3, (256, 1, 1)),
])
def test_set_weights_writes_exactly_the_row_and_nothing_else(model, unit, key, row, shape):
    k = _k(*shape).float().double()
    before = _params(model)
    edited, record = EditPlan([SetWeights(unit, k, bias=0.75)]).apply(model)
    after = _params(edited)
    assert torch.equal(after[f"{key}.weight"][row], k) and after[f"{key}.bias"][row].item() == 0.75
    _only_rows_changed(before, after, {f"{key}.weight": row, f"{key}.bias": row})
    assert record.changed == {f"{key}.weight": k.numel(), f"{key}.bias": 1}
    assert torch.equal(_params(model)[f"{key}.weight"], before[f"{key}.weight"])  # the caller's model untouched
    kept, record = EditPlan([SetWeights(unit, k)]).apply(model)  # bias None: the unit keeps its bias
    assert torch.equal(_params(kept)[f"{key}.bias"], before[f"{key}.bias"]) and list(record.changed) == [f"{key}.weight"]


def test_compiled_ops_and_their_notes(model):
    ops = SetWeights("3b:330", torch.ones(32, 5, 5), bias=1.0).compile(model)
    assert [(o.key, o.index, o.note) for o in ops] == [
        ("mixed3b.b5x5.conv.weight", (10,), "set the weights of mixed3b:330"),
        ("mixed3b.b5x5.conv.bias", (10,), "set the bias of mixed3b:330")]
    cur = torch.full((32, 5, 5), 7.0, dtype=torch.float32)
    new = ops[0].transform(cur)
    assert new.dtype == torch.float32 and torch.equal(new, torch.ones(32, 5, 5))
    assert torch.equal(ops[1].transform(torch.tensor(3.0, dtype=torch.float64)), torch.tensor(1.0, dtype=torch.float64))
    assert [(o.key, o.note) for o in SetWeights("3b:330", torch.ones(32, 5, 5)).compile(model)] == [
        ("mixed3b.b5x5.conv.weight", "set the weights of mixed3b:330")]
    ops = SetWeights("3b:330", torch.ones(257, 5, 5), bias=1.0, reads="input").compile(model)
    assert [(getattr(o, "key", None), getattr(o, "index", None), o.note) for o in ops] == [
        (None, None, "mixed3b_5x5: linear path for 1 unit(s) (SetWeights mixed3b:330)"),
        ("mixed3b.linear_paths.5x5.conv.weight", (0,), "set the weights of mixed3b:330"),
        ("mixed3b.linear_paths.5x5.conv.bias", (0,), "set the bias of mixed3b:330")]
    assert [(o.key, o.index, o.note) for o in SetWeights("conv2d1:3", torch.ones(64, 1, 1), bias=0.0).compile(model)] == [
        ("conv2d1.conv.weight", (3,), "set the weights of conv2d1:3"), ("conv2d1.conv.bias", (3,), "set the bias of conv2d1:3")]


def test_replace_units_writes_each_kernel_and_bias_to_its_unit(model):
    w = _k(2, 32, 5, 5, seed=3)
    before = _params(model)
    edited, _ = EditPlan([ReplaceUnits(["3b:330", "3b:321"], w, biases=[0.5, -0.5])]).apply(model)
    after = _params(edited)
    assert torch.equal(after["mixed3b.b5x5.conv.weight"][10], w[0]) and torch.equal(
        after["mixed3b.b5x5.conv.weight"][1], w[1])
    assert after["mixed3b.b5x5.conv.bias"][10].item() == 0.5 and after["mixed3b.b5x5.conv.bias"][1].item() == -0.5
    edited, _ = EditPlan([ReplaceUnits(["3b:330", "3b:321"], w)]).apply(model)
    assert torch.equal(_params(edited)["mixed3b.b5x5.conv.bias"], before["mixed3b.b5x5.conv.bias"])


def _branch_io(m, x):
    with torch.no_grad():
        return m.run(x, ["mixed3a", "mixed3b_5x5_pre_relu", "mixed3b_3x3_pre_relu"])


def test_a_kernel_on_the_block_input_is_a_linear_path_row(model):
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k1, k2 = _k(257, 5, 5, seed=1) * 0.05, _k(256, 5, 5, seed=2) * 0.05
    plan = EditPlan([SetWeights("3b:330", k1, bias=0.25, reads="input"),
                     ReplaceUnits(["3b:325"], [k2], reads="input")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the unit's own bias is read without a requires-grad warning
        edited, record = plan.apply(model)
    blk = edited.block("mixed3b")
    assert blk.linear_units("5x5") == [10, 5]
    lp = blk.linear_paths["5x5"].conv
    assert torch.equal(lp.weight[0], k1) and torch.equal(lp.weight[1, :256], k2) and not lp.weight[1, 256].any()
    own = model.block("mixed3b").unit("5x5").conv.bias
    assert lp.bias[0].item() == 0.25 and lp.bias[1].item() == own[5].item()  # no bias given: the unit's own
    before, after = _branch_io(model, x), _branch_io(edited, x)
    inp = before["mixed3a"]
    ones = torch.cat([inp, torch.ones_like(inp[:, :1])], 1)
    expect = torch.cat([F.conv2d(ones, k1[None], torch.tensor([0.25], dtype=torch.float64), padding=2),
                        F.conv2d(inp, k2[None], own[5:6].detach(), padding=2)], 1)
    torch.testing.assert_close(after["mixed3b_5x5_pre_relu"][:, [10, 5]], expect, rtol=1e-10, atol=1e-10)
    others = [c for c in range(96) if c not in (5, 10)]
    assert torch.equal(after["mixed3b_5x5_pre_relu"][:, others], before["mixed3b_5x5_pre_relu"][:, others])
    assert torch.equal(after["mixed3b_3x3_pre_relu"], before["mixed3b_3x3_pre_relu"])
    assert [s["reason"] for s in record.structure] == ["SetWeights mixed3b:330", "ReplaceUnits mixed3b:325"]
    assert [s["units"] for s in record.structure] == [[10], [5]]
    restored = record.undo(edited)
    assert restored.block("mixed3b").linear_units("5x5") == []
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in restored.state_dict().items())


@pytest.mark.parametrize("unit, key, row", [("3b:5", "mixed3b.b1x1.conv", 5),
                                             ("mixed3b_3x3_bottleneck:3", "mixed3b.b3x3_bottleneck.conv", 3)])
def test_a_unit_that_reads_the_block_input_anyway_keeps_its_convolution(model, unit, key, row):
    k = _k(256, 1, 1, seed=7)
    before = _params(model)
    edited, record = EditPlan([SetWeights(unit, k, bias=1.5, reads="input")]).apply(model)
    after = _params(edited)
    assert torch.equal(after[f"{key}.weight"][row], k) and after[f"{key}.bias"][row].item() == 1.5
    _only_rows_changed(before, after, {f"{key}.weight": row, f"{key}.bias": row})
    assert record.structure == () and edited.block("mixed3b").linear_units("3x3") == []


def test_two_units_of_one_edit_get_consecutive_rows(model):
    k = _k(256, 3, 3, seed=4)
    edited, record = EditPlan([SetWeights("3b:200, 3b:130", k, reads="input")]).apply(model)
    blk = edited.block("mixed3b")
    assert blk.linear_units("3x3") == [72, 2]
    lp = blk.linear_paths["3x3"].conv
    assert torch.equal(lp.weight[0, :256], k) and torch.equal(lp.weight[1, :256], k)
    own = model.block("mixed3b").unit("3x3").conv.bias
    assert lp.bias.tolist() == [own[72].item(), own[2].item()]
    assert [s["rows"] for s in record.structure] == [1, 1]


def test_a_linearised_unit_is_rewritten_in_its_row(model):
    lin, _ = EditPlan([Linearize("3b_5x5", ["mixed3b_5x5:3", "mixed3b_5x5:10"])]).apply(model)
    lp_before = lin.block("mixed3b").linear_paths["5x5"].conv
    k = _k(257, 5, 5, seed=5)
    edited, record = EditPlan([SetWeights("3b:330", k, reads="input")]).apply(lin)
    lp = edited.block("mixed3b").linear_paths["5x5"].conv
    assert edited.block("mixed3b").linear_units("5x5") == [3, 10] and record.structure == ()
    assert torch.equal(lp.weight[1], k) and torch.equal(lp.weight[0], lp_before.weight[0])
    assert torch.equal(lp.bias, lp_before.bias)  # no bias given: the linear path's own bias stays
    edited, _ = EditPlan([SetWeights("3b:330", k, bias=-2.0, reads="input")]).apply(lin)
    assert edited.block("mixed3b").linear_paths["5x5"].conv.bias[1].item() == -2.0
    text, err = _msg(lambda: EditPlan([SetWeights("3b:330", torch.zeros(32, 5, 5))]).apply(lin))
    assert text == ("edits[0] (SetWeights) field 'reads': mixed3b:330 is computed by a linear path (Linearize); "
                    "give its kernel with reads='input'")
    edited, _ = EditPlan([SetWeights("3b:331", torch.ones(32, 5, 5))]).apply(lin)  # not linearised: conv row
    assert torch.equal(edited.block("mixed3b").unit("5x5").conv.weight[11], torch.ones(32, 5, 5, dtype=torch.float64))


def test_channels_added_by_a_pathway_edit_are_zero_in_a_given_kernel(model):
    pruned, _ = EditPlan([PrunePathway(src="3a:5", dst="3b:330")]).apply(model)
    w = pruned.block("mixed3b").unit("5x5").conv.weight
    assert w.shape[1] > 32
    k = _k(32, 5, 5, seed=6)
    edited, _ = EditPlan([SetWeights("3b:330", k)]).apply(pruned)
    row = edited.block("mixed3b").unit("5x5").conv.weight[10]
    assert torch.equal(row[:32], k) and not row[32:].any() and row.shape == w.shape[1:]
    with pytest.raises(ValueError) as e:
        ReplaceUnits.from_model(pruned, ["3b:330"])
    assert str(e.value) == "mixed3b:330 reads channels added by a structural edit in that model; use reads='input'"
    r = ReplaceUnits.from_model(pruned, ["3b:331"])  # a row of the widened conv that reads no copy
    assert torch.equal(torch.tensor(r.weights[0], dtype=torch.float64), w[11, :32])


# ---------------------------------------------------------------------------- from_model
def test_from_model_copies_another_models_rows(model):
    torch.manual_seed(9)
    other = InceptionV1(SPEC).double()
    r = ReplaceUnits.from_model(other, "3b:330, conv2d2:4, mixed3b_5x5_bottleneck:1")
    assert r.units == ("mixed3b:330", "conv2d2:4", "mixed3b_5x5_bottleneck:1") and r.reads == "conv"
    convs = [other.block("mixed3b").unit("5x5").conv, other.conv_unit("conv2d2").conv,
             other.block("mixed3b").unit("5x5_bottleneck").conv]
    for w, b, c, ch in zip(r.weights, r.biases, convs, (10, 4, 1)):
        assert torch.equal(torch.tensor(w, dtype=torch.float64), c.weight[ch].detach()) and b == c.bias[ch].item()
    edited, _ = EditPlan([r]).apply(model)
    for c, ch, key in zip(convs, (10, 4, 1), ("mixed3b.b5x5.conv", "conv2d2.conv", "mixed3b.b5x5_bottleneck.conv")):
        assert torch.equal(edited.state_dict()[f"{key}.weight"][ch], c.weight[ch].detach())
        assert torch.equal(edited.state_dict()[f"{key}.bias"][ch], c.bias[ch].detach())


def test_from_model_with_reads_input_is_the_linear_kernel(model):
    r = ReplaceUnits.from_model(model, ["3b:330", "3b:200", "3b:5"], reads="input")
    w5, b5 = linear_kernel(model, "mixed3b", "5x5", [10])
    w3, b3 = linear_kernel(model, "mixed3b", "3x3", [72])
    c1 = model.block("mixed3b").unit("1x1").conv
    assert torch.equal(torch.tensor(r.weights[0], dtype=torch.float64), w5[0]) and r.biases[0] == b5[0].item()
    assert torch.equal(torch.tensor(r.weights[1], dtype=torch.float64), w3[0]) and r.biases[1] == b3[0].item()
    assert torch.equal(torch.tensor(r.weights[2], dtype=torch.float64), c1.weight[5].detach())
    assert r.biases[2] == c1.bias[5].item() and r.reads == "input"


@pytest.mark.filterwarnings("error")  # no requires-grad warning from the linear kernel's bias
def test_from_model_of_a_linearised_unit(model):
    lin, _ = EditPlan([Linearize("3b_5x5", ["mixed3b_5x5:10"])]).apply(model)
    with pytest.raises(ValueError) as e:
        ReplaceUnits.from_model(lin, ["3b:330"])
    assert str(e.value) == "mixed3b:330 is computed by a linear path in that model; use reads='input'"
    r = ReplaceUnits.from_model(lin, ["3b:330"], reads="input")
    lp = lin.block("mixed3b").linear_paths["5x5"].conv
    assert torch.equal(torch.tensor(r.weights[0], dtype=torch.float64), lp.weight[0].detach())


def test_from_model_rejections(model):
    text, err = _msg(lambda: ReplaceUnits.from_model(model, ["3b:330"], reads="in"))
    assert text == "ReplaceUnits field 'reads': 'in' is not a valid choice; valid choices: ['conv', 'input']"
    text, err = _msg(lambda: ReplaceUnits.from_model(model, ["3b:480"]))
    assert text.startswith("ReplaceUnits field 'units': ") and "480" in text and err.field == "units"
    text, err = _msg(lambda: ReplaceUnits.from_model(model, []))
    assert text == "ReplaceUnits field 'units': names no unit; give at least one, e.g. '3b:379'"
    with pytest.raises(ValueError) as e:
        ReplaceUnits.from_model(model, ["3b:450"], reads="input")
    assert str(e.value) == ("mixed3b:450 reads the 3x3 max-pool of the block input; reads='input' is not "
                            "supported there")
    with pytest.raises(ValueError) as e:
        ReplaceUnits.from_model(model, ["conv2d1:3"], reads="input")
    assert str(e.value) == "reads='input' is for units of inception blocks; conv2d1:3 reads its input already"

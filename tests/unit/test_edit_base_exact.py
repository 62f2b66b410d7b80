"""The edit framework (edits.base): EditError's message for every combination of location parts, ``at``;
the producing convolution of a unit at each branch border (BVLC offsets by hand); zero extension, live state
tensors, changed-value masks with NaN; the generic ``to_dict``/``from_dict`` of an edit and its errors; the
transforms ``_constant``/``_filler``; reference-image checks; the spec-free normal form of units fields with
families (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import torch

from circuits.model import InceptionV1
from circuits.spec import get_spec
from circuits.units import Family, Unit
from edits.base import (
    _ERRORS,
    _SPEC_ERRORS,
    EDIT_TYPES,
    Edit,
    EditError,
    EditWarning,
    _check_reference,
    _constant,
    _filler,
    _finite_number,
    _module_path,
    _reason,
    _state_tensor,
    _value_changed,
    _zero_extended,
    mentions_families,
    normalise_refs,
    producing_conv,
    register_edit,
    resolve_refs,
)

SPEC = get_spec("inceptionv1_caffe")


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, text", [
    ({}, "x"),
    ({"index": 0}, "edits[0]: x"),
    ({"index": 3, "edit_type": "T"}, "edits[3] (T): x"),
    ({"edit_type": "T"}, "T: x"),
    ({"edit_type": ""}, "x"),
    ({"field": "f"}, "field 'f': x"),
    ({"field": ""}, "field '': x"),
    ({"index": 0, "field": "f"}, "edits[0] field 'f': x"),
    ({"edit_type": "T", "field": "f"}, "T field 'f': x"),
    ({"index": 2, "edit_type": "T", "field": "f", "choices": ("a", 1)}, "edits[2] (T) field 'f': x; valid choices: ['a', 1]"),
    ({"choices": []}, "x; valid choices: []"),
])
def test_edit_error_messages(kwargs, text):
    e = EditError("x", **kwargs)
    assert str(e) == text and e.args == (text,) and e.detail == "x" and isinstance(e, ValueError)
    assert e.index == kwargs.get("index") and e.edit_type == kwargs.get("edit_type") and e.field == kwargs.get("field")
    assert e.choices == (list(kwargs["choices"]) if "choices" in kwargs else None)


def test_edit_error_at_locates_and_keeps_the_rest():
    e = EditError("x", edit_type="T", field="f", choices=("a",)).at(3, "U")
    assert str(e) == "edits[3] (T) field 'f': x; valid choices: ['a']" and (e.index, e.edit_type) == (3, "T")
    assert e.field == "f" and e.choices == ["a"] and e.detail == "x"
    e = EditError("x").at(2, "U")
    assert str(e) == "edits[2] (U): x" and e.edit_type == "U" and e.field is None and e.choices is None
    assert str(EditError("x").at(0)) == "edits[0]: x"
    assert issubclass(EditWarning, UserWarning)


def test_reason_and_error_groups():
    assert _reason(KeyError("a b")) == "a b" and _reason(ValueError("v", 2)) == "v" and _reason(KeyError()) == "KeyError"
    assert _reason(KeyError(3)) == "3"
    assert _SPEC_ERRORS == (KeyError, ValueError, TypeError, IndexError, OverflowError, AttributeError)
    assert _ERRORS == (KeyError, ValueError, TypeError, IndexError, OverflowError)


# ---------------------------------------------------------------------------- units and tensors
@pytest.mark.parametrize("unit, conv", [
    (Unit("mixed3b", 0), ("mixed3b_1x1", 0)), (Unit("mixed3b", 127), ("mixed3b_1x1", 127)),
    (Unit("mixed3b", 128), ("mixed3b_3x3", 0)), (Unit("mixed3b", 319), ("mixed3b_3x3", 191)),
    (Unit("mixed3b", 320), ("mixed3b_5x5", 0)), (Unit("mixed3b", 379), ("mixed3b_5x5", 59)),
    (Unit("mixed3b", 416), ("mixed3b_pool_reduce", 0)), (Unit("mixed3b", 479), ("mixed3b_pool_reduce", 63)),
    (Unit("mixed4a", 192), ("mixed4a_3x3", 0)), (Unit("mixed5b", 1023), ("mixed5b_pool_reduce", 127)),
    (Unit("mixed3b_5x5_bottleneck", 3), ("mixed3b_5x5_bottleneck", 3)), (Unit("conv2d1", 3), ("conv2d1", 3)),
])
def test_producing_conv_at_the_branch_borders(unit, conv):
    assert producing_conv(unit, SPEC) == conv


def test_producing_conv_checks_the_range():
    with pytest.raises(IndexError) as e:
        producing_conv(Unit("mixed3b", 480), SPEC)
    assert str(e.value) == "mixed3b:480 is out of range for inceptionv1_caffe: mixed3b has units 0..479"
    with pytest.raises(IndexError):
        producing_conv(Unit("conv2d1", 64), SPEC)


def test_zero_extended():
    a = torch.arange(6.0).reshape(2, 3)
    assert _zero_extended(a, a.shape) is a
    out = _zero_extended(a, torch.Size([3, 5]))
    assert torch.equal(out, torch.tensor([[0.0, 1, 2, 0, 0], [3, 4, 5, 0, 0], [0, 0, 0, 0, 0]]))
    assert torch.equal(_zero_extended(a, torch.Size([2, 4])), torch.tensor([[0.0, 1, 2, 0], [3, 4, 5, 0]]))
    assert _zero_extended(a.double(), torch.Size([2, 4])).dtype == torch.float64


@pytest.fixture(scope="module")
def model():
    return InceptionV1(SPEC).eval()


def test_state_tensors_and_module_paths(model):
    w = _state_tensor(model, "conv2d1.conv.weight")
    assert w is model.conv_unit("conv2d1").conv.weight
    buffers = dict(model.named_buffers())
    if buffers:
        key = next(iter(buffers))
        assert _state_tensor(model, key) is buffers[key]
    with pytest.raises(KeyError) as e:
        _state_tensor(model, "conv2d1.conv.nothing")
    assert e.value.args == ("model has no parameter or buffer 'conv2d1.conv.nothing'",)
    with pytest.raises(KeyError):
        _state_tensor(model, "nowhere.weight")
    assert _module_path(model, model.conv_unit("conv2d1").conv) == "conv2d1.conv"
    assert _module_path(model, model.block("mixed3b").unit("5x5").conv) == "mixed3b.b5x5.conv"
    other = torch.nn.Linear(1, 1)
    with pytest.raises(KeyError) as e:
        _module_path(model, other)
    assert e.value.args == (f"module {other!r} is not part of the model",)


def test_state_tensor_finds_buffers():
    m = torch.nn.Module()
    m.register_buffer("b", torch.ones(2))
    m.lin = torch.nn.Linear(2, 2)
    assert _state_tensor(m, "b") is m.b and _state_tensor(m, "lin.bias") is m.lin.bias


def test_value_changed_with_nan():
    nan = float("nan")
    a = torch.tensor([1.0, nan, nan, 2.0, 0.0])
    b = torch.tensor([1.0, nan, 3.0, 2.5, -0.0])
    assert _value_changed(a, b).tolist() == [False, False, True, True, False]
    assert _value_changed(torch.tensor([1, 2]), torch.tensor([1, 3])).tolist() == [False, True]


def test_finite_numbers():
    assert [_finite_number(v) for v in (1, 1.5, -0.0, 10**300)] == [True] * 4
    assert [_finite_number(v) for v in (True, False, "1", None, float("nan"), float("inf"), 10**400, [1])] == [False] * 8


def test_constant_and_filler_transforms():
    t = _constant(torch.tensor([1.5, 2.5], dtype=torch.float64))
    cur = torch.zeros(1, 2, dtype=torch.float32)
    out = t(cur)
    assert out.dtype == torch.float32 and out.shape == (1, 2) and out.tolist() == [[1.5, 2.5]]
    v = torch.tensor([1.0, 2.0])
    a = _constant(v)(torch.zeros(2))
    a[0] = 9.0
    assert v.tolist() == [1.0, 2.0]  # a clone: writing the result leaves the value alone
    f = _filler(0.25)(torch.ones(2, 3, dtype=torch.float64))
    assert f.dtype == torch.float64 and torch.equal(f, torch.full((2, 3), 0.25, dtype=torch.float64))


@pytest.mark.parametrize("ref, got", [
    (None, "'NoneType'"),
    ([[1.0]], "'list'"),
    (torch.zeros(0, 3, 2, 2), "shape (0, 3, 2, 2) dtype torch.float32"),
    (torch.zeros(1, 1, 2, 2), "shape (1, 1, 2, 2) dtype torch.float32"),
    (torch.zeros(1, 3, 2), "shape (1, 3, 2) dtype torch.float32"),
    (torch.zeros(1, 3, 2, 2, 1), "shape (1, 3, 2, 2, 1) dtype torch.float32"),
    (torch.zeros(1, 3, 2, 2, dtype=torch.uint8), "shape (1, 3, 2, 2) dtype torch.uint8"),
])
def test_reference_images_are_checked(ref, got):
    with pytest.raises(EditError) as e:
        _check_reference(ref)
    assert str(e.value) == ("field 'reference': reference images must be a float tensor (N ≥ 1, 3, H, W), RGB in "
                            f"[0, 1]; got {got}")
    assert e.value.field == "reference"


def test_good_reference_images_pass():
    assert _check_reference(torch.zeros(1, 3, 2, 2)) is None
    assert _check_reference(torch.zeros(2, 3, 5, 4, dtype=torch.float64)) is None


# ---------------------------------------------------------------------------- units fields
def test_normalise_refs():
    assert normalise_refs("3b:1, mixed3b:1, 3b:2") == ("mixed3b:1", "mixed3b:2")
    assert normalise_refs("3b:1, mixed3b:1", unique=False) == ("mixed3b:1", "mixed3b:1")
    assert normalise_refs(["mixed3b/curves", "3b:2"]) == ("mixed3b/curves", "mixed3b:2")
    assert normalise_refs([Family("curves", "mixed3b", (3, 1))]) == ("mixed3b:3", "mixed3b:1")
    fams: dict = {}
    assert normalise_refs([Family("curves", "mixed3b", (3, 1)), "3b:3"], families=fams) == ("mixed3b:3", "mixed3b:1")
    assert fams == {"mixed3b/curves": (3, 1)}
    assert normalise_refs([Family("curves", "mixed3b", (3, 1))], families={"mixed3b/curves": (3, 1)}) == (
        "mixed3b:3", "mixed3b:1")
    assert normalise_refs(["mixed3b/curves", "3b:9"], families={"mixed3b/curves": (4, 5)}) == (
        "mixed3b:4", "mixed3b:5", "mixed3b:9")
    assert normalise_refs(["mixed3b/curves"], families={"mixed3b/other": (4,)}) == ("mixed3b/curves",)
    with pytest.raises(ValueError) as e:
        normalise_refs([Family("curves", "mixed3b", (3, 1))], families={"mixed3b/curves": (4, 5)})
    assert str(e.value) == "family 'mixed3b/curves' is given with two different unit lists"
    with pytest.raises(ValueError) as e:
        normalise_refs([])
    assert str(e.value) == "names no unit; give at least one, e.g. '3b:379'"


def test_resolve_refs_and_mentions_families():
    assert resolve_refs(("mixed3b:1", "3b:1", "mixed3b:0"), SPEC) == [Unit("mixed3b", 1), Unit("mixed3b", 0)]
    assert mentions_families(("mixed3b:1", "mixed3b/curves")) is True
    assert mentions_families(("mixed3b:1",)) is False
    curves = resolve_refs(("mixed3b/curves",), SPEC)
    assert len(curves) > 1 and all(u.layer == "mixed3b" for u in curves)


# ---------------------------------------------------------------------------- the generic edit
@dataclass(frozen=True)
class Plain(Edit):
    a: tuple
    b: str = "x"
    c: list = field(default_factory=list)


def test_edit_defaults_and_generic_serialisation():
    e = Plain((1, 2))
    assert e.validate(SPEC) is None and e.claims(SPEC) == [] and e.prepare(None) is e and e.needs_reference() is None
    assert e.interventions(None) == [] and Plain.type_name == "Edit"
    with pytest.raises(NotImplementedError):
        e.compile(None)
    assert e.to_dict() == {"type": "Edit", "a": [1, 2], "b": "x", "c": []}
    assert type(e.to_dict()["a"]) is list
    assert Plain.from_dict({"type": "Other", "a": (1, 2)}) == e and Plain.from_dict({"a": 5, "b": "y"}) == Plain(5, "y")
    err = e.error("bad", field="b", choices=("x",))
    assert str(err) == "Edit field 'b': bad; valid choices: ['x']" and err.index is None
    assert str(e.error("bad")) == "Edit: bad"


def test_from_dict_errors_name_the_fields():
    with pytest.raises(EditError) as e:
        Plain.from_dict({"a": 1, "d": 2})
    assert str(e.value) == "Edit field 'd': unknown field 'd'; valid choices: ['a', 'b', 'c']"
    with pytest.raises(EditError) as e:
        Plain.from_dict({3: 1})
    assert str(e.value) == "Edit field '3': unknown field 3; valid choices: ['a', 'b', 'c']"
    with pytest.raises(EditError) as e:
        Plain.from_dict({"b": "y"})
    assert str(e.value) == "Edit field 'a': missing required field"
    with pytest.raises(EditError) as e:
        Plain.from_dict({"type": "Plain", "c": []})
    assert str(e.value) == "Edit field 'a': missing required field" and e.value.field == "a"


def test_register_edit(monkeypatch):
    monkeypatch.setattr("edits.base.EDIT_TYPES", dict(EDIT_TYPES))
    import edits.base

    @dataclass(frozen=True)
    class Registered(Edit):
        type_name: ClassVar[str] = "Edit"
        x: int = 0

    assert register_edit(Registered) is Registered
    assert Registered.type_name == "Registered" and edits.base.EDIT_TYPES["Registered"] is Registered
    assert Registered(1).to_dict() == {"type": "Registered", "x": 1}
    assert "Registered" not in EDIT_TYPES
    assert sorted(EDIT_TYPES) == ["Ablate", "HandwrittenFamily", "Linearize", "PrunePathway", "ReplaceUnits",
                                  "Scale", "SetWeights"]
    assert dataclasses.is_dataclass(EDIT_TYPES["Ablate"])

"""Property-based tests: random and malformed plan documents never crash with anything but EditError,
and valid plans never silently do nothing.

Contract checked here (edits.plan): reading (``EditPlan.from_dict`` / ``from_json`` / ``from_yaml``)
and validating (``EditPlan.validate``) a plan either succeeds or raises :class:`EditError`; an error
that concerns one edit names its position, its type and the offending field. A plan that reads
and validates re-serialises losslessly (JSON and YAML). Applying a valid plan changes weights,
installs an intervention, or warns (:class:`EditWarning`).
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuits.spec import get_spec
from circuits.units import Unit
from edits import EDIT_TYPES, Ablate, EditError, EditPlan, EditWarning, producing_conv

SPECS = [get_spec("inceptionv1_caffe"), get_spec("inceptionv1")]



# --------------------------------------------------------------------------- checks
def _check_error(e: EditError) -> None:
    msg = str(e)
    assert msg and e.detail
    if e.edit_type is not None and e.index is not None:
        # an error about one edit says where and which field
        assert e.field is not None, f"no field named in: {msg}"
        assert msg.startswith(f"edits[{e.index}] ({e.edit_type}) field {e.field!r}: "), msg


# --------------------------------------------------------------------------- no silent no-op
@st.composite
def valid_ablations(draw):
    spec = SPECS[0]
    layer = draw(st.sampled_from(["conv2d2", "mixed3a", "mixed3b", "mixed4a", "mixed4e", "mixed5b",
                                  "mixed3b_5x5_bottleneck", "mixed4b_3x3_bottleneck"]))
    width = spec.layer_width(layer)
    idx = draw(st.lists(st.integers(0, width - 1), min_size=1, max_size=4, unique=True))
    mode = draw(st.sampled_from(["zero", "mean", "resample"]))
    units = [f"{layer}:{i}" for i in idx]
    if mode == "mean":
        return Ablate(units, mode="mean", means=draw(st.lists(st.floats(0, 50), min_size=len(units),
                                                              max_size=len(units))))
    if mode == "resample":
        return Ablate(units, mode="resample", seed=draw(st.integers(0, 2**63 - 1)))
    return Ablate(units)


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_ablations(), min_size=1, max_size=3))
def test_valid_plans_change_weights_or_install_an_intervention(caffe_model, edits):
    plan = EditPlan(edits)
    try:
        plan.validate(caffe_model)
    except EditError as e:
        assert "appears twice" in str(e) or "same channel" in str(e), str(e)  # random overlaps
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        edited, record = plan.apply(caffe_model)
    warned = " ".join(str(w.message) for w in caught if issubclass(w.category, EditWarning))
    for i, e in enumerate(plan.edits):
        units = e.unit_list(caffe_model.spec)
        if e.mode == "resample":
            layers = {h.name for h in record.interventions}
            assert {u.layer for u in units} <= layers, f"edits[{i}] installed no intervention"
            continue
        changed = False
        for u in units:
            conv, ch = producing_conv(u, caffe_model.spec)
            c0, c1 = caffe_model.conv_unit(conv).conv, edited.conv_unit(conv).conv
            changed |= not (torch.equal(c0.weight[ch], c1.weight[ch]) and torch.equal(c0.bias[ch], c1.bias[ch]))
        assert changed or f"edits[{i}] (Ablate) changed no weight" in warned, f"edits[{i}] silently changed nothing"
    assert not any(h._forward_hooks for h in caffe_model.hook_points.values())


#: BVLC kernel shapes (C, kh, kw) of the convolution that writes each branch, and of a kernel on
#: the block input (``reads="input"``), for the units drawn below.
CONV_IN = {"mixed3b_1x1": (256, 1, 1), "mixed3b_3x3": (128, 3, 3), "mixed3b_5x5": (32, 5, 5),
           "mixed4a_3x3": (96, 3, 3), "mixed4a_5x5": (16, 5, 5)}
INPUT_IN = {"mixed3b_3x3": (256, 3, 3), "mixed3b_5x5": (256, 5, 5), "mixed4a_3x3": (480, 3, 3),
            "mixed4a_5x5": (480, 5, 5)}
BRANCH_WIDTH = {"mixed3b_1x1": 128, "mixed3b_3x3": 192, "mixed3b_5x5": 96, "mixed4a_3x3": 208, "mixed4a_5x5": 48}


def _kernel(shape, seed: int) -> list:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).tolist()


@st.composite
def valid_edits(draw, kind: str):
    """One edit of type ``kind`` that is valid for the BVLC checkpoint by construction."""
    from edits import Linearize, PrunePathway, ReplaceUnits, Scale, SetWeights

    if kind == "Ablate":
        return draw(valid_ablations())
    if kind == "HandwrittenFamily":
        from edits import HandwrittenFamily

        template = draw(st.sampled_from(["learned", "analytic"]))
        unit = draw(st.sampled_from(["mixed3b:368", "mixed3b:330", "mixed3b:358"])) if template == "learned" else None
        return HandwrittenFamily("mixed3b/curves", "mixed3a/curves", template=template, template_unit=unit,
                                 rest=draw(st.sampled_from(["zero", "keep"])))
    block = draw(st.sampled_from(["mixed3b", "mixed4a"]))
    src_layer, src_w = {"mixed3b": ("mixed3a", 256), "mixed4a": ("mixed3b", 480)}[block]
    if kind in ("PrunePathway", "Scale"):
        src = [f"{src_layer}:{i}" for i in draw(st.lists(st.integers(0, src_w - 1), min_size=1, max_size=3,
                                                         unique=True))]
        dst = [f"{block}:{i}" for i in draw(st.lists(st.integers(0, 479), min_size=1, max_size=3, unique=True))]
        sign = draw(st.sampled_from(["positive", "negative", "all"]))
        if kind == "Scale":
            return Scale(src, dst, factor=draw(st.sampled_from([0.0, 0.5, -1.0, 2.0, 3.25])), sign=sign)
        return PrunePathway(src, dst, sign=sign)
    branch = draw(st.sampled_from(sorted(INPUT_IN if kind == "Linearize" else CONV_IN)))
    branch = branch if branch.startswith(block) else block + branch[7:]
    idx = draw(st.lists(st.integers(0, BRANCH_WIDTH[branch] - 1), min_size=1, max_size=2, unique=True))
    units = [f"{branch}:{i}" for i in idx]
    if kind == "Linearize":
        return Linearize(branch, units)
    reads = draw(st.sampled_from(["conv", "input"])) if branch in INPUT_IN else "conv"
    shape = (INPUT_IN if reads == "input" else CONV_IN)[branch]
    seed = draw(st.integers(0, 1000))
    if kind == "SetWeights":
        return SetWeights(units, _kernel(shape, seed), bias=draw(st.one_of(st.none(), st.floats(-2, 2))), reads=reads)
    return ReplaceUnits(units, [_kernel(shape, seed + j) for j in range(len(units))],
                        biases=draw(st.one_of(st.none(), st.just([0.25 * j for j in range(len(units))]))), reads=reads)


@pytest.mark.parametrize("kind", sorted(EDIT_TYPES))
def test_valid_plans_of_any_type_are_never_silent_no_ops(caffe_model, kind):
    """Plans valid by construction (one edit of each registered type in turn): each reads back
    from JSON, validates and is applied — no example is skipped — and changes weights, installs
    an intervention or warns. SetWeights/ReplaceUnits reading the conv hold exactly the given
    kernels afterwards. The examples that reached ``apply`` are counted."""
    reached, changed = [], []

    @settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(valid_edits(kind))
    def check(edit):
        plan = EditPlan.from_json(json.dumps(EditPlan([edit]).to_dict()))
        assert list(plan.edits) == [edit]
        plan.validate(caffe_model)
        assert not plan.needs_reference()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            edited, record = plan.apply(caffe_model)
        warned = [w for w in caught if issubclass(w.category, EditWarning)]
        did = record.num_changed > 0 or bool(record.interventions)
        assert did or warned, f"silent no-op: {plan.to_dict()}"
        reached.append(edit)
        changed.append(did)
        if kind in ("SetWeights", "ReplaceUnits") and edit.reads == "conv":
            kernels = [edit.kernel] * len(edit.dst) if kind == "SetWeights" else list(edit.weights)
            for ref, k in zip(edit.dst if kind == "SetWeights" else edit.units, kernels):
                conv, ch = producing_conv(Unit.parse(ref), caffe_model.spec)
                w = edited.conv_unit(conv).conv.weight[ch]
                assert torch.equal(w[:len(k)], torch.tensor(k, dtype=w.dtype)), ref
        assert not any(h._forward_hooks for h in caffe_model.hook_points.values())

    check()
    assert len(reached) >= 5 and all(type(e) is EDIT_TYPES[kind] for e in reached), reached
    assert sum(changed) >= 3, (kind, changed)


def test_every_registered_edit_type_round_trips_and_applies(caffe_model):
    """One valid example of each registered type: to_dict → JSON → from_json and to_yaml →
    from_yaml give an equal edit, which validates and applies (changes weights or installs an
    intervention). A type registered without an example here fails."""
    from edits import HandwrittenFamily, Linearize, PrunePathway, ReplaceUnits, Scale, SetWeights

    examples = {
        "Ablate": Ablate(["mixed3b:379", "mixed3b:10"], mode="mean", means=[1.5, 0.0]),
        "PrunePathway": PrunePathway("mixed3a/curves", "mixed3b:379", sign="negative"),
        "Scale": Scale(["3a:10", "3a:11"], "3b:379", factor=-0.5),
        "Linearize": Linearize("mixed3b_5x5", ["mixed3b_5x5:59"]),
        "SetWeights": SetWeights("mixed3b_5x5:59", _kernel((32, 5, 5), 1), bias=0.5),
        "ReplaceUnits": ReplaceUnits(["mixed3b_3x3:1", "mixed3b_3x3:2"], [_kernel((128, 3, 3), 2),
                                                                           _kernel((128, 3, 3), 3)]),
        "HandwrittenFamily": HandwrittenFamily("mixed3b/curves", "mixed3a/curves", template_unit="mixed3b:368"),
    }
    assert set(examples) == set(EDIT_TYPES)
    for name, cls in EDIT_TYPES.items():
        e = examples[name]
        assert type(e) is cls and e.to_dict()["type"] == name
        plan = EditPlan([e], name=f"one {name}")
        for back in (EditPlan.from_json(json.dumps(plan.to_dict())), EditPlan.from_yaml(plan.to_yaml())):
            assert back == plan and type(back.edits[0]) is cls and back.edits[0] == e
        _, record = EditPlan.from_yaml(plan.to_yaml()).apply(caffe_model)
        assert record.num_changed > 0 or record.interventions, name

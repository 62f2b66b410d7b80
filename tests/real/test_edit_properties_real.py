"""Property-based tests: random and malformed plan documents never crash with anything but EditError,
and valid plans never silently do nothing.

Contract checked here (edits.plan): reading (``EditPlan.from_dict`` / ``from_json`` / ``from_yaml``)
and validating (``EditPlan.validate``) a plan either succeeds or raises :class:`EditError`; an error
that concerns one edit names its position, its type and the offending field. A plan that reads
and validates re-serialises losslessly (JSON and YAML). Applying a valid plan changes weights,
installs an intervention, or warns (:class:`EditWarning`).
"""

from __future__ import annotations

import warnings

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuits.spec import get_spec
from edits import EDIT_TYPES, Ablate, EditError, EditPlan, EditWarning, producing_conv

SPECS = [get_spec("inceptionv1_caffe"), get_spec("inceptionv1")]

LAYER_NAMES = ["mixed3a", "mixed3b", "3b", "4a", "mixed5b", "conv2d0", "conv2d2", "mixed3b_5x5_bottleneck",
               "mixed3b_5x5", "mixed4c_pool_reduce", "7z", "mixed", "", "logits", "MIXED3B"]

# --------------------------------------------------------------------------- strategies
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
garbage = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4)
    ),
    max_leaves=12,
)
indices = st.one_of(st.integers(-5, 1000), st.integers(), st.sampled_from([0, 1, 479, 480, 831, 832, 10**30]))
unit_strings = st.one_of(
    st.builds(lambda layer, i: f"{layer}:{i}", st.sampled_from(LAYER_NAMES), indices),
    st.builds(lambda layer, name: f"{layer}/{name}", st.sampled_from(LAYER_NAMES),
              st.sampled_from(["curves", "lines", "early_curves", "nope", "", "a/b", "cur ves"])),
    st.from_regex(r"\A[a-z0-9_]{0,10}[:/,]-?[0-9]{0,25}\Z"),
    st.text(max_size=20),
)
unit_lists = st.one_of(unit_strings, st.lists(st.one_of(unit_strings, garbage), max_size=5), garbage)
modes = st.one_of(st.sampled_from(["zero", "mean", "resample", "Zero", "", "max"]), garbage)
means = st.one_of(
    st.none(), st.lists(st.one_of(st.floats(), st.integers(), garbage), max_size=4),
    st.lists(st.floats(0, 10), min_size=1, max_size=3), garbage,
)


# in-range units of adjacent layers (valid for both checkpoints), and lists of them
good_units = st.one_of(
    st.builds(lambda i: f"mixed3b:{i}", st.integers(0, 479)),
    st.builds(lambda i: f"3a:{i}", st.integers(0, 255)),
    st.builds(lambda i: f"mixed4a:{i}", st.integers(0, 479)),
    st.builds(lambda i: f"mixed3b_5x5:{i}", st.integers(0, 63)),
    st.sampled_from(["mixed3b/curves", "mixed3a/curves"]),
)
good_unit_lists = st.one_of(good_units, st.lists(good_units, min_size=1, max_size=3, unique=True))
kernels = st.one_of(
    st.builds(lambda c, k, v: [[[v] * k] * k] * c, st.sampled_from([1, 16, 32, 64, 256]), st.sampled_from([1, 3, 5]),
              st.floats(-1, 1)),
    garbage,
)


PLAUSIBLE = {
    "units": unit_lists, "src": unit_lists, "dst": unit_lists, "mode": modes, "means": means,
    "seed": st.one_of(st.integers(), st.none(), garbage), "families": garbage,
    "sign": st.one_of(st.sampled_from(["positive", "negative", "all", "both", "neg"]), garbage),
    "via": st.one_of(st.none(), st.sampled_from(["5x5", "3x3", "mixed3b_5x5", "1x1", "nope"]), garbage),
    "branch": st.one_of(st.sampled_from(["mixed3b_5x5", "mixed3b_3x3", "mixed4a_5x5", "3b_5x5", "x"]), garbage),
    "factor": st.one_of(st.floats(), st.integers(), garbage),
    "kernel": kernels, "weights": st.one_of(st.lists(kernels, max_size=3), kernels),
    "biases": st.one_of(st.none(), st.lists(st.floats(), max_size=3), garbage),
    "reads": st.one_of(st.sampled_from(["conv", "input", "x"]), garbage),
}
VALID = {
    "units": good_unit_lists, "dst": good_unit_lists,
    "src": st.one_of(st.builds(lambda i: f"3a:{i}", st.integers(0, 255)), st.just("mixed3a/curves")),
    "mode": st.sampled_from(["zero", "mean", "resample"]), "means": st.none(), "seed": st.none(),
    "families": st.none(), "sign": st.sampled_from(["positive", "negative", "all"]), "via": st.none(),
    "factor": st.floats(-4, 4), "branch": st.sampled_from(["mixed3b_5x5", "mixed3b_3x3", "mixed4a_5x5"]),
    "reads": st.sampled_from(["conv", "input"]), "biases": st.none(),
}


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


@st.composite
def clean_edit_dicts(draw):
    kind = draw(st.sampled_from(sorted(EDIT_TYPES)))
    return {"type": kind, **{n: draw(VALID.get(n, PLAUSIBLE.get(n, garbage))) for n in EDIT_TYPES[kind].__dataclass_fields__}}


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                                    HealthCheck.filter_too_much])
@given(st.lists(clean_edit_dicts(), min_size=1, max_size=2))
def test_valid_plans_of_any_type_are_never_silent_no_ops(caffe_model, edits):
    try:
        plan = EditPlan.from_dict({"schema_version": 1, "edits": edits}).validate(caffe_model)
    except EditError as e:
        _check_error(e)
        return
    if plan.needs_reference():
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        edited, record = plan.apply(caffe_model)
    warned = [w for w in caught if issubclass(w.category, EditWarning)]
    structural = any(not hasattr(b, "before") for b in record.inverse)
    assert record.num_changed > 0 or record.interventions or structural or warned, f"silent no-op: {plan.to_dict()}"
    assert not any(h._forward_hooks for h in caffe_model.hook_points.values())

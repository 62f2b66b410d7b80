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
import math

import pytest
from edit_strategies import (
    PLAUSIBLE,
    VALID,
    garbage,
    means,
    modes,
    unit_lists,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuits.spec import get_spec
from edits import EDIT_TYPES, Ablate, EditError, EditPlan

SPECS = [get_spec("inceptionv1_caffe"), get_spec("inceptionv1")]
# derandomize: the suite tests the same examples on every run (run with --hypothesis-seed=N
# and derandomize off to explore further)
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])



@st.composite
def edit_dicts(draw):
    """An edit of a registered type with plausible (often valid) fields, then 0–2 corruptions."""
    kind = draw(st.sampled_from(sorted(EDIT_TYPES)))
    cls = EDIT_TYPES[kind]
    d: dict = {"type": kind}
    for name in cls.__dataclass_fields__:
        d[name] = draw(VALID.get(name, PLAUSIBLE.get(name, garbage)))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        what = draw(st.sampled_from(["garbage", "plausible", "delete", "unknown", "type"]))
        name = draw(st.sampled_from(list(cls.__dataclass_fields__)))
        if what == "garbage":
            d[name] = draw(garbage)
        elif what == "plausible":
            d[name] = draw(PLAUSIBLE.get(name, garbage))
        elif what == "delete":
            d.pop(name, None)
        elif what == "unknown":
            d[draw(st.text(max_size=6))] = draw(garbage)
        else:
            d["type"] = draw(st.one_of(st.sampled_from(["Frob", "", "ablate", *EDIT_TYPES]), garbage))
    return d


@st.composite
def plan_dicts(draw):
    d: dict = {}
    if draw(st.integers(0, 9)) < 9:
        d["schema_version"] = draw(st.one_of(st.just(1), st.sampled_from([2, 0, "1", 1.0, True, None]), garbage))
    if draw(st.booleans()):
        d["name"] = draw(st.one_of(st.text(max_size=10), garbage))
    if draw(st.integers(0, 9)) < 9:
        d["edits"] = draw(st.one_of(st.lists(edit_dicts(), max_size=4), garbage))
    if draw(st.integers(0, 19)) == 0:
        d[draw(st.text(max_size=6))] = draw(garbage)
    return draw(st.one_of(st.just(d), garbage)) if draw(st.integers(0, 9)) == 0 else d


# --------------------------------------------------------------------------- checks
def _check_error(e: EditError) -> None:
    msg = str(e)
    assert msg and e.detail
    if e.edit_type is not None and e.index is not None:
        # an error about one edit says where and which field
        assert e.field is not None, f"no field named in: {msg}"
        assert msg.startswith(f"edits[{e.index}] ({e.edit_type}) field {e.field!r}: "), msg


def _read_and_validate(doc) -> EditPlan | None:
    try:
        plan = EditPlan.from_dict(doc)
    except EditError as e:
        _check_error(e)
        return None
    # lossless round trips
    d = plan.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert EditPlan.from_json(text) == plan
    assert EditPlan.from_yaml(plan.to_yaml()) == plan
    assert EditPlan.from_dict(d).to_dict() == d
    for spec in SPECS:
        try:
            plan.validate(spec)
        except EditError as e:
            _check_error(e)
    return plan


@SETTINGS
@given(plan_dicts())
def test_random_plan_documents_read_and_validate_or_raise_edit_error(doc):
    _read_and_validate(doc)


@SETTINGS
@given(st.lists(edit_dicts(), min_size=1, max_size=3), st.sampled_from(SPECS))
def test_random_edits_in_a_well_formed_plan(edits, spec):
    _read_and_validate({"schema_version": 1, "name": "p", "edits": edits})


@SETTINGS
@given(st.one_of(st.text(max_size=200), st.builds(json.dumps, plan_dicts()), st.binary(max_size=50).map(
    lambda b: b.decode("latin-1"))))
def test_random_text_as_json_and_yaml(text):
    for read in (EditPlan.from_json, EditPlan.from_yaml):
        try:
            read(text)
        except EditError as e:
            _check_error(e)


@SETTINGS
@given(unit_lists, modes, means, st.one_of(st.none(), st.integers(), garbage))
def test_ablate_constructor_accepts_or_raises_edit_error(units, mode, mean_values, seed):
    try:
        a = Ablate(units, mode=mode, means=mean_values, seed=seed)
    except EditError as e:
        assert e.edit_type == "Ablate" and e.field in {"units", "mode", "means", "seed", "families"}, str(e)
        return
    assert a.units and all(isinstance(u, str) for u in a.units)
    assert Ablate.from_dict(a.to_dict()) == a
    if a.means is not None:
        assert all(math.isfinite(m) and m >= 0 for m in a.means)


@pytest.mark.parametrize("doc", [
    {"schema_version": 1, "edits": [{"type": "Ablate", "units": ["3b:" + "9" * 5000]}]},
    {"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b:1", "mode": "mean", "means": [10**400]}]},
    {"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b:1", "mode": "resample", "seed": 2**64}]},
    {"schema_version": 1, "edits": [{"type": "Ablate", "units": [["mixed3b", 379]]}]},
    {"schema_version": 1, "edits": [{"type": "Ablate", "units": [], "mode": "zero"}]},
    {"schema_version": 1, "edits": [{"type": "Ablate", "units": None}]},
    {"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b:1", 5: 3}]},
    {"schema_version": 1, "edits": [None]},
    {"schema_version": 1, "edits": {"type": "Ablate"}},
    {"schema_version": 1, 5: 1, "edits": []},
    [1, 2],
    # found by the properties above: huge integers where numbers are expected
    {"schema_version": 1, "edits": [{"type": "SetWeights", "dst": "mixed3b:0", "kernel": 10**400}]},
    {"schema_version": 1, "edits": [{"type": "ReplaceUnits", "units": "mixed3b_5x5:5", "weights": [[[[10**400]]]]}]},
])
def test_known_nasty_documents(doc):
    with pytest.raises(EditError) as e:
        EditPlan.from_dict(doc)
    _check_error(e.value)


def test_deeply_nested_json_is_an_edit_error():
    with pytest.raises(EditError):
        EditPlan.from_json("[" * 100_000 + "]" * 100_000)

"""The unit/family grammar (circuits.units): exact results and exact error messages on small
inputs written out by hand (mutation testing, issue 14: each test kills mutants that survived
tests/unit/test_core_names.py; see docs/mutation.md)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

import circuits.units as U
from circuits.spec import get_spec
from circuits.units import (
    Family,
    FamilyKey,
    Unit,
    canonical_layer,
    group_by_layer,
    lookup_family,
    parse_refs,
    resolve_targets,
    resolve_units,
)

SPEC = get_spec("inceptionv1_caffe")
LAYER_LIST = ("conv2d0, conv2d1, conv2d2, mixed3a, mixed3b, mixed4a, mixed4b, mixed4c, mixed4d, mixed4e, "
              "mixed5a, mixed5b")
SYNTAX = "expected a unit such as '3b:379' or a family such as 'mixed3b/curves'"


def _message(excinfo) -> str:
    return excinfo.value.args[0]


def test_canonical_layer_with_a_spec_and_its_errors():
    assert canonical_layer("3b", SPEC) == "mixed3b"  # a mixed layer is looked up in the spec's blocks
    assert canonical_layer("conv2d1", SPEC) == "conv2d1"  # a stem layer is not a block
    assert canonical_layer(" 4a_5x5 ") == "mixed4a_5x5"
    with pytest.raises(TypeError) as e:
        canonical_layer(3)
    assert _message(e) == "layer must be a string, got int"
    with pytest.raises(KeyError) as e:
        canonical_layer("mixed9z")
    assert _message(e) == f"unknown layer 'mixed9z'; valid layers: {LAYER_LIST} (or short forms 3a … 5b)"


def test_unit_index_zero_integral_numbers_and_errors():
    assert Unit("3b", 0).index == 0  # 0 is a valid index
    u = Unit("3b", np.int64(5))  # an integral non-int becomes a plain int
    assert u.index == 5 and type(u.index) is int
    v = Unit("3b", 2.0)
    assert v.index == 2 and type(v.index) is int
    for bad, shown in ((2.5, "2.5"), ("x", "'x'")):
        with pytest.raises(TypeError) as e:
            Unit("3b", bad)
        assert _message(e) == f"unit index must be an integer, got {shown}"
    with pytest.raises(IndexError) as e:
        Unit("3b", -1)
    assert _message(e) == "unit index must be ≥ 0, got mixed3b:-1"


def test_unit_parse_errors_and_validate_bounds():
    with pytest.raises(ValueError) as e:
        Unit.parse("3b")  # a two-character string is not a (layer, index) pair
    assert _message(e) == "cannot parse unit '3b'; expected 'layer:index' such as '3b:379' or 'mixed3b:379'"
    with pytest.raises(TypeError) as e:
        Unit.parse(3.5)
    assert _message(e) == "cannot interpret 3.5 as a unit"
    # mixed3b has 128 + 192 + 96 + 64 = 480 channels (1x1, 3x3, 5x5, pool branches)
    assert Unit("3b", 0).validate(SPEC) == Unit("mixed3b", 0)
    assert Unit("3b", 479).validate(SPEC) == Unit("mixed3b", 479)
    with pytest.raises(IndexError) as e:
        Unit("3b", 480).validate(SPEC)
    assert _message(e) == "mixed3b:480 is out of range for inceptionv1_caffe: mixed3b has units 0..479"


def test_family_canonicalises_layer_and_units():
    f = Family("c", "3b", [np.int64(1), 2.0])
    assert f.layer == "mixed3b" and f.units == (1, 2) and [type(i) for i in f.units] == [int, int]
    assert f.key == "mixed3b/c" and list(f) == [Unit("mixed3b", 1), Unit("mixed3b", 2)] and len(f) == 2


@pytest.mark.parametrize("text, error, message", [
    ("3b/curves/x", ValueError, "cannot parse family 'mixed3b/curves/x'; expected 'layer/name' such as "
                                "'mixed3b/curves' (name: letters, digits, '_', '.', '-')"),
    ("3b/", ValueError, "cannot parse family '3b/'; expected 'layer/name' such as 'mixed3b/curves'"),
    ("/curves", ValueError, "cannot parse family '/curves'; expected 'layer/name' such as 'mixed3b/curves'"),
    (3, TypeError, "a family key is a string such as 'mixed3b/curves', got 3"),
])
def test_family_key_parse_errors(text, error, message):
    with pytest.raises(error) as e:
        FamilyKey.parse(text)
    assert _message(e) == message


def test_parse_refs_texts_hints_and_errors():
    fam = Family("curves", "3b", (379,))
    got = parse_refs([Unit("3b", 1), fam, FamilyKey("3b", "curves"), ("mixed3b", 9), " 3b:2 "], with_text=True)
    assert got == [("mixed3b:1", Unit("mixed3b", 1)), ("mixed3b/curves", fam),
                   ("mixed3b/curves", FamilyKey("mixed3b", "curves")), ("mixed3b:9", Unit("mixed3b", 9)),
                   ("3b:2", Unit("mixed3b", 2))]
    with pytest.raises(ValueError) as e:
        parse_refs("curves")
    assert _message(e) == f"cannot parse 'curves': {SYNTAX}"
    with pytest.raises(ValueError) as e:
        parse_refs("curves", hint="; valid: a, b")
    assert _message(e) == f"cannot parse 'curves': {SYNTAX}; valid: a, b"
    with pytest.raises(ValueError) as e:
        resolve_units("curves")
    assert _message(e) == f"cannot parse 'curves': {SYNTAX}"
    with pytest.raises(ValueError) as e:
        resolve_units("curves", hint="!")
    assert _message(e) == f"cannot parse 'curves': {SYNTAX}!"
    with pytest.raises(TypeError) as e:
        parse_refs({"a": 1})
    assert _message(e) == ("cannot interpret {'a': 1} as units: expected a unit ('3b:379'), a family "
                           "('mixed3b/curves' or a Family) or a list of those")


@pytest.mark.parametrize("pair", [("3b:1", 5), ("3b/curves", 5)])
def test_a_pair_with_a_reference_first_is_a_list_not_a_unit(pair):
    with pytest.raises(TypeError) as e:  # the 5 is then a reference of its own, and not one
        parse_refs(pair)
    assert _message(e).startswith("cannot interpret 5 as units")


class _Catalog(Mapping):
    """A catalog-like mapping (it has a ``spec``) whose own KeyError must pass through."""

    spec = SPEC

    def __getitem__(self, key):
        raise KeyError("the catalog's own message")

    def __iter__(self):
        return iter(["mixed3b/other"])

    def __len__(self):
        return 1


@pytest.fixture
def family_source():
    old = U._FAMILY_SOURCE
    yield U.set_family_source
    U.set_family_source(old)


def test_lookup_family_sources_and_messages(family_source):
    mine = Family("mine", "3b", (1, 2))
    assert lookup_family("3b/mine", families={"mixed3b/mine": mine}) is mine
    with pytest.raises(KeyError) as e:
        lookup_family("3b/mine")
    assert _message(e) == ("'mixed3b/mine' names a family; it is resolved against a checkpoint's catalog — "
                           "give a spec (or list the units)")
    with pytest.raises(KeyError) as e:
        lookup_family("3b/x", families={"mixed3b/mine": mine, "mixed3a/y": mine})
    assert _message(e) == "no family 'mixed3b/x'; valid families: mixed3b/mine, mixed3a/y"
    with pytest.raises(KeyError) as e:
        lookup_family("3b/x", families={})
    assert _message(e) == "no family 'mixed3b/x'; valid families: (none)"
    with pytest.raises(KeyError) as e:
        lookup_family("3b/x", families=_Catalog())
    assert _message(e) == "the catalog's own message"

    family_source(lambda spec: {"mixed3b/mine": mine} if spec is SPEC else {})
    assert lookup_family("3b/mine", SPEC) is mine
    family_source(None)
    with pytest.raises(KeyError) as e:
        lookup_family("3b/mine", SPEC)
    assert _message(e) == "'mixed3b/mine' names a family, but no family catalog is available (import circuits.catalog)"

    def missing(spec):
        raise FileNotFoundError(spec.name)

    family_source(missing)
    with pytest.raises(KeyError) as e:
        lookup_family("3b/mine", SPEC)
    assert _message(e) == ("'mixed3b/mine' names a family, but inceptionv1_caffe has no packaged family catalog; "
                           "list the units (or pass a Family object)")


def test_resolve_with_given_families_and_empty_targets():
    families = {"mixed3b/mine": Family("mine", "3b", (7, 3))}  # not in the packaged catalog
    assert resolve_units("3b/mine, 3b:7", SPEC, families=families) == [Unit("mixed3b", 7), Unit("mixed3b", 3),
                                                                     Unit("mixed3b", 7)]
    assert resolve_targets("3b/mine, 3b:7", SPEC, families=families) == (
        [Unit("mixed3b", 7), Unit("mixed3b", 3)], ["mixed3b/mine", "3b:7"])
    with pytest.raises(ValueError) as e:
        resolve_targets(" , ", SPEC)
    assert _message(e) == "no units given (e.g. 3b:358 or mixed3b/curves)"


def test_group_by_layer_keeps_first_seen_order():
    got = group_by_layer([Unit("3b", 5), Unit("3a", 1), Unit("3b", 2), Unit("3b", 5)])
    assert got == {"mixed3b": [5, 2, 5], "mixed3a": [1]} and list(got) == ["mixed3b", "mixed3a"]
    assert group_by_layer([]) == {}

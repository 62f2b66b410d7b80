"""The naming table, the unit/family grammar, provenance and the edited-model format (no real data)."""

from __future__ import annotations

import pytest
import torch

from circuits.catalog import load_catalog
from circuits.edited_format import EDITED_FORMAT, EditedMeta
from circuits.model import InceptionV1, linearized
from circuits.names import (
    CONVS,
    hook_name,
    module_path,
    param_key,
    split_conv_activation,
    split_hook_name,
    split_module_path,
)
from circuits.provenance import Provenance
from circuits.spec import get_spec
from circuits.units import Family, FamilyKey, Unit, parse_refs, resolve_targets, resolve_units

SPEC = get_spec("inceptionv1_caffe")


# ----------------------------------------------------------------------------- naming table
def test_every_convolution_name_is_derived_from_the_table():
    model = InceptionV1(SPEC)
    keys = set(model.state_dict())
    for layer in ("mixed3a", "mixed5b"):
        for conv, c in CONVS.items():
            name = hook_name(layer, conv)
            assert name in model.hook_points and hook_name(layer, conv, pre_relu=True) in model.hook_points
            assert model.conv_unit(name) is model.get_submodule(module_path(layer, conv)[:-len(".conv")])
            assert param_key(layer, conv, "bias") in keys
            assert model.get_submodule(module_path(layer, conv)).out_channels == getattr(SPEC.block(layer), c.field)
            assert split_hook_name(name) == (layer, conv, False)
            assert split_hook_name(name + "_pre_relu") == (layer, conv, True)
            assert split_module_path(module_path(layer, conv)) == (layer, conv)
    assert module_path("mixed3b", "5x5") == "mixed3b.b5x5.conv" and CONVS["5x5"].field == "c5x5"
    assert split_hook_name("mixed3b_pool") is None and split_conv_activation("mixed3b_pre_relu") is None
    with pytest.raises(KeyError, match="valid: 1x1, 3x3_bottleneck"):
        hook_name("mixed3b", "7x7")


# ----------------------------------------------------------------------------- the grammar
def test_parse_refs_accepts_every_form_in_order():
    fam = Family("curves", "3b", (379, 385))
    got = parse_refs(["3b:379, mixed3b:385", ("mixed3b", 9), [Unit("3a", 1), [fam]], "3b/curves", " ", "4a_5x5:2"])
    assert got == [Unit("mixed3b", 379), Unit("mixed3b", 385), Unit("mixed3b", 9), Unit("mixed3a", 1), fam,
                   FamilyKey("mixed3b", "curves"), Unit("mixed4a_5x5", 2)]
    assert parse_refs("3b:1", with_text=True) == [("3b:1", Unit("mixed3b", 1))]


@pytest.mark.parametrize("bad, error, match", [
    ({"3b:1": 1}, TypeError, "list of those"),
    (b"3b:1", TypeError, "cannot interpret"),
    (3.5, TypeError, "cannot interpret"),
    ("3b/", ValueError, "cannot parse family"),
    ("3b/a b", ValueError, "cannot parse family"),
    ("curves", ValueError, "expected a unit such as '3b:379' or a family"),
    ("9z:1", KeyError, "valid layers"),
    ("3b:-1", IndexError, "≥ 0"),
])
def test_parse_refs_errors(bad, error, match):
    with pytest.raises(error, match=match):
        parse_refs(bad)


def test_resolve_units_and_targets():
    cat = load_catalog("inceptionv1")
    fam = cat["mixed3b/curves"]
    assert resolve_units("3b/curves, 3b:379", cat.spec, unique=True) == list(fam)
    assert resolve_units(["3b:1", "3b:1"], SPEC) == [Unit("mixed3b", 1)] * 2
    with pytest.raises(IndexError, match="0..479"):
        resolve_units("3b:480", SPEC)
    with pytest.raises(KeyError, match="give a spec"):
        resolve_units("3b/curves")
    units, labels = resolve_targets(["3b:379,3b/curves"], cat.spec)
    assert units == list(dict.fromkeys([Unit("mixed3b", 379), *fam])) and labels == ["3b:379", "mixed3b/curves"]
    with pytest.raises(ValueError, match="no units given"):
        resolve_targets([" , "], cat.spec)


# ----------------------------------------------------------------------------- provenance
def test_provenance_is_declared_and_carried():
    m = InceptionV1(SPEC)
    assert m.provenance == Provenance() and not hasattr(m, "edit_plan") and not hasattr(m, "weights_source")
    p = m.provenance.with_plan({"name": "a"}).with_plan({"name": "b"})
    assert p.edit_plan == {"name": "b"} and p.edit_history == ({"name": "a"}, {"name": "b"})
    assert p.without_plan({"name": "b"}).edit_plan == {"name": "a"}
    assert p.without_plan({"name": "b"}).without_plan({"name": "a"}) == Provenance()
    lin = linearized(m)
    assert lin.provenance.linear_surrogate and lin.linear_surrogate and not m.provenance.linear_surrogate


def test_edited_file_round_trip_and_deprecated_loader(tmp_path):
    import edits

    torch.manual_seed(0)
    m = InceptionV1(SPEC)
    m.provenance = m.provenance.with_plan({"schema_version": 1, "name": "x", "edits": []})
    path = edits.save_edited(m, tmp_path / "m.safetensors")
    back = edits.load_edited(path)
    assert back.provenance.edit_plan == m.provenance.edit_plan and back.provenance.weights_source == str(path)
    assert back.provenance.weights_digest is not None
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))
    with pytest.warns(DeprecationWarning, match="load_edited"):
        again = edits.load_model(path)
    assert again.provenance == back.provenance
    meta = EditedMeta(checkpoint=SPEC.name, structure={"mixed3b.b5x5_bottleneck.conv": [40, 480, 1, 1]})
    assert EditedMeta.from_metadata(meta.to_metadata()) == meta and meta.to_metadata()["format"] == EDITED_FORMAT
    with pytest.raises(ValueError, match="not an edited model file"):
        EditedMeta.from_metadata({"format": "circuits-1"})

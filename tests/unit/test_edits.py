"""Edit plans on the real BVLC weights and real images: Ablate, EditPlan, EditRecord."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch

from circuits import Family, Unit
from edits import Ablate, EditError, EditPlan

# Units of mixed3b, one or more per branch (BVLC offsets: 1x1 [0,128), 3x3 [128,320),
# 5x5 [320,416), pool_reduce [416,480)).
UNITS = ["3b:5", "3b:200", "3b:379", "3b:385", "3b:450"]


# ---------------------------------------------------------------------------- construction
def test_ablate_normalises_units_to_strings():
    fam = Family("curves", "mixed3b", (379, 385))
    a = Ablate([Unit("mixed3b", 5), "3b:200", ("mixed3b", 450), fam])
    assert a.units == ("mixed3b:5", "mixed3b:200", "mixed3b:450", "mixed3b:379", "mixed3b:385")
    assert Ablate("3b:379, mixed3b:385").units == ("mixed3b:379", "mixed3b:385")
    assert Ablate(Unit("mixed3b", 379)) == Ablate("mixed3b:379") == Ablate(["3b:379"])
    assert Ablate("mixed3b_5x5_bottleneck:3").units == ("mixed3b_5x5_bottleneck:3",)
    assert Ablate("3b:1").mode == "zero"
    with pytest.raises(dataclasses.FrozenInstanceError):
        Ablate("3b:1").mode = "mean"  # type: ignore[misc]
    # a Family object is resolved at once; its key is kept as provenance
    assert a.families == (("mixed3b/curves", (379, 385)),)
    assert a.to_dict()["families"] == {"mixed3b/curves": [379, 385]}
    assert Ablate([Unit("mixed3b", 1), Unit("mixed3b", 2)]).units == ("mixed3b:1", "mixed3b:2")


# ---------------------------------------------------------------------------- serialisation
def test_json_round_trip_and_files(tmp_path):
    plan = EditPlan([Ablate(UNITS), Ablate("mixed3b_5x5_bottleneck:3")], name="round-trip")
    d = plan.to_dict()
    assert d == {
        "schema_version": 1,
        "name": "round-trip",
        "edits": [
            {"type": "Ablate", "units": [str(Unit.parse(u)) for u in UNITS], "mode": "zero"},
            {"type": "Ablate", "units": ["mixed3b_5x5_bottleneck:3"], "mode": "zero"},
        ],
    }
    assert EditPlan.from_json(plan.to_json()) == plan
    assert EditPlan.from_dict(json.loads(json.dumps(d))) == plan
    for name in ("plan.json", "plan.yaml"):
        path = plan.save(tmp_path / name)
        assert EditPlan.load(path) == plan
    assert json.loads((tmp_path / "plan.json").read_text())["schema_version"] == 1


def test_plan_without_schema_version_is_the_current_version():
    from edits.plan import SCHEMA_VERSION

    plan = EditPlan.from_dict({"name": "p", "edits": [{"type": "Ablate", "units": ["3b:1"]}]})
    assert plan.to_dict()["schema_version"] == SCHEMA_VERSION and len(plan) == 1


@pytest.mark.parametrize(
    "doc, match",
    [
        ({"schema_version": 2, "edits": []}, r"schema_version.*valid choices: \[1\]"),
        ({"schema_version": None, "edits": []}, "schema_version"),
        ({"schema_version": 1, "edits": [{"type": "Frobnicate", "units": ["3b:1"]}]}, r"edits\[0\].*'type'.*Ablate"),
        ({"schema_version": 1, "edits": [{"type": "Ablate", "unit": ["3b:1"]}]}, r"edits\[0\] \(Ablate\).*'unit'"),
        ({"schema_version": 1, "edits": [{"type": "Ablate", "mode": "zero"}]}, r"'units'.*missing"),
        (
            {"schema_version": 1, "edits": [{"type": "Ablate", "units": ["3b:1"]}, {"type": "Ablate", "units": ["3b:2"], "mode": "median"}]},
            r"edits\[1\] \(Ablate\) field 'mode'.*\['zero', 'mean', 'resample'\]",
        ),
        ({"schema_version": True, "edits": []}, "schema_version"),
        ({"schema_version": 1, "name": 3, "edits": []}, "name"),
        ({"schema_version": 1, "edits": [{"type": ["Ablate"], "units": "3b:1"}]}, r"edits\[0\].*'type'"),
        ({"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b:1", "seed": 3}]}, r"field 'seed'.*resample"),
        ({"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b:1", "means": [1.0]}]}, r"field 'means'.*'mean' only"),
        (
            {"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b:1", "mode": "mean", "means": [1.0, 2.0]}]},
            r"field 'means'.*2 values for 1 units",
        ),
        (
            {"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b:1", "mode": "mean", "means": [float("nan")]}]},
            r"field 'means'.*finite",
        ),
        (
            {"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b:1", "mode": "mean", "means": [-0.5]}]},
            r"field 'means'.*≥ 0",
        ),
        ({"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b:1", "families": {"3b/x": [2]}}]}, "families"),
        ({"schema_version": 1, "edits": [{"type": "Ablate", "units": {"3b:1": 1}}]}, r"field 'units'.*list"),
        ({"schema_version": 1, "edits": [{"type": "Ablate", "units": "3b/"}]}, r"field 'units'.*family"),
    ],
)
def test_from_dict_rejects_bad_documents(doc, match):
    with pytest.raises(EditError, match=match):
        EditPlan.from_dict(doc)


def test_bad_json_and_suffix(tmp_path):
    with pytest.raises(EditError, match="JSON"):
        EditPlan.from_json("{not json")
    with pytest.raises(EditError, match="valid choices"):
        EditPlan([Ablate("3b:1")]).save(tmp_path / "plan.txt")


def test_unknown_layer_lists_valid_layers():
    with pytest.raises(EditError, match=r"field 'units'.*'7z'.*valid layers: conv2d0.*mixed3b.*mixed5b"):
        Ablate("7z:1")


def test_unknown_mode_names_field_and_choices():
    with pytest.raises(EditError, match=r"Ablate field 'mode'.*'max'.*valid choices: \['zero', 'mean', 'resample'\]") as e:
        Ablate("3b:1", mode="max")
    assert e.value.field == "mode" and e.value.choices == ["zero", "mean", "resample"]


def test_plan_rejects_non_edits():
    with pytest.raises(EditError, match=r"edits\[1\].*not an edit"):
        EditPlan([Ablate("3b:1"), "3b:2"])  # type: ignore[list-item]


def test_yaml_with_python_tags_is_rejected(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("schema_version: 1\nedits:\n- !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(EditError, match="not valid YAML"):
        EditPlan.load(p)
    p.write_text("!!python/object:edits.plan.EditPlan {edits: []}\n")
    with pytest.raises(EditError, match="not valid YAML"):
        EditPlan.load(p)
    p.write_bytes(b"\xff\xfe schema")
    with pytest.raises(EditError, match="UTF-8"):
        EditPlan.load(p)


def test_round_trip_of_every_mode(tmp_path):
    plan = EditPlan([
        Ablate(Family("curves", "mixed3b", (379, 385))),
        Ablate("3b/curves", mode="resample", seed=12),
        Ablate(["4a:1", "4a:2"], mode="mean", means=[0.25, 1e-7]),
    ], name="modes")
    for name in ("p.json", "p.yaml", "p.yml"):
        again = EditPlan.load(plan.save(tmp_path / name))
        assert again == plan and again.to_dict() == plan.to_dict()
    assert EditPlan.from_json(plan.to_json()) == plan
    assert EditPlan.from_yaml(plan.to_yaml()) == plan


# ---------------------------------------------------------------------------- CLI
def _write_plan(tmp_path, plan: EditPlan, name: str = "plan.yaml"):
    return str(plan.save(tmp_path / name))


def test_cli_edit_validate(tmp_path, capsys):
    from studies.cli import main

    good = _write_plan(tmp_path, EditPlan([Ablate("3b:379"), Ablate("3b:1", mode="mean")], name="g"))
    assert main(["edit", "validate", good]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and "document valid" in out and "--reference" in out
    assert main(["edit", "validate", good, "--model", "inceptionv1_caffe"]) == 0
    assert "valid for inceptionv1_caffe" in capsys.readouterr().out
    bad = _write_plan(tmp_path, EditPlan([Ablate("3b:480")]), "bad.json")
    assert main(["edit", "validate", bad]) == 0  # ranges need a checkpoint
    capsys.readouterr()
    assert main(["edit", "validate", bad, "--model", "inceptionv1_caffe"]) == 2
    err = capsys.readouterr().err
    assert "bad.json: edits[0] (Ablate) field 'units'" in err and "0..479" in err
    p = tmp_path / "typo.yaml"
    p.write_text("schema_version: 1\nedits:\n- {type: Ablate, units: ['3b:1'], mode: maen}\n")
    assert main(["edit", "validate", str(p)]) == 2
    assert "field 'mode'" in capsys.readouterr().err
    assert main(["edit", "validate", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_weight_diff_reports_changes_growth_and_new_tensors():
    from torch import nn

    from edits.diff import weight_diff

    a = nn.Module()
    a.w = nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    a.same = nn.Parameter(torch.ones(3))
    b = copy.deepcopy(a)
    b.w = nn.Parameter(torch.tensor([[1.0, -2.0, 0.0], [3.0, 4.5, 7.0], [0.0, 0.0, 0.0]]))
    b.extra = nn.Parameter(torch.tensor([0.0, 5.0]))
    d = {x.key: x for x in weight_diff(a, b, top=5)}
    assert set(d) == {"w", "extra"}
    w = d["w"]
    assert (w.status, w.changed, w.numel, w.max_abs) == ("resized", 2, 4, 4.0)
    assert w.top == [((0, 1), 2.0, -2.0), ((1, 1), 4.0, 4.5)]
    assert w.added == {0: (2, 3), 1: (2, 3)} and (w.new_entries, w.new_nonzero) == (5, 1)
    assert (d["extra"].status, d["extra"].new_nonzero) == ("added", 1)
    json.dumps([x.to_dict() for x in d.values()])

"""Every input is bounded before it is read (issue 13, kind 4): documents (YAML alias bombs,
huge or deep documents, huge integers), option values, weights and edited-model metadata, the
Ray executor hint. Images are in ``test_image_files.py``."""

from __future__ import annotations

import os
import time

import pytest
import torch

from circuits.documents import MAX_DOCUMENT_BYTES, DocumentError, load_json, load_yaml
from edits import EditError, EditPlan, Scale
from studies.cli import main


def bomb(levels: int, fan: int = 9) -> str:
    """The classic "billion laughs" YAML: ``levels`` anchors, each a list of ``fan`` aliases of the previous."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]")
    return "\n".join(lines) + "\n"


def test_a_9x9_alias_bomb_is_refused_before_construction():
    text = bomb(9)
    assert len(text.encode()) < 520  # the ~480-byte bomb of the issue
    t0 = time.perf_counter()
    with pytest.raises(DocumentError, match="after alias expansion"):
        load_yaml(text, "plan")
    assert time.perf_counter() - t0 < 2.0


def test_a_plan_alias_bomb_gives_a_short_edit_error(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(7))
    with pytest.raises(EditError) as e:
        EditPlan.load(path)
    assert len(str(e.value)) < 500 and "alias" in str(e.value)
    assert main(["edit", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"circuits: error: {path}") and len(err) < 500


def test_alias_limits_allow_ordinary_anchors():
    assert load_yaml("base: &b {x: 1}\nothers: [*b, *b, *b]\n") == {"base": {"x": 1}, "others": [{"x": 1}] * 3}


def test_recursive_aliases_and_deep_nesting_are_refused():
    with pytest.raises(DocumentError, match="recursive"):
        load_yaml("a: &a [1, *a]\n")
    with pytest.raises(DocumentError):
        load_yaml("[" * 5000 + "]" * 5000)
    with pytest.raises(DocumentError):
        load_json("[" * 5000 + "]" * 5000)
    with pytest.raises(DocumentError, match="deeper"):
        load_json("[" * 300 + "]" * 300)


def test_a_5000_digit_json_integer_is_refused_by_name(capsys, tmp_path):
    text = '{"name": "p", "edits": [{"type": "Ablate", "units": [["mixed3b", ' + "9" * 5000 + "]]}]}"
    with pytest.raises(EditError, match="integer of 5,000 digits"):
        EditPlan.from_json(text)
    path = tmp_path / "big.json"
    path.write_text(text)
    assert main(["edit", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "5,000 digits" in err and len(err) < 500


def test_huge_and_special_plan_files_are_refused_before_reading(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(MAX_DOCUMENT_BYTES + 1)  # sparse: nothing to read anyway
    with pytest.raises(EditError, match="the limit is"):
        EditPlan.load(big)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(EditError, match="not a regular file"):
        EditPlan.load(fifo)  # would block forever if opened


def test_scale_factor_that_would_overflow_is_refused():
    with pytest.raises(EditError, match="factor"):
        Scale(src="3a:1", dst="3b:379", factor=1e300)
    assert Scale(src="3a:1", dst="3b:379", factor=-1e6).factor == -1e6


@pytest.mark.parametrize("argv, words", [
    (["tune", "3b:379", "--orientation-step", "1e-6"], "--orientation-step"),
    (["tune", "3b:379", "--orientation-step", "nan"], "--orientation-step"),
    (["tune", "3b:379", "--radii", "100000000"], "--radii"),
    (["tune", "3b:379", "--radii", "inf"], "--radii"),
    (["tune", "3b:379", "--n-radii", "0"], "--n-radii"),
    (["tune", "3b:379", "--top-k", "9" * 5000], "--top-k"),
    (["graph", "--layers", ""], "--layers"),
    (["graph", "--layers", "mixed3a,,mixed3b"], "--layers"),
    (["edit", "apply", "p.yaml", "--n-reference", "0"], "--n-reference"),
    (["study", "sweep", "--jobs", "0"], "--jobs"),
    (["study", "sweep", "--batch-size", "-1"], "--batch-size"),
    (["study", "family-ablation", "--images", "x", "--bootstrap", "0"], "--bootstrap"),
])
def test_bad_option_values_are_usage_errors(argv, words, capsys):
    with pytest.raises(SystemExit) as e:  # argparse: usage + "circuits <cmd>: error: argument ...", exit 2
        _parse(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {words}" in err and "Traceback" not in err


def _parse(argv):
    from studies.cli import build_parser

    build_parser().parse_args([*argv, "--out", "/proc/never"] if argv[0] != "edit" else [*argv, "--out", "m.safetensors"])


def test_bad_option_values_exit_2_through_main(capsys):
    assert main(["tune", "3b:379", "--out", "/proc/never", "--orientation-step", "1e-6"]) == 2
    assert "circuits tune: error: argument --orientation-step: 1e-6 is out of range" in capsys.readouterr().err


def test_sweep_tune_unit_out_of_range_is_a_clean_error(tmp_path, capsys, monkeypatch):
    import circuits

    monkeypatch.setattr(circuits, "load_model", lambda *a, **k: pytest.fail("model loaded before the check"))
    monkeypatch.setattr("studies.base.load_model", lambda *a, **k: pytest.fail("model loaded before the check"))
    rc = main(["study", "sweep", "--tune", "3b:999", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "circuits: error: --tune: mixed3b:999 is out of range" in err and "Traceback" not in err


def test_executor_ray_without_ray_prints_the_install_hint(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    rc = main(["study", "sweep", "--tune", "3b:379", "--executor", "ray", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install -e '.[ray]'" in err and "Traceback" not in err


def _canonical_state():
    from circuits.model import InceptionV1
    from circuits.spec import get_spec

    torch.manual_seed(0)
    return {k: v.clone() for k, v in InceptionV1(get_spec("inceptionv1_caffe")).state_dict().items()}


def test_weights_verify_fails_on_nan_or_inf(tmp_path, capsys):
    from circuits.weights import save_canonical

    state = _canonical_state()
    ok = save_canonical(state, tmp_path / "ok.safetensors", "inceptionv1_caffe", "test")
    assert main(["weights", "verify", "--weights", str(ok)]) == 0
    capsys.readouterr()
    key = "mixed3b.b5x5.conv.weight"
    for bad in (float("nan"), float("inf")):
        state[key].view(-1)[7] = bad
        path = save_canonical(state, tmp_path / "bad.safetensors", "inceptionv1_caffe", "test")
        assert main(["weights", "verify", "--weights", str(path)]) == 1
        err = capsys.readouterr().err
        assert key in err and "NaN or infinite" in err


def _edited_file(tmp_path, **fields):
    from safetensors.torch import save_file

    meta = {"format": "circuits-edited-1", "checkpoint": "inceptionv1_caffe", "structure": "{}",
            "edit_plan": "null", "edit_history": "[]", **fields}
    path = tmp_path / "edited.safetensors"
    save_file({"a": torch.zeros(1)}, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("fields, words", [
    ({"structure": '{"mixed3b.b5x5.conv": [50000, 4000, 5, 5]}'}, "18.6 GiB"),  # a 20 GB tensor
    ({"structure": '{"mixed3b.b5x5.conv": [100000, 480, 5, 5]}'}, "outside"),
    ({"structure": '{"mixed3b.b5x5.conv": [96, 32, 5, 5, 1]}'}, "4 integers"),
    ({"structure": '{"mixed3b.b5x5.conv": ["96", 32, 5, 5]}'}, "4 integers"),
    ({"structure": '{"mixed3b.b5x5.conv": [0, 32, 5, 5]}'}, "outside"),
    ({"structure": '{"nowhere.conv": [96, 32, 5, 5]}'}, "structure"),
    ({"structure": "[1, 2]"}, "wrong type"),
    ({"structure": "{" * 5000}, "not valid JSON"),
    ({"edit_history": "[1, 2]"}, "list of plans"),
    ({"digest": "../../etc"}, "digest"),
])
def test_malformed_edited_model_metadata_is_refused_naming_file_and_field(tmp_path, fields, words):
    from circuits import load_model
    from circuits.weights import WeightsError

    path = _edited_file(tmp_path, **fields)
    with pytest.raises(WeightsError) as e:
        load_model("inceptionv1_caffe", weights=path)
    msg = str(e.value)
    assert str(path) in msg and words in msg and len(msg) < 600
    field = next(iter(fields))
    if field != "structure" or "nowhere" not in fields[field]:
        assert f"'{field}'" in msg

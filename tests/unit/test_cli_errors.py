"""Bad option values: every command's error names the offending option (and the valid choices or
range), exit 2, before any model is loaded (the polish list's item 3: messages that named the wrong
thing, lacked the option, or came only after the model had been loaded)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest
from PIL import Image

import circuits
from studies.cli import main

PLAN = "examples/plans/ablate_two_units.json"


@pytest.fixture
def env(tmp_path, monkeypatch, no_model):
    """No model may load; an image folder, an image, a non-empty folder and a fresh --out."""
    monkeypatch.chdir(circuits.__path__[0] + "/..")
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (256, 256), (20, 90, 30)).save(tmp_path / "imgs" / "n01440764_0.png")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    return tmp_path


LAYERS = "valid layers: conv2d0, conv2d1, conv2d2, mixed3a"
CASES = [
    (["vis", "3b:9", "--seed", "-1"], "argument --seed: -1 is out of range: give a whole number between 0 and 9223"),
    (["vis", "3b:9", "--steps", "0"], "argument --steps: 0 is out of range"),
    (["vis", "3b:9", "--size", "3"], "argument --size: 3 is out of range: give a whole number between 16 and 1024 px"),
    (["dataset", "3b:9", "--images", "{t}/imgs", "--seed", "-1"], "argument --seed: -1 is out of range"),
    (["dataset", "3b:9", "--images", "{t}/imgs", "--k", "0"], "argument --k: 0 is out of range"),
    (["attribute", "3b:9", "{t}/imgs/n01440764_0.png", "--seed", "x"], "argument --seed: 'x' is not a whole number"),
    (["attribute", "mixed3b/curves", "{t}/imgs/n01440764_0.png"], "attribute takes one unit such as 3b:358"),
    (["attribute", "3b:9", "{t}/imgs/n01440764_0.png", "--out", "{t}/full"], "--out {t}/full exists and is not empty"),
    (["factor", "{t}/imgs", "--layer", "mixed9z"], "--layer: unknown layer 'mixed9z'; " + LAYERS),
    (["factor", "{t}/imgs", "--k", "0"], "argument --k: 0 is out of range"),
    (["factor", "{t}/imgs", "--out", "{t}/full"], "--out {t}/full exists and is not empty"),
    (["trace", "{t}/imgs/n01440764_0.png", "--families", "nope"], "--families nope: family keys look like"),
    (["curves", "{t}/imgs", "--families", "mixed3b/nope"], "--families mixed3b/nope: no family 'mixed3b/nope'"),
    (["graph", "--layers", "mixed3a,mixed9z"], "--layers: unknown layer 'mixed9z'; " + LAYERS),
    (["discover", "--images", "{t}/imgs", "--layer", "mixed9z"], "--layer: unknown layer 'mixed9z'; " + LAYERS),
    (["study", "curve-ablation", "--layer", "mixed9z"], "--layer: unknown layer 'mixed9z'; " + LAYERS),
    (["study", "combing", "--units", "3b:9999"], "--units 3b:9999: mixed3b:9999 is out of range for inceptionv1_caffe: "
                                                 "mixed3b has units 0..479"),
    (["study", "family-ablation", "--images", "{t}/imgs", "--families", "mixed3b/nope"],
     "--families mixed3b/nope: no family 'mixed3b/nope' for inceptionv1_caffe (mixed3b has: mixed3b/curves)"),
    (["study", "family-ablation", "--images", "{t}/imgs", "--modes", "zero,bogus"],
     "--modes bogus: choose from zero, mean, resample"),
    (["study", "artificial-curves", "--family", "mixed3b/nope"], "--family mixed3b/nope: no family 'mixed3b/nope'"),
    (["study", "artificial-curves", "--template-unit", "3b:9999"], "--template-unit 3b:9999: mixed3b:9999 is out of"),
    (["study", "artificial-curves", "--bootstrap", "5"], "argument --bootstrap: 5 is out of range: give a whole number between 100"),
    (["study", "artificial-curves", "--seed", "-2"], "argument --seed: -2 is out of range"),
    (["study", "echo", "--device", "tpu"], "--device 'tpu' is not a device; use cpu, cuda, cuda:N, mps or auto"),
    (["edit", "diff", PLAN, "--reference", "{t}/missing"], "--reference {t}/missing is not a folder"),
]


@pytest.mark.parametrize("argv,expected", CASES, ids=[" ".join(a[:2]) + " " + a[-2] for a, _ in CASES])
def test_bad_value_names_its_option(env, argv, expected):
    argv = [a.format(t=env) for a in argv]
    if "--out" not in argv and argv[0] != "discover" and argv[:2] != ["edit", "diff"]:
        argv += ["--out", str(env / "out")]
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        rc = main(argv)
    last = err.getvalue().strip().splitlines()[-1]
    assert rc == 2 and expected.format(t=env) in last, last
    assert not (env / "out").exists()

"""Fuzz (hypothesis) of what users type and what image folders hold (issue 13): every outcome
is exit 0 or a clean one-line ``error:`` with exit 2 — never a traceback, never a hang.

Only validation paths run (no model is loaded: ``--out`` is unwritable, so a command whose
options all pass stops at the ``--out`` check), so each example takes milliseconds to a second.
Bounded: a fixed number of examples per test, derandomised (same examples every run), and a
SIGALRM guard per example turns a hang into a failure."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg_bytes, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from studies.cli import main
from studies.measure.images import ImageFolderDataset, list_images, scan_images

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _no_model(no_model):
    """Every test here: validation must stop a bad value before any model is loaded."""


def run_cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with time_limit(30), redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # not expected: main returns argparse's status
            rc = e.code
    return rc, err.getvalue()


def assert_clean(rc, err: str, argv) -> None:
    assert rc in (0, 2), (argv, rc, err[-1500:])
    assert "Traceback" not in err, (argv, err[-3000:])
    if rc == 2:
        last = err.strip().splitlines()[-1]
        assert last.startswith("circuits") and ": error: " in last, (argv, err[-1500:])


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["", " ", "1e-6", "1e309", "-0", "0x10", "nan", "inf", "9" * 5000, "1_000", "٣", "5°"]),
    st.text(max_size=12),
)
units = st.one_of(
    st.sampled_from(["3b:379", "mixed3b:999", "3b:-1", "mixed3b/curves", "mixed3b/nope", "4z:1", ":", "3b:",
                     "3b:1,,3b:2", "mixed3b_5x5:59", "conv2d2:63", "3b:" + "9" * 5000, "3b:1.5", "/", "3b//x"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).filter(lambda s: not s.startswith("-")),
)
TUNE_OPTIONS = ["--orientation-step", "--radii", "--n-radii", "--stroke-width", "--top-k", "--limit",
                "--reference-images", "--rotation-step"]


@FUZZ
@given(option=st.sampled_from(TUNE_OPTIONS), value=numbers, unit=units)
def test_tune_options_and_units(option, value, unit):
    argv = ["tune", unit, f"{option}={value}", "--out", "/proc/circuits-fuzz/out", "--quiet"]
    rc, err = run_cli(argv)
    assert_clean(rc, err, argv)
    assert rc == 2  # the --out under /proc is never writable: nothing is computed


@FUZZ
@given(option=st.sampled_from(["--jobs", "--batch-size", "--radii", "--orientation-step", "--limit", "--seed",
                               "--plans-per-pass", "--shard-size", "--stimulus-batch", "--max-retries"]),
       value=numbers, unit=units)
def test_sweep_options(option, value, unit):
    argv = ["study", "sweep", "--tune", unit, f"{option}={value}", "--out", "/proc/circuits-fuzz/out", "--quiet"]
    rc, err = run_cli(argv)
    assert_clean(rc, err, argv)
    assert rc == 2


plan_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False), st.text(max_size=8),
              st.sampled_from(["3b:379", "mixed3b/curves", "zero", "mean", "resample", "Ablate", "Scale"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["type", "units", "mode", "src", "dst", "factor", "edits", "name", "layer", "value"]), inner, max_size=4)),
    max_leaves=12,
)


@FUZZ
@given(doc=st.one_of(
    st.dictionaries(st.sampled_from(["name", "edits", "schema_version", "notes"]), plan_values, max_size=4),
    plan_values), raw=st.text(max_size=60), kind=st.sampled_from(["yaml", "json", "raw-yaml", "raw-json"]))
def test_edit_validate_on_random_plan_documents(tmp_path_factory, doc, raw, kind):
    import json

    import yaml

    folder = tmp_path_factory.mktemp("plans")
    suffix = ".json" if kind.endswith("json") else ".yaml"
    text = (raw if kind.startswith("raw") else json.dumps(doc) if kind == "json" else yaml.safe_dump(doc))
    path = folder / f"plan{suffix}"
    path.write_text(text, encoding="utf-8")
    for argv in (["edit", "validate", str(path)], ["edit", "validate", str(path), "--model", "inceptionv1_caffe"]):
        rc, err = run_cli(argv)
        assert_clean(rc, err, argv)


ENTRY_KINDS = ["jpeg", "truncated", "empty", "random", "fifo", "dangling", "loop", "devnull", "to_image",
               "dir_to_root", "class_dir", "png_gray", "text"]


@FUZZ
@given(entries=st.lists(st.tuples(st.sampled_from(ENTRY_KINDS), st.sampled_from(["n01440764", "n01443537", "nXXX"]),
                                  st.sampled_from([".JPEG", ".jpg", ".png", ".txt", ""]), st.integers(0, 2**16)),
                        min_size=0, max_size=8))
def test_random_image_folders(tmp_path_factory, entries):
    root = tmp_path_factory.mktemp("imgs")
    good = root.parent / f"{root.name}-good.JPEG"
    good.write_bytes(jpeg_bytes(32, 24, 0))
    for i, (kind, wnid, ext, seed) in enumerate(entries):
        p = root / f"{wnid}_{i}{ext}"
        if kind == "jpeg":
            p.write_bytes(jpeg_bytes(8 + seed % 64, 8 + seed % 48, seed))
        elif kind == "truncated":
            p.write_bytes(jpeg_bytes(40, 30, seed)[: 20 + seed % 400])
        elif kind == "empty":
            p.write_bytes(b"")
        elif kind == "random":
            p.write_bytes(np.random.default_rng(seed).integers(0, 256, seed % 2000 + 1, dtype=np.uint8).tobytes())
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "dangling":
            p.symlink_to(root / "missing.JPEG")
        elif kind == "loop":
            p.symlink_to(p)
        elif kind == "devnull":
            p.symlink_to("/dev/null")
        elif kind == "to_image":
            p.symlink_to(good)
        elif kind == "dir_to_root":
            (root / wnid).symlink_to(root) if not (root / wnid).exists() else None
        elif kind == "class_dir":
            (root / wnid).mkdir(exist_ok=True) if not (root / wnid).is_symlink() else None
            if (root / wnid).is_dir() and not (root / wnid).is_symlink():
                (root / wnid / f"{i}{ext}").write_bytes(jpeg_bytes(16, 16, seed))
        elif kind == "png_gray":
            Image.new("L", (5 + seed % 30, 5 + seed % 20), seed % 256).save(root / f"{wnid}_{i}.png")
        elif kind == "text":
            p.write_text("not an image")
    with time_limit(60):
        files, skipped = scan_images(root)
        assert len({f.resolve() for f in files}) <= len(files)
        try:
            assert list_images(root) == files
        except ValueError as e:
            assert not files and "no images" in str(e)
        ds = ImageFolderDataset(root, {"n01440764": 0, "n01443537": 1})
        paths = [p for p, _, _ in ds.samples]
        assert len(set(paths)) == len(paths)  # no entry listed twice
        seen = [Path(p).resolve() for p in paths]
        for target in {t for t in seen if seen.count(t) > 1}:  # one file reached twice: only through file symlinks
            assert sum(not Path(p).is_symlink() for p, t in zip(paths, seen) if t == target) <= 1, (target, paths)
        for i in range(len(ds)):
            item = ds[i]
            if item.image is None:
                assert isinstance(item.error, str) and item.error
            else:
                assert item.image.shape == (3, 224, 224)
                assert 0.0 <= float(item.image.min()) and float(item.image.max()) <= 1.0

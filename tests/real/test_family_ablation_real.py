"""family-ablation study end to end (tiny settings): CLI → report folder, statistics, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from studies.cli import main

ARGS = ["study", "family-ablation", "--model", "inceptionv1_caffe", "--limit", "12", "--families", "mixed3b/curves",
        "--modes", "zero,mean", "--controls", "1", "--reference-images", "8", "--bootstrap", "300", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, images_dir):
    root = tmp_path_factory.mktemp("fam")
    outs = []
    for i in range(2):  # same command twice, each with a fresh cache: recomputed, not loaded
        out = root / f"run{i}"
        rc = main([*ARGS, "--images", str(images_dir), "--cache-dir", str(root / f"cache{i}"), "--out", str(out)])
        assert rc == 0
        outs.append(out)
    return outs


def test_report_files(runs):
    out = runs[0]
    for f in ("config.yaml", "results.csv", "per_image.csv", "class_changes.csv", "accuracy_deltas.png",
              "most_affected.png", "summary.md", "report.html", "metrics.json"):
        assert (out / f).is_file(), f
    assert not any(p.name.startswith(".") and p.name != ".circuits-report" for p in out.iterdir())
    res = pd.read_csv(out / "results.csv")
    assert set(res["kind"]) == {"baseline", "family", "control"}
    assert len(res) == 1 + 2 * 2
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 12 * 5 and "variant" in per_image
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_images"] == 12 and m["sweep"]["computed"] == 5
    assert "disjoint" in m["reference"]


def test_cis_contain_point_and_p_in_range(runs):
    res = pd.read_csv(runs[0] / "results.csv")
    r = res[res["kind"] != "baseline"]
    for tag in ("top1", "top5"):
        assert (r[f"{tag}_ci_low"] <= r[f"{tag}_delta"] + 1e-12).all()
        assert (r[f"{tag}_delta"] <= r[f"{tag}_ci_high"] + 1e-12).all()
        assert r[f"{tag}_mcnemar_p"].between(0, 1).all()
        base = res[res["kind"] == "baseline"][tag].item()
        assert np.allclose(r[tag] - base, r[f"{tag}_delta"])
    # control units: same count as the family, none shared, same branches
    m = json.loads((runs[0] / "metrics.json").read_text())
    fam, ctl = m["unit_sets"]["mixed3b/curves"], m["unit_sets"]["mixed3b/curves~control1"]
    assert len(fam["units"]) == len(ctl["units"]) and not set(fam["units"]) & set(ctl["units"])


def test_same_command_twice_identical(runs):
    a, b = (r / "results.csv" for r in runs)
    assert a.read_bytes() == b.read_bytes()


def test_refuses_nonempty_out_and_bad_images(runs, tmp_path, images_dir, capsys):
    rc = main([*ARGS, "--images", str(images_dir), "--out", str(runs[0])])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main([*ARGS, "--images", str(empty), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no usable labelled image" in capsys.readouterr().err
    rc = main([*ARGS, "--images", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2 and not (tmp_path / "o").exists()

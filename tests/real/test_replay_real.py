"""``circuits replay DIR/config.yaml``: a small curve-ablation re-run from its report's config
gives the same numbers; the config records the provenance; the report page renders."""

from __future__ import annotations

import json

import yaml
from html_check import check_report_html

from studies.cli import main
from studies.cli.replay import compare_metrics
from studies.curve_ablation import CurveAblationConfig, run_curve_ablation


def test_replay_curve_ablation_same_numbers(tmp_path, images_dir, capsys):
    cfg = CurveAblationConfig(images=str(images_dir), limit=6, reference_images=8, orientation_step=30.0,
                              radii=[27.0, 60.0], downstream=False, batch_size=8)
    first = tmp_path / "first"
    m = run_curve_ablation(cfg, first, progress=False)
    doc = yaml.safe_load((first / "config.yaml").read_text())
    assert doc["study"] == "curve-ablation" and doc["limit"] == 6 and doc["reference_images"] == 8
    prov = doc["provenance"]
    assert len(prov["weights"]["sha256"]) == 64 and prov["torch"].startswith("2.") and prov["torchvision"]
    assert prov["device"] == "cpu" and prov["seed"] == 0 and isinstance(prov["command_line"], list)
    assert json.loads((first / "metrics.json").read_text())["provenance"]["weights"] == prov["weights"]
    assert m["classification"]["n_images"] == 6

    second = tmp_path / "second"
    assert main(["replay", str(first / "config.yaml"), "--out", str(second), "--quiet"]) == 0
    assert "same numbers" in capsys.readouterr().out
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (first, second))
    assert compare_metrics(a, b) == [] and a["classification"] == b["classification"]
    assert a["family"] == b["family"]
    assert (first / "units.csv").read_bytes() == (second / "units.csv").read_bytes()
    # a changed number is caught
    b["classification"]["top1_after"] += 0.01
    assert compare_metrics(a, b) == ["classification.top1_after"]
    check_report_html(first, tmp_path / "chromium", min_figures=2, min_tables=1)


def test_replay_rejects_bad_config(tmp_path, capsys):
    bad = tmp_path / "config.yaml"
    bad.write_text("model: inceptionv1_caffe\n")
    assert main(["replay", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not a study config" in capsys.readouterr().err
    bad.write_text("study: nope\n")
    assert main(["replay", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "unknown study 'nope'" in capsys.readouterr().err

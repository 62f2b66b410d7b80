"""``circuits study sweep``: every single-unit ablation of a family, cached per plan (a second
run loads every plan from the cache and gives the same table)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from edits import Ablate, EditPlan
from studies.cli import main


def test_sweep_runs_resumes_and_reads_plan_files(tmp_path, images_dir, monkeypatch):
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    plan = tmp_path / "two.yaml"
    EditPlan([Ablate("3b:358,3b:9")], name="two").save(plan)
    args = ["study", "sweep", "--images", str(images_dir), "--limit", "4", "--single-unit-ablations",
            "mixed3a/lines", "--plans", str(plan), "--quiet"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    a = pd.read_csv(tmp_path / "a" / "results.csv")
    b = pd.read_csv(tmp_path / "b" / "results.csv")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 1 + 7 + 1 and "two" in set(a["variant"])
    m1 = json.loads((tmp_path / "a" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert len(m1["computed"]) == 9 and m2["computed"] == [] and len(m2["loaded_from_cache"]) == 9
    html = (tmp_path / "a" / "report.html").read_text()
    assert "<table" in html and "Sweep of 8 plans" in html and "loaded 0 from the cache" in html
    assert all(f"<td>{v}</td>" in html for v in a["variant"])  # every variant's row is in the page
    changes = pd.read_csv(tmp_path / "a" / "changes.csv")  # per plan: scipy paired stats vs unedited
    assert len(changes) == 8 and changes["mcnemar_p"].between(0, 1).all()
    assert "small sample (4 images)" in (tmp_path / "a" / "summary.md").read_text()
    from html_check import check_report_html

    check_report_html(tmp_path / "a", tmp_path / "chromium", min_figures=1, min_tables=1)


def test_single_unit_ablations_of_a_whole_layer(caffe_model):
    from studies.sweep_study import SweepConfig, build_plans

    plans = build_plans(SweepConfig(single_unit_ablations="3b"), caffe_model)
    assert len(plans) == 480 and list(plans)[0] == "ablate-mixed3b:0" and list(plans)[-1] == "ablate-mixed3b:479"
    assert [str(u) for u in plans["ablate-mixed3b:379"].edits[0].unit_list(caffe_model.spec)] == ["mixed3b:379"]
    with pytest.raises(KeyError, match="valid"):
        build_plans(SweepConfig(single_unit_ablations="mixed9z"), caffe_model)

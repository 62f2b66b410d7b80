"""Combing study: a small end-to-end run through the CLI, exact attribution, exact pruning."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from circuits.expanded import expand
from circuits.geometry import measurement_window
from edits import EditPlan
from studies.cli import main
from studies.combing import attribute, unit_bias
from studies.measure import stimuli as S

UNITS = "mixed3b:9,mixed3a:92"  # a 1x1-branch unit (exact attribution) and a 3x3-branch unit


@pytest.fixture(scope="module")
def report(tmp_path_factory, images_dir):
    out = tmp_path_factory.mktemp("runs") / "combing"
    rc = main(["study", "combing", "--model", "inceptionv1_caffe", "--images", str(images_dir), "--units", UNITS,
               "--limit", "8", "--map-images", "4", "--orientation-step", "30", "--top-pathways", "4",
               "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_report_files(report):
    names = {p.name for p in report.iterdir()}
    for f in ("config.yaml", "results.csv", "combing_before_after.png", "pathways.csv", "attribution_maps.png",
              "summary.md", "report.html", "metrics.json", "plan.json"):
        assert f in names, f
    assert not any(n.startswith(".") and n != ".circuits-report" for n in names)  # only the marker
    m = json.loads((report / "metrics.json").read_text())
    assert m["classification"]["n_images"] == 8
    assert set(m["pruned"]) == set(UNITS.split(","))
    assert all(len(v) <= 4 for v in m["pruned"].values())
    res = pd.read_csv(report / "results.csv")
    assert {"unit", "variant", "measure", "value"} <= set(res.columns)
    assert {"before", "after"} <= set(res["variant"])
    assert "combing_index_both" in set(res["measure"])
    pw = pd.read_csv(report / "pathways.csv")
    top = pw[pw["pruned"]]
    assert (top["attr_diff"] > 0).all()
    # the pruned sources are the top-ranked ones
    assert (top["rank"] <= 4).all()
    assert m["attribution_check"]["max_abs_residual_exact"] < 1e-2
    assert "## Findings" in (report / "summary.md").read_text()


def test_attribution_exact_for_1x1_unit(caffe_model):
    layer, d = "mixed3b", 9
    assert caffe_model.spec.branch_of(layer, d) == "1x1"
    size, _, center = measurement_window(caffe_model.spec, layer)
    st = S.curves([5.0], [12.0]) + S.combed_curves([5.0], [12.0], "both", 8.0, 8.0)
    attr, pre = attribute(caffe_model, layer, d, st.at(size, center).render())
    bias = unit_bias(caffe_model, layer, d)
    np.testing.assert_allclose(attr.sum(1) + bias, pre, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose((attr[1] - attr[0]).sum(), pre[1] - pre[0], rtol=1e-5, atol=1e-3)


def test_pruned_expanded_weights_are_zero(report, caffe_model):
    plan = EditPlan.load(report / "plan.json")
    edited, _ = plan.apply(caffe_model)
    pw = pd.read_csv(report / "pathways.csv")
    for unit, g in pw.groupby("unit"):
        layer, d = unit.split(":")
        src = g["source_layer"].iloc[0]
        pruned = g.loc[g["pruned"], "source_index"].astype(int).tolist()
        kept = g.loc[~g["pruned"], "source_index"].astype(int).tolist()
        assert pruned
        w_after = expand(edited, src, layer, dst_units=[int(d)]).weight[0]
        w_before = expand(caffe_model, src, layer, dst_units=[int(d)]).weight[0]
        assert torch.count_nonzero(w_after[pruned]) == 0
        assert torch.count_nonzero(w_before[pruned]) > 0
        torch.testing.assert_close(w_after[kept], w_before[kept], rtol=1e-5, atol=1e-6)


def test_report_html_renders(report, tmp_path):
    from html_check import check_report_html

    check_report_html(report, tmp_path / "chromium", min_figures=2, min_tables=1)

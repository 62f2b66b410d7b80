"""The echo study (Curve Circuits edit) end to end on real weights, coarse settings: CLI → report folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from edits import EditPlan
from studies.cli import main
from studies.echo import VARIANTS


@pytest.fixture(scope="module")
def report(tmp_path_factory, images_dir):
    out = tmp_path_factory.mktemp("runs") / "echo"
    rc = main(["study", "echo", "--model", "inceptionv1_caffe", "--images", str(images_dir), "--limit", "8",
               "--orientation-step", "30", "--vis-steps", "4", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_report_files(report):
    names = {p.name for p in report.iterdir()}
    for f in ("config.yaml", "results.csv", "tuning.csv", "radial_tuning.png", "echo_by_layer.png", "summary.md",
              "report.html", "metrics.json", "classification.csv", "featurevis_variants.png",
              *(f"plan_{v}.json" for v in VARIANTS[1:])):
        assert f in names, f
    assert not any(n.startswith(".") and n != ".circuits-report" for n in names)  # only the marker
    cfg = yaml.safe_load((report / "config.yaml").read_text())
    assert cfg["seed"] == 0 and cfg["limit"] == 8 and cfg["orientation_step"] == 30
    for v in VARIANTS[1:]:  # the plans load back and validate
        EditPlan.load(report / f"plan_{v}.json").validate("inceptionv1_caffe")
    # the summary's table prints the metrics.json medians of each variant
    m = json.loads((report / "metrics.json").read_text())
    summary = (report / "summary.md").read_text()
    for v in VARIANTS:
        r = m["variants"][v]
        assert f"| {v} | {r['description']} | {r['median_echo_ratio']:.3f} | {r['median_peak']:.1f} |" in summary, v
    assert (report / "radial_tuning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_have_four_variants(report):
    m = json.loads((report / "metrics.json").read_text())
    assert list(m["variants"]) == list(VARIANTS)
    assert list(m["featurevis"]["median_objective"]) == list(VARIANTS) and m["featurevis"]["steps"] == 4
    for v in VARIANTS:
        r = m["variants"][v]
        assert r["n_images"] == 8 and 0 <= r["top1"] <= r["top5"] <= 1
        assert r["median_echo_ratio"] is not None
    assert all(p["validator"] == "accepted" for p in m["plans"].values())
    assert set(m["early_layers_unedited"]) == {"conv2d2", "mixed3a"}
    summary = (report / "summary.md").read_text()
    assert "Does BVLC reproduce the Lucid finding?" in summary
    assert "1x1 branch" in summary  # the 1x1 units (no bottleneck) are stated


def test_results_tidy(report):
    r = pd.read_csv(report / "results.csv")
    for c in ("variant", "unit", "layer", "echo_ratio", "peak", "tuning_width", "preferred_orientation"):
        assert c in r.columns
    fam = r[r["layer"] == "mixed3b"]
    n = fam["unit"].nunique()
    assert n >= 10 and len(fam) == 4 * n
    assert set(r[r["layer"] != "mixed3b"]["variant"]) == {"a_unedited"}


def _own_metrics(g: pd.DataFrame, step: float) -> dict:
    """Radial-curve measures of one unit's curve responses, written out independently in numpy:
    mean positive response over radii per orientation; vector-sum angle; bins ≥ half peak × step;
    max within 30° of argmax + 180° over the peak."""
    rad = g.assign(p=g["response"].clip(lower=0)).groupby("orientation")["p"].mean()
    o, r = rad.index.to_numpy(float), rad.to_numpy(float)
    peak = r.max()
    opposite = np.abs((o - o[r.argmax()] + 180) % 360 - 180) >= 150
    return {"peak": peak, "tuning_width": (r >= peak / 2).sum() * step, "echo_ratio": r[opposite].max() / peak,
            "preferred_orientation": np.degrees(np.angle((r * np.exp(1j * np.radians(o))).sum())) % 360}


def test_echo_metrics_recomputed_from_tuning_csv(report):
    """Every unit × variant row of results.csv and every median in metrics.json, recomputed
    from the raw responses in tuning.csv (30° steps)."""
    t = pd.read_csv(report / "tuning.csv")
    res = pd.read_csv(report / "results.csv").set_index(["variant", "unit"])
    t = t[t["kind"] == "curve"]
    n = 0
    for (variant, unit), g in t.groupby(["variant", "unit"]):
        own, row = _own_metrics(g, 30.0), res.loc[(variant, unit)]
        if own["peak"] <= 0:
            assert row["peak"] == 0 and np.isnan(row["echo_ratio"])
            continue
        n += 1
        for k in ("peak", "tuning_width", "echo_ratio"):
            assert row[k] == pytest.approx(own[k], rel=1e-6, abs=1e-9), (variant, unit, k)  # CSV float32 round trip
        assert abs((row["preferred_orientation"] - own["preferred_orientation"] + 180) % 360 - 180) < 1e-4
    assert n >= len(res) - 2
    m = json.loads((report / "metrics.json").read_text())
    for v in VARIANTS:
        med = res.loc[v]
        med = med[med["layer"] == "mixed3b"]["echo_ratio"].median()
        assert m["variants"][v]["median_echo_ratio"] == pytest.approx(med, rel=1e-6), v


def test_control_b_vs_a(report):
    """Linearising changes nothing for the 1x1 units (no bottleneck). For 3x3/5x5 units removing the
    bottleneck ReLU is *not* a small change in BVLC (negative bottleneck pre-activations now pass;
    peaks grow several-fold), so (b), not (a), is the control for (c)/(d) — documented in the summary."""
    r = pd.read_csv(report / "results.csv")
    fam = r[r["layer"] == "mixed3b"].pivot_table(index=["unit", "branch"], columns="variant", values="peak")
    one = fam.xs("1x1", level="branch")
    assert ((one["b_linearized"] - one["a_unedited"]).abs() <= 1e-3 * one["a_unedited"].abs() + 1e-3).all()
    m = json.loads((report / "metrics.json").read_text())
    assert m["control_max_abs_peak_change_by_branch"]["1x1"] < 1e-3
    assert "Control (b) vs (a)" in (report / "summary.md").read_text()


def test_d_never_below_c(report):
    """Negative weights removed from non-negative (post-ReLU) mixed3a sources can only raise pre-activations."""
    t = pd.read_csv(report / "tuning.csv")
    t = t[t["layer"] == "mixed3b"]
    piv = t.pivot_table(index=["unit", "orientation", "radius"], columns="variant", values="response")
    assert len(piv) > 0
    diff = piv["d_curves_positive"] - piv["c_curves_only"]
    assert (diff >= -1e-3 * piv["c_curves_only"].abs().clip(lower=1)).all(), float(diff.min())


def test_report_html_renders(report, tmp_path):
    from html_check import check_report_html

    check_report_html(report, tmp_path / "chromium", min_figures=3, min_tables=1)

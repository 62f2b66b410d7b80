"""Tuning measures on real BVLC weights: joint tuning in σ, radial tuning at 0.5°, curve vs
line, combing, angles vs curves, the ``circuits tune`` command, and errors before compute."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from circuits.units import resolve_targets
from studies.cli import main
from studies.measure import stimuli as S
from studies.measure import tuning as T
from studies.measure.images import load_reference_images
from studies.measure.statistics import reference_statistics

UNITS = ["3b:358", "3b:9"]  # BVLC mixed3b curve units (catalog mixed3b/curves): 5x5 and 1x1 branches


@pytest.fixture(scope="module")
def stats(caffe_model, images_dir):
    return reference_statistics(caffe_model, "mixed3b", load_reference_images(images_dir, 8))


@pytest.fixture(scope="module")
def sweep(caffe_model):
    return T.joint_sweep(caffe_model, UNITS, orientation_step=15, radii=[10, 25, 60, 150])


def test_joint_tuning_in_sigma(sweep, stats):
    joint = T.joint_tuning(sweep, stats)
    assert len(joint) == 2 * 24 * 4  # curves only: units × orientations × radii
    st = stats.loc[joint["index"]]
    np.testing.assert_allclose(joint["response_sigma"], (joint["response"] - st["mean"].to_numpy()) / st["std"].to_numpy())
    # a curve detector: its best curve is many σ above its dataset mean (Curve Detectors: ≈24σ for Lucid 3b:379)
    best = joint.groupby("unit")["response_sigma"].max()
    assert (best > 5).all(), best
    raw = T.joint_tuning(sweep)
    assert "response_sigma" not in raw and np.array_equal(raw["response"], joint["response"])
    # a {layer: stats} mapping works the same
    np.testing.assert_allclose(T.joint_tuning(sweep, {"mixed3b": stats})["response_sigma"], joint["response_sigma"])


def test_radial_tuning_at_half_degree_resolution(caffe_model):
    df = T.joint_sweep(caffe_model, ["3b:358"], orientation_step=0.5, radii=[40], lines=False)
    rad = T.radial_tuning(df)
    assert len(rad) == 720 and rad["orientation"].diff().dropna().eq(0.5).all()
    m = T.tuning_metrics(rad).iloc[0]
    # frozen in the catalog at 177.5° from a 10° sweep over 9 radii
    assert T.angular_difference(m["preferred_orientation"], 177.5) < 15
    assert m["echo_ratio"] < 0.1 and 0 < m["tuning_width"] < 90
    # the exact values, from the 720 raw responses in plain numpy (one radius: radial = max(r, 0))
    r = df["response"].clip(lower=0).to_numpy()
    o = df["orientation"].to_numpy()
    assert m["peak"] == r.max() and m["peak_orientation"] == o[r.argmax()]
    assert m["tuning_width"] == 0.5 * (r >= r.max() / 2).sum()
    assert m["echo_ratio"] == pytest.approx(r[np.abs((o - o[r.argmax()] + 180) % 360 - 180) >= 150].max() / r.max())


def test_curve_line_preference(sweep, stats):
    clp = T.curve_line_preference(sweep, stats).set_index("unit")
    for unit, g in sweep.groupby("unit"):
        assert clp.loc[unit, "best_curve"] == g[g["kind"] == "curve"]["response"].max()
        assert clp.loc[unit, "best_line"] == g[g["kind"] == "line"]["response"].max()
        idx = int(unit.split(":")[1])
        mean, std = stats.loc[idx, "mean"], stats.loc[idx, "std"]
        assert clp.loc[unit, "curve_sigma"] == pytest.approx((clp.loc[unit, "best_curve"] - mean) / std)
        assert clp.loc[unit, "ratio_sigma"] == pytest.approx(
            (clp.loc[unit, "best_curve"] - mean) / max(clp.loc[unit, "best_line"] - mean, 1e-9))
    assert (clp["ratio_sigma"] > 2).all()  # curve detectors prefer curves to lines
    with pytest.raises(ValueError, match="line"):
        T.curve_line_preference(sweep[sweep["kind"] == "curve"])


@pytest.fixture(scope="module")
def best(caffe_model, sweep):
    return T.best_stimulus(caffe_model, UNITS, tuning=sweep, radii=[10, 25, 60, 150])


def test_best_stimulus(best, sweep, caffe_model):
    """Brute force, independently of best_stimulus: the vector-sum angle of the mean positive
    response over radii (numpy), then every radius's curve at exactly that angle through
    model.run (the naive path; best_stimulus uses the cone), and the argmax."""
    curves = sweep[sweep["kind"] == "curve"]
    assert list(best["unit"]) == ["mixed3b:358", "mixed3b:9"]
    for _, b in best.iterrows():
        g = curves[curves["unit"] == b["unit"]]
        rad = g.assign(p=g["response"].clip(lower=0)).groupby("orientation")["p"].mean()
        pref = float(np.degrees(np.angle((rad.to_numpy() * np.exp(1j * np.radians(rad.index.to_numpy()))).sum())) % 360)
        assert T.angular_difference(b["preferred_orientation"], pref) < 1e-9
        brute = T.measure(caffe_model, [b["unit"]], S.curves([pref], [10, 25, 60, 150]), fast=False)
        top = brute.loc[brute["response"].idxmax()]
        assert b["best_radius"] == top["radius"]
        assert b["best_response"] == pytest.approx(top["response"], rel=1e-4, abs=1e-3)
        assert b["best_response"] > 0


def test_combing_index(caffe_model, best):
    comb = T.combing_index(caffe_model, UNITS, best=best)
    assert len(comb) == 2 * 3 and set(comb["side"]) == {"inward", "outward", "both"}
    b = best.set_index("unit")
    for _, r in comb.iterrows():
        # the plain curve is the unit's best stimulus, measured again
        assert r["plain"] == pytest.approx(b.loc[r["unit"], "best_response"], rel=1e-4, abs=1e-3)
        assert r["combing_index"] == pytest.approx(r["combed"] / r["plain"])
        assert r["teeth_index"] == pytest.approx(r["teeth"] / r["plain"])
        assert r["orientation"] == pytest.approx(b.loc[r["unit"], "preferred_orientation"])


def test_angle_vs_curve(caffe_model, best):
    av = T.angle_vs_curve(caffe_model, UNITS, best=best, opening_degrees=(60, 90), corner_radii=(0, 16, 128))
    b = best.set_index("unit")
    for unit, g in av.groupby("unit"):
        angles = g[g["kind"] == "angle"]
        assert len(angles) == 2 * 3
        ref = g[(g["kind"] == "curve") & np.isclose(g["radius"], b.loc[unit, "best_radius"])]
        assert ref["ratio_to_best_curve"].iloc[0] == pytest.approx(1.0)
        # in the 91-px receptive field a 90° angle rounded with r = 128 is the curve of radius 128
        a128 = angles[(angles["radius"] == 128) & (angles["opening_degrees"] == 90)]["response"].iloc[0]
        c128 = g[(g["kind"] == "curve") & (g["radius"] == 128)]["response"].iloc[0]
        assert a128 == pytest.approx(c128, rel=1e-3, abs=1e-2)
    summ = T.angle_curve_summary(av)
    assert set(summ["unit"]) == {"mixed3b:358", "mixed3b:9"} and (summ["best_curve"] > 0).all()


def test_errors_come_before_any_compute(caffe_model, monkeypatch):
    def no_compute(*a, **k):
        raise AssertionError("computed before validating")

    monkeypatch.setattr(T, "measure", no_compute)
    with pytest.raises(IndexError, match="0..479"):
        T.joint_sweep(caffe_model, ["3b:480"], 10)
    with pytest.raises(S.StimulusError, match="orientation_step"):
        T.joint_sweep(caffe_model, ["3b:358"], float("nan"))
    with pytest.raises(S.StimulusError, match="radii"):
        T.joint_sweep(caffe_model, ["3b:358"], 10, radii=[-5])
    with pytest.raises(S.StimulusError, match="side"):
        T.combing_index(caffe_model, ["3b:358"], sides=("sideways",))
    with pytest.raises(S.StimulusError, match="opening_degrees"):
        T.angle_vs_curve(caffe_model, ["3b:358"], opening_degrees=(0,))
    with pytest.raises(IndexError):
        T.combing_index(caffe_model, ["conv2d2:192"])


# ----------------------------------------------------------------------------- CLI
def test_cli_tune_without_images(tmp_path, capsys):
    out = tmp_path / "tune"
    rc = main(["tune", "3b:358", "--model", "inceptionv1_caffe", "--out", str(out), "--orientation-step", "30",
               "--radii", "12", "40", "120"])
    assert rc == 0
    text = capsys.readouterr()
    assert (text.out + text.err).count("skipping σ units and dataset statistics") == 1  # said once
    names = {p.name for p in out.iterdir()}
    assert {"joint.csv", "radial.csv", "units.csv", "combing.csv", "angles.csv", "lines.csv", "radial.png",
            "joint.png", "summary.json"} <= names
    assert not {"histogram.csv", "top_examples.csv"} & names
    s = json.loads((out / "summary.json").read_text())
    assert s["units"] == ["mixed3b:358"] and s["n_orientations"] == 12 and "skipped" in s
    # contents: radial.csv from joint.csv, and units.csv's measures from radial.csv, in plain numpy
    joint, radial = pd.read_csv(out / "joint.csv"), pd.read_csv(out / "radial.csv")
    assert len(joint) == 12 * 3 and sorted(set(joint["radius"])) == [12, 40, 120]
    own = joint.assign(p=joint["response"].clip(lower=0)).groupby("orientation")["p"].mean()
    np.testing.assert_allclose(radial["response"], own.to_numpy(), rtol=1e-6)
    o, r = radial["orientation"].to_numpy(), radial["response"].to_numpy()
    u = pd.read_csv(out / "units.csv").iloc[0]
    assert u["peak"] == pytest.approx(r.max(), rel=1e-6) and u["tuning_width"] == 30 * (r >= r.max() / 2).sum()
    assert u["echo_ratio"] == pytest.approx(r[np.abs((o - o[r.argmax()] + 180) % 360 - 180) >= 150].max() / r.max())
    pref = np.degrees(np.angle((r * np.exp(1j * np.radians(o))).sum())) % 360
    assert T.angular_difference(u["preferred_orientation"], pref) < 1e-4
    lines = pd.read_csv(out / "lines.csv")
    assert len(lines) == 6 and u["best_line"] == pytest.approx(lines["response"].max(), rel=1e-6)
    # a non-empty --out without --overwrite is refused before any compute
    assert main(["tune", "3b:358", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_tune_with_images_and_a_family(tmp_path, images_dir, capsys):
    out = tmp_path / "fam"
    rc = main(["tune", "mixed3b/curves", "--out", str(out), "--images", str(images_dir), "--limit", "6",
               "--reference-images", "6", "--top-k", "2", "--orientation-step", "45", "--radii", "15", "60",
               "--rotation-step", "90", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"dataset_summary.csv", "histogram.csv", "top_examples.csv", "rotation.csv", "histogram.png",
            "top_examples.png", "rotation.png"} <= names
    s = json.loads((out / "summary.json").read_text())
    assert s["targets"] == ["mixed3b/curves"] and len(s["units"]) >= 5 and "sigma" in s
    assert s["dataset"]["n_images"] == 6
    assert all("curve_sigma" in r and "dataset_frac_positive" in r for r in s["per_unit"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folders left
    idx = [int(u.split(":")[1]) for u in (r["unit"] for r in s["per_unit"])]
    assert idx == sorted(idx)  # numeric unit order
    assert "small sample" in (out / "summary.md").read_text()
    from html_check import check_report_html

    check_report_html(out, tmp_path / "chromium", min_figures=6, min_tables=1)


def test_resolve_targets(caffe_model):
    """The targets of `circuits tune` / sweeps, through the one unit/family parser."""
    units, labels = resolve_targets(["3b:358,3b:9", "mixed3b:358", "conv2d2:1"], caffe_model.spec)
    assert [str(u) for u in units] == ["mixed3b:358", "mixed3b:9", "conv2d2:1"]
    assert labels == ["3b:358", "3b:9", "mixed3b:358", "conv2d2:1"]
    fam, labels = resolve_targets(["mixed3b/curves"], caffe_model.spec)
    assert len(fam) >= 5 and labels == ["mixed3b/curves"] and all(u.layer == "mixed3b" for u in fam)

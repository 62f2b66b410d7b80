"""Dataset pass, range examples and attribution on the real BVLC weights and sample images."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from circuits.catalog import catalog
from circuits.units import group_by_layer
from studies.measure.activation_stats import ActivationObserver, RangeBin, finish
from studies.measure.attribution import attribute
from studies.measure.dataset import unit_statistics
from studies.measure.images import list_images as image_files
from studies.measure.images import load_image
from studies.measure.unit_acts import unit_pre_activations

N_IMAGES = 12


@pytest.fixture(scope="module")
def files(images_dir):
    return image_files(images_dir)[:N_IMAGES]


@pytest.fixture(scope="module")
def analysis(caffe_model, files):
    ranges = [RangeBin("top", 0.99, 1.0), RangeBin("mid", 0.4, 0.6), RangeBin("pos", 0.0, 50.0, "value"),
              RangeBin("neg", -math.inf, -200.0, "value")]
    obs = ActivationObserver(caffe_model, ranges, k=3, seed=4)
    stats = unit_statistics(caffe_model, "3b:358,3b:9", files, k=2, batch_size=6, observers=[obs], num_workers=0)
    return stats, finish(obs, stats, files, caffe_model)


def test_fast_pre_activations_equal_model_run(caffe_model, sample_batch):
    x = sample_batch(0, 2)
    fam = catalog(caffe_model)["mixed3b/curves"]
    got = unit_pre_activations(caffe_model, x, group_by_layer(list(fam)))["mixed3b"]
    want = caffe_model.run(x, ["mixed3b_pre_relu"])["mixed3b_pre_relu"][:, list(fam.units)]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-3)


def test_sparsity_fractions(analysis):
    stats, rep = analysis
    s = rep.summary.set_index("unit")
    for u in ("mixed3b:358", "mixed3b:9"):
        for col in ("frac_active", "frac_images_active", "ev_share_top1", "ev_share_top0.1"):
            assert 0 <= s.loc[u, col] <= 1
        assert s.loc[u, "n_values"] == N_IMAGES * 28 * 28 and s.loc[u, "n_images"] == N_IMAGES
        assert s.loc[u, "frac_images_active"] >= s.loc[u, "frac_active"]
        assert s.loc[u, "ev_share_top0.1"] <= s.loc[u, "ev_share_top1"] <= s.loc[u, "ev_share_top10"]
        assert s.loc[u, "mean"] < 0 < s.loc[u, "expected_relu"]  # sparse curve units: negative on average
    ev = rep.expected_value.groupby("unit")["ev_share"].sum()
    assert ev.to_numpy() == pytest.approx([1.0, 1.0])


def test_range_examples_inside_ranges_and_remeasured(analysis, caffe_model, files):
    _, rep = analysis
    ex = rep.examples.merge(rep.ranges[["unit", "range", "lo", "hi"]], on=["unit", "range"])
    assert len(ex) == rep.ranges["n_examples"].sum() >= 20 and (rep.ranges["n_examples"] <= 3).all()
    assert ((ex["activation"] >= ex["lo"]) & (ex["activation"] < ex["hi"])).all()
    top = rep.ranges[rep.ranges["range"] == "top"]
    assert (top["hi"] == math.inf).all() and (top["frac_values"].between(0.005, 0.02)).all()
    # the bookkeeping (file, row, col) points at the sampled value: re-measure a few
    for r in ex.iloc[::8].itertuples():  # one per range
        idx = int(r.unit.split(":")[1])
        pre = caffe_model.run(load_image(r.path)[None], ["mixed3b_pre_relu"])["mixed3b_pre_relu"][0, idx]
        assert float(pre[r.row, r.col]) == pytest.approx(r.activation, rel=1e-4, abs=1e-2)
        assert rep.crops[r.unit][r.range].shape[0] == 3


def test_sampling_is_deterministic_and_seeded(caffe_model, files, analysis):
    _, rep = analysis
    again = ActivationObserver(caffe_model, [RangeBin("pos", 0.0, 50.0, "value")], k=3, seed=4)
    stats = unit_statistics(caffe_model, "3b:358", files, k=1, batch_size=5, observers=[again], num_workers=0)
    e2 = finish(again, stats, files, caffe_model).examples
    e1 = rep.examples[(rep.examples["unit"] == "mixed3b:358") & (rep.examples["range"] == "pos")]
    pd.testing.assert_frame_equal(e1[["path", "row", "col", "key"]].reset_index(drop=True),
                                  e2[["path", "row", "col", "key"]].reset_index(drop=True))


def test_attribution_sums_on_real_weights(caffe_model, sample_batch):
    x = sample_batch(3, 2)
    # 3b:9 is a 1x1-branch curve unit: exact, no upstream bias
    a = attribute(caffe_model, "3b:9", x, "mixed3a", "active")
    assert a.bias_terms.abs().max() == 0
    torch.testing.assert_close(a.values.flatten(1).sum(1), a.target, rtol=1e-5, atol=1e-2)
    # 3b:358 (5x5 branch), to 3a and two layers back to conv2d2: exact with the bottleneck bias term
    for src in ("mixed3a", "conv2d2"):
        b = attribute(caffe_model, "3b:358", x, src, "all")
        torch.testing.assert_close(b.values.flatten(1).sum(1) + b.bias_terms, b.target, rtol=1e-5, atol=0.5)
        ref = caffe_model.run(x, ["mixed3b_pre_relu"])["mixed3b_pre_relu"][:, 358]
        torch.testing.assert_close(b.pre, ref, rtol=1e-5, atol=5e-3)


def test_cli_dataset_and_attribute(images_dir, tmp_path, capsys, caffe_model):
    from studies.cli import main

    out = tmp_path / "ds"
    rc = main(["dataset", "3b:9", "--images", str(images_dir), "--out", str(out), "--limit", "4", "--k", "1",
               "--top-k", "1", "--rotation-step", "180", "--no-flow", "--quiet", "--seed", "3"])
    assert rc == 0
    for f in ("summary.csv", "expected_value.csv", "ranges.csv", "range_examples.csv", "comparison.csv",
              "sparsity.png", "units/3b_9_distribution.png", "units/3b_9_ranges.png", "rotation.csv"):
        assert (out / f).is_file(), f
    comp = pd.read_csv(out / "comparison.csv")
    assert comp["unit"].tolist()[1] == "mixed3b:9" and "--seed 3" in comp["command"].iloc[1]
    assert main(["dataset", "3b:9", "--images", str(images_dir), "--out", str(tmp_path / "x"),
                 "--ranges", "q0.5:2"]) == 2
    assert "circuits: error:" in capsys.readouterr().err
    img = sorted(images_dir.glob("*.JPEG"))[0]
    assert main(["attribute", "3b:9", str(img), "--out", str(tmp_path / "att")]) == 0
    tot = pd.read_csv(tmp_path / "att" / "totals.csv")
    assert tot["src"].tolist() == ["mixed3a", "conv2d2"]
    row = tot.iloc[0]
    assert row["attribution_sum"] + row["bias_terms"] == pytest.approx(row["target"], rel=1e-4, abs=0.5)
    assert (tmp_path / "att" / "flow.png").is_file()
    assert main(["attribute", "3b:9", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "a2")]) == 2


def test_attribution_vector_visualization_raises_its_direction(caffe_model, sample_batch):
    """Item 5 of Curve Detectors fig. 8: the attribution vector of 3b:358 to mixed3a on an image,
    used as a direction objective, is driven up by the optimisation (from the noise start), and the
    vector is exactly the attribution summed over positions (what ``circuits attribute`` writes)."""
    from studies.dataset_analysis import _attribution_vis

    img = sample_batch(0, 1)[0]
    att = attribute(caffe_model, "3b:358", img, "mixed3a", "active")
    vec = att.vector()[0]
    assert vec.shape == (256,)
    assert float(vec.sum()) == pytest.approx(float(att.target[0] - att.bias_terms[0]), rel=1e-4, abs=1e-2)
    res = _attribution_vis(caffe_model, "mixed3a", vec, steps=24, seed=0)
    assert res.images.shape[0] == 1 and res.images.min() >= 0 and res.images.max() <= 1
    assert res.history[-1, 0] > res.history[0, 0] + 0.5 * abs(res.history[0, 0])


def test_cli_dataset_reports_skipped_files_and_survives_a_one_colour_image(images_dir, tmp_path, caplog,
                                                                            caffe_model):
    """Undecodable and too-small files are named (one warning line each, on the ``circuits`` logger the
    command prints to stderr) and in run.json; a folder of one black image (no example in most
    activation ranges) still gives a report, not ``error: unit``."""
    import json
    import logging

    from PIL import Image

    from studies.cli import main

    root = tmp_path / "imgs"
    root.mkdir()
    (root / "a.JPEG").symlink_to(sorted(images_dir.glob("*.JPEG"))[0])
    (root / "bad.JPEG").write_bytes(b"\xff\xd8 not a jpeg")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(root / "dot.png")
    out = tmp_path / "ds"
    opts = ["--k", "1", "--top-k", "1", "--rotation-step", "180", "--no-flow", "--quiet"]
    with caplog.at_level(logging.WARNING, logger="circuits"):
        assert main(["dataset", "3b:9", "--images", str(root), "--out", str(out), *opts]) == 0
    err = "\n".join(r.getMessage() for r in caplog.records)
    assert "skipped 1 file(s) that could not be decoded (bad.JPEG: ValueError: cannot decode image" in err
    assert "skipped 1 file(s) that are too small for the dataset analysis (dot.png: 1×1 px is smaller than" in err
    run = json.loads((out / "run.json").read_text())
    assert run["n_images"] == 1 and sorted(p.split("/")[-1] for p, _ in run["skipped"]) == ["bad.JPEG", "dot.png"]
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.new("RGB", (240, 240), (0, 0, 0)).save(grey / "black.png")
    assert main(["dataset", "3b:9", "--images", str(grey), "--out", str(tmp_path / "g"), *opts]) == 0
    assert pd.read_csv(tmp_path / "g" / "summary.csv")["unit"].tolist() == ["mixed3b:9"]

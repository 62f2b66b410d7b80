"""Dataset statistics of units over real images (BVLC weights): the streamed distribution
equals a direct computation, top examples are the true maxima, rotation tuning re-measures
them exactly at 0°, and the fits and histograms are right on synthetic data."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from circuits.geometry import receptive_field
from studies.measure.dataset import rotation_tuning, unit_statistics
from studies.measure.images import list_images, load_image
from studies.report import plots

UNITS = ["3b:358", "conv2d2:146"]
N = 10


@pytest.fixture(scope="module")
def files(images_dir):
    return list_images(images_dir)[:N]


@pytest.fixture(scope="module")
def result(caffe_model, files):
    return unit_statistics(caffe_model, UNITS, files, k=3, batch_size=4, num_workers=0)


@pytest.fixture(scope="module")
def direct(caffe_model, files):
    imgs = torch.stack([load_image(f) for f in files])
    return caffe_model.run(imgs, ["mixed3b_pre_relu", "conv2d2_pre_relu"])


def test_distribution_equals_direct_computation(result, direct):
    s = result.summary.set_index("unit")
    for unit, name, idx in (("mixed3b:358", "mixed3b_pre_relu", 358), ("conv2d2:146", "conv2d2_pre_relu", 146)):
        a = direct[name][:, idx].double().flatten()
        row = s.loc[unit]
        assert row["n_values"] == a.numel() and result.n_images == N
        assert row["mean"] == pytest.approx(float(a.mean()), rel=1e-5, abs=1e-3)
        assert row["std"] == pytest.approx(float(a.std()), rel=1e-5)
        assert row["frac_positive"] == pytest.approx(float((a > 0).double().mean()))
        assert row["min"] == pytest.approx(float(a.min()), abs=1e-3) and row["max"] == pytest.approx(float(a.max()), abs=1e-3)
        h = result.histogram[result.histogram["unit"] == unit]
        assert h["count"].sum() == a.numel()
        assert float((h["density"] * (h["bin_right"] - h["bin_left"])).sum()) == pytest.approx(1.0)
        assert h["bin_left"].min() <= row["min"] and h["bin_right"].max() >= row["max"]
        assert row["tail_rate"] > 0 and row["tail_rate_sigma"] == pytest.approx(row["tail_rate"] * row["std"])


def test_streaming_does_not_change_the_result(caffe_model, files, result):
    other = unit_statistics(caffe_model, UNITS, files, k=3, batch_size=N, num_workers=0)
    cols = ["n_values", "mean", "std", "frac_positive", "min", "max"]
    np.testing.assert_allclose(other.summary[cols].to_numpy(float), result.summary[cols].to_numpy(float), rtol=1e-6)
    assert other.top[["path", "row", "col"]].equals(result.top[["path", "row", "col"]])


def test_top_examples_are_the_best_interior_positions(caffe_model, result, direct, files):
    paths = [str(f) for f in files]
    for unit, name, idx in (("mixed3b:358", "mixed3b_pre_relu", 358), ("conv2d2:146", "conv2d2_pre_relu", 146)):
        layer = name[:-9]
        t = result.top[result.top["unit"] == unit].sort_values("rank")
        assert len(t) == 3 and t["activation"].is_monotonic_decreasing
        rf = receptive_field(caffe_model.spec, layer)
        a = direct[name][:, idx]
        lo = math.ceil(((rf.size - 1) / 2 - rf.offset) / rf.stride)
        hi = math.floor((223 - (rf.size - 1) / 2 - rf.offset) / rf.stride)
        per_image = a[:, lo:hi + 1, lo:hi + 1].flatten(1).max(1).values
        np.testing.assert_allclose(t["activation"], per_image.sort(descending=True).values[:3].numpy(), rtol=1e-5)
        for _, r in t.iterrows():
            i = paths.index(r["path"])
            assert float(a[i, r["row"], r["col"]]) == pytest.approx(r["activation"], rel=1e-5)
            assert (r["x"], r["y"]) == (rf.center(r["col"]), rf.center(r["row"]))
            lo_px, hi_px = rf.span(r["row"])
            assert lo_px >= 0 and hi_px <= 223  # interior: the crop holds the whole receptive field
        crops = result.crops[unit]
        assert crops.shape == (3, 3, rf.size, rf.size)
        r0 = t.iloc[0]
        img = load_image(r0["path"])
        h = (rf.size - 1) // 2
        x, y = int(r0["x"]), int(r0["y"])
        assert torch.equal(crops[0], img[:, y - h:y + h + 1, x - h:x + h + 1])


def test_rotation_tuning_reproduces_the_top_activation_at_zero(caffe_model, result):
    curve, ex = rotation_tuning(caffe_model, result, step=45)
    assert set(curve["unit"]) == set(result.crops) and len(curve) == 2 * 8
    at0 = ex[ex["angle"] == 0].merge(result.top, on=["unit", "rank"])
    np.testing.assert_allclose(at0["response"], at0["activation"], rtol=1e-4, atol=1e-3)
    for unit, g in curve.groupby("unit"):
        g = g.set_index("rotation")
        assert g.loc[0, "relative"] == pytest.approx(1.0)
        assert g.loc[0, "response"] == g["response"].max()  # aligned at each example's best angle
        e = ex[ex["unit"] == unit]
        best = e.loc[e.groupby("rank")["response"].idxmax()]
        assert (best["angle"].to_numpy() == best["best_angle"].to_numpy()).all()
    with pytest.raises(ValueError, match="step"):
        rotation_tuning(caffe_model, result, step=0)


def test_unreadable_files_are_skipped(caffe_model, files, tmp_path):
    for f in files[:3]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    r = unit_statistics(caffe_model, ["3b:358"], tmp_path, k=2, num_workers=0)
    assert r.n_images == 3 and len(r.skipped) == 1 and r.skipped[0][0].endswith("broken.jpg")


def test_errors_before_reading(caffe_model, tmp_path, images_dir):
    with pytest.raises(IndexError, match="0..479"):
        unit_statistics(caffe_model, ["3b:480"], images_dir)
    with pytest.raises(ValueError, match="no images"):
        unit_statistics(caffe_model, ["3b:358"], tmp_path)
    with pytest.raises(FileNotFoundError):
        unit_statistics(caffe_model, ["3b:358"], tmp_path / "missing")
    with pytest.raises(ValueError, match="k must be"):
        unit_statistics(caffe_model, ["3b:358"], images_dir, k=0)


def test_plots(result, caffe_model, tmp_path):
    curve, _ = rotation_tuning(caffe_model, result, step=90)
    plots.plot_histogram(result.histogram, result.summary, tmp_path / "h.png")
    plots.plot_top_examples(result.crops, result.top, tmp_path / "t.png")
    plots.plot_rotation(curve, tmp_path / "r.png")
    for n in ("h.png", "t.png", "r.png"):
        assert (tmp_path / n).stat().st_size > 1000

"""``circuits dataset`` checks its images and layer before any compute (no model is loaded here):
a folder of images smaller than the layer's receptive field, and a layer whose receptive field is
wider than the 224 px crop, are refused with what is needed; skipped files are reported."""

from __future__ import annotations

import logging

import pytest
from PIL import Image

from studies.cli import main
from studies.measure.dataset import check_layer_fits, dataset_files
from studies.measure.images import report_skipped


def _folder(root, sizes):
    root.mkdir()
    for i, (w, h) in enumerate(sizes):
        Image.new("RGB", (w, h), (40 * i, 90, 10)).save(root / f"n01440764_{i}.png")
    return root


def test_one_pixel_images_are_refused_before_compute_naming_the_size_needed(tmp_path, capsys, no_model):
    tiny = _folder(tmp_path / "tiny", [(1, 1), (1, 1), (3, 2)])
    with pytest.raises(ValueError, match=r"all 3 images are smaller than the 91 px receptive field of mixed3b"):
        dataset_files("inceptionv1_caffe", ["mixed3b"], tiny)
    rc = main(["dataset", "3b:379", "--images", str(tiny), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and err.startswith("circuits: error: all 3 images are smaller than the 91 px")
    assert "short side is at least 91 px" in err and not (tmp_path / "out").exists()


def test_small_images_are_skipped_and_the_rest_kept(tmp_path):
    root = _folder(tmp_path / "mixed", [(1, 1), (91, 120), (90, 400), (300, 200)])
    files, skipped = dataset_files("inceptionv1_caffe", ["mixed3b"], root)
    assert [f.name for f in files] == ["n01440764_1.png", "n01440764_3.png"]
    assert [(p.split("/")[-1], why) for p, why in skipped] == [
        ("n01440764_0.png", "1×1 px is smaller than the 91 px receptive field of mixed3b"),
        ("n01440764_2.png", "90×400 px is smaller than the 91 px receptive field of mixed3b")]
    files, skipped = dataset_files("inceptionv1_caffe", ["conv2d0"], root, limit=2)  # 7 px receptive field
    assert len(files) == 1 and len(skipped) == 1


def test_layer_wider_than_the_crop_is_refused_naming_the_deepest_that_fits(tmp_path, capsys, no_model):
    check_layer_fits("inceptionv1_caffe", "mixed4a")  # 171 px: fits
    with pytest.raises(ValueError, match=r"mixed4b units see 235 px .* up to mixed4a \(receptive field ≤ 224 px\)"):
        check_layer_fits("inceptionv1_caffe", "mixed4b")
    root = _folder(tmp_path / "ok", [(256, 256)])
    rc = main(["dataset", "5b:10", "--images", str(root), "--out", str(tmp_path / "out")])
    assert rc == 2 and "mixed5b units see 715 px" in capsys.readouterr().err


def test_skipped_files_are_reported_one_line_with_the_first_reasons(caplog):
    with caplog.at_level(logging.WARNING, logger="circuits"):
        report_skipped("imgs", [("imgs/a.JPEG", "cannot decode image"), ("imgs/b.png", "truncated"),
                                ("imgs/c.png", "x"), ("imgs/d.png", "y")], "could not be decoded")
        report_skipped("imgs", [])
    assert [r.getMessage() for r in caplog.records] == [
        "imgs: skipped 4 file(s) that could not be decoded (a.JPEG: cannot decode image; b.png: truncated; c.png: x; …)"]


def test_tune_with_images_refuses_a_layer_wider_than_the_crop_before_measuring(tmp_path):
    """``tune --images`` on mixed4b+ used to measure every tuning curve, then fail in the dataset pass."""
    import torch

    from circuits.model import InceptionV1
    from studies.tune import tune_report

    torch.manual_seed(0)
    root = _folder(tmp_path / "imgs", [(256, 256)])
    with pytest.raises(ValueError, match=r"mixed4b units see 235 px"):
        tune_report(InceptionV1("inceptionv1_caffe"), "4b:1", tmp_path / "t", images=root, log=pytest.fail)
    assert not (tmp_path / "t").exists()

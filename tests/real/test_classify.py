"""studies.measure.classify: folder evaluation of InceptionV1 (accuracy on the real sample, robustness
to messy folders, layouts, limit, determinism)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from circuits.labels import class_wnids
from circuits.model import InceptionV1
from studies.measure.classify import ClassificationResult, evaluate, summarize, wnid_index
from studies.measure.images import ImageFolderDataset, load_image

# Three sample images (flat names as in imagenet-sample-1000).
PICKS = ("n01440764_tench.JPEG", "n01443537_goldfish.JPEG", "n02123597_Siamese_cat.JPEG")
# torchvision 0.29 deprecates its decoders in favour of TorchCodec; they still work.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")

COLUMNS = ["path", "wnid", "label", "pred", "pred_wnid", "correct_top1", "correct_top5", "top5", "logit_label"]


# ---------------------------------------------------------------- the real sample (slow, once)
@pytest.fixture(scope="module")
def full_result(caffe_model, images_dir) -> ClassificationResult:
    return evaluate(caffe_model, images_dir, progress=False)


def test_accuracy_on_imagenet_sample(full_result, images_dir):
    r = full_result
    # A correct pipeline gives 0.745 / 0.932 (PIL or torchvision resize; data README).
    assert r.top1 >= 0.735, summarize(r)
    assert r.top5 >= 0.92, summarize(r)
    assert r.n_images == 1000 and len(r.per_image) == 1000
    assert r.n_skipped == 0 and r.skipped.empty
    assert summarize(r) == {"top1": r.top1, "top5": r.top5, "n_images": 1000, "n_skipped": 0}


def test_per_image_table_is_consistent(full_result, images_dir):
    df = full_result.per_image
    assert list(df.columns) == COLUMNS
    assert df["path"].tolist() == sorted(str(p) for p in images_dir.iterdir())
    assert df["correct_top1"].mean() == pytest.approx(full_result.top1)
    assert df["correct_top5"].mean() == pytest.approx(full_result.top5)
    wnids = class_wnids("inceptionv1_caffe")
    assert (df["wnid"] == [Path(p).name.split("_")[0] for p in df["path"]]).all()
    assert (df["label"] == [wnids.index(w) for w in df["wnid"]]).all()
    assert df["label"].nunique() == 1000  # one image per class
    assert (df["pred_wnid"] == [wnids[p] for p in df["pred"]]).all()
    assert (df["correct_top1"] == (df["pred"] == df["label"])).all()
    assert all(len(t) == 5 and t[0] == p and len(set(t)) == 5 for t, p in zip(df["top5"], df["pred"], strict=True))
    assert (df["correct_top5"] == [lab in t for lab, t in zip(df["label"], df["top5"], strict=True)]).all()
    assert df["correct_top5"][df["correct_top1"]].all()
    assert np.isfinite(df["logit_label"]).all() and df["logit_label"].dtype == np.float64


# ---------------------------------------------------------------- a messy folder (fast)
def _truncated(src: Path) -> bytes:
    data = src.read_bytes()
    return data[: len(data) * 2 // 3]


@pytest.fixture(scope="module")
def messy(images_dir, tmp_path_factory) -> Path:
    """Both layouts in one folder, plus junk: the same three images flat and in
    ``<wnid>/`` subfolders, a grayscale PNG, an RGBA PNG, a CMYK JPEG, and files to skip."""
    root = tmp_path_factory.mktemp("messy")
    for name in PICKS:
        shutil.copy(images_dir / name, root / name)
        wnid = name.split("_")[0]
        (root / wnid).mkdir()
        shutil.copy(images_dir / name, root / wnid / "copy.JPEG")
    img = Image.open(images_dir / PICKS[0])
    img.convert("L").save(root / "n01440764_gray.png")
    img.convert("RGBA").save(root / "n01440764_rgba.PNG")
    Image.open(images_dir / PICKS[1]).convert("CMYK").save(root / "n01443537_cmyk.jpg")
    # to skip: corrupt, truncated, not an image, unknown class, nested too deep
    (root / "n01440764_corrupt.JPEG").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "n01443537_truncated.JPEG").write_bytes(_truncated(images_dir / PICKS[1]))
    (root / "notes.txt").write_text("not an image\n")
    shutil.copy(images_dir / PICKS[0], root / "n99999999_unknown.JPEG")
    (root / "n02123597" / "deeper").mkdir()
    return root


@pytest.fixture(scope="module")
def messy_result(caffe_model, messy) -> ClassificationResult:
    return evaluate(caffe_model, messy, batch_size=4, num_workers=2, progress=False)


def test_messy_folder_finishes_and_reports_skips(messy_result, messy):
    r = messy_result
    assert r.n_images == 3 + 3 + 3  # flat, nested, gray/rgba/cmyk
    assert r.n_skipped == 5 == len(r.skipped)
    assert list(r.skipped.columns) == ["path", "reason"]
    reasons = {Path(p).relative_to(messy).as_posix(): why for p, why in zip(r.skipped["path"], r.skipped["reason"], strict=True)}
    assert set(reasons) == {
        "n01440764_corrupt.JPEG", "n01443537_truncated.JPEG", "notes.txt",
        "n99999999_unknown.JPEG", "n02123597/deeper",
    }
    assert "cannot decode" in reasons["n01440764_corrupt.JPEG"]
    assert "truncated" in reasons["n01443537_truncated.JPEG"]
    assert "not an image file" in reasons["notes.txt"]
    assert "n99999999" in reasons["n99999999_unknown.JPEG"] and "class list" in reasons["n99999999_unknown.JPEG"]
    assert "nested" in reasons["n02123597/deeper"]
    assert r.per_image["path"].tolist() == sorted(r.per_image["path"])
    assert r.top1 == pytest.approx(r.per_image["correct_top1"].mean())


def test_same_predictions_in_both_layouts(messy_result, messy):
    df = messy_result.per_image.set_index("path")
    for name in PICKS:
        wnid = name.split("_")[0]
        flat, nested = df.loc[str(messy / name)], df.loc[str(messy / wnid / "copy.JPEG")]
        assert flat["wnid"] == nested["wnid"] == wnid
        assert flat["label"] == nested["label"]
        assert flat["pred"] == nested["pred"] and flat["top5"] == nested["top5"]
        assert flat["logit_label"] == pytest.approx(nested["logit_label"], abs=1e-4)
    # The sample's tench, goldfish and Siamese cat are all classified correctly by BVLC GoogLeNet.
    assert df.loc[[str(messy / n) for n in PICKS], "correct_top1"].all()


def test_channel_conversions(messy, images_dir):
    orig = load_image(images_dir / PICKS[0])
    assert orig.shape == (3, 224, 224) and orig.dtype == torch.float32
    assert 0.0 <= orig.min() and orig.max() <= 1.0
    assert torch.equal(load_image(messy / "n01440764_rgba.PNG"), orig)  # lossless, alpha dropped
    gray = load_image(messy / "n01440764_gray.png")
    assert gray.shape == (3, 224, 224) and torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    cmyk = load_image(messy / "n01443537_cmyk.jpg")
    assert cmyk.shape == (3, 224, 224)
    assert (cmyk - load_image(images_dir / PICKS[1])).abs().mean() < 0.05  # lossy, but the same picture


def test_pil_fallback_and_16bit(tmp_path, images_dir):
    """A format torchvision cannot decode (BMP, via PIL) and a 16-bit PNG still load."""
    img = Image.open(images_dir / PICKS[0]).convert("RGB")
    img.save(tmp_path / "x.bmp", "BMP")
    assert torch.equal(load_image(tmp_path / "x.bmp"), load_image(images_dir / PICKS[0]))
    arr16 = (np.asarray(img.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(arr16).save(tmp_path / "x16.png")
    x = load_image(tmp_path / "x16.png")
    img.convert("L").save(tmp_path / "x8.png")
    assert torch.equal(x, load_image(tmp_path / "x8.png"))  # 16-bit v·257 is 8-bit v, every pixel
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    for v in (0, 1, 77, 254, 255):  # a flat 16-bit image is exactly v / 255 everywhere
        Image.fromarray(np.full((300, 260), v * 257, np.uint16)).save(tmp_path / "flat16.png")
        assert torch.equal(load_image(tmp_path / "flat16.png"), torch.full((3, 224, 224), v / 255))


def test_deterministic_and_batch_independent(caffe_model, messy, messy_result):
    again = evaluate(caffe_model, messy, batch_size=3, num_workers=0, progress=False)
    a, b = messy_result.per_image, again.per_image
    pd.testing.assert_frame_equal(a.drop(columns="logit_label"), b.drop(columns="logit_label"))
    np.testing.assert_allclose(a["logit_label"], b["logit_label"], atol=1e-4)
    pd.testing.assert_frame_equal(messy_result.skipped, again.skipped)


def test_limit(caffe_model, images_dir, messy):
    r = evaluate(caffe_model, images_dir, limit=3, num_workers=0, progress=False)
    assert r.n_images == 3
    assert r.per_image["path"].tolist() == sorted(str(p) for p in images_dir.iterdir())[:3]
    # limit counts image files of known classes (a corrupt one too: it fails only when
    # decoded); the skips met on the way are reported, nothing after.
    r = evaluate(caffe_model, messy, limit=3, num_workers=0, progress=False)
    rel = [Path(p).relative_to(messy).as_posix() for p in r.per_image["path"]]
    assert rel == ["n01440764/copy.JPEG", "n01440764_gray.png"]
    skipped = [Path(p).relative_to(messy).as_posix() for p in r.skipped["path"]]
    assert skipped == ["n01440764_corrupt.JPEG"]
    with pytest.raises(ValueError, match="limit"):
        evaluate(caffe_model, messy, limit=0, progress=False)


# ---------------------------------------------------------------- errors
def test_empty_folder_raises(caffe_model, tmp_path):
    with pytest.raises(ValueError, match=r"(?s)empty.*<wnid>") as e:
        evaluate(caffe_model, tmp_path, progress=False)
    assert str(tmp_path) in str(e.value)


def test_folder_without_usable_image_raises(caffe_model, tmp_path, images_dir):
    (tmp_path / "readme.txt").write_text("hi")
    (tmp_path / "n01440764_bad.JPEG").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ValueError, match="no usable image") as e:
        evaluate(caffe_model, tmp_path, num_workers=0, progress=False)
    assert str(tmp_path) in str(e.value)


def test_missing_folder_raises(caffe_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate(caffe_model, tmp_path / "nope", progress=False)
    (tmp_path / "f.JPEG").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        evaluate(caffe_model, tmp_path / "f.JPEG", progress=False)


# ---------------------------------------------------------------- Lucid's 1008-way class list
def test_lucid_class_list_ignores_unused_outputs(messy, data_dir):
    """Lucid's inceptionv1 (weights not on this machine: random init) maps wnids through its
    own class list, and never predicts the dummy/unused outputs even when they dominate."""
    torch.manual_seed(0)
    model = InceptionV1("inceptionv1")
    wnids = class_wnids(model.spec)
    unused = [i for i, w in enumerate(wnids) if w is None]
    assert len(wnids) == 1008 and 0 in unused
    with torch.no_grad():
        model.classifier.bias[unused] = 1e6
    r = evaluate(model, messy, num_workers=0, progress=False)
    df = r.per_image
    assert r.n_images == 9
    assert (df["label"] == [wnids.index(w) for w in df["wnid"]]).all()
    assert df["label"].between(1, 1000).all()
    assert not set(df["pred"]) & set(unused)
    assert all(not set(t) & set(unused) for t in df["top5"])
    assert df["pred_wnid"].notna().all()
    assert wnid_index(model) == {w: i for i, w in enumerate(wnids) if w is not None}


def test_dataset_directly(messy):
    ds = ImageFolderDataset(messy, wnid_index("inceptionv1_caffe"))
    assert len(ds) == 11  # 9 good + the corrupt and truncated ones (found bad only when decoded)
    assert len(ds.skipped) == 3
    item = ds[[s[0] for s in ds.samples].index(str(messy / "n01440764_corrupt.JPEG"))]
    assert item.image is None and "cannot decode" in item.error
    images, idx, failed = ImageFolderDataset.collate([ds[0], item, ds[2]])
    assert images.shape == (2, 3, 224, 224) and idx.tolist() == [0, 2] and failed == [(item.index, item.error)]
    with pytest.raises(ValueError):
        ImageFolderDataset(messy, {}, size=300, resize=256)


def test_progress_bar_goes_to_stderr(caffe_model, images_dir, capsys, monkeypatch):
    """The bar is on stderr when it is a terminal, quiet when it is not (a log file, CI) or
    with ``progress=False``; nothing ever goes to stdout."""
    import sys

    evaluate(caffe_model, images_dir, limit=2, num_workers=0, progress=True)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # stderr is not a terminal here
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    evaluate(caffe_model, images_dir, limit=2, num_workers=0, progress=True)
    out = capsys.readouterr()
    assert out.out == "" and "2/2" in out.err
    evaluate(caffe_model, images_dir, limit=2, num_workers=0, progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""



def test_variants_share_the_prefix_and_match_separate_runs(caffe_model, images_dir):
    """evaluate_variants (decode once, shared unedited prefix) gives the same numbers as
    separate evaluations."""
    from edits import Ablate, EditPlan
    from studies.measure.classify import evaluate_variants, shared_prefix

    edited, _ = EditPlan([Ablate(["3b:358", "3b:9"])]).apply(caffe_model)
    variants = {"before": caffe_model, "after": edited}
    assert shared_prefix(variants) == "mixed3a"
    both = evaluate_variants(variants, images_dir, limit=16, progress=False)
    for name, m in variants.items():
        alone = evaluate(m, images_dir, limit=16, progress=False)
        assert both[name].per_image["pred"].tolist() == alone.per_image["pred"].tolist()
        np.testing.assert_allclose(both[name].per_image["logit_label"], alone.per_image["logit_label"], rtol=1e-5, atol=1e-4)

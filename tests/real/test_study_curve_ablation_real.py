"""The main job end to end (small settings to keep the suite fast): CLI → report folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from studies.cli import main


@pytest.fixture(scope="module")
def report(tmp_path_factory, images_dir):
    out = tmp_path_factory.mktemp("runs") / "curve-ablation"
    rc = main(["study", "curve-ablation", "--model", "inceptionv1_caffe", "--images", str(images_dir),
               "--limit", "24", "--orientation-step", "30", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_report_folder_contents(report):
    names = {p.name for p in report.iterdir()}
    for f in ("summary.md", "metrics.json", "config.yaml", "edit.json", "units.csv", "tuning.csv",
              "radial_tuning.png", "downstream_radial_tuning.png", "classification.csv"):
        assert f in names, f
    assert not any(n.startswith(".") and n != ".circuits-report" for n in names)  # only the marker
    m = json.loads((report / "metrics.json").read_text())
    c = m["classification"]
    assert c["n_images"] == 24
    assert c["top1_change"] == pytest.approx(c["top1_after"] - c["top1_before"])
    # the family is the discovered one and matches the frozen catalog
    assert m["family"]["key"] == "mixed3b/curves" and len(m["family"]["units"]) >= 10
    plan = json.loads((report / "edit.json").read_text())
    assert plan["edits"][0]["type"] == "Ablate"
    assert len(plan["edits"][0]["units"]) == len(m["family"]["units"])
    cfg = yaml.safe_load((report / "config.yaml").read_text())
    assert cfg["limit"] == 24 and cfg["seed"] == 0
    text = (report / "summary.md").read_text()
    assert "## Classification" in text
    # the main job reports its CI, says the sample is small, and gives the random-control command
    lo, hi = c["top1_change_ci95"]
    assert lo <= hi and 0 <= c["top1_mcnemar_p"] <= 1 and c["top1_lost"] >= 0
    assert "Warning: small sample" in text and "study family-ablation" in text and "--controls" in text
    assert "σ from 100 reference images" in m["family"]["source"]
    assert cfg["study"] == "curve-ablation" and len(cfg["provenance"]["weights"]["sha256"]) == 64
    for f in ("report.html", "radial_tuning_raw.png"):
        assert f in names, f


def test_ablated_units_are_silent_and_tuned_before(report, caffe_model, images_dir):
    units = pd.read_csv(report / "units.csv")
    fam = units[units["layer"] == "mixed3b"]
    before = fam[fam["variant"] == "before"]
    after = fam[fam["variant"] == "after"]
    assert (before["peak"] > 0).all() and (after["peak"] == 0).all()
    assert before["selectivity"].median() > 0.8
    per_image = pd.read_csv(report / "classification.csv")
    assert len(per_image) == 24
    # every prediction recomputed independently: the first 24 files, the whole network in one
    # batch before and after applying edit.json (no shared prefix, no sweep), label from the file name
    from circuits.labels import class_wnids
    from edits import EditPlan
    from studies.measure.images import load_image

    files = sorted(images_dir.glob("*.JPEG"))[:24]
    assert per_image["path"].tolist() == [str(p) for p in files]
    x = torch.stack([load_image(p) for p in files])
    edited, _ = EditPlan.load(report / "edit.json").apply(caffe_model)
    wnids = class_wnids(caffe_model.spec)
    label = np.array([wnids.index(p.name.split("_")[0]) for p in files])
    m = json.loads((report / "metrics.json").read_text())["classification"]
    for tag, model in (("before", caffe_model), ("after", edited)):
        with torch.no_grad():
            logits = model(x)
        top5 = logits.topk(5, dim=1).indices.numpy()
        assert per_image[f"pred_{tag}"].tolist() == top5[:, 0].tolist()
        assert per_image[f"correct_top1_{tag}"].tolist() == (top5[:, 0] == label).tolist()
        assert per_image[f"correct_top5_{tag}"].tolist() == (top5 == label[:, None]).any(1).tolist()
        assert m[f"top1_{tag}"] == pytest.approx((top5[:, 0] == label).mean(), abs=1e-12)


def test_without_images_uses_frozen_family_and_says_so(tmp_path):
    out = tmp_path / "r"
    rc = main(["study", "curve-ablation", "--out", str(out), "--orientation-step", "45", "--no-downstream", "--quiet"])
    assert rc == 0
    text = (out / "summary.md").read_text()
    assert "Classification was skipped" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["classification"] is None and "catalog" in m["family"]["source"]


def test_failure_leaves_no_half_written_report(tmp_path, monkeypatch):
    import studies.curve_ablation as ca

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ca, "plot_radial", boom)
    out = tmp_path / "r"
    rc = main(["study", "curve-ablation", "--out", str(out), "--orientation-step", "90", "--no-downstream", "--quiet"])
    assert rc == 130
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []

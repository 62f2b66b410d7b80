"""family-ablation study end to end (tiny settings): CLI → report folder, statistics, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from studies.cli import main

ARGS = ["study", "family-ablation", "--model", "inceptionv1_caffe", "--limit", "12", "--families", "mixed3b/curves",
        "--modes", "zero,mean", "--controls", "1", "--reference-images", "8", "--bootstrap", "300", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, images_dir):
    root = tmp_path_factory.mktemp("fam")
    outs = []
    for i in range(2):  # same command twice, each with a fresh cache: recomputed, not loaded
        out = root / f"run{i}"
        rc = main([*ARGS, "--images", str(images_dir), "--cache-dir", str(root / f"cache{i}"), "--out", str(out)])
        assert rc == 0
        outs.append(out)
    return outs


def test_report_files(runs):
    out = runs[0]
    for f in ("config.yaml", "results.csv", "per_image.csv", "class_changes.csv", "accuracy_deltas.png",
              "most_affected.png", "summary.md", "report.html", "metrics.json"):
        assert (out / f).is_file(), f
    assert not any(p.name.startswith(".") and p.name != ".circuits-report" for p in out.iterdir())
    res = pd.read_csv(out / "results.csv")
    assert set(res["kind"]) == {"baseline", "family", "control"}
    assert len(res) == 1 + 2 * 2
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 12 * 5 and "variant" in per_image
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_images"] == 12 and m["sweep"]["computed"] == 5
    assert "disjoint" in m["reference"]
    import yaml
    from PIL import Image

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["limit"], cfg["bootstrap"], cfg["families"], cfg["modes"]) == (12, 300, ["mixed3b/curves"], ["zero", "mean"])
    summary, html = (out / "summary.md").read_text(), (out / "report.html").read_text()
    for _, r in res[res["kind"] != "baseline"].iterrows():  # each results.csv row, as the summary prints it
        name = r["variant"].replace("|", " / ")
        row = (f"| {name} | {int(r['n_units'])} | {r['top1']:.3f} | {100 * r['top1_delta']:+.1f} "
               f"[{100 * r['top1_ci_low']:+.1f}, {100 * r['top1_ci_high']:+.1f}] | "
               f"{int(r['top1_lost'])}/{int(r['top1_gained'])} |")
        assert row in summary and name in html, row
    assert html.count("data:image/png;base64") == 2  # both figures embedded
    for png in ("accuracy_deltas.png", "most_affected.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and min(im.size) >= 100
    # class_changes.csv: exactly the (variant, class) pairs whose top-1 flips against the unedited model
    base = per_image[per_image["variant"] == "unedited"].set_index("path")
    assert base["wnid"].is_unique  # one image per class in the sample
    flips = set()
    for v, g in per_image[per_image["variant"] != "unedited"].groupby("variant"):
        g = g.set_index("path")
        flips |= {(v, base.loc[p, "wnid"]) for p in g.index[g["correct_top1"] != base.loc[g.index, "correct_top1"]]}
    cc = pd.read_csv(out / "class_changes.csv")
    assert set(zip(cc["variant"], cc["wnid"])) == flips and len(cc) == len(flips)


def test_cis_and_p_recomputed_from_per_image(runs):
    """Every delta, count and p-value recomputed from per_image.csv (McNemar by scipy's exact
    binomial test, written out here); the interval is scipy's paired percentile bootstrap of the
    same table (300 resamples, seed 0), never clamped."""
    from scipy.stats import binomtest

    from studies.measure.paired import paired_stats

    res = pd.read_csv(runs[0] / "results.csv")
    pi = pd.read_csv(runs[0] / "per_image.csv")
    base = pi[pi["variant"] == "unedited"].set_index("path")
    r = res[res["kind"] != "baseline"]
    assert len(r) == 4
    for tag in ("top1", "top5"):
        for _, row in r.iterrows():
            v = pi[pi["variant"] == row["variant"]].set_index("path").loc[base.index]
            b, a = base[f"correct_{tag}"].to_numpy(bool), v[f"correct_{tag}"].to_numpy(bool)
            assert row[f"{tag}_delta"] == pytest.approx(a.mean() - b.mean(), abs=1e-12)
            lost, gained = int((b & ~a).sum()), int((~b & a).sum())
            assert (row[f"{tag}_lost"], row[f"{tag}_gained"]) == (lost, gained)
            p = binomtest(lost, lost + gained).pvalue if lost + gained else 1.0
            assert row[f"{tag}_mcnemar_p"] == pytest.approx(p, rel=1e-9)
            s = paired_stats(b, a, 300, 0)
            assert (row[f"{tag}_ci_low"], row[f"{tag}_ci_high"]) == pytest.approx((s["ci_low"], s["ci_high"]), abs=1e-12)
            assert row[f"{tag}_ci_low"] <= row[f"{tag}_ci_high"]
        base_acc = res[res["kind"] == "baseline"][tag].item()
        assert base_acc == pytest.approx(base[f"correct_{tag}"].mean())
        assert np.allclose(r[tag] - base_acc, r[f"{tag}_delta"])
    # control units: same count as the family, none shared, same branches
    m = json.loads((runs[0] / "metrics.json").read_text())
    fam, ctl = m["unit_sets"]["mixed3b/curves"], m["unit_sets"]["mixed3b/curves~control1"]
    assert len(fam["units"]) == len(ctl["units"]) and not set(fam["units"]) & set(ctl["units"])


def test_report_html_renders(runs, tmp_path):
    from html_check import check_report_html

    check_report_html(runs[0], tmp_path / "chromium", min_figures=2, min_tables=2)


def test_same_command_twice_identical(runs):
    a, b = (r / "results.csv" for r in runs)
    assert a.read_bytes() == b.read_bytes()


def test_refuses_nonempty_out_and_bad_images(runs, tmp_path, images_dir, capsys):
    rc = main([*ARGS, "--images", str(images_dir), "--out", str(runs[0])])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main([*ARGS, "--images", str(empty), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no usable labelled image" in capsys.readouterr().err
    rc = main([*ARGS, "--images", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2 and not (tmp_path / "o").exists()

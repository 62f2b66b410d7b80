"""HandwrittenFamily and the artificial-curves study on the real BVLC weights and images."""

import json

import torch

from circuits.catalog import load_catalog
from circuits.units import Unit
from edits import EditPlan, HandwrittenFamily, Linearize, producing_conv
from edits.handwritten import learned_patterns
from studies.artificial_curves import measure_equivariance
from studies.cli import main

EXPECTED_TENSORS = {
    "mixed3b.b1x1.conv.weight",  # the 3 1x1-branch units: centre tap
    "mixed3b.linear_paths.3x3.conv.weight", "mixed3b.linear_paths.3x3.conv.bias",  # 4 3x3 units: new rows
    "mixed3b.linear_paths.5x5.conv.weight", "mixed3b.linear_paths.5x5.conv.bias",  # 12 5x5 units
}


def _row(model, unit: str) -> torch.Tensor:
    conv, ch = producing_conv(Unit.parse(unit), model.spec)
    branch = conv.split("_")[1]
    blk = model.block("mixed3b")
    return blk.linear_paths[branch].conv.weight[blk.linear_units(branch).index(ch)]


def test_handwritten_family_applies_records_and_undoes_bitwise(caffe_model):
    before = {k: v.clone() for k, v in caffe_model.state_dict().items()}
    plan = EditPlan([HandwrittenFamily("mixed3b/curves", "mixed3a/curves", template_unit="mixed3b:368")])
    edited, rec = plan.apply(caffe_model)
    after = caffe_model.state_dict()  # the caller's model is untouched
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert set(rec.changed) == EXPECTED_TENSORS
    assert rec.changed["mixed3b.b1x1.conv.weight"] == 3 * 256  # every weight of the 3 rows (rest="zero")
    rows: dict[str, int] = {}
    for s in rec.structure:  # one linear-path row per 3x3/5x5 unit, nothing else added
        assert s["op"] == "linear_path"
        rows[s["branch"]] = rows.get(s["branch"], 0) + s["rows"]
    assert rows == {"mixed3b_3x3": 4, "mixed3b_5x5": 12} and rec.added_channels == {}
    # the template unit gets its own learned pattern on the 8 early curves, exactly, and nothing else
    cat = load_catalog(caffe_model.spec)
    src = list(cat["mixed3a/curves"].units)
    row = _row(edited, "mixed3b:368")
    pattern = learned_patterns(caffe_model, "mixed3b", [368], src)[0]
    assert torch.equal(row[src], pattern.float())
    rest = torch.ones(row.shape[0], dtype=torch.bool)
    rest[src] = False
    assert not bool(row[rest].any())
    restored = rec.undo(edited)
    now = restored.state_dict()
    assert now.keys() == before.keys() and all(torch.equal(now[k], v) for k, v in before.items())
    # the applied plan is self-contained: re-applied from JSON it writes the same weights
    again, _ = EditPlan.from_json(json.dumps(rec.plan)).apply(caffe_model)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), edited.state_dict().values()))


def test_keep_rest_on_the_template_unit_is_its_linearisation(caffe_model):
    cat = load_catalog(caffe_model.spec)
    fam = cat["mixed3b/curves"]
    units = ["mixed3b:368", "mixed3b:398"]
    ors = [fam.orientations[fam.units.index(368)], fam.orientations[fam.units.index(398)]]
    hw, _ = EditPlan([HandwrittenFamily(units, "mixed3a/curves", template_unit="mixed3b:368", orientations=ors,
                                        rest="keep")]).apply(caffe_model)
    lin, _ = EditPlan([Linearize("mixed3b_5x5", units)]).apply(caffe_model)
    assert torch.allclose(_row(hw, units[0]), _row(lin, units[0]), rtol=1e-6, atol=1e-9)
    assert not torch.allclose(_row(hw, units[1]), _row(lin, units[1]), atol=1e-4)  # 398 got the rotated template


def test_learned_family_equivariance_beats_its_shuffled_control(caffe_model):
    cat = load_catalog(caffe_model.spec)
    eq, pats = measure_equivariance(caffe_model, cat["mixed3b/curves"], cat["mixed3a/curves"], n_shuffles=200, seed=0)
    assert pats.shape == (19, 8, 5, 5)
    assert abs(eq.family_score - 0.264) < 0.005  # measured on BVLC (catalog orientations, δ window ±15°)
    assert eq.family_score > eq.control["max"] and eq.family_score > 3 * eq.control["mean"]
    assert eq.control["p_value"] == 1 / 201


def test_artificial_curves_study_end_to_end(images_dir, tmp_path):
    out = tmp_path / "report"
    rc = main(["study", "artificial-curves", "--images", str(images_dir), "--out", str(out), "--limit", "8",
               "--orientation-step", "30", "--shuffles", "50", "--bootstrap", "100", "--no-combing",
               "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert rc == 0
    for f in ("summary.md", "metrics.json", "config.yaml", "units.csv", "classification.csv", "equivariance.png",
              "radial_tuning.png", "tuning_comparison.png", "accuracy.png", "plan_hw_learned.json",
              "plan_hw_analytic.json", "equivariance_units.csv"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    assert m["template_unit"] == "mixed3b:368"
    wm = m["equivariance"]["with_measured_orientations"]
    assert len(wm["orientations"]) == 19 and wm["family_score"] > wm["control"]["p95"]
    assert [r["variant"] for r in m["classification"]] == ["natural", "zero_ablated", "hw_learned", "hw_analytic"]
    assert {r["n_images"] for r in m["classification"]} == {8}
    assert sorted(m["sweep"]["computed"]) == sorted(["natural", "zero_ablated", "hw_learned", "hw_analytic"])
    t = m["tuning_medians"]
    assert t["zero_ablated"]["units_silent"] == 19 and t["natural"]["units_silent"] == 0
    for v in ("hw_learned", "hw_analytic"):  # each hand-written unit prefers the orientation it was rotated to
        assert t[v]["units_silent"] == 0 and t[v]["orientation_error_vs_target"] < 20
    plan = EditPlan.load(out / "plan_hw_learned.json")
    assert plan.edits[0].kernel is not None and plan.edits[0].template_orientation == 117.4

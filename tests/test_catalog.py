"""Family catalogs: Lucid's lists exactly as published, BVLC's frozen discoveries still
reproduced by a fresh discovery on the real weights, and addressing with useful errors."""

from __future__ import annotations

import math
import re

import pytest
import yaml
from shared_discovery import fresh_discoveries

import studies.discovery as D
from circuits import Unit, get_spec
from circuits.catalog import FamilyCatalog, catalog, catalog_path, load_catalog
from circuits.units import Family

# ------------------------------------------------------------------ Lucid: science.md §2
# Hard-coded from shared/docs/science.md §2 (restating the Distill Circuits articles).
LUCID = {
    "mixed3b/curves": [379, 406, 385, 343, 342, 388, 324, 340, 330, 349],
    "mixed3b/double_curves": [359, 337, 380],
    "mixed3b/shallow_curves": [403, 353, 355, 336],
    "mixed3b/circles": [389, 384, 346, 323],
    "mixed3b/curve_shapes": [325, 338, 327, 347],
    "mixed3b/evolutes": [373],
    "mixed3b/curves_misc": [348, 407, 365, 367],
    "mixed3a/early_curves": [81, 104, 92, 145, 95, 163, 171, 71, 147, 189, 137],
    "mixed3a/lines": [227, 75, 146, 69, 169, 57, 154, 187, 27, 134, 150, 240, 101, 176],
    "mixed3a/texture_lines": [47, 142, 6, 101, 16],
    "mixed3a/cliffs": [176, 96, 77, 149, 100],
    "mixed3a/angles": [188, 94, 164, 107, 77, 157, 149, 100],
    "conv2d2/tiny_curves": [182, 117, 171, 111, 63, 130, 146, 180, 39, 140, 32, 80],
    "conv2d2/lines": [107, 31, 9, 112, 133, 103, 97, 125, 20, 33, 113, 185, 150, 166, 157, 57, 145, 48, 55,
                      15, 152, 11, 141, 174, 44, 170, 27, 100, 30, 82, 65, 3, 108],
    "conv2d2/shifted_lines": [116, 61, 8, 22, 69, 96, 78, 18, 17, 132, 190, 64, 81, 154, 179, 136],
    "mixed4a/curves": [403, 417, 407, 415, 50, 426, 168, 266],
    "mixed4a/tilted_circles": [406],
}
LUCID_KINDS = {
    "mixed3b/curves": "curve", "mixed3b/double_curves": "double_curve", "mixed3b/shallow_curves": "shallow_curve",
    "mixed3b/circles": "circle", "mixed3b/curve_shapes": "curve_shape", "mixed3b/evolutes": "evolute",
    "mixed3b/curves_misc": "curve_misc", "mixed3a/early_curves": "curve", "mixed3a/lines": "line",
    "mixed3a/texture_lines": "texture_line", "mixed3a/cliffs": "cliff", "mixed3a/angles": "angle",
    "conv2d2/tiny_curves": "tiny_curve", "conv2d2/lines": "line", "conv2d2/shifted_lines": "shifted_line",
    "mixed4a/curves": "curve", "mixed4a/tilted_circles": "tilted_circle",
}
# Published preferred orientations of the 10 curve detectors (science.md §2, one figure's convention).
LUCID_3B_ORIENTATIONS = {342: 22.5, 388: 66.5, 324: 91.5, 340: 110, 330: 145, 349: 181,
                         379: 243, 406: 268.5, 385: 290, 343: 358}
ARTICLES = {
    "distill.pub/2020/circuits/curve-detectors": "Curve Detectors",
    "distill.pub/2020/circuits/curve-circuits": "Curve Circuits",
    "distill.pub/2020/circuits/early-vision": "An Overview of Early Vision in InceptionV1",
}


@pytest.fixture(scope="module")
def lucid() -> FamilyCatalog:
    return load_catalog("inceptionv1")


def test_lucid_catalog_is_science_md_section_2(lucid):
    assert {k: list(f.units) for k, f in lucid.items()} == LUCID
    assert {k: f.kind for k, f in lucid.items()} == LUCID_KINDS


def test_lucid_indices_in_range(lucid):
    spec = get_spec("inceptionv1")
    assert spec.layer_width("mixed4a") == 508
    for f in lucid.values():
        width = spec.layer_width(f.layer)
        assert all(0 <= u < width for u in f.units), f.key


def test_lucid_orientations_and_citations(lucid):
    curves = lucid["mixed3b/curves"]
    assert dict(zip(curves.units, curves.orientations)) == LUCID_3B_ORIENTATIONS
    assert "convention" in curves.meta["note"] and "figure" in curves.meta["note"]
    for key, f in lucid.items():
        if key != "mixed3b/curves":
            assert f.orientations is None, f"{key}: no published orientations"
        cited = [url for url in ARTICLES if f"https://{url}" in f.source]
        assert cited, f"{key}: no article URL in source {f.source!r}"
        for url in cited:
            assert ARTICLES[url] in f.source, f"{key}: article title for {url} missing"


def test_lucid_texture_units_are_a_note_not_a_family(lucid):
    assert not any("texture" in k and "line" not in k for k in lucid)
    assert "65" in lucid.meta["unlisted"] and "texture" in lucid.meta["unlisted"]
    # units shared between families are fine (science.md lists them in several)
    assert {f.key for f in lucid.families_of("3a:101")} == {"mixed3a/lines", "mixed3a/texture_lines"}
    assert {f.key for f in lucid.families_of("3a:77")} == {"mixed3a/cliffs", "mixed3a/angles"}


# ------------------------------------------------------------------ addressing and errors
def test_addressing(lucid):
    assert lucid["3b/curves"] is lucid["mixed3b/curves"]
    assert lucid[" mixed3b/curves"] is lucid["mixed3b/curves"]
    assert lucid["3a/curves"] is lucid["mixed3a/early_curves"]  # alias
    assert lucid["conv2d2/curves"] is lucid["conv2d2/tiny_curves"]
    assert "3b/curves" in lucid and "3b/nope" not in lucid and 379 not in lucid
    assert lucid.resolve("3b:379") == [Unit("mixed3b", 379)]
    units = lucid.resolve(["mixed3b:379", ("mixed3b", 406), Unit("mixed3b", 385), "3b/evolutes", "4a:406,4a/curves"])
    assert units[:4] == [Unit("mixed3b", i) for i in (379, 406, 385, 373)]
    assert units[4:] == [Unit("mixed4a", i) for i in [406] + LUCID["mixed4a/curves"]]
    assert lucid.resolve(lucid["3b/curves"]) == list(lucid["3b/curves"])
    assert lucid.resolve("3b/curves, 3b:379") == list(lucid["3b/curves"])  # duplicates dropped
    assert lucid.orientation_of("3b:342") == 22.5 and lucid.orientation_of("3a:81") is None
    assert [f.key for f in lucid.in_layer("4a")] == ["mixed4a/curves", "mixed4a/tilted_circles"]
    assert lucid.layers == ["conv2d2", "mixed3a", "mixed3b", "mixed4a"]
    assert {f.key for f in lucid.of_kind("line")} == {"conv2d2/lines", "mixed3a/lines"}


@pytest.mark.parametrize("checkpoint", ["inceptionv1", "inceptionv1_caffe"])
def test_errors_list_valid_choices(checkpoint):
    cat = load_catalog(checkpoint)
    with pytest.raises(KeyError, match=r"valid families: .*mixed3b/curves"):
        cat["mixed3b/nonexistent"]
    with pytest.raises(KeyError, match=r"mixed3b has: mixed3b/curves"):
        cat["3b/nonexistent"]
    with pytest.raises(KeyError, match=r"unknown layer '9z'.*valid families"):
        cat["9z/curves"]
    with pytest.raises(KeyError, match=r"look like 'mixed3b/curves'.*mixed3b/curves"):
        cat["curves"]
    with pytest.raises(KeyError, match=r"valid families"):
        cat.resolve(["3b:379", "mixed3b/nope"])
    with pytest.raises(IndexError, match=r"mixed3b has units 0\.\.479"):
        cat.resolve("3b:480")
    width = get_spec(checkpoint).layer_width("mixed4a")
    with pytest.raises(IndexError, match=rf"0\.\.{width - 1}"):
        cat.families_of(f"4a:{width}")
    with pytest.raises(KeyError, match="valid layers"):
        cat.resolve("9z:1")
    with pytest.raises(ValueError, match="valid families"):
        cat.resolve("curves")


def _write(tmp_path, families, checkpoint="inceptionv1"):
    p = tmp_path / "cat.yaml"
    p.write_text(yaml.safe_dump({"checkpoint": checkpoint, "families": families}))
    return p


def test_malformed_catalogs_fail_with_the_family_named(tmp_path):
    ok = {"name": "x", "layer": "mixed3b", "units": [1, 2]}
    with pytest.raises(IndexError, match="0..479"):
        load_catalog("inceptionv1", _write(tmp_path, [{**ok, "units": [480]}]))
    with pytest.raises(IndexError, match="0..507"):  # mixed4a is 508 wide in Lucid's checkpoint
        load_catalog("inceptionv1", _write(tmp_path, [{**ok, "layer": "mixed4a", "units": [508]}]))
    with pytest.raises(ValueError, match="mixed3b/x.*more than once"):
        load_catalog("inceptionv1", _write(tmp_path, [{**ok, "units": [1, 1]}]))
    with pytest.raises(ValueError, match="mixed3b/x has 1 orientations for 2 units"):
        load_catalog("inceptionv1", _write(tmp_path, [{**ok, "orientations": [3.0]}]))
    with pytest.raises(ValueError, match="defined twice"):
        load_catalog("inceptionv1", _write(tmp_path, [ok, ok]))
    with pytest.raises(ValueError, match="lacks field 'units'"):
        load_catalog("inceptionv1", _write(tmp_path, [{"name": "x", "layer": "mixed3b"}]))
    with pytest.raises(ValueError, match="units must be a list of integers"):
        load_catalog("inceptionv1", _write(tmp_path, [{**ok, "units": ["a"]}]))
    with pytest.raises(ValueError, match="catalog of 'inceptionv1'"):
        load_catalog("inceptionv1_caffe", _write(tmp_path, [ok]))
    with pytest.raises(ValueError, match="clashes"):
        load_catalog("inceptionv1", _write(tmp_path, [ok, {**ok, "name": "y", "aliases": ["x"]}]))


# ------------------------------------------------------------------ BVLC: frozen discoveries
@pytest.fixture(scope="module")
def fresh(caffe_model, images_dir):
    return fresh_discoveries(caffe_model, images_dir)


@pytest.fixture(scope="module")
def bvlc(caffe_model) -> FamilyCatalog:
    return catalog(caffe_model)


def test_bvlc_catalog_has_the_frozen_families(bvlc):
    expected = [f"{layer}/{name}" for layer, name in D.FROZEN_FAMILIES["inceptionv1_caffe"]]
    assert sorted(bvlc) == sorted(expected)
    cmd = "python -m studies.discovery --model inceptionv1_caffe --images $CIRCUITS_DATA/imagenet-sample-1000 --freeze"
    assert bvlc.meta["regenerate"] == cmd
    for key in expected:
        f = bvlc[key]
        assert f.meta["regenerate"] == cmd, key
        assert f.kind == ("line" if f.name == "lines" else "curve")
        crit = D.line_criteria(f.layer) if f.kind == "line" else D.curve_criteria(f.layer)
        assert {k: f.meta["criteria"][k] for k in crit} == crit, f"{key}: frozen criteria ≠ the code's defaults"
        assert f.meta["criteria"]["radii"] == list(D.default_radii(bvlc.spec, f.layer))
    assert bvlc["mixed3b/curves"].meta["criteria"]["radii"] == [8.0, 12.0, 18.0, 27.0, 40.0, 60.0, 90.0, 135.0, 200.0]
    assert bvlc["conv2d2/tiny_curves"] is bvlc["conv2d2/curves"] and bvlc["3a/early_curves"] is bvlc["3a/curves"]


def test_bvlc_frozen_catalog_matches_fresh_discovery(fresh, bvlc):
    assert set(fresh) == set(bvlc)
    for key, d in fresh.items():
        frozen = bvlc[key]
        assert set(frozen.units) == set(d.family.units), key
        period = 180.0 if frozen.kind == "line" else 360.0
        fo = dict(zip(frozen.units, frozen.orientations))
        for u, o in zip(d.family.units, d.family.orientations):
            diff = abs((fo[u] - o + period / 2) % period - period / 2)
            assert diff <= 0.1, f"{key}: unit {u} {o}° vs frozen {fo[u]}°"
    assert D.compare_with_catalog(fresh, bvlc) == []


def _quadrants(orientations) -> int:
    return len({int((o % 360.0) // 90) for o in orientations})


def test_bvlc_curve_families(fresh, bvlc):
    for key in ("conv2d2/curves", "mixed3a/curves", "mixed3b/curves", "mixed4a/curves"):
        fam, t = bvlc[key], fresh[key].table.set_index("index")
        assert len(fam) >= 4, key
        assert _quadrants(fam.orientations) >= 3, f"{key}: {fam.orientations}"
        crit = fam.meta["criteria"]
        m = t.loc[list(fam.units)]
        assert (m["curve_sigma"] >= crit["min_sigma"]).all()
        assert (m["curve_line"] >= crit["min_curve_line"]).all()
        assert (m["selectivity"] >= crit["min_selectivity"]).all()
        rest = t.drop(index=list(fam.units))
        assert ((rest["curve_sigma"] < crit["min_sigma"]) | (rest["curve_line"] < crit["min_curve_line"])
                | (rest["selectivity"] < crit["min_selectivity"])).all(), key
        assert list(fam.orientations) == sorted(fam.orientations)
        assert len(fam.meta["echo_ratio"]) == len(fam)
    # radii scale with the receptive field: curvature matters at radii comparable to the RF
    assert fresh["conv2d2/curves"].criteria["radii"][0] == pytest.approx(8 * 19 / 91, abs=0.01)
    # Lucid's early curves all sit in the 3x3 branch; so do BVLC's
    assert set(bvlc["mixed3a/curves"].meta["branches"]) == {"3x3"}


def test_bvlc_line_families(fresh, bvlc):
    for key in ("conv2d2/lines", "mixed3a/lines"):
        fam, t = bvlc[key], fresh[key].table.set_index("index")
        crit = fam.meta["criteria"]
        assert len(fam) >= 4, key
        m = t.loc[list(fam.units)]
        assert (m["selectivity"] >= crit["min_selectivity"]).all() and crit["min_selectivity"] >= 0.7
        assert (m["line_sigma"] >= crit["min_sigma"]).all()
        # prefer lines to tight curves, and no curve is much better than the line
        assert (m["line_curve"] >= crit["min_line_curve"]).all()
        assert (m["curve_line"] <= crit["max_curve_line"]).all()
        assert all(0 <= o < 180 for o in fam.orientations)
        assert list(fam.orientations) == sorted(fam.orientations)
        # orientations spread over the half circle: no gap wider than 90° (mod 180)
        o = sorted(fam.orientations)
        gaps = [b - a for a, b in zip(o, o[1:])] + [o[0] + 180 - o[-1]]
        assert max(gaps) <= 90, f"{key}: {o}"
    # line and curve families of a layer are disjoint
    for layer in ("conv2d2", "mixed3a"):
        assert not set(bvlc[f"{layer}/lines"].units) & set(bvlc[f"{layer}/curves"].units)


def test_line_tuning_is_180_periodic():
    import numpy as np
    import pandas as pd

    o = np.arange(0, 360, 10.0)
    r = np.clip(np.cos(np.radians(2 * (o - 30))), 0, None)  # a line at 30° (period 180)
    df = pd.DataFrame({"index": 0, "kind": "line", "orientation": o, "response": r})
    m = D.line_tuning_metrics(df).loc[0]
    assert m["preferred_orientation"] == pytest.approx(30, abs=1e-6)
    assert m["line_selectivity"] == pytest.approx(math.pi / 4, abs=0.02)
    df["response"] = 1.0
    assert D.line_tuning_metrics(df).loc[0, "line_selectivity"] == pytest.approx(0, abs=1e-9)


def test_default_radii_scale_with_receptive_field(caffe_model):
    spec = caffe_model.spec
    assert D.default_radii(spec, "mixed3b") == (8.0, 12.0, 18.0, 27.0, 40.0, 60.0, 90.0, 135.0, 200.0)
    for layer, rf in (("conv2d2", 19), ("mixed3a", 59), ("mixed4a", 171)):
        assert D.default_radii(spec, layer) == pytest.approx([r * rf / 91 for r in D.S.DEFAULT_RADII], abs=0.006)


def test_entry_point_check_and_freeze(fresh, caffe_model, images_dir, tmp_path, monkeypatch, capsys):
    """``python -m studies.discovery --check/--freeze`` on the fresh discoveries (the
    discovery itself is the shared one, so this exercises comparison and writing)."""
    import circuits

    monkeypatch.setattr(circuits, "load_model", lambda *a, **k: caffe_model)
    monkeypatch.setattr(D, "discover_families", lambda *a, **k: fresh)
    args = ["--model", "inceptionv1_caffe", "--images", str(images_dir)]
    assert D.main(args + ["--check"]) == 0
    assert "matches" in capsys.readouterr().out
    # a tampered copy fails the check
    data = yaml.safe_load(catalog_path("inceptionv1_caffe").read_text())
    for f in data["families"]:
        if (f["layer"], f["name"]) == ("mixed3a", "lines"):
            f["units"], f["orientations"] = f["units"][1:], f["orientations"][1:]
            for k in ("branches", "line_sigma", "selectivity"):
                f[k] = f[k][1:]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert D.main(args + ["--check", "--catalog", str(bad)]) == 1
    assert re.search(r"MISMATCH mixed3a/lines: units differ", capsys.readouterr().out)
    # --freeze rewrites it back to a file that loads into the same families
    assert D.main(args + ["--freeze", "--catalog", str(bad)]) == 0
    again, packaged = load_catalog("inceptionv1_caffe", bad), load_catalog("inceptionv1_caffe")
    assert {k: (f.units, f.orientations) for k, f in again.items()} == {
        k: (f.units, f.orientations) for k, f in packaged.items()}
    assert again.meta["regenerate"] == packaged.meta["regenerate"]


def test_family_unit_strings_everywhere(bvlc):
    fam = bvlc["3b/curves"]
    assert isinstance(fam, Family) and all(isinstance(u, Unit) for u in fam)
    u = f"3b:{fam.units[0]}"
    assert bvlc.families_of(u) == [fam] and bvlc.families_of(Unit.parse(u)) == [fam]
    assert bvlc.resolve([u, "mixed3b/curves"]) == list(fam)

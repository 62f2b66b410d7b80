"""Family catalogs: Lucid's lists exactly as published, BVLC's frozen discoveries still
reproduced by a fresh discovery on the real weights, and addressing with useful errors."""

from __future__ import annotations

import re

import pytest
import yaml
from shared_discovery import fresh_discoveries

import studies.measure.discovery as D
import studies.measure.frozen as F
from circuits import Unit
from circuits.catalog import FamilyCatalog, catalog, catalog_path, load_catalog
from circuits.units import Family


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
    cmd = "python -m studies.measure.frozen --model inceptionv1_caffe --images $CIRCUITS_DATA/imagenet-sample-1000 --freeze"
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
    assert F.compare_with_catalog(fresh, bvlc) == []


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


def test_default_radii_scale_with_receptive_field(caffe_model):
    spec = caffe_model.spec
    assert D.default_radii(spec, "mixed3b") == (8.0, 12.0, 18.0, 27.0, 40.0, 60.0, 90.0, 135.0, 200.0)
    for layer, rf in (("conv2d2", 19), ("mixed3a", 59), ("mixed4a", 171)):
        assert D.default_radii(spec, layer) == pytest.approx([r * rf / 91 for r in D.S.DEFAULT_RADII], abs=0.006)


def test_entry_point_check_and_freeze(fresh, caffe_model, images_dir, tmp_path, monkeypatch, capsys):
    """``python -m studies.measure.frozen --check/--freeze`` on the fresh discoveries (the
    discovery itself is the shared one, so this exercises comparison and writing)."""
    import circuits

    monkeypatch.setattr(circuits, "load_model", lambda *a, **k: caffe_model)
    monkeypatch.setattr(D, "discover_families", lambda *a, **k: fresh)
    args = ["--model", "inceptionv1_caffe", "--images", str(images_dir)]
    assert F.main(args + ["--check"]) == 0
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
    assert F.main(args + ["--check", "--catalog", str(bad)]) == 1
    assert re.search(r"MISMATCH mixed3a/lines: units differ", capsys.readouterr().out)
    # --freeze rewrites it back to a file that loads into the same families
    assert F.main(args + ["--freeze", "--catalog", str(bad)]) == 0
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

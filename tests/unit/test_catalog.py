"""Family catalogs: Lucid's lists exactly as published, BVLC's frozen discoveries still
reproduced by a fresh discovery on the real weights, and addressing with useful errors."""

from __future__ import annotations

import math

import pytest
import yaml

import studies.measure.discovery as D
from circuits import Unit, get_spec
from circuits.catalog import FamilyCatalog, load_catalog

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

"""Curve-family discovery on the real BVLC weights: the properties the family must have,
and the frozen catalog entry must still match a fresh discovery."""

from __future__ import annotations

import pytest
from shared_discovery import fresh_discoveries

from circuits.catalog import catalog, load_catalog
from studies.measure.discovery import discover_curves, orientation_coverage_gap
from studies.measure.images import load_reference_set
from studies.measure.statistics import reference_statistics


@pytest.fixture(scope="module")
def discovery(caffe_model, images_dir):
    # the session's shared discovery (one statistics pass and one sweep per layer for every
    # frozen family); for mixed3b it is discover_curves(model, "mixed3b", statistics)
    return fresh_discoveries(caffe_model, images_dir)["mixed3b/curves"]


def test_family_properties(discovery):
    fam, t = discovery.family, discovery.table
    assert 10 <= len(fam) <= 40, fam.units
    members = t[t["is_curve"]]
    # every member meets every documented criterion
    assert (members["curve_sigma"] >= 5).all()
    assert (members["curve_line"] >= 3).all()
    assert (members["selectivity"] >= 0.8).all()
    # curve detectors cover the whole circle of orientations: no gap wider than 90°
    assert orientation_coverage_gap(fam.orientations) <= 90
    # they prefer curves to lines by a wide margin on average, and have no echoes (Curve Circuits)
    assert members["curve_line"].median() >= 4
    assert members["echo_ratio"].median() <= 0.05
    # ordered by preferred orientation
    assert list(fam.orientations) == sorted(fam.orientations)
    # non-members fail at least one criterion
    rest = t[~t["is_curve"]]
    assert ((rest["curve_sigma"] < 5) | (rest["curve_line"] < 3) | (rest["selectivity"] < 0.8)).all()
    # most of the family sits in the 5x5 branch, as in Lucid's model (Branch Specialization)
    assert (members["branch"] == "5x5").mean() > 0.5


def test_frozen_catalog_matches_discovery(discovery, caffe_model):
    frozen = catalog(caffe_model)["mixed3b/curves"]
    assert frozen.units == discovery.family.units
    assert frozen.orientations == pytest.approx(discovery.family.orientations, abs=0.05)
    assert "regenerate" in frozen.meta


def test_catalog_addressing_errors(caffe_model):
    cat = load_catalog("inceptionv1_caffe")
    assert cat["3b/curves"] is cat["mixed3b/curves"]
    with pytest.raises(KeyError, match="valid families"):
        cat["mixed3b/nonexistent"]
    with pytest.raises(KeyError, match="valid families"):
        cat["9z/curves"]


def test_discovery_needs_a_reference(caffe_model):
    with pytest.raises(ValueError, match="reference"):
        discover_curves(caffe_model, "mixed3b", None)


def test_shared_statistics_equal_single_layer_statistics(caffe_model, images_dir):
    """Statistics of several layers from one pass equal those of a single-layer pass."""
    from studies.measure.statistics import reference_statistics_by_layer

    ref = load_reference_set(images_dir, 8)
    both = reference_statistics_by_layer(caffe_model, ["conv2d2", "3a"], ref)
    alone = reference_statistics(caffe_model, "mixed3a", ref)
    assert set(both) == {"conv2d2", "mixed3a"}
    assert both["mixed3a"][["mean", "std", "frac_positive"]].equals(alone[["mean", "std", "frac_positive"]])
    assert len(both["conv2d2"]) == 192 and "8 evenly spaced images" in alone.attrs["reference"]

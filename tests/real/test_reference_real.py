"""Reference measurements of the BVLC curve families (studies.measure.reference) against the frozen
CSV ``tests/reference_bvlc.csv``. Regenerate with the command on the CSV's first line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from studies.measure.reference import compare, read_reference, reference_measurements

CSV = Path(__file__).resolve().parents[1] / "reference_bvlc.csv"


def test_reference_measurements_match_csv(caffe_model, images_dir):
    df = reference_measurements(caffe_model, images_dir)
    ref = read_reference(CSV)
    problems = compare(df, ref, rtol=1e-3, atol=1e-3)
    assert not problems, "\n".join(problems[:20])
    # sanity of the definition itself
    assert np.all(df["curve_sigma"] > 3.5)
    assert np.all((df["echo_ratio"] >= 0) & (df["echo_ratio"] <= 1))
    assert np.all(df["curve_sigma"] > df["line_sigma"])

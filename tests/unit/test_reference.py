"""Reference measurements of the BVLC curve families (studies.measure.reference) against the frozen
CSV ``tests/reference_bvlc.csv``. Regenerate with the command on the CSV's first line."""

from __future__ import annotations

from pathlib import Path

from studies.measure.reference import COLUMNS, read_reference, regenerate_command

CSV = Path(__file__).resolve().parents[1] / "reference_bvlc.csv"


def test_reference_csv_reads_back():
    first = CSV.read_text().splitlines()[0]
    assert first == f"# regenerate: {regenerate_command('inceptionv1_caffe', 'tests/reference_bvlc.csv')}"
    ref = read_reference(CSV)
    assert list(ref.columns) == COLUMNS
    assert dict(ref["layer"].value_counts()) == {"conv2d2": 10, "mixed3a": 8, "mixed3b": 19, "mixed4a": 9}
    assert (ref.loc[ref["layer"] == "conv2d2", "branch"] == "").all()
    assert set(ref.loc[ref["layer"] != "conv2d2", "branch"]) <= {"1x1", "3x3", "5x5", "pool_reduce"}

"""Report folders survive a full disk and interruptions: clear message, nothing half-written."""

from __future__ import annotations

import pytest

from studies.report.folder import report_folder


def test_interrupted_write_keeps_the_previous_report(tmp_path):
    out = tmp_path / "r"
    with report_folder(out) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(KeyboardInterrupt):
        with report_folder(out, overwrite=True) as tmp:
            (tmp / "a.txt").write_text("second")
            raise KeyboardInterrupt
    assert (out / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["r"]

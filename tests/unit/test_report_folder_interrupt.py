"""A Ctrl-C that lands while report_folder swaps the finished folder in (studies.report.folder): the earlier
report with ``--overwrite`` is put back, and no partial or old folder is left beside it."""

from __future__ import annotations

import os

import pytest

from studies.report import folder


def test_an_interrupt_during_the_final_rename_keeps_the_earlier_report(tmp_path, monkeypatch):
    out = tmp_path / "report"
    with folder.report_folder(out) as tmp:
        (tmp / "a.txt").write_text("earlier")
    real = os.replace

    def interrupted(src, dst):
        if ".partial-" in str(src):  # the new report moving in: Ctrl-C arrives here
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(folder.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with folder.report_folder(out, overwrite=True) as tmp:
            (tmp / "a.txt").write_text("later")
    assert (out / "a.txt").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no .partial-, .old- or lock left

"""Report folders survive a full disk and interruptions: clear message, nothing half-written."""

from __future__ import annotations

import errno
from pathlib import Path

from studies.cli import main


def test_full_disk_leaves_nothing_and_says_so(tmp_path, monkeypatch, capsys):
    real = Path.write_text

    def full(self, *a, **k):
        if self.name == "summary.md":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "r"
    rc = main(["study", "curve-ablation", "--out", str(out), "--orientation-step", "90", "--no-downstream", "--quiet"])
    assert rc == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_empty_image_folder_is_a_clear_error_before_compute(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main(["study", "curve-ablation", "--images", str(empty), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no usable labelled image" in err or "no images" in err
    assert not (tmp_path / "o").exists()

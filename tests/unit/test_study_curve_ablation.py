"""The main job end to end (small settings to keep the suite fast): CLI → report folder."""

from __future__ import annotations

from studies.cli import main


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    rc = main(["study", "curve-ablation", "--out", str(out), "--quiet"])
    assert rc == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "x"

"""The echo study (Curve Circuits edit) end to end on real weights, coarse settings: CLI → report folder."""

from __future__ import annotations

from studies.cli import main


def test_refuses_non_empty_out(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    rc = main(["study", "echo", "--model", "inceptionv1_caffe", "--out", str(out), "--quiet"])
    assert rc == 2
    assert (out / "keep.txt").read_text() == "x" and len(list(out.iterdir())) == 1

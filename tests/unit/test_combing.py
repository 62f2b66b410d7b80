"""Combing study: a small end-to-end run through the CLI, exact attribution, exact pruning."""

from __future__ import annotations

from studies.cli import main


def test_refuses_non_empty_out(tmp_path):
    (tmp_path / "x").write_text("keep")
    rc = main(["study", "combing", "--model", "inceptionv1_caffe", "--units", "mixed3b:9", "--out", str(tmp_path),
               "--quiet"])
    assert rc == 2 and (tmp_path / "x").read_text() == "keep"

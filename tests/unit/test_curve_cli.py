"""CLI wiring of the curve applications (no model needed)."""

from __future__ import annotations

from studies.cli import build_parser, main


def test_commands_are_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"curves", "trace", "factor", "bench-curves"} <= set(sub.choices)
    args = build_parser().parse_args(["factor", "a.jpg", "b.jpg", "--layer", "mixed4d", "--k", "5", "--out", "d"])
    assert (args.images, args.layer, args.k) == (["a.jpg", "b.jpg"], "mixed4d", 5)


def test_bad_values_exit_2_before_any_compute(tmp_path, capsys):
    assert main(["bench-curves", "--out", str(tmp_path / "b"), "--size", "32"]) == 2
    assert "circuits: error: --size must be ≥ 64 px; got 32" in capsys.readouterr().err
    assert main(["bench-curves", "--out", str(tmp_path / "b"), "--tol", "-1"]) == 2
    assert "--tol must be ≥ 0" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()

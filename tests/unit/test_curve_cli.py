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
    assert "error: argument --size: 32 is out of range: give a whole number between 64 and 1024 px" in \
        capsys.readouterr().err
    assert main(["bench-curves", "--out", str(tmp_path / "b"), "--tol", "-1"]) == 2
    assert "error: argument --tol: -1 is out of range: give a number between 0 and 100 px" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_bench_curves_checks_power_and_families_before_loading_the_model(tmp_path, capsys, no_model):
    """--power and --families were checked only once the model ran (item 4 of the polish list)."""
    out = str(tmp_path / "b")
    assert main(["bench-curves", "--out", out, "--power", "0"]) == 2
    assert "argument --power: 0 is out of range: give a number between 0.5 and 16" in capsys.readouterr().err
    assert main(["bench-curves", "--out", out, "--families", "mixed3b/nope"]) == 2
    err = capsys.readouterr().err
    assert "error: --families mixed3b/nope: no family 'mixed3b/nope'" in err and "mixed3b/curves" in err
    assert main(["bench-curves", "--out", out, "--combing-plan", str(tmp_path / "none.json")]) == 2
    assert f"--combing-plan {tmp_path / 'none.json'} does not exist" in capsys.readouterr().err
    from studies.applications.bench_curves import BenchConfig, run_bench_curves

    for cfg, msg in ((BenchConfig(power=0.0), "--power must be > 0"), (BenchConfig(families="3b/nope"), "nope")):
        try:
            run_bench_curves(cfg, tmp_path / "lib")
        except (ValueError, KeyError) as e:
            assert msg in str(e)
        else:
            raise AssertionError("run_bench_curves accepted a bad setting")
    assert not (tmp_path / "b").exists() and not (tmp_path / "lib").exists()

"""Outputs never destroy what they do not own (issue 13, kind 3): ``--overwrite`` replaces only
report folders this tool created, never ``/``, ``$HOME``, the working directory or a parent of
it; ``--out`` problems are found before any compute; two runs cannot both write one ``--out``;
permissions follow the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from studies.cli import main
from studies.report.folder import MARKER, ReportExistsError, UnsafeOutputError, check_out_dir, report_folder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    (h / ".ssh" / "id_ed25519").write_text("secret")
    monkeypatch.setenv("HOME", str(h))
    return h


def test_overwrite_of_home_is_refused_and_nothing_deleted(home):
    with pytest.raises(UnsafeOutputError, match=r"home folder"):
        with report_folder(home, overwrite=True) as tmp:
            (tmp / "summary.md").write_text("report")
    assert (home / ".ssh" / "id_ed25519").read_text() == "secret"
    assert sorted(p.name for p in home.iterdir()) == [".ssh"]


def test_home_via_tilde_and_its_parents_are_refused(home):
    for out in ("~", home.parent, Path("/")):
        with pytest.raises(UnsafeOutputError):
            check_out_dir(out, overwrite=True)
    assert (home / ".ssh" / "id_ed25519").exists()


def test_working_directory_and_its_parents_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for out in (".", work, tmp_path / "a", tmp_path):
        with pytest.raises(UnsafeOutputError, match="working directory"):
            check_out_dir(out, overwrite=True)
    with pytest.raises(UnsafeOutputError, match="working directory"):  # even an empty cwd: never renamed away
        check_out_dir(".", overwrite=False)


def test_overwrite_replaces_only_folders_we_created(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("years of work")
    with pytest.raises(UnsafeOutputError, match=f"no {MARKER}"):
        check_out_dir(theirs, overwrite=True)
    with pytest.raises(ReportExistsError, match="--overwrite"):
        check_out_dir(theirs, overwrite=False)
    assert (theirs / "thesis.tex").read_text() == "years of work"

    ours = tmp_path / "ours"
    with report_folder(ours) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (ours / MARKER).is_file()
    with report_folder(ours, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("second")
    assert (ours / "a.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours", "theirs"]  # no lock or temp left


def test_tilde_is_expanded(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_out_dir("~/reports/r1", overwrite=False) == home / "reports" / "r1"
    with report_folder("~/reports/r1") as tmp:
        (tmp / "x.txt").write_text("x")
    assert (home / "reports" / "r1" / "x.txt").read_text() == "x"
    assert not (tmp_path / "~").exists()


def test_out_problems_are_found_before_any_compute(tmp_path, capsys, monkeypatch):
    import circuits

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(circuits, "load_model", no_load)
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [("/proc/circuits-test/report", "cannot write"), (str(afile), "is a file"),
             (str(afile / "sub"), "is a file")]
    for out, words in cases:
        rc = main(["tune", "3b:379", "--out", out, "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and words in err and "Traceback" not in err, err


def test_two_runs_on_one_new_out_cannot_both_write(tmp_path):
    out = tmp_path / "r"
    with report_folder(out) as tmp:
        with pytest.raises(UnsafeOutputError, match="being written"):
            with report_folder(out):
                pass
        (tmp / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"


def test_a_lock_held_by_another_process_refuses_the_check(tmp_path):
    out = tmp_path / "r"
    code = ("import sys, time; from studies.report.folder import check_out_dir; "
            f"check_out_dir({str(out)!r}, False); print('locked', flush=True); time.sleep(30)")
    p = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(UnsafeOutputError, match="another circuits run"):
            check_out_dir(out, overwrite=False)
    finally:
        p.kill()
        p.wait(10)
    check_out_dir(out, overwrite=False)  # free again once that process is gone
    from studies.report.folder import release_out_dir

    release_out_dir(out)


def test_report_folders_and_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with report_folder(tmp_path / "r") as tmp:
            (tmp / "a.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "r" / MARKER).stat().st_mode) == 0o640


def test_weights_and_edited_files_follow_the_umask(tmp_path):
    import torch

    from circuits.weights import save_canonical

    old = os.umask(0o022)
    try:
        p = save_canonical({"a": torch.zeros(2)}, tmp_path / "w.safetensors", "inceptionv1_caffe", "test")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_edit_apply_checks_every_output_before_loading_anything(tmp_path, capsys):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nedits:\n- {type: Ablate, units: '3b:379'}\n")
    out = tmp_path / "m.safetensors"
    cases = [(["--save-plan", str(tmp_path / "plan.txt")], "--save-plan"),
             (["--save-plan", str(tmp_path)], "--save-plan"),
             (["--save-plan", str(out.with_suffix(".json")), "--out", "/proc/x/m.safetensors"], "cannot write")]
    for extra, words in cases:
        args = ["edit", "apply", str(plan), "--out", str(out), *extra]
        rc = main(args)
        err = capsys.readouterr().err
        assert rc == 2 and words in err, err
        assert not out.exists()

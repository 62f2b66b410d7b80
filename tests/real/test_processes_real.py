"""Processes end cleanly (issue 13, kind 7): killing or interrupting the driver of a
``circuits study sweep --jobs 2`` never leaves its worker processes alive, and Ctrl-C / SIGTERM
end with one line and exit status 130 / 143, no traceback.

Each test starts the real command on 8 sample images (symlinks), waits until both workers are
armed (SIGINT ignored in ``/proc/<pid>/status``, set by :mod:`studies.run.parent_watch`), then
signals the driver and checks the workers are gone within a bounded time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cmdline(pid: int) -> str:
    """The process's command line, or "" when it has already exited (a child may end between listing and reading)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def _armed(pid: int) -> bool:
    """SIGINT (bit 1 of SigIgn) ignored: the worker ran :func:`studies.run.parent_watch.arm`."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ign = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
    return bool(ign & (1 << (signal.SIGINT - 1)))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def sweep_driver(images_dir, caffe_model, tmp_path):
    """Start ``circuits study sweep --jobs 2``; yield (process, worker pids) once both workers are armed."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for p in sorted(images_dir.glob("*.JPEG"))[:8]:
        (imgs / p.name).symlink_to(p)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", "import sys; from studies.cli import main; sys.exit(main())", "study", "sweep",
           "--images", str(imgs), "--single-unit-ablations", "mixed3b/curves", "--jobs", "2", "--batch-size", "2",
           "--shard-size", "2", "--plans-per-pass", "1", "--cache-dir", str(tmp_path / "cache"),
           "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            workers = [c for c in _children(proc.pid) if "spawn_main" in _cmdline(c)]
            if len(workers) == 2 and all(_armed(w) for w in workers):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert len(workers) == 2 and all(_armed(w) for w in workers), "workers did not start within 240 s"
        yield proc, workers
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for w in workers:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(10)


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_kill_9_of_the_driver_ends_its_workers(sweep_driver):
    proc, workers = sweep_driver
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert _gone_within(workers, 5.0) == []


@pytest.mark.parametrize("sig, status, words", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_sigterm_and_ctrl_c_end_cleanly(sweep_driver, tmp_path, sig, status, words):
    proc, workers = sweep_driver
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # a terminal's Ctrl-C reaches the whole process group
    else:
        os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    err = err.decode()
    assert proc.returncode == status, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert f"circuits: error: {words}" in err
    assert _gone_within(workers, 5.0) == []
    assert not (tmp_path / "out").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith((".out.", ".out"))]

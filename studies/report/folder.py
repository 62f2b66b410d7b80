"""Report folders: written under a temporary name and renamed when complete, so a crash,
Ctrl-C or a full disk never leaves a half-written folder that looks like a result.

Safety rules for ``--out`` (issue 13, kind 3), all checked by :func:`check_out_dir` before any
compute:

- ``~`` is expanded; ``/``, ``$HOME``, the working directory and any folder that contains the
  working directory or ``$HOME`` are refused as outputs;
- ``--overwrite`` replaces only a folder this tool created: one holding the marker file
  :data:`MARKER` (written into every report folder); any other non-empty folder is refused;
- the nearest existing parent must be writable (probed by creating and removing a folder);
- a lock (``fcntl.flock`` on ``.<name>.lock`` beside ``out``) is held from the check to the final
  rename, so two runs on the same ``--out`` cannot both succeed;
- folders and files respect the umask (``tempfile.mkdtemp`` makes 0700: the finished folder is
  set to ``0o777 & ~umask``).
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from circuits.weights import apply_umask

#: The file that marks a folder as written by this tool; only such folders are replaced by ``--overwrite``.
MARKER = ".circuits-report"


def log_step(msg: str, t0: float, quiet: bool) -> None:
    """Progress line on stderr, ``[  12.3s] msg`` (seconds since ``t0``), unless ``quiet``."""
    if not quiet:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


class ReportExistsError(FileExistsError):
    """The output folder exists and is not empty, and ``overwrite`` was not given."""


class UnsafeOutputError(ValueError):
    """``--out`` names a folder this tool must never replace or write into (``/``, ``$HOME``, the
    working directory or a parent of it, a folder it did not create, an unwritable place), or
    another run holds its lock."""


def _protected(out: Path) -> str | None:
    """Why ``out`` (absolute, resolved) must never be an output folder, or None."""
    cwd = Path.cwd().resolve()
    home = Path(os.path.expanduser("~")).resolve()
    if out == Path(out.anchor):
        return "is the file-system root"
    for name, p in (("the working directory", cwd), ("your home folder ($HOME)", home)):
        if out == p:
            return f"is {name}"
        if out in p.parents:
            return f"contains {name} ({p})"
    return None


def check_writable(out: Path, flag: str = "--out") -> None:
    """Probe the nearest existing ancestor of ``out`` by creating and removing a folder in it."""
    base = out.parent
    while not base.exists():
        if base == base.parent:
            break
        base = base.parent
    if not base.is_dir():
        raise NotADirectoryError(f"{flag} {out}: {base} is a file, not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".circuits-probe-", dir=base)
        os.rmdir(probe)
    except OSError as e:
        raise UnsafeOutputError(f"{flag} {out}: cannot write in {base} ({e.strerror or e})") from None


#: Locks held by this process: resolved path → (file descriptor, in use by a report_folder).
_LOCKS: dict[Path, list] = {}


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _acquire(out: Path, use: bool, flag: str = "--out") -> None:
    """Take (or, when this process already checked ``out``, reuse) the lock of ``out``."""
    held = _LOCKS.get(out)
    if held is not None:
        if held[1] and use:
            raise UnsafeOutputError(f"{flag} {out} is being written by another report in this process")
        held[1] = held[1] or use
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(_lock_path(out), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise UnsafeOutputError(f"{flag} {out} is being written by another circuits run "
                                        f"(lock {_lock_path(out)}); wait for it or choose another {flag}") from None
            raise
        try:  # the holder before us may have removed the file after we opened it: lock the current one
            if os.stat(_lock_path(out)).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    _LOCKS[out] = [fd, use]


def _release(out: Path) -> None:
    held = _LOCKS.pop(out, None)
    if held is not None:
        try:
            _lock_path(out).unlink()
        except FileNotFoundError:
            pass
        os.close(held[0])


@atexit.register
def release_all() -> None:
    """Drop every ``--out`` lock this process holds and remove its lock file (a command that
    stopped before writing its report; also run at exit)."""
    for out in list(_LOCKS):
        _release(out)


def release_out_dir(out: str | Path) -> None:
    """Drop the lock that :func:`check_out_dir` took on ``out`` (when no report is written after all)."""
    _release(Path(os.path.expanduser(str(out))).resolve())


def marker_command(out: Path) -> str | None:
    """The ``command`` recorded in ``out``'s :data:`MARKER` (``None``: none recorded, or unreadable)."""
    try:
        d = json.loads((out / MARKER).read_text()[:4096])
    except (OSError, ValueError):
        return None
    c = d.get("command") if isinstance(d, dict) else None
    return c if isinstance(c, str) else None


def check_out_dir(out: str | Path, overwrite: bool, lock: bool = True, *, flag: str = "--out",
                  command: str | None = None) -> Path:
    """Fail early (before any compute) if ``out`` cannot or must not receive a report folder;
    return it absolute with ``~`` expanded. With ``lock`` (default) the folder's lock is taken
    and kept for :func:`report_folder` (released when the report is written or the process ends).

    Raises:
        ReportExistsError: ``out`` is not empty and not ``overwrite`` (the message names the flag).
        UnsafeOutputError: ``out`` is ``/``, ``$HOME``, the working directory or a parent of one;
            with ``overwrite``, a non-empty folder without the :data:`MARKER` file; an unwritable
            parent; another run holds the lock; with ``command`` and ``overwrite``, a folder whose marker
            does not record that command (another command's report).
        NotADirectoryError: ``out`` (or a parent) is a file.

    ``flag`` is the option named in the messages; ``command`` (e.g. ``"explore-export"``) is recorded in
    the marker by :func:`report_folder` and required of a folder it replaces (other commands pass none:
    their ``--overwrite`` is unchanged).
    """
    out = Path(os.path.expanduser(str(out))).resolve()
    why = _protected(out)
    if why:
        raise UnsafeOutputError(f"{flag} {out} {why}; give a new folder for the report")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{flag} {out} exists and is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ReportExistsError(f"{flag} {out} exists and is not empty; pass --overwrite to replace it")
        if not (out / MARKER).is_file():
            raise UnsafeOutputError(f"{flag} {out} was not created by circuits (no {MARKER} file in it); "
                                    f"--overwrite only replaces report folders: remove it yourself or choose another {flag}")
        if command is not None and marker_command(out) != command:
            raise UnsafeOutputError(f"{flag} {out} holds the output of another circuits command, not of {command}; "
                                    f"--overwrite only replaces an earlier {command}: remove it yourself or choose "
                                    f"another {flag}")
    check_writable(out, flag)
    if lock:
        _acquire(out, use=False, flag=flag)
    return out


@contextmanager
def report_folder(out: str | Path, overwrite: bool = False, *, flag: str = "--out", command: str | None = None):
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` atomically.

    The folder gets the :data:`MARKER` file and the umask's permissions. The lock on ``out`` is
    held until the rename; the checks of :func:`check_out_dir` are repeated under it.
    On any exception (including KeyboardInterrupt) the temporary folder is removed and
    ``out`` is left as it was.
    """
    out = check_out_dir(out, overwrite, lock=False, flag=flag, command=command)
    _acquire(out, use=True, flag=flag)
    try:
        out = check_out_dir(out, overwrite, lock=False, flag=flag, command=command)  # again, under the lock
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            apply_umask(tmp, 0o777)
            mark = {"created_by": "circuits", "pid": os.getpid()} | ({"command": command} if command else {})
            (tmp / MARKER).write_text(json.dumps(mark) + "\n")
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        try:
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
        except BaseException:  # Ctrl-C (or an error) between the two renames: the earlier report goes back
            if old.exists() and not out.exists():
                os.replace(old, out)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        _release(out)


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False, default=_default) + "\n")


def write_yaml(path: Path, obj) -> None:
    Path(path).write_text(yaml.safe_dump(json.loads(json.dumps(obj, default=_default)), sort_keys=False))


def _default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not serialisable: {type(o).__name__}")


def write_html_report(folder: str | Path, title: str, sections: list[tuple[str, str]],
                      figures: list[str | Path] | None = None, tables: dict[str, "object"] | None = None) -> Path:
    """Deprecated: use :func:`studies.report.html.write_report` (``sections`` become the Markdown summary)."""
    from studies.report.html import write_report

    md = "\n\n".join(f"## {h}\n\n{text}" for h, text in sections)
    return write_report(folder, title, md, figures=figures if figures is not None else [], tables=tables or {})

"""Report folders: written under a temporary name and renamed when complete, so a crash,
Ctrl-C or a full disk never leaves a half-written folder that looks like a result."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml


def log_step(msg: str, t0: float, quiet: bool) -> None:
    """Progress line on stderr, ``[  12.3s] msg`` (seconds since ``t0``), unless ``quiet``."""
    if not quiet:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


class ReportExistsError(FileExistsError):
    """The output folder exists and is not empty, and ``overwrite`` was not given."""


def check_out_dir(out: str | Path, overwrite: bool) -> Path:
    """Fail early (before any compute) if ``out`` is a non-empty folder and not ``overwrite``.

    Raises:
        ReportExistsError: with the flag to pass.
        NotADirectoryError: ``out`` is a file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ReportExistsError(f"--out {out} exists and is not empty; pass --overwrite to replace it")
    return out


@contextmanager
def report_folder(out: str | Path, overwrite: bool = False):
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` atomically.

    On any exception (including KeyboardInterrupt) the temporary folder is removed and
    ``out`` is left as it was.
    """
    out = check_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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

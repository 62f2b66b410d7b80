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
    """Write ``folder/report.html``: a self-contained page (figures embedded as base64 PNG,
    no external resources, opens offline).

    Args:
        folder: the report folder (figures are read from it).
        title: page title.
        sections: ``[(heading, markdown-ish text)]``; text is escaped and shown as paragraphs.
        figures: PNG file names inside ``folder`` to embed, in order.
        tables: ``{caption: pandas.DataFrame}`` rendered as HTML tables (first 200 rows).
    """
    import base64
    import html as _html

    folder = Path(folder)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_html.escape(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;color:#222}"
             "table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%;border:1px solid #eee;margin:8px 0}pre{white-space:pre-wrap}</style></head><body>",
             f"<h1>{_html.escape(title)}</h1>"]
    for heading, text in sections:
        parts.append(f"<h2>{_html.escape(heading)}</h2><pre>{_html.escape(text)}</pre>")
    for name, df in (tables or {}).items():
        parts.append(f"<h2>{_html.escape(name)}</h2>" + df.head(200).to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    for fig in figures or []:
        p = folder / fig
        if p.is_file():
            b64 = base64.b64encode(p.read_bytes()).decode()
            parts.append(f"<h3>{_html.escape(str(fig))}</h3><img alt='{_html.escape(str(fig))}' src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>")
    out = folder / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out

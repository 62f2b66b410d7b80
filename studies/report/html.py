"""The one report page writer: ``report.html`` from a report folder's ``summary.md``, figures and tables.

Every study and every command that writes a folder calls :func:`write_report` once, after its
other files are written. The page is rendered from a Jinja2 template
(``studies/report/templates/report.html.j2``) with ``summary.md`` rendered by markdown-it-py
(CommonMark plus tables; raw HTML in the Markdown is escaped). Layout: figures first, then the
summary, then the tables — long tables collapsed in ``<details>``, every table in a horizontally
scrolling container. The page is self-contained and works offline: figures are embedded as
base64 ``data:`` URIs (the page can be mailed or attached on its own), no external font, script or
CDN (one inline script only marks ``<body data-figures-rendered=N data-tables=M>`` after loading, for
checks); it also links the folder's files relatively.
"""

from __future__ import annotations

import base64
import html as _html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: tables with more rows than this are collapsed in ``<details>``
COLLAPSE_ROWS = 15
#: at most this many rows of a table are shown (the full table is the CSV in the folder)
MAX_ROWS = 2000


@dataclass
class _Table:
    caption: str
    html: str
    n_rows: int
    n_cols: int
    collapsed: bool
    note: str = ""


@dataclass
class _Figure:
    name: str
    src: str
    caption: str = ""


def _markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _table(caption: str, df: pd.DataFrame, source: str | None = None) -> _Table:
    n = len(df)
    shown = df.head(MAX_ROWS)
    body = shown.to_html(index=False, float_format=_fmt, border=0, na_rep="", escape=True)
    note = f"first {MAX_ROWS} of {n} rows" if n > MAX_ROWS else ""
    if source:
        note = (note + "; " if note else "") + f"full table: {source}"
    return _Table(_html.escape(caption), body, n, df.shape[1], n > COLLAPSE_ROWS, _html.escape(note))


def _figures(folder: Path, figures: Sequence | None, captions: Mapping[str, str]) -> list[_Figure]:
    if figures is None:  # every PNG: the folder's own first, then those of its subfolders (e.g. units/)
        found = [p.relative_to(folder) for p in folder.rglob("*.png") if not p.name.startswith(".")]
        names = [p.as_posix() for p in sorted(found, key=lambda p: (len(p.parts), p.as_posix()))]
    else:
        names = [str(f) for f in figures]
    out = []
    for name in names:
        p = folder / name
        if not p.is_file():
            raise FileNotFoundError(f"figure {name} is not in the report folder {folder}")
        b64 = base64.b64encode(p.read_bytes()).decode("ascii")
        out.append(_Figure(name, f"data:image/png;base64,{b64}", captions.get(name, "")))
    return out


def _tables(folder: Path, tables: Mapping | None) -> list[_Table]:
    if tables is None:
        return [_table(p.stem.replace("_", " "), pd.read_csv(p), p.name) for p in sorted(folder.glob("*.csv"))]
    out = []
    for caption, df in tables.items():
        if isinstance(df, (str, Path)):
            name = str(df)
            out.append(_table(caption, pd.read_csv(folder / name), name))
        else:
            out.append(_table(caption, df))
    return out


def write_report(folder: str | Path, title: str, summary_md: str | None = None, figures: Sequence | None = None,
                 tables: Mapping | None = None, *, captions: Mapping[str, str] | None = None,
                 warnings: Sequence[str] = ()) -> Path:
    """Write ``folder/report.html`` and return its path.

    Args:
        folder: the report folder (figures and CSV files are read from it).
        title: page title (plain text).
        summary_md: Markdown summary; ``None``: ``folder/summary.md`` if present.
        figures: PNG file names inside ``folder``, in display order; ``None``: every ``*.png`` of
            the folder in name order; ``[]``: none.
        tables: ``{caption: DataFrame or CSV file name in folder}`` in display order; ``None``:
            every ``*.csv`` of the folder in name order (caption: the file stem); ``{}``: none.
        captions: optional ``{figure file name: caption}``.
        warnings: lines shown highlighted at the top (e.g. small-sample warnings).

    Raises:
        FileNotFoundError: ``folder`` is not a folder, or a named figure is not in it.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"report folder {folder} is not a folder")
    if summary_md is None and (folder / "summary.md").is_file():
        summary_md = (folder / "summary.md").read_text(encoding="utf-8")
    summary_md = _without_repeated_heading(summary_md, title)
    env = Environment(loader=PackageLoader("studies.report", "templates"), autoescape=select_autoescape(["j2"]))
    from markupsafe import Markup

    tabs = _tables(folder, tables)
    for t in tabs:
        t.html = Markup(t.html)
    page = env.get_template("report.html.j2").render(
        title=title, version=_version(), warnings=list(warnings),
        figures=_figures(folder, figures, captions or {}),
        summary_html=Markup(_markdown(summary_md)) if summary_md else "",
        tables=tabs,
        files=sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != "report.html"
                     and not p.name.startswith(".")),
    )
    out = folder / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


def _without_repeated_heading(summary_md: str | None, title: str) -> str | None:
    """``summary_md`` without a first heading that the page already shows: an H1 equal to the
    page title, or a heading (any level) reading "Summary" (the section's own ``<h2>``)."""
    while summary_md:  # both may lead: "# <title>" then "## Summary"
        first, _, rest = summary_md.lstrip().partition("\n")
        level = len(first) - len(first.lstrip("#"))
        text = first[level:].strip()
        if not (1 <= level <= 6 and first[level:level + 1] == " " and (
                (level == 1 and text == title.strip()) or text.lower() == "summary")):
            break
        summary_md = rest
    return summary_md


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("circuits")
    except Exception:  # not installed: running from a source tree
        return "source"

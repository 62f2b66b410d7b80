"""Static export of the circuit explorer: the browsable pages of one layer as a folder that opens
from disk (``file://``), with no server (issue 20, item 5; ``circuits explore --export DIR --layer L``).

The export holds the front end of :mod:`studies.explore` unchanged (``index.html``, ``static/``) and
the JSON the pages read, fetched through the server's own endpoints (so the numbers are the
server's), as one script per endpoint — ``data/<name>.js`` sets
``window.CIRCUITS_DATA["/api/unit/3b:379"] = {…}`` — because browsers refuse ``fetch()`` of
``file://`` URLs but do run ``<script src>``. ``data/index.js`` sets ``window.CIRCUITS_STATIC``
and lists every exported endpoint; ``app.js`` loads the scripts on demand, shows links only to
exported pages (units of other layers appear as plain text) and hides the edit panel. Every
``/files/<sha256>.<ext>`` an answer names is copied to ``files/``.

Layout of ``out``::

    index.html  static/{app,plots,edit}.js  static/style.css
    data/index.js  data/meta.js  data/layer_mixed3b.js  data/unit_3b_379.js …  data/graph.js
    files/<64 hex>.png …
    .circuits-report                (the marker, recording "explore-export": only such a folder is replaced
                                     with overwrite=True)
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from studies.report.folder import check_out_dir, report_folder

#: The front end's files (served at /static/ by the server).
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The marker in index.html that the export replaces by the data script.
STATIC_MARKER = "<!-- CIRCUITS-STATIC-DATA -->"
#: What a ``/files/`` URL may look like (the server's cache names: SHA-256 hex + extension).
#: starlette's note when fastapi.testclient runs on httpx (it prefers httpx2); silenced by message, nothing else.
HTTPX_NOTE = r"Using `httpx` with `starlette\.testclient` is deprecated"
FILE_URL = re.compile(r"^/files/([0-9a-f]{64}\.(?:png|json|yaml|safetensors))$")


def static_name(path: str) -> str:
    """The data script's name for an endpoint: ``"/api/unit/3b:379"`` → ``"unit_3b_379"``.
    Must equal ``staticName`` in ``static/app.js``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", re.sub(r"^/api/", "", path))


@contextmanager
def _client(app_or_client: Any) -> Iterator[Any]:
    """A client with ``.get(path)``: the given client, or a ``TestClient`` around a FastAPI app
    (entered, so the app's startup/shutdown run)."""
    if hasattr(app_or_client, "get") and not hasattr(app_or_client, "router"):
        yield app_or_client
        return
    with warnings.catch_warnings():
        # starlette >= 1.x warns (StarletteDeprecationWarning, a UserWarning) that it prefers the httpx2
        # package; httpx works and is what we depend on: silence exactly that message, nothing else
        warnings.filterwarnings("ignore", message=HTTPX_NOTE, category=UserWarning)
        from fastapi.testclient import TestClient

    log = logging.getLogger("httpx")  # one INFO line per request otherwise (the CLI logs at INFO)
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        with TestClient(app_or_client, base_url="http://127.0.0.1") as client:  # a Host the server answers
            yield client
    finally:
        log.setLevel(level)


def _get_json(client: Any, path: str) -> Any:
    r = client.get(path)
    if r.status_code != 200:
        try:
            msg = r.json().get("error", r.text)
        except ValueError:
            msg = r.text
        raise RuntimeError(f"export: GET {path} answered {r.status_code}: {msg}")
    return r.json()


def _file_urls(obj: Any) -> set[str]:
    """Every ``/files/…`` URL in a JSON answer (nested anywhere)."""
    if isinstance(obj, str):
        return {obj} if FILE_URL.match(obj) else set()
    if isinstance(obj, dict):
        return set().union(*(_file_urls(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_file_urls(v) for v in obj)) if obj else set()
    return set()


def _fetch_pages(client: Any, layer: str, units: list[str] | None, progress: bool) -> tuple[str, dict[str, Any]]:
    """``(canonical layer name, {endpoint path: JSON})`` for the layer's pages."""
    meta = _get_json(client, "/api/meta")
    layers = {d["layer"]: d for d in meta["layers"]} | {d["short"]: d for d in meta["layers"]}
    if layer not in layers:
        raise ValueError(f"export: unknown layer {layer!r}; choose from {', '.join(d['layer'] for d in meta['layers'])}")
    name = layers[layer]["layer"]
    pages: dict[str, Any] = {"/api/meta": meta}
    pages[f"/api/layer/{name}"] = lay = _get_json(client, f"/api/layer/{name}")
    ids = [u["id"] for u in lay["units"]]
    if units is not None:
        unknown = sorted(set(units) - set(ids))
        if unknown:
            raise ValueError(f"export: units {', '.join(unknown)} are not units of {name} (ids like {ids[0]!r})")
        ids = [i for i in ids if i in set(units)]
    for k, uid in enumerate(ids):
        pages[f"/api/unit/{uid}"] = _get_json(client, f"/api/unit/{uid}")
        if progress and (k + 1) % 50 == 0:
            print(f"circuits explore: exported {k + 1}/{len(ids)} units", file=sys.stderr, flush=True)
    for fam in meta["families"]:
        if fam["layer"] == name:
            pages[f"/api/family/{name}/{fam['name']}"] = _get_json(client, f"/api/family/{name}/{fam['name']}")
    pages["/api/graph"] = _get_json(client, "/api/graph")
    return name, pages


def _write_site(tmp: Path, client: Any, pages: dict[str, Any]) -> int:
    """Write the front end, the data scripts and the referenced files into ``tmp``; returns the file count."""
    (tmp / "static").mkdir()
    for f in sorted(STATIC_DIR.iterdir()):
        if f.is_file() and f.suffix in (".js", ".css"):
            shutil.copyfile(f, tmp / "static" / f.name)
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    if STATIC_MARKER not in page:
        raise RuntimeError(f"export: {STATIC_DIR / 'index.html'} lacks the marker {STATIC_MARKER}")
    (tmp / "index.html").write_text(page.replace(STATIC_MARKER, '<script src="data/index.js"></script>'),
                                    encoding="utf-8")
    data = tmp / "data"
    data.mkdir()
    (data / "index.js").write_text(
        "window.CIRCUITS_STATIC = true;\nwindow.CIRCUITS_DATA = window.CIRCUITS_DATA || {};\n"
        f"window.CIRCUITS_INDEX = {json.dumps(sorted(pages))};\n", encoding="utf-8")
    for path, obj in pages.items():
        (data / f"{static_name(path)}.js").write_text(
            f"window.CIRCUITS_DATA[{json.dumps(path)}] = {json.dumps(obj, allow_nan=False)};\n", encoding="utf-8")
    files = tmp / "files"
    files.mkdir()
    urls = sorted(set().union(*(_file_urls(obj) for obj in pages.values())))
    for url in urls:
        r = client.get(url)
        if r.status_code != 200:
            raise RuntimeError(f"export: GET {url} answered {r.status_code}")
        (files / FILE_URL.match(url).group(1)).write_bytes(r.content)
    return len(urls)


#: The command recorded in an export's marker: ``overwrite`` replaces only a folder that records it.
COMMAND = "explore-export"


def check_export_dir(out: str | Path, overwrite: bool, cache: str | Path | None = None, lock: bool = True) -> Path:
    """:func:`studies.report.folder.check_out_dir` for ``--export``: also refused when ``out`` is, contains or
    lies inside the ``cache`` folder (replacing it would delete the cache, or the cache's own files), and with
    ``overwrite`` when ``out`` was written by another command (its marker does not record :data:`COMMAND`).

    Raises:
        UnsafeOutputError / ReportExistsError / NotADirectoryError: naming ``--export``."""
    from studies.report.folder import UnsafeOutputError

    real = Path(out).expanduser().resolve()
    if cache is not None:
        c = Path(cache).expanduser().resolve()
        how = "is" if real == c else "contains" if real in c.parents else "is inside" if c in real.parents else ""
        if how:
            raise UnsafeOutputError(f"--export {real} {how} the cache folder {c}; give a folder outside the cache")
    return check_out_dir(out, overwrite, lock, flag="--export", command=COMMAND)


def export_site(app_or_client: Any, layer: str, out: str | Path, *, units: list[str] | None = None,
                overwrite: bool = False, progress: bool = False) -> Path:
    """Write the static explorer site of ``layer`` into the folder ``out`` and return it (absolute).

    Args:
        app_or_client: the explorer's FastAPI app (:func:`studies.explore.server.create_app`) or a
            client with ``.get(path)`` answering like it (``fastapi.testclient.TestClient``, ``httpx.Client``).
        layer: a layer of ``/api/meta`` (``"mixed3b"`` or ``"3b"``).
        out: the folder to write; written atomically (:func:`studies.report.folder.report_folder`):
            a non-empty folder is refused unless ``overwrite`` and its marker records an earlier export
            (:data:`COMMAND`); refused when it is, contains or lies in the explorer's cache folder.
        units: only these unit ids (``"3b:379"``) get unit pages (default: every unit of the layer);
            the layer grid links only to exported units.
        progress: print a line on stderr every 50 units.

    Open ``out/index.html`` in a browser (from disk); the layer page is ``index.html#/layer/<layer>``.

    Raises:
        ValueError: unknown layer, or ``units`` not in it (before anything is written).
        RuntimeError: an endpoint answered with an error (its message included); nothing is written.
        ReportExistsError / UnsafeOutputError: ``out`` must not be written (see ``report_folder``).
    """
    state = getattr(getattr(app_or_client, "app", app_or_client), "state", None)
    ex = getattr(state, "explorer", None)
    check_export_dir(out, overwrite, ex.config.cache if ex is not None else None)  # before any request
    with _client(app_or_client) as client:
        name, pages = _fetch_pages(client, layer, units, progress)
        with report_folder(out, overwrite=overwrite, flag="--export", command=COMMAND) as tmp:
            n_files = _write_site(tmp, client, pages)
    if progress:
        print(f"circuits explore: exported {name}: {len(pages)} pages, {n_files} files", file=sys.stderr, flush=True)
    return Path(out).expanduser().resolve()

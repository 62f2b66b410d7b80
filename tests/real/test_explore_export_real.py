"""Static export of the explorer (issue 20, item 5): ``export_site`` on the real server's app writes
a folder that opens from disk in headless Debian Chromium; every page reachable by its links
renders without an error, every image decodes, nothing fails to load, and the data in the
export is the server's JSON exactly. Fails — never skips — without Chromium or the real data."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from studies.explore.config import ExploreConfig
from studies.explore.export import FILE_URL, HTTPX_NOTE, export_site, static_name
from studies.explore.server import create_app
from studies.report.folder import MARKER, ReportExistsError, UnsafeOutputError

with warnings.catch_warnings():  # starlette's "install httpx2" note (a UserWarning); httpx is what we install
    warnings.filterwarnings("ignore", message=HTTPX_NOTE, category=UserWarning)
    from fastapi.testclient import TestClient

CHROMIUM = "/usr/bin/chromium"
#: unit pages exported: one outside any family (the search example), one of mixed3b/curves
UNITS = ["3b:379", "3b:358"]


@pytest.fixture(scope="module")
def client(images_dir, tmp_path_factory):
    """The real explorer app in-process; the cache is shared with the browser test of the same session."""
    cache = tmp_path_factory.getbasetemp() / "explore-cache"
    cache.mkdir(exist_ok=True)
    config = ExploreConfig(images=str(images_dir), cache=cache, port=0, reference_images=20).check()
    with TestClient(create_app(config), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def site(client, tmp_path_factory) -> Path:
    return export_site(client, "mixed3b", tmp_path_factory.mktemp("export") / "site", units=UNITS)


def read_data(site: Path, path: str):
    """The JSON a data script of the export assigns to ``window.CIRCUITS_DATA[path]``."""
    text = (site / "data" / f"{static_name(path)}.js").read_text(encoding="utf-8")
    prefix = f"window.CIRCUITS_DATA[{json.dumps(path)}] = "
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix):-2])


def test_export_holds_the_servers_json_and_files(site, client):
    assert (site / MARKER).is_file() and (site / "index.html").is_file()
    assert {p.name for p in (site / "static").iterdir()} >= {"app.js", "plots.js", "edit.js", "style.css"}
    html = (site / "index.html").read_text(encoding="utf-8")
    assert '<script src="data/index.js"></script>' in html and "http://" not in html and "https://" not in html
    meta = client.get("/api/meta").json()
    families = [f"/api/family/mixed3b/{f['name']}" for f in meta["families"] if f["layer"] == "mixed3b"]
    pages = ["/api/meta", "/api/layer/mixed3b", "/api/graph", *families, *[f"/api/unit/{u}" for u in UNITS]]
    index = (site / "data" / "index.js").read_text(encoding="utf-8")
    assert json.loads(index.split("window.CIRCUITS_INDEX = ")[1].rstrip(";\n")) == sorted(pages)
    assert len(list((site / "data").iterdir())) == len(pages) + 1
    urls = set()
    for path in pages:
        data = read_data(site, path)
        assert data == client.get(path).json(), path
        urls |= {v for v in json.dumps(data).split('"') if FILE_URL.match(v)}
    assert urls and {p.name for p in (site / "files").iterdir()} == {u.removeprefix("/files/") for u in urls}
    for u in sorted(urls)[:5]:
        assert (site / "files" / u.removeprefix("/files/")).read_bytes() == client.get(u).content


def test_export_refuses_unsafe_folders(site, client, tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ReportExistsError, match="not empty"):
        export_site(client, "mixed3b", other, units=UNITS[:1])
    with pytest.raises(UnsafeOutputError, match="not created by circuits"):
        export_site(client, "mixed3b", other, units=UNITS[:1], overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="unknown layer 'mixed9z'; choose from .*mixed3b"):
        export_site(client, "mixed9z", tmp_path / "new")
    with pytest.raises(ValueError, match="3b:9999"):
        export_site(client, "3b", tmp_path / "new", units=["3b:9999"])
    assert not (tmp_path / "new").exists()


def crawl(page, base: str, start: list[str], limit: int = 40) -> dict[str, dict]:
    """Visit hash routes from ``start`` following every in-page link; returns {route: facts}."""
    seen: dict[str, dict] = {}
    todo = list(start)
    while todo and len(seen) < limit:
        route = todo.pop(0)
        if route in seen:
            continue
        page.goto(f"{base}{route}")
        page.wait_for_selector(f'#app[data-route="{route.removeprefix("#/").split("?")[0]}"]', timeout=30_000)
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
        facts = page.evaluate("""() => ({
            errors: Array.from(document.querySelectorAll('.error-box')).map(e => e.textContent),
            images: Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth]),
            links: Array.from(document.querySelectorAll('a[href]')).filter(a => a.offsetParent !== null)
                .map(a => a.getAttribute('href')),
        })""")
        seen[route] = facts
        todo += [h for h in facts["links"] if h.startswith("#/") and h not in seen]
    return seen


def test_static_export_opens_from_disk_and_every_link_resolves(site):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is needed for the browser tests (Debian package `chromium`)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        base = (site / "index.html").as_uri()
        pages = crawl(page, base, ["#/", "#/layer/mixed3b", "#/graph"])
        # the edit panel is not part of a static site
        assert not page.locator("a.edit-only").first.is_visible()
        page.goto(f"{base}#/edit")
        page.wait_for_selector("#app[data-route='edit'] .error-box")
        browser.close()
    assert problems == []
    expected = {"#/", "#/layer/mixed3b", "#/graph", "#/family/mixed3b/curves", *[f"#/unit/{u}" for u in UNITS]}
    assert expected <= set(pages), sorted(pages)
    for route, facts in pages.items():
        assert facts["errors"] == [], (route, facts["errors"])
        assert all(src.startswith("files/") and w > 0 for src, w in facts["images"]), (route, facts["images"])
        for href in facts["links"]:
            assert href.startswith("#/") and "#/unit/" not in href or href.removeprefix("#/unit/") in UNITS, href
    unit = pages["#/unit/3b:379"]
    assert len(unit["images"]) >= 17  # joint map + 8 + 8 neighbour kernels, copied into files/


def test_export_client_emits_no_starlette_httpx_warning():
    """export_site's in-process client: starlette's "install httpx2" deprecation note is silenced (exactly that
    message), so ``circuits explore --export`` prints no warning; run where the warning is an error."""
    code = ("from fastapi import FastAPI\nfrom studies.explore.export import _client\n"
            "app = FastAPI()\napp.get('/ping')(lambda: {'ok': True})\n"
            "with _client(app) as c:\n    assert c.get('/ping').json() == {'ok': True}\n")
    r = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr[-2000:]

"""Open a report folder's ``report.html`` in headless Chromium and check that it renders:
every figure decoded, the tables present, nothing fetched from the network."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if path:
            return path
    pytest.fail("headless Chromium is needed for the HTML test (Debian package `chromium`; .ci/run installs it)")


def check_report_html(folder: Path, profile: Path, min_figures: int = 1, min_tables: int = 0) -> str:
    """Assert ``folder/report.html`` renders in Chromium; returns the DOM after loading."""
    page = Path(folder) / "report.html"
    assert page.is_file(), f"no report.html in {folder}"
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']https?://""", html), "report.html loads something from the network"
    dom = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-figures="(\d+)" data-figures-rendered="(\d+)" data-tables="(\d+)"', dom)
    assert m, f"report.html of {folder} did not finish rendering: {dom[:300]!r}"
    n_fig, n_ok, n_tab = map(int, m.groups())
    assert n_fig == n_ok >= min_figures, f"{n_ok} of {n_fig} figures rendered in {folder}"
    assert n_tab >= min_tables, f"{n_tab} tables in {folder}"
    # figures come before the summary and the tables
    assert dom.find('id="figures"') < dom.find('id="summary"') or 'id="summary"' not in dom
    return dom

"""studies.report.html.write_report: figures first, Markdown rendered, long tables collapsed,
wide ones scrolling, self-contained; opened in headless Chromium. Numeric unit order."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from html_check import check_report_html  # noqa: E402

from studies.report.html import write_report  # noqa: E402
from studies.report.order import sort_units, sort_units_df  # noqa: E402


def _folder(tmp_path):
    d = tmp_path / "rep"
    d.mkdir()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(d / "b_fig.png")
    fig.savefig(d / "a_fig.png")
    plt.close(fig)
    pd.DataFrame({"unit": [f"mixed3b:{i}" for i in range(40)], "x": range(40)}).to_csv(d / "long.csv", index=False)
    pd.DataFrame({f"column_{i}": [i] for i in range(60)}).to_csv(d / "wide.csv", index=False)
    (d / "summary.md").write_text("# Title\n\nSome **bold** text.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                                  "<script>alert(1)</script>\n")
    return d


def test_write_report_layout_and_rendering(tmp_path):
    d = _folder(tmp_path)
    html = write_report(d, "A <report>").read_text()
    assert "<strong>bold</strong>" in html and "<td>1</td>" in html  # Markdown rendered, with tables
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html  # raw HTML escaped
    assert "A &lt;report&gt;" in html
    assert html.count("data:image/png;base64,") == 2
    png = (d / "a_fig.png").read_bytes()
    assert base64.b64encode(png).decode() in html
    assert html.index("a_fig.png") < html.index("b_fig.png") < html.index('id="summary"') < html.index('id="tables"')
    assert html.count("<details") == 1  # the 40-row table is collapsed; the 1-row wide one is not
    assert html.count('class="scroll') == 2
    dom = check_report_html(d, tmp_path / "chromium", min_figures=2, min_tables=2)
    assert 'data-tables="2"' in dom


def test_write_report_explicit_and_errors(tmp_path):
    d = _folder(tmp_path)
    html = write_report(d, "t", "plain", figures=["b_fig.png"], tables={"Long (long.csv)": "long.csv"}).read_text()
    assert html.count("data:image/png;base64,") == 1 and "Long (long.csv)" in html and "column_59" not in html
    with pytest.raises(FileNotFoundError, match="missing.png"):
        write_report(d, "t", figures=["missing.png"])
    with pytest.raises(FileNotFoundError, match="not a folder"):
        write_report(tmp_path / "nope", "t")


def test_units_sort_numerically():
    units = ["mixed3b:195", "mixed3b:9", "mixed4a:1", "mixed3b:66", "conv2d2:10"]
    assert sort_units(units) == ["conv2d2:10", "mixed3b:9", "mixed3b:66", "mixed3b:195", "mixed4a:1"]
    df = pd.DataFrame({"unit": ["3b:195", "3b:66", "3b:9"], "v": [1, 2, 3]})
    assert sort_units_df(df)["unit"].tolist() == ["3b:9", "3b:66", "3b:195"]


def test_summary_heading_is_shown_once(tmp_path):
    """A summary starting with its own "Summary" heading (e.g. the artificial-curves study's, through
    the old write_html_report sections) gave the page two "Summary" headings."""
    from studies.report.folder import write_html_report

    d = _folder(tmp_path)
    for md in ("## Summary\n\nThe numbers.", "# Summary\n\nThe numbers.", "# t\n\n## Summary\n\nThe numbers."):
        html = write_report(d, "t", md, figures=[], tables={}).read_text()
        assert html.count(">Summary</h") == 1 and "The numbers." in html, md
    html = write_html_report(d, "t", [("Summary", "The numbers.")]).read_text()
    assert html.count(">Summary</h") == 1
    html = write_report(d, "t", "## Summary of the ablation\n\nx", figures=[], tables={}).read_text()
    assert ">Summary of the ablation</h2>" in html  # only a heading that says just "Summary" is dropped

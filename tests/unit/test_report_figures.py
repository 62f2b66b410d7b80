"""Figure cosmetics found by the testers: nothing drawn outside the figure, colour bars sized to
their map and showing where the colour scale is capped, readable with a single unit."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


def _capture(monkeypatch):
    """Keep the figures that ``savefig`` writes (to inspect their layout), still writing the file."""
    figs = []
    orig = matplotlib.figure.Figure.savefig

    def savefig(self, *a, **k):
        figs.append(self)
        return orig(self, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    return figs


def _outside(fig) -> bool:
    """Whether anything drawn (titles, labels, tick labels, colour bars, legend) reaches outside the figure."""
    tight = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, drawn artists only
    w, h = fig.get_size_inches()
    return tight.x0 < -0.01 or tight.y0 < -0.01 or tight.x1 > w + 0.01 or tight.y1 > h + 0.01


@pytest.mark.parametrize("h,w", [(95, 383), (256, 383), (383, 256)])
def test_curve_map_colour_bar_fits_its_map_and_shows_the_cap(tmp_path, monkeypatch, h, w):
    from studies.applications.figures import plot_curves

    figs = _capture(monkeypatch)
    m = np.random.default_rng(0).exponential(1.0, (h, w))
    plot_curves([torch.rand(3, h, w)], ["img"], m[None], [m > 3], [m > 4], tmp_path / "c.png", "mixed3b/curves")
    fig = figs[0]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    cbar = next(a for a in fig.axes if a.get_label() == "<colorbar>")
    cb = cbar._colorbar
    assert cb.extend == "max" and "99.5th percentile" in cb.ax.get_xlabel() + cb.ax.get_ylabel()
    map_ax = next(a for a in fig.axes if a.get_title().startswith("curve map:"))
    mb, bb = map_ax.get_window_extent(r), cbar.get_window_extent(r)
    along = (bb.width, mb.width) if cb.orientation == "horizontal" else (bb.height, mb.height)
    assert 0.5 * along[1] <= along[0] <= 1.05 * along[1], (cb.orientation, along)  # as long as the map, not 3x
    assert not _outside(fig)


def test_sparsity_plot_with_one_unit_is_readable(tmp_path, monkeypatch):
    """One unit gave two bars filling the whole axes under the legend, values unreadable."""
    import pandas as pd

    from studies.report.dataset_plots import plot_sparsity

    figs = _capture(monkeypatch)
    s = pd.DataFrame(dict(unit=["mixed3b:379"], layer=["mixed3b"], frac_active=[0.107], frac_images_active=[0.93]))
    plot_sparsity(s, tmp_path / "s.png", title="Sparsity over 1000 images")
    fig = figs[0]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    bars = [p for c in ax.containers for p in c.patches]
    ab = ax.get_window_extent(r)
    assert len(bars) == 2 and all(p.get_window_extent(r).width < 0.25 * ab.width for p in bars)
    assert sorted(t.get_text() for t in ax.texts) == ["10.7", "93.0"]  # the values, on the bars
    assert not fig.legends[0].get_window_extent(r).overlaps(ab)  # the legend covers no bar
    assert not _outside(fig)

"""Figures: radial tuning (polar), before/after comparisons."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .tuning import orientation_colour  # noqa: E402


def plot_radial(
    radial: pd.DataFrame,
    path: str | Path | None = None,
    preferred: dict[str, float] | None = None,
    title: str = "",
    variants: list[str] | None = None,
):
    """Polar plot of radial tuning curves, one panel per variant, units overlaid and coloured
    by preferred orientation (Curve Detectors, radial tuning figure).

    Args:
        radial: output of :func:`studies.tuning.radial_tuning` (``variant`` column optional).
        path: where to save a PNG (``None``: just return the figure).
        preferred: ``{unit: preferred orientation (deg)}`` for the colours; default: argmax.
        variants: panel order; default: order of appearance.

    Returns:
        The matplotlib figure.
    """
    if "variant" not in radial.columns:
        radial = radial.assign(variant="")
    variants = variants or list(dict.fromkeys(radial["variant"]))
    rmax = max(float(radial["response"].max()), 1e-9)
    fig, axes = plt.subplots(1, len(variants), subplot_kw={"projection": "polar"},
                             figsize=(4.2 * len(variants), 4.6), squeeze=False)
    for ax, v in zip(axes[0], variants):
        d = radial[radial["variant"] == v]
        for unit, g in d.groupby("unit", sort=False):
            g = g.sort_values("orientation")
            th = np.radians(np.append(g["orientation"].to_numpy(), g["orientation"].iloc[0]))
            r = np.append(g["response"].to_numpy(), g["response"].iloc[0])
            pref = (preferred or {}).get(unit)
            if pref is None:
                pref = float(g["orientation"].iloc[int(np.argmax(g["response"].to_numpy()))])
            ax.plot(th, r, color=orientation_colour(pref), lw=1.4, label=unit)
        ax.set_ylim(0, rmax * 1.05)
        ax.set_title(v, pad=14)
        ax.set_yticklabels([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig

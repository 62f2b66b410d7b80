"""Feature-visualization figures: one PNG per unit, a family grid sorted by preferred
orientation (as Curve Detectors fig. 2 lays out the family), a before/after grid of edit
variants, and the objective per optimisation step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from torch import Tensor  # noqa: E402

from circuits.units import Unit  # noqa: E402


def to_uint8(image: Tensor) -> np.ndarray:
    """``(3, H, W)`` RGB in [0, 1] → ``(H, W, 3)`` uint8."""
    return (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def save_png(image: Tensor, path: str | Path, scale: int = 1) -> Path:
    """Save ``(3, H, W)`` RGB in [0, 1] as a PNG, enlarged ``scale`` times (nearest)."""
    im = Image.fromarray(to_uint8(image))
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    path = Path(path)
    im.save(path)
    return path


def unit_file(unit: Unit) -> str:
    """File name of a unit's picture: ``mixed3b_379.png``."""
    return f"{unit.layer}_{unit.index}.png"


def _order(units: Sequence[Unit], orientations: Mapping[Unit, float] | None) -> list[int]:
    def key(i):
        o = (orientations or {}).get(units[i], float("nan"))
        return (math.isnan(o), o if not math.isnan(o) else 0.0, units[i].index)

    return sorted(range(len(units)), key=key)


def _label(u: Unit, orientations: Mapping[Unit, float] | None, value: float | None = None) -> str:
    o = (orientations or {}).get(u)
    s = u.short
    if o is not None and not math.isnan(o):
        s += f"  {o:.0f}°"
    if value is not None:
        s += f"\nobj {value:.0f}"
    return s


def plot_family_grid(images: Sequence[Tensor], units: Sequence[Unit], path: str | Path | None = None,
                     orientations: Mapping[Unit, float] | None = None, values: Sequence[float] | None = None,
                     title: str = "", ncols: int = 10):
    """Grid of unit pictures, sorted by preferred orientation (deg; units without one last, by
    index), each labelled with the unit, its orientation and optionally its objective value.

    Returns the figure; saves a PNG when ``path`` is given."""
    order = _order(units, orientations)
    n = len(order)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.85 * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for k, i in enumerate(order):
        ax = axes.flat[k]
        ax.imshow(to_uint8(images[i]), interpolation="nearest")
        ax.set_title(_label(units[i], orientations, None if values is None else values[i]), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def plot_variant_grid(variants: Mapping[str, Sequence[Tensor]], units: Sequence[Unit], path: str | Path | None = None,
                      orientations: Mapping[Unit, float] | None = None,
                      values: Mapping[str, Sequence[float]] | None = None, labels: Mapping[str, str] | None = None,
                      title: str = ""):
    """Before/after grid: one row per variant (e.g. the echo study's (a)–(d)), one column per
    unit sorted by preferred orientation; the same seed and settings in every row, so the rows
    differ only by the edit. Cells carry the objective value when ``values`` is given."""
    order = _order(units, orientations)
    names = list(variants)
    fig, axes = plt.subplots(len(names), len(order), figsize=(1.35 * len(order) + 1.6, 1.55 * len(names) + 0.6),
                             squeeze=False, layout="constrained")
    for r, name in enumerate(names):
        for c, i in enumerate(order):
            ax = axes[r, c]
            ax.imshow(to_uint8(variants[name][i]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(_label(units[i], orientations), fontsize=7)
            if values is not None:
                ax.set_xlabel(f"{values[name][i]:.0f}", fontsize=6, labelpad=1)
        axes[r, 0].set_ylabel((labels or {}).get(name, name), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def plot_objective(history: np.ndarray, units: Sequence[Unit], path: str | Path | None = None,
                   orientations: Mapping[Unit, float] | None = None, title: str = ""):
    """Objective (activation units of the layer) per optimisation step, one line per unit,
    coloured by preferred orientation."""
    from studies.report.plots import orientation_colour

    fig, ax = plt.subplots(figsize=(7.6, 3.8), layout="constrained")
    for j in _order(units, orientations):
        o = (orientations or {}).get(units[j], float("nan"))
        col = orientation_colour(o) if not math.isnan(o) else "0.5"
        ax.plot(np.arange(1, history.shape[0] + 1), history[:, j], color=col, lw=0.8, label=_label(units[j], orientations))
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("objective (activation, layer units)")
    if len(units) <= 20:
        ax.legend(fontsize=6, ncol=1 if len(units) <= 10 else 2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        ax.set_title(title, fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def montage_data_uri(images: Sequence[Tensor], ncols: int = 3, cell: int = 32) -> str:
    """A ``data:image/png;base64,…`` URI of the first ``ncols²`` pictures tiled ``ncols`` wide,
    each resized to ``cell`` px (a family's thumbnail on the graph page)."""
    import base64
    import io

    ims = [Image.fromarray(to_uint8(x)).resize((cell, cell), Image.BILINEAR) for x in list(images)[:ncols * ncols]]
    rows = math.ceil(len(ims) / ncols)
    sheet = Image.new("RGB", (cell * min(ncols, len(ims)), cell * rows), (255, 255, 255))
    for k, im in enumerate(ims):
        sheet.paste(im, ((k % ncols) * cell, (k // ncols) * cell))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

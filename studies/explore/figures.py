"""The explorer's small PNGs, drawn straight to bytes (no axes: the page labels them): expanded-weight
kernels, weight-diagram mosaics, the joint tuning heat map and receptive-field crops.

Colours: red positive, blue negative on a symmetric scale (Distill's weight diagrams, "Visualizing
Weights"; Curve Circuits); the joint map uses :func:`studies.report.plots.plot_joint` (labelled axes,
colour bar)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from torch import Tensor

#: px per kernel tap in kernel PNGs
TAP_PX = 10


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def diverging(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """``(H, W)`` values → ``(H, W, 3)`` uint8: white at 0, red (positive) / blue (negative) at ±vmax."""
    v = np.asarray(values, dtype=np.float64)
    vmax = float(np.abs(v).max()) if vmax is None else float(vmax)
    t = np.clip(v / vmax, -1.0, 1.0) if vmax > 0 else np.zeros_like(v)
    pos, neg = np.clip(t, 0, 1), np.clip(-t, 0, 1)
    r = 255 * (1 - neg * 0.85)
    g = 255 * (1 - (pos + neg) * 0.85)
    b = 255 * (1 - pos * 0.85)
    return np.stack([r, g, b], -1).round().astype(np.uint8)


def kernel_png(kernel: Tensor | np.ndarray, vmax: float | None = None, tap: int = TAP_PX) -> bytes:
    """One expanded-weight kernel ``(kh, kw)`` as a PNG, each tap ``tap`` px (nearest)."""
    k = np.asarray(kernel.detach().cpu().numpy() if isinstance(kernel, Tensor) else kernel, dtype=np.float64)
    rgb = diverging(k, vmax).repeat(tap, 0).repeat(tap, 1)
    return _png(rgb)


#: Smallest cell of a weight-diagram mosaic (px): a 5x5 kernel gets 10 px taps, readable at 100 % zoom.
MIN_CELL_PX = 48


def mosaic_png(E: np.ndarray, rows: list[str] | None = None, cols: list[str] | None = None, title: str = "",
               tap: int = 6, gap: int = 3) -> bytes:
    """A weight diagram: ``E (rows, cols, kh, kw)`` tiled, row ``i`` on its own symmetric scale
    (±max of the row, as :func:`studies.report.circuit_plots.plot_weight_diagram`), grey gaps; with
    ``rows``/``cols`` the destination unit ids at the left and the source unit ids (vertical) on top,
    ``title`` above and a colour key below. Each tap is at least ``tap`` px and each cell at least
    :data:`MIN_CELL_PX` px (small kernels are enlarged, nearest neighbour), labels 13 px."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    n_r, n_c, kh, kw = E.shape
    tap = max(tap, -(-MIN_CELL_PX // max(kh, kw, 1)))
    ch, cw = kh * tap, kw * tap
    rows, cols = rows or [], cols or []
    tw = lambda t: int(font.getbbox(t)[2]) if t else 0  # noqa: E731 - text width in px
    left = max([tw(r) for r in rows] + [0]) + (10 if rows else 0)
    top = (20 if title else 0) + (max([tw(c) for c in cols] + [0]) + 8 if cols else 0)
    key_h = 56
    grid_w, grid_h = n_c * (cw + gap) + gap, n_r * (ch + gap) + gap
    W, H = max(left + grid_w, tw(title) + 8, 420), top + grid_h + key_h
    out = np.full((H, W, 3), 255, np.uint8)
    out[top:top + grid_h, left:left + grid_w] = 200
    for i in range(n_r):
        vmax = float(np.abs(E[i]).max()) or 1.0
        for j in range(n_c):
            y, x = top + gap + i * (ch + gap), left + gap + j * (cw + gap)
            out[y:y + ch, x:x + cw] = diverging(E[i, j], vmax).repeat(tap, 0).repeat(tap, 1)
    kx, ky = 8, top + grid_h + 6
    out[ky:ky + 10, kx:kx + 120] = diverging(np.linspace(-1, 1, 120)[None, :], 1.0).repeat(10, 0)
    im = Image.fromarray(out)
    d = ImageDraw.Draw(im)
    if title:
        d.text((4, 2), title, fill=(0, 0, 0), font=font)
    for i, r in enumerate(rows):
        d.text((left - 5 - tw(r), top + gap + i * (ch + gap) + (ch - 13) // 2), r, fill=(0, 0, 0), font=font)
    for j, c in enumerate(cols):
        lab = Image.new("RGB", (tw(c) + 2, 16), (255, 255, 255))
        ImageDraw.Draw(lab).text((0, 0), c, fill=(0, 0, 0), font=font)
        lab = lab.rotate(90, expand=True)
        im.paste(lab, (left + gap + j * (cw + gap) + (cw - lab.width) // 2, top - 3 - lab.height))
    d.text((kx + 126, ky - 2), "- inhibitory   0   excitatory +", fill=(0, 0, 0), font=font)
    d.text((kx, ky + 14), "each row on its own scale (+-max of the row)", fill=(90, 90, 90), font=font)
    if rows and cols:
        d.text((kx, ky + 30), "rows: destination units (to); columns: source units (from)", fill=(90, 90, 90), font=font)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def image_png(image: Tensor, scale: int = 1) -> bytes:
    """``(3, H, W)`` RGB in [0, 1] → PNG (enlarged ``scale`` times, nearest)."""
    from studies.report.vis_plots import to_uint8

    im = Image.fromarray(to_uint8(image))
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def joint_png(joint, title: str) -> bytes:
    """The joint orientation × radius heat map of one unit (:func:`studies.report.plots.plot_joint`:
    x orientation (°), y radius (px, log), colour σ or pre-ReLU with its bar), titled only ``title``
    (short, e.g. ``"3b:379 joint tuning"``): the page's caption says what the colour is, so nothing
    is clipped in the one-panel figure (constrained layout)."""
    import matplotlib.pyplot as plt

    from studies.report import plots

    fig = plots.plot_joint(joint, None, title=title, ncols=1)
    try:
        fig.set_layout_engine("constrained")
        fig.suptitle(title, fontsize=9)  # replaces plot_joint's long two-line title (clipped at 3.5 in wide)
        buf = io.BytesIO()
        fig.savefig(buf, format="PNG", dpi=150)
        return buf.getvalue()
    finally:
        plt.close(fig)

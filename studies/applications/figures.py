"""Figures of the curve applications: extraction vs Canny, traced splines, NMF factors, benchmark examples.

Every figure uses ``constrained_layout``, labels its axes (px) and has a colour key (colour bar
or legend); image panels keep pixel coordinates (x right, y down).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .splines import bezier_np  # noqa: E402

GT_COLOURS = {"curve": (0.1, 0.75, 0.2), "line": (0.2, 0.4, 1.0), "angle": (1.0, 0.6, 0.0), "occluder": (0.45,) * 3}


def _img(t) -> np.ndarray:
    a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    return np.clip(a.transpose(1, 2, 0), 0, 1)


def _px(ax, title: str = "") -> None:
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    if title:
        ax.set_title(title, fontsize=9)


def _marks(ax, mask: np.ndarray, image=None, colour=(1.0, 0.0, 0.0), title: str = "") -> None:
    base = np.full(mask.shape + (3,), 1.0) if image is None else 0.35 + 0.65 * _img(image).mean(2, keepdims=True)
    rgb = np.broadcast_to(base, mask.shape + (3,)).copy()
    rgb[mask] = colour
    ax.imshow(rgb, interpolation="nearest")
    _px(ax, title)


def _gt(scene) -> np.ndarray:
    rgb = np.zeros(scene.curve.shape + (3,))
    for k in ("occluder", "line", "angle", "curve"):
        rgb[getattr(scene, k)] = GT_COLOURS[k]
    return rgb


#: colours of a curve map saturate at this quantile of the map (the colour bar shows the cap with an arrow)
MAP_CAP_QUANTILE = 0.995


def plot_curves(images: Sequence, names: Sequence[str], maps: np.ndarray, marks: Sequence[np.ndarray],
                edges: Sequence[np.ndarray], path: str | Path, family_label: str) -> None:
    """One row per image: the image, the curve map (colour bar under it, capped at the map's
    :data:`MAP_CAP_QUANTILE` quantile: the bar's arrow), our marked pixels, Canny's edges. Row
    heights follow the images' aspect ratios, so a wide image leaves no tall empty band."""
    n = len(images)
    aspects = [min(max(m.shape[0] / m.shape[1], 0.15), 1.6) for m in maps]  # height / width of each map
    rows = [3.3 * r + 1.6 for r in aspects]  # the map, its titles, axis labels and colour bar (in)
    fig, axes = plt.subplots(n, 4, figsize=(15, sum(rows) + 0.6), constrained_layout=True, squeeze=False,
                             height_ratios=rows)
    for i in range(n):
        a = axes[i]
        a[0].imshow(_img(images[i]))
        _px(a[0], names[i])
        cap = float(np.quantile(maps[i], MAP_CAP_QUANTILE)) or 1.0
        im = a[1].imshow(maps[i], cmap="magma", vmin=0, vmax=cap)
        _px(a[1], f"curve map: {family_label}")
        # a horizontal bar under the map: as wide as a landscape map, its label horizontal (never cut off)
        fig.colorbar(im, ax=a[1], location="bottom", extend="max", shrink=0.9, aspect=30, pad=0.02,
                     label=f"grad × (input − mean) ≥ 0, capped at the {100 * MAP_CAP_QUANTILE:g}th percentile")
        _marks(a[2], marks[i], images[i], title="curve map, thresholded + thinned")
        _marks(a[3], edges[i], images[i], colour=(0.0, 0.3, 1.0), title="Canny (skimage)")
    fig.legend(handles=[Patch(color=(1, 0, 0), label="curve-map pixels"), Patch(color=(0, 0.3, 1), label="Canny edges")],
               loc="outside lower center", ncol=2)
    fig.savefig(path, dpi=90)
    plt.close(fig)


#: how control polygons are drawn (and shown in legends): light dashes, white dots with a dark rim
CONTROL_STYLE = dict(ls="--", lw=0.7, color="0.85", marker="o", ms=3.5, mfc="white", mec="0.15", mew=0.6)


def _draw_splines(ax, ctrl: np.ndarray, colour="red", label_first: str | None = None, points: bool = False) -> None:
    for k, c in enumerate(ctrl):
        p = bezier_np(c)
        if points:  # the control polygon, under the curve, in the legend's neutral style
            ax.plot(c[:, 0], c[:, 1], **CONTROL_STYLE, zorder=2)
        ax.plot(p[:, 0], p[:, 1], "-", color=colour, lw=2, label=label_first if k == 0 else None, zorder=3)


def plot_trace(image, cmap: np.ndarray, ctrl: np.ndarray, path: str | Path, title: str,
               map_index: np.ndarray | None = None) -> None:
    """The image with the fitted splines (control points as dots), beside the first curve map; with
    ``map_index`` (:func:`~.splines.trace_image`) each spline is coloured by the map that found it."""
    fig, ax = plt.subplots(1, 2, figsize=(11, 5.0), constrained_layout=True)
    idx = np.zeros(len(ctrl), int) if map_index is None else np.asarray(map_index, int)
    palette = plt.get_cmap("tab10")
    h, w = cmap.shape
    ax[0].imshow(_img(image))
    cap = float(np.quantile(cmap, MAP_CAP_QUANTILE)) or 1.0
    im = ax[1].imshow(cmap, cmap="gray", vmin=0, vmax=cap)
    handles = []
    for r in sorted(set(idx.tolist())):
        colour = palette(r % 10) if map_index is not None else (1.0, 0.1, 0.1)
        for a, pts in ((ax[0], True), (ax[1], False)):
            _draw_splines(a, ctrl[idx == r], colour=colour, points=pts)
        label = ("fitted cubic Bézier" if map_index is None
                 else f"found on map {r + 1}" + (" (the image's own)" if r == 0 else " (traced strokes painted over)"))
        handles.append(Line2D([], [], color=colour, lw=2, label=f"{label}: {int((idx == r).sum())}"))
    if len(ctrl):
        handles.append(Line2D([], [], **CONTROL_STYLE, label="control points (left panel)"))
    for a in ax:
        a.set_xlim(-0.5, w - 0.5)
        a.set_ylim(h - 0.5, -0.5)
    _px(ax[0], title)
    fig.colorbar(im, ax=ax[1], shrink=0.8, extend="max",
                 label=f"grad × (input − mean) ≥ 0, capped at the {100 * MAP_CAP_QUANTILE:g}th percentile")
    _px(ax[1], "the image's curve map (map 1), with the splines of every map")
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)), fontsize=8)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def plot_bench_examples(ex: dict, path: str | Path) -> None:
    """Benchmark examples: image, ground truth, Canny, curve map, our marks (before/after the edit)."""
    scenes = ex["scenes"]
    variants = [k for k in ex if k not in ("scenes", "canny")]
    ncol = 3 + 2 * len(variants)
    fig, axes = plt.subplots(len(scenes), ncol, figsize=(3.3 * ncol, 3.5 * len(scenes)), constrained_layout=True,
                             squeeze=False)
    for i, s in enumerate(scenes):
        a = axes[i]
        a[0].imshow(_img(s.image))
        _px(a[0], f"scene {s.index} ({s.background})")
        a[1].imshow(_gt(s), interpolation="nearest")
        _px(a[1], "ground truth")
        _marks(a[2], ex["canny"][i], title="Canny")
        for j, v in enumerate(variants):
            raw, pred = ex[v]
            im = a[3 + 2 * j].imshow(raw[i], cmap="magma", vmin=0, vmax=float(np.quantile(raw[i], 0.995)) or 1.0)
            fig.colorbar(im, ax=a[3 + 2 * j], shrink=0.7, label="map")
            _px(a[3 + 2 * j], v)
            _marks(a[4 + 2 * j], pred[i], title=f"{v}: marked")
    handles = [Patch(color=c, label=f"true {k}") for k, c in GT_COLOURS.items()] + [Patch(color=(1, 0, 0), label="marked")]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles))
    fig.savefig(path, dpi=70)
    plt.close(fig)


def plot_traces(examples: list, path: str | Path) -> None:
    """Traced scenes: true arcs (dashed) and fitted splines."""
    n = len(examples)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.6), constrained_layout=True, squeeze=False)
    for ax, (s, res) in zip(axes[0], examples):
        ax.imshow(_img(s.image))
        for k, arc in enumerate(s.arcs):
            ax.plot(arc[:, 0], arc[:, 1], "--", color=GT_COLOURS["curve"], lw=1.2, label="true arc" if k == 0 else None)
        _draw_splines(ax, res.ctrl, label_first="fitted spline")
        ax.set_xlim(-0.5, s.image.shape[-1] - 0.5)
        ax.set_ylim(s.image.shape[-2] - 0.5, -0.5)
        _px(ax, f"scene {s.index}: {len(res.ctrl)} splines, {res.seconds:.2f} s")
    fig.legend(handles=[Line2D([], [], ls="--", color=GT_COLOURS["curve"], label="true arc (also under occluders)"),
                        Line2D([], [], color="red", lw=2, label="fitted cubic Bézier")], loc="outside lower center", ncol=2)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_factors(images: Sequence, names: Sequence[str], maps: np.ndarray, top_units: list[list[tuple[int, float]]],
                 layer: str, path: str | Path, splines: dict[tuple[int, int], np.ndarray] | None = None) -> None:
    """NMF factors: one row per image (the image, then each factor's spatial map over it); a last
    row of bar charts of each factor's top units (loading). ``maps (N, K, H, W)`` upsampled."""
    n, k = maps.shape[:2]
    fig, axes = plt.subplots(n + 1, k + 1, figsize=(2.9 * (k + 1), 2.9 * (n + 1)), constrained_layout=True,
                             squeeze=False)
    vmax = [float(maps[:, j].max()) or 1.0 for j in range(k)]
    for i in range(n):
        axes[i, 0].imshow(_img(images[i]))
        _px(axes[i, 0], names[i])
        for j in range(k):
            ax = axes[i, j + 1]
            ax.imshow(_img(images[i]).mean(2), cmap="gray", vmin=0, vmax=1)
            im = ax.imshow(maps[i, j], cmap="viridis", alpha=0.65, vmin=0, vmax=vmax[j])
            if splines and (i, j) in splines:
                _draw_splines(ax, splines[(i, j)], label_first="spline")
                ax.set_xlim(-0.5, maps.shape[-1] - 0.5)
                ax.set_ylim(maps.shape[-2] - 0.5, -0.5)
            _px(ax, f"factor {j}")
            if i == 0:
                fig.colorbar(im, ax=ax, shrink=0.7, label="factor activation")
    axes[n, 0].axis("off")
    for j in range(k):
        ax = axes[n, j + 1]
        units, w = zip(*top_units[j]) if top_units[j] else ((), ())
        ax.barh(range(len(units)), w, color="tab:green")
        ax.set_yticks(range(len(units)), [f"{layer}:{u}" for u in units], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("loading (NMF H row)")
        ax.set_title(f"factor {j}: top units", fontsize=9)
    fig.savefig(path, dpi=80)
    plt.close(fig)

"""Figures: radial tuning (polar), joint orientation × radius heat maps, activation
histograms, top dataset examples, rotation tuning. Each function takes the tidy table of the
measure it shows, returns the figure and saves a PNG when given a path."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def orientation_colour(deg: float):
    """A colour for an orientation (hue wheel), used in every radial plot."""
    import matplotlib.colors as mcolors

    h = (deg % 360.0) / 360.0 if not math.isnan(deg) else 0.0
    return mcolors.hsv_to_rgb((h, 0.75, 0.85))


def plot_radial(
    radial: pd.DataFrame,
    path: str | Path | None = None,
    preferred: dict[str, float] | None = None,
    title: str = "",
    variants: list[str] | None = None,
    notes: dict[str, str] | None = None,
    normalise: bool = True,
    legend: bool = True,
):
    """Polar plot of radial tuning curves, one panel per variant, units overlaid and coloured
    by preferred orientation, with an orientation colour wheel and a unit legend in numeric
    order (Curve Detectors, radial tuning figure; Curve Circuits, echo figure).

    Args:
        radial: output of :func:`studies.measure.tuning.radial_tuning` (``variant`` column optional).
        path: where to save a PNG (``None``: just return the figure).
        preferred: ``{unit: preferred orientation (deg)}`` for the colours; default: argmax.
        variants: panel order; default: order of appearance.
        notes: ``{variant: text}`` written under a panel (e.g. "all units silent").
        normalise: ``True`` (default): each unit's curve in each panel divided by its own peak
            (radius 1 = the unit's peak there; the articles' convention, it shows the *shape*, e.g.
            the echo lobe at peak + 180°); silent curves (peak 0) stay at 0 and are noted.
            ``False``: the raw response, one radial scale shared by all panels.
        legend: draw the unit legend (off for very many units).

    Returns:
        The matplotlib figure.
    """
    from studies.report.order import sort_units

    if "variant" not in radial.columns:
        radial = radial.assign(variant="")
    variants = variants or list(dict.fromkeys(radial["variant"]))
    rmax = 1.0 if normalise else max(float(radial["response"].max()), 1e-9)
    n = len(variants)
    fig = plt.figure(figsize=(3.6 * n + 2.4, 4.8), layout="constrained")
    gs = fig.add_gridspec(1, n + 1, width_ratios=[1] * n + [0.62])
    axes = [fig.add_subplot(gs[0, i], projection="polar") for i in range(n)]
    handles: dict = {}
    for ax, v in zip(axes, variants):
        _radial_panel(ax, radial[radial["variant"] == v], v, preferred, normalise, rmax, (notes or {}).get(v, ""),
                      handles)
    side = gs[0, n].subgridspec(2, 1, height_ratios=[1, 1.6])
    _orientation_wheel(fig.add_subplot(side[0], projection="polar"))
    lax = fig.add_subplot(side[1])
    lax.axis("off")
    if legend and handles:
        names = sort_units(handles)
        layers = {str(u).rsplit(":", 1)[0] for u in names}
        labels = [str(u).rsplit(":", 1)[-1] for u in names] if len(layers) == 1 and ":" in str(names[0]) else names
        lax.legend([handles[u] for u in names], labels, loc="upper center", fontsize=7, frameon=False,
                   ncol=1 if len(names) <= 12 else (2 if len(names) <= 30 else 3), columnspacing=0.8,
                   handlelength=1.5, title=f"unit ({layers.pop()})" if len(layers) == 1 else "unit",
                   title_fontsize=8)
    fig.suptitle((title + "\n" if title else "") + ("each curve normalised to its own peak" if normalise else
                                                     "raw responses, one scale for all panels"), fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def _radial_panel(ax, d: pd.DataFrame, v: str, preferred, normalise: bool, rmax: float, note: str,
                  handles: dict) -> None:
    """One polar panel of :func:`plot_radial` (adds each unit's line to ``handles``)."""
    silent = 0
    for unit, g in d.groupby("unit", sort=False):
        g = g.sort_values("orientation")
        resp = g["response"].to_numpy(float)
        peak = float(resp.max()) if len(resp) else 0.0
        if normalise:
            silent += peak <= 0
            resp = resp / peak if peak > 0 else resp * 0
        th = np.radians(np.append(g["orientation"].to_numpy(), g["orientation"].iloc[0]))
        r = np.append(resp, resp[0])
        pref = (preferred or {}).get(unit)
        if pref is None:
            pref = float(g["orientation"].iloc[int(np.argmax(g["response"].to_numpy()))])
        (line,) = ax.plot(th, r, color=orientation_colour(pref), lw=1.3, label=unit)
        handles.setdefault(unit, line)
    ax.set_ylim(0, rmax * 1.05)
    ax.set_rlabel_position(100)
    ax.tick_params(axis="y", labelsize=7)
    ax.tick_params(axis="x", labelsize=8, pad=1)
    if normalise:
        ax.set_yticks([0.25, 0.5, 0.75, 1.0])
    label = "response / unit's peak" if normalise else "response (mean positive pre-ReLU)"
    if normalise and silent and not note:
        note = f"{silent} silent unit(s) (peak 0)"
    ax.set_xlabel(label, fontsize=8)
    ax.set_title(v + ("\n" + note if note else ""), fontsize=10 if not note else 9, pad=16)


def _orientation_wheel(ax) -> None:
    """Colour key of :func:`orientation_colour`: preferred orientation (deg) around a ring."""
    th = np.radians(np.arange(0, 361, 2.0))
    import matplotlib.colors as mcolors

    rgb = np.array([orientation_colour(np.degrees(a)) for a in th[:-1]])
    ax.pcolormesh(th, [0.6, 1.0], np.arange(len(th) - 1)[None, :], cmap=mcolors.ListedColormap(rgb),
                  shading="flat")
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_xticks(np.radians([0, 90, 180, 270]), ["0°", "90°", "180°", "270°"], fontsize=7)
    ax.tick_params(axis="x", pad=-2)
    ax.grid(False)
    ax.set_title("preferred orientation", fontsize=8)


def _panel_grid(n: int, ncols: int = 5, w: float = 3.4, h: float = 3.0, **kw):
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    kw.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _finish(fig, path, title: str = "", tight: bool | None = True):
    """Title, layout (``True``: tight_layout; ``False``: fixed grid spacing, for many panels,
    where tight_layout costs seconds per figure; ``None``: as is), save and close."""
    if title:
        fig.suptitle(title)
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        pass  # constrained layout places titles, labels and colour bars itself
    elif tight:
        fig.tight_layout()
    elif tight is False:
        h = fig.get_figheight()
        fig.subplots_adjust(left=0.06, right=0.97, bottom=0.55 / h, top=1 - (0.6 if title else 0.35) / h,
                            wspace=0.45, hspace=0.55)
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def _panels(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``[(title, rows)]`` per (variant, unit): variants in order of appearance, units in
    network order (layer, then index)."""
    from circuits.spec import LAYERS

    keys = [c for c in ("variant", "unit") if c in df.columns]
    variants = list(dict.fromkeys(df["variant"])) if "variant" in df.columns else []
    out = []
    for key, g in df.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        layer = str(g["layer"].iloc[0]) if "layer" in g.columns else ""
        order = (variants.index(key[0]) if variants else 0,
                 LAYERS.index(layer) if layer in LAYERS else len(LAYERS),
                 int(g["index"].iloc[0]) if "index" in g.columns else 0, str(key))
        out.append((order, " ".join(str(k) for k in key if str(k)), g))
    return [(name, g) for _, name, g in sorted(out, key=lambda t: t[0])]


def plot_joint(
    joint: pd.DataFrame,
    path: str | Path | None = None,
    value: str | None = None,
    title: str = "",
    ncols: int = 5,
):
    """Joint orientation × radius heat maps, one panel per (variant, unit) (Curve Detectors'
    joint tuning figure): x = orientation (deg), y = radius (px, log scale), colour =
    ``value`` (default ``response_sigma`` — σ of the unit's pre-ReLU activation over the
    reference images, all positions — when present, else the pre-ReLU ``response``), on a
    diverging scale centred at 0.

    Args:
        joint: :func:`studies.measure.tuning.joint_tuning` output.

    Returns:
        The matplotlib figure.
    """
    from matplotlib.colors import TwoSlopeNorm

    value = value or ("response_sigma" if "response_sigma" in joint.columns else "response")
    label = "σ" if value == "response_sigma" else "pre-ReLU"
    full = ("colour: σ of the unit's pre-ReLU activation over the reference images" if value == "response_sigma"
            else "colour: pre-ReLU response")
    panels = _panels(joint)
    fig, axes = _panel_grid(len(panels), ncols, 3.5, 2.9, layout="constrained")
    for ax, (name, g) in zip(axes, panels):
        piv = g.pivot_table(index="radius", columns="orientation", values=value, aggfunc="mean").sort_index()
        z = piv.to_numpy()
        vmin, vmax = float(np.nanmin(z)), float(np.nanmax(z))
        lim = max(abs(vmin), abs(vmax), 1e-9)
        norm = TwoSlopeNorm(0.0, min(vmin, -1e-3 * lim), max(vmax, 1e-3 * lim))
        o, r = piv.columns.to_numpy(float), piv.index.to_numpy(float)
        mesh = ax.pcolormesh(_edges(o, log=False), _edges(r, log=True), z, cmap="RdBu_r", norm=norm, shading="flat")
        ax.set_yscale("log")
        ax.set_xlabel("orientation (°)", fontsize=8)
        ax.set_ylabel("radius (px)", fontsize=8)
        ax.set_xticks(np.arange(0, 361, 90))
        ax.tick_params(labelsize=7)
        ax.set_title(name, fontsize=9)
        cb = fig.colorbar(mesh, ax=ax, fraction=0.06, pad=0.02)
        cb.ax.tick_params(labelsize=6)
        cb.ax.set_title(label, fontsize=7)
    return _finish(fig, path, (title + "\n" if title else "") + full, tight=None)


def _edges(x: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres ``x`` (geometric midpoints when ``log``), for ``pcolormesh``."""
    if len(x) == 1:
        return np.array([x[0] / 1.25, x[0] * 1.25]) if log else np.array([x[0] - 0.5, x[0] + 0.5])
    y = np.log(x) if log else x
    mid = (y[1:] + y[:-1]) / 2
    e = np.concatenate([[y[0] - (mid[0] - y[0])], mid, [y[-1] + (y[-1] - mid[-1])]])
    return np.exp(e) if log else e


def plot_histogram(
    histogram: pd.DataFrame,
    summary: pd.DataFrame | None = None,
    path: str | Path | None = None,
    title: str = "",
    ncols: int = 4,
):
    """Pre-ReLU activation histograms (density on a log scale), one panel per unit, with the
    exponential fit of the positive tail from ``summary`` (:func:`studies.measure.dataset.unit_statistics`)
    and the mean / fraction positive in the legend.

    Returns:
        The matplotlib figure.
    """
    panels = _panels(histogram)
    fig, axes = _panel_grid(len(panels), ncols, 3.6, 2.8)
    summ = summary.set_index("unit") if summary is not None else None
    for ax, (name, g) in zip(axes, panels):
        g = g[g["count"] > 0]
        ax.stairs(g["density"].to_numpy(), np.append(g["bin_left"].to_numpy(), g["bin_right"].iloc[-1]),
                  color="0.3", fill=True, alpha=0.6)
        ax.set_yscale("log")
        ax.axvline(0, color="k", lw=0.6)
        unit = g["unit"].iloc[0]
        if summ is not None and unit in summ.index:
            s = summ.loc[unit]
            ax.axvline(s["mean"], color="tab:blue", lw=1, label=f"mean {s['mean']:.1f}")
            if np.isfinite(s.get("tail_rate", np.nan)):
                x = np.linspace(0, float(g["bin_right"].max()), 50)
                ax.plot(x, np.exp(s["tail_intercept"] - s["tail_rate"] * x), color="tab:red", lw=1.2,
                        label=f"tail λ={s['tail_rate']:.3g} ({s['tail_rate_sigma']:.2f}/σ)")
            ax.plot([], [], " ", label=f"positive {100 * s['frac_positive']:.1f}%")
            ax.legend(fontsize=7, loc="upper right")
        ax.set_xlabel("pre-ReLU activation")
        ax.set_ylabel("density")
        ax.set_title(name, fontsize=9)
    return _finish(fig, path, title, tight=len(panels) <= 4)


def plot_top_examples(
    crops: dict,
    top: pd.DataFrame | None = None,
    path: str | Path | None = None,
    max_k: int = 8,
    title: str = "",
):
    """Grid of top dataset examples (receptive-field crops): one row per unit, best first,
    with the pre-ReLU activation over each crop (from ``top``).

    Args:
        crops: ``{unit: (k, 3, h, w)}`` (:attr:`studies.measure.dataset.DatasetStats.crops`).

    Returns:
        The matplotlib figure.
    """
    units = [u for u, c in crops.items() if len(c)]
    k = max([min(max_k, len(crops[u])) for u in units], default=1)
    fig, axes = plt.subplots(max(1, len(units)), k, figsize=(1.5 * k, 1.7 * max(1, len(units)) + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for i, u in enumerate(units):
        for j in range(min(k, len(crops[u]))):
            ax = axes[i, j]
            ax.imshow(crops[u][j].permute(1, 2, 0).clamp(0, 1).numpy())
            label = f"{u}" if j == 0 else ""
            if top is not None:
                row = top[(top["unit"] == u) & (top["rank"] == j)]
                if len(row):
                    label = (label + "\n" if label else "") + f"{float(row['activation'].iloc[0]):.0f}"
            ax.set_title(label, fontsize=7)
    return _finish(fig, path, title or "top dataset examples (receptive-field crops; number: pre-ReLU activation)",
                   tight=None)


def plot_rotation(curve: pd.DataFrame, path: str | Path | None = None, title: str = ""):
    """Joint tuning by rotation (:func:`studies.measure.dataset.rotation_tuning`): mean response of
    the top examples versus rotation away from each example's best angle, one line per
    unit, relative to the response at 0°.

    Returns:
        The matplotlib figure.
    """
    fig, ax = plt.subplots(figsize=(8.5, 3.8), layout="constrained")
    for (unit, _), g in curve.groupby(["unit", "layer"], sort=False):
        g = g.sort_values("rotation")
        rot = ((g["rotation"].to_numpy() + 180.0) % 360.0) - 180.0
        order = np.argsort(rot)
        ax.plot(rot[order], g["relative"].to_numpy()[order], marker=".", lw=1.2, label=unit)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("rotation from each example's best angle (deg, counter-clockwise)")
    ax.set_ylabel("response / response at 0°")
    ax.set_xticks(np.arange(-180, 181, 45))
    ax.legend(fontsize=7, ncol=1 + len(curve["unit"].unique()) // 12, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _finish(fig, path, title)

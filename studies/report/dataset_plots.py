"""Figures of the dataset and attribution analysis (Curve Detectors, Distill 2020): sparsity
per unit, the pre-ReLU pdf with its expected-value contribution (fig. 12), activation-range
example grids (figs. 6-7), family rotation tuning aligned on each unit's preferred
orientation (fig. 13) and the per-family activation/attribution flow on one image (fig. 8).

Each function takes the tidy tables of :mod:`studies.measure.activation_stats`,
:mod:`studies.measure.rotation` or :mod:`studies.measure.attribution`, returns the figure and
saves a PNG when given a path.

Attribution is rendered the way Curve Detectors recommends for attribution on images: the
image in grayscale with the attribution drawn as opacity (alpha ∝ |attribution| / its 99th
percentile, clipped at 1) of a colour layer — orange for positive, blue for negative — so
that where nothing is attributed the grayscale image shows through.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from .plots import orientation_colour  # noqa: E402

POS, NEG = np.array([1.0, 0.45, 0.0]), np.array([0.1, 0.35, 1.0])


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def _unit_key(u: str) -> tuple[str, int]:
    layer, i = u.split(":")
    return layer, int(i)


def grayscale_alpha(image: np.ndarray, attribution: np.ndarray | None, scale: float | None = None) -> np.ndarray:
    """RGB ``(H, W, 3)`` in [0, 1]: ``image`` ``(H, W, 3)`` in grayscale (faded to 35-100 %),
    with ``attribution`` ``(H, W)`` as the opacity of orange (positive) / blue (negative).
    ``scale`` (default the 99th percentile of |attribution|) maps to full opacity."""
    g = image @ np.array([0.299, 0.587, 0.114])
    base = np.repeat((0.35 + 0.65 * g)[..., None], 3, -1)
    if attribution is None:
        return np.clip(base, 0.0, 1.0)
    s = scale if scale else float(np.percentile(np.abs(attribution), 99)) or 1.0
    a = np.clip(np.abs(attribution) / s, 0, 1)[..., None]
    col = np.where(attribution[..., None] >= 0, POS, NEG)
    return np.clip(base * (1 - a) + col * a, 0.0, 1.0)


def plot_sparsity(summary: pd.DataFrame, path=None, title: str = ""):
    """Bars per unit (numerical order): fraction of (image, position) pairs active and
    fraction of images with any active position (Curve Detectors: ≈ 10-11 % for 3b:379).
    Bars keep their width with few units (one unit: two narrow bars in the middle), carry their
    values when there are at most 12 units, and the legend sits below the axes."""
    s = summary.assign(_k=summary["unit"].map(_unit_key)).sort_values("_k")
    n = len(s)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.42 * n + 2), 4.4), constrained_layout=True)
    x = np.arange(n)
    b1 = ax.bar(x - 0.2, 100 * s["frac_active"], 0.4, label="positions active (post-ReLU > 0)")
    b2 = ax.bar(x + 0.2, 100 * s["frac_images_active"], 0.4, label="images with any active position")
    ax.axhspan(10, 11, color="0.8", zorder=0, label="Curve Detectors, 3b:379 (≈ 10-11 % of positions)")
    if n <= 12:
        for bars in (b1, b2):
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(x, [u.split(":")[1] for u in s["unit"]], rotation=90 if n > 8 else 0)
    ax.set_xlim(-0.5 - max(0.0, (3 - n) / 2), n - 0.5 + max(0.0, (3 - n) / 2))  # at least 3 slots wide
    ax.set_xlabel(f"unit of {s['layer'].iloc[0]}")
    ax.set_ylabel("% of positions / of images")
    ax.set_ylim(0, 108)
    fig.legend(fontsize=7, loc="outside lower center", ncol=1 if n < 6 else 3)
    ax.set_title(title or "Sparsity")
    return _save(fig, path)


def plot_distribution(ev: pd.DataFrame, summary_row: pd.Series, path=None):
    """Fig. 12 for one unit: the pre-ReLU pdf (log scale, with the exponential fit of the
    positive tail) above the contribution of each bin to E[max(x, 0)] (x·p(x)·Δx)."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True, constrained_layout=True)
    mid = (ev["bin_left"] + ev["bin_right"]) / 2
    w = float((ev["bin_right"] - ev["bin_left"]).iloc[0])
    d = ev["density"].where(ev["density"] > 0)
    a1.step(mid, d, where="mid", color="0.2", lw=1.2, label="pdf (all positions)")
    r = summary_row
    lam = float(r["tail_rate"])
    if np.isfinite(lam):
        xs = mid[mid > 0]
        fit_at = ev[(ev["bin_left"] >= 0) & (ev["count"] > 0)]
        if len(fit_at):
            x0 = float((fit_at["bin_left"].iloc[0] + fit_at["bin_right"].iloc[0]) / 2)
            y0 = float(fit_at["density"].iloc[0])
            a1.plot(xs, y0 * np.exp(-lam * (xs - x0)), "--", color="C3",
                    label=f"exponential tail, λ = {lam:.3g}/unit ({float(r['tail_rate_sigma']):.2f}/σ)")
    a1.set_yscale("log")
    a1.axvline(0, color="0.6", lw=0.8)
    a1.set_ylabel("probability density (1 / activation unit)")
    a1.legend(fontsize=7)
    a1.set_title(f"{r['unit']}: mean {float(r['mean']):.0f}, active at {100 * float(r['frac_active']):.1f} % "
                 f"of positions, {100 * float(r['frac_images_active']):.0f} % of images", fontsize=9)
    a2.bar(mid, ev["ev_contribution"], width=w, color="C1", label="x·p(x)·Δx per bin")
    a2.axvline(0, color="0.6", lw=0.8)
    a2.set_xlabel("pre-ReLU activation (unit's own units)")
    a2.set_ylabel("contribution to E[max(x, 0)]")
    a2.set_title(f"E[max(x,0)] = {float(r['expected_relu']):.3g}; top 1 % of positions carry "
                 f"{100 * float(r['ev_share_top1']):.0f} %, top 0.1 % carry {100 * float(r['ev_share_top0.1']):.0f} %",
                 fontsize=9)
    a2.legend(fontsize=7)
    return _save(fig, path)


def _img(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).clamp(0, 1).numpy()


def plot_range_grid(ranges: pd.DataFrame, examples: pd.DataFrame, crops: dict[str, torch.Tensor], unit: str,
                    overlays: dict[str, torch.Tensor] | None = None, path=None, overlay_src: str = "the previous layer"):
    """Figs. 6-7 for one unit: one row per activation range (label and value range), the
    sampled receptive-field crops along it with their activation; with ``overlays``
    (``{range: (n, rf, rf)}`` attribution maps) each crop is drawn grayscale + alpha."""
    rr = ranges[ranges["unit"] == unit].reset_index(drop=True)
    ncol = max(1, max((len(crops.get(r, [])) for r in rr["range"]), default=1))
    fig, axes = plt.subplots(len(rr), ncol, figsize=(1.25 * ncol + 1.8, 1.45 * len(rr) + 0.5),
                             squeeze=False, constrained_layout=True)
    for i, r in rr.iterrows():
        c = crops.get(r["range"], torch.empty(0))
        ex = examples[(examples["unit"] == unit) & (examples["range"] == r["range"])].sort_values("rank")
        for j in range(ncol):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(c):
                img = _img(c[j])
                if overlays is not None and r["range"] in overlays:
                    img = grayscale_alpha(img, overlays[r["range"]][j].numpy())
                ax.imshow(img)
                ax.set_title(f"{ex['activation'].iloc[j]:.0f}", fontsize=7, pad=2)
        lo = "−∞" if not np.isfinite(r["lo"]) else f"{r['lo']:.0f}"
        hi = "∞" if not np.isfinite(r["hi"]) else f"{r['hi']:.0f}"
        axes[i, 0].set_ylabel(f"{r['range']}\n[{lo}, {hi})\n{100 * r['frac_values']:.2g} % of positions",
                              fontsize=7, rotation=0, ha="right", va="center")
    what = f"\ngrayscale + alpha: attribution to {overlay_src} (orange +, blue −)" if overlays else ""
    fig.suptitle(f"{unit}: random examples per activation range\n(pre-ReLU; crop titles = activation){what}",
                 fontsize=8)
    return _save(fig, path)


def plot_family_rotation(df: pd.DataFrame, neighbours: pd.DataFrame | None = None, path=None, title: str = ""):
    """Fig. 13: per source unit, every family unit's mean response to the source's rotated
    top examples (aligned on the source's best angle, relative to its peak), coloured by
    the unit's orientation; with ``neighbours`` (:func:`studies.measure.rotation.neighbour_average`)
    a last panel averages the source and its ±k orientation neighbours over all sources."""
    sources = sorted(df["source"].unique(), key=_unit_key)
    n = len(sources) + (neighbours is not None)
    ncol = min(5, n)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.1 * nrow + 0.4), squeeze=False,
                             sharex=True, constrained_layout=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, s in zip(axes.flat, sources):
        g = df[df["source"] == s]
        for u, gu in g.groupby("unit"):
            gu = gu.sort_values("rotation")
            d = float(gu["delta_orientation"].iloc[0])
            ax.plot(gu["rotation"], gu["relative"], lw=2.0 if u == s else 0.8,
                    color="k" if u == s else (orientation_colour(d) if np.isfinite(d) else "0.6"))
        ax.set_title(s, fontsize=8)
        ax.axhline(0, color="0.7", lw=0.5)
    if neighbours is not None:
        ax = axes.flat[len(sources)]
        for rk, g in neighbours.groupby("rank"):
            ax.plot(g["rotation"], g["relative"], lw=2.0 if rk == 0 else 1.0, color="k" if rk == 0 else
                    plt.cm.coolwarm(0.5 + rk / (2 * max(1, neighbours["rank"].abs().max()))),
                    label=f"{rk:+d} (Δθ ≈ {g['delta_orientation'].mean():.0f}°)" if rk else "source")
        ax.set_title("mean over sources,\nby orientation neighbour", fontsize=8)
        ax.legend(fontsize=6)
    sm = plt.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 360), cmap="hsv")
    fig.colorbar(sm, ax=axes[:, -1].tolist(), shrink=0.6, label="unit orientation − source orientation (deg, mod 360)")
    for ax in axes[-1]:
        ax.set_xlabel("rotation from best (deg, ccw)")
    for ax in axes[:, 0]:
        ax.set_ylabel("response / source peak")
    fig.suptitle(title or "Rotation of natural examples: every family unit, aligned on the source's best angle "
                 "(colour: orientation offset; black: the source)", fontsize=9)
    return _save(fig, path)


def plot_attribution_flow(image: torch.Tensor, flow: list[dict], unit: str, path=None):
    """Fig. 8's family figure for one image: columns early → late (the image, then one per
    family), rows: the family's summed activation (grayscale + alpha, positive only) and
    the unit's attribution summed over the family (grayscale + alpha)."""
    img = _img(image)
    n = len(flow)
    fig, axes = plt.subplots(2, n + 1, figsize=(2.7 * (n + 1), 6.0), squeeze=False, constrained_layout=True)
    axes[0, 0].imshow(img)
    axes[0, 0].set_title("image", fontsize=8)
    axes[1, 0].set_visible(False)
    for j, f in enumerate(flow, start=1):
        for i, (key, label) in enumerate((("activation", "activation (family sum)"),
                                          ("attribution", f"attribution to {unit}"))):
            m = f[key][None, None].float()
            up = torch.nn.functional.interpolate(m, size=img.shape[:2], mode="nearest")[0, 0].numpy()
            axes[i, j].imshow(grayscale_alpha(img, up))
            t = f"{f['family']}\n{label}"
            if key == "attribution":
                t += f"\nsum {f['total']:.0f} ({100 * f['share']:.0f} % of target)"
            axes[i, j].set_title(t, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{unit}: curve families early → late; orange = positive, blue = negative (opacity ∝ magnitude)",
                 fontsize=9)
    return _save(fig, path)


def plot_attribution_vis(image: torch.Tensor, vis: torch.Tensor, unit: str, layer: str, objective: float, path=None):
    """The image beside the feature visualization of ``unit``'s attribution vector to ``layer``
    on it (Curve Detectors fig. 8: what in ``layer`` drives the unit on this image).
    ``image``, ``vis``: ``(3, H, W)`` RGB in [0, 1]."""
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.5), constrained_layout=True)
    axes[0].imshow(_img(image))
    axes[0].set_title("image", fontsize=8)
    axes[1].imshow(_img(vis))
    axes[1].set_title(f"feature visualization of the attribution\nvector to {layer} (direction objective "
                      f"{objective:.3g})", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{unit}: what in {layer} drives it on this image", fontsize=9)
    return _save(fig, path)

"""Figure of a sweep: top-1 change per plan vs the unedited model, sorted, with the paired
bootstrap 95 % CIs and the unedited accuracy (``accuracy_changes.png``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_sweep_changes(table: pd.DataFrame, baseline_top1: float, n_images: int, path: str | Path | None = None,
                       max_plans: int = 60):
    """Horizontal bars: top-1 change (percentage points) per plan, most harmful at the top,
    95 % CI whiskers, significant changes (McNemar p < 0.05) in red, others grey.

    Args:
        table: one row per plan: ``variant``, ``delta``, ``ci_low``, ``ci_high``, ``mcnemar_p``
            (fractions, not percent).
        baseline_top1: the unedited model's top-1 (fraction), shown in the title.
        n_images: images evaluated (one image = 100 / n percentage points).
        max_plans: plot at most this many (the most harmful).

    Returns:
        The matplotlib figure.
    """
    from studies.report.order import unit_key

    t = table.assign(_k=table["variant"].map(unit_key)).sort_values(["delta", "_k"], kind="stable")
    t = t.drop(columns="_k").head(max_plans).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.5, 1.4 + 0.28 * max(len(t), 1)), layout="constrained")
    y = np.arange(len(t))[::-1]
    d, lo, hi = (100 * t[c].to_numpy(float) for c in ("delta", "ci_low", "ci_high"))
    sig = (t["mcnemar_p"] < 0.05).to_numpy()
    ax.barh(y, d, color=np.where(sig, "tab:red", "0.65"), height=0.7)
    ax.errorbar(d, y, xerr=[np.maximum(d - lo, 0), np.maximum(hi - d, 0)], fmt="none", ecolor="k", capsize=2, lw=0.8)
    ax.axvline(0, color="k", lw=0.8)
    one = 100 / max(n_images, 1)
    span = max(float(np.nanmax(np.abs(np.concatenate([lo, hi, d])))) if len(d) else 0.0, 1.5 * one)
    ax.set_xlim(-1.1 * span, 1.1 * span)
    ax.set_yticks(y, t["variant"].tolist(), fontsize=7)
    ax.set_xlabel("top-1 change vs unedited (percentage points; whiskers: paired bootstrap 95% CI)")
    ax.grid(axis="x", alpha=0.3)
    ax.plot([], [], "s", color="tab:red", label="McNemar p < 0.05")
    ax.plot([], [], "s", color="0.65", label="within noise (p ≥ 0.05)")
    ax.legend(fontsize=7, loc="lower right")
    shown = f"{len(t)} most harmful of {len(table)} plans" if len(table) > len(t) else f"{len(t)} plans"
    ax.set_title(f"Accuracy change per plan ({shown}); unedited top-1 {100 * baseline_top1:.1f}% on "
                 f"{n_images} images (1 image = {100 / max(n_images, 1):.2g} pp)", fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig

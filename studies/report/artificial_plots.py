"""Figures and the markdown summary of :mod:`studies.artificial_curves`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_accuracy(acc: pd.DataFrame, path: Path) -> None:
    """Top-1 and top-5 change vs natural per variant, with the 95% paired bootstrap CIs."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for ax, k in zip(axes, ("top1", "top5")):
        d = acc[acc["variant"] != "natural"]
        y = range(len(d))
        lo = (d[f"{k}_delta"] - d[f"{k}_delta_low"]) * 100
        hi = (d[f"{k}_delta_high"] - d[f"{k}_delta"]) * 100
        ax.errorbar(d[f"{k}_delta"] * 100, list(y), xerr=[lo.to_numpy(), hi.to_numpy()], fmt="o", capsize=3)
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_yticks(list(y), d["variant"])
        ax.invert_yaxis()
        ax.set_xlabel(f"{k} change vs natural (percentage points)\nbars: 95% paired bootstrap CI")
        nat = float(acc.loc[acc["variant"] == "natural", f"{k}_acc"].iloc[0])
        ax.set_title(f"{k}: natural {nat:.3f} on {int(acc['n_images'].iloc[0])} images", fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_tuning_comparison(units: pd.DataFrame, variants: list[str], path: Path) -> None:
    """Per unit: preferred orientation (vs the catalog target), selectivity, curve/line ratio,
    combing index of each variant next to natural."""
    import matplotlib.pyplot as plt

    cols = [("preferred_orientation", "preferred orientation (deg)"), ("selectivity", "selectivity (1 − circ. var.)"),
            ("tuning_width", "tuning width (deg)"), ("curve_line_ratio", "best curve / best line"),
            ("combing_index", "combing index (both sides)")]
    cols = [c for c in cols if c[0] in units]
    order = units[units["variant"] == "natural"].sort_values("target_orientation")["unit"].tolist()
    fig, axes = plt.subplots(1, len(cols), figsize=(3.4 * len(cols), 0.28 * len(order) + 1.6), sharey=True,
                             constrained_layout=True)
    markers = dict(zip(variants, "osD^vP*X"))
    for ax, (c, label) in zip(axes, cols):
        for v in variants:
            if v == "zero_ablated":
                continue
            d = units[units["variant"] == v].set_index("unit").reindex(order)
            ax.scatter(d[c], range(len(order)), marker=markers[v], s=18, label=v, alpha=0.8)
        if c == "preferred_orientation":
            t = units[units["variant"] == "natural"].set_index("unit").reindex(order)["target_orientation"]
            ax.scatter(t, range(len(order)), marker="|", s=80, color="k", label="catalog target")
            ax.set_xlim(0, 360)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yticks(range(len(order)), order, fontsize=7)
    axes[0].invert_yaxis()
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle("Tuning of each family unit per variant (zero-ablated units are silent: omitted)", fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def summary_markdown(cfg, m: dict) -> str:
    """``summary.md`` of the study."""
    eq = m["equivariance"]
    c = eq["control"]
    br = m["family"]["branches"]
    branches = ", ".join(f"{b}×{br.count(b)}" for b in sorted(set(br)))
    lines = [
        f"# Artificial curve detectors — {m['checkpoint']} {m['family']['key']}",
        "",
        f"Family: {len(m['family']['units'])} units (branches: "
        f"{branches}); "
        f"source family {m['source_family']['key']} ({len(m['source_family']['units'])} units). "
        f"Template unit: {m['template_unit']}. Hand-written variants: rest = `{cfg.rest}`.",
        "",
        "## Equivariance of the learned family",
        "",
        f"Family score **{eq['family_score']:.3f}** (mean over units of the mean, over references, of the best "
        f"Pearson correlation within δ ∈ [{min(eq['offsets']):g}°, {max(eq['offsets']):g}°] around the orientation "
        f"difference). Shuffled-orientation control ({c['n']} seeded permutations): mean {c['mean']:.3f}, "
        f"95th percentile {c['p95']:.3f}, max {c['max']:.3f}; permutation p = {c['p_value']:.4f}. "
        f"By branch: {', '.join(f'{b} {v:.3f}' for b, v in eq['by_branch'].items() if v is not None)}.",
        (f"With the destination orientations measured in this run (natural variant): family score "
         f"{eq['with_measured_orientations']['family_score']:.3f}, shuffled mean "
         f"{eq['with_measured_orientations']['control']['mean']:.3f}, p95 "
         f"{eq['with_measured_orientations']['control']['p95']:.3f}." if "with_measured_orientations" in eq else ""),
        "Rotation: kernels bilinearly rotated (grid_sample, align_corners=True; exact rot90 at multiples of 90°); "
        "source units permuted/interpolated by circular linear interpolation over their orientations.",
        "",
        "## Tuning (medians over the family's units)",
        "",
        "| variant | peak | selectivity | width (°) | echo | curve/line | combing | abs Δθ vs target (°) | "
        "abs Δθ vs natural (°) | radial corr vs natural | ≤30° from target | silent |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, t in m["tuning_medians"].items():
        def g(k, t=t):
            x = t.get(k)
            return "n/a" if x is None else f"{x:.3g}"
        lines.append(f"| {v} | {g('peak')} | {g('selectivity')} | {g('tuning_width')} | {g('echo_ratio')} | "
                     f"{g('curve_line_ratio')} | {g('combing_index')} | {g('orientation_error_vs_target')} | "
                     f"{g('orientation_diff_vs_natural')} | {g('radial_corr_vs_natural')} | "
                     f"{t['within_30deg_of_target']} | {t['units_silent']} |")
    lines += ["", "Target: the catalog orientation each hand-written unit was rotated to. Peak: max of the radial "
              "tuning curve (mean positive pre-ReLU response over radii); combing: combed/plain curve at the unit's "
              "best stimulus (both sides). Per-unit values: `units.csv`; figures `radial_tuning.png`, "
              "`tuning_comparison.png`, `equivariance.png`.", ""]
    cls = m.get("classification")
    if cls:
        n = cls[0]["n_images"]
        lines += ["## Classification", "",
                  f"{n} images; 95% paired percentile bootstrap CIs ({cfg.bootstrap} resamples over images, "
                  "scipy.stats.bootstrap(paired=True)). Recovered = (acc − acc_zero) / (acc_natural − acc_zero).", "",
                  "| variant | top-1 | Δ top-1 (pp) [CI] | recovered top-1 % [CI] | top-5 | Δ top-5 (pp) [CI] | "
                  "recovered top-5 % [CI] |", "|---|---|---|---|---|---|---|"]
        for r in cls:
            def rec(k, r=r):
                if r[f"{k}_recovered"] is None:
                    return "—"
                return f"{_pct(r[f'{k}_recovered'])} [{_pct(r[f'{k}_recovered_low'])}, {_pct(r[f'{k}_recovered_high'])}]"

            def dl(k, r=r):
                return f"{100 * r[f'{k}_delta']:+.1f} [{100 * r[f'{k}_delta_low']:+.1f}, {100 * r[f'{k}_delta_high']:+.1f}]"
            lines.append(f"| {r['variant']} | {r['top1_acc']:.3f} | {dl('top1')} | {rec('top1')} | {r['top5_acc']:.3f} "
                         f"| {dl('top5')} | {rec('top5')} |")
        lin = next((r for r in cls if r["variant"] == "linearized"), None)
        if lin is not None:
            lines.append(f"Note: the `*_keep` variants keep the other input channels through the units' exact "
                         f"linearised kernels (no bottleneck ReLU); the `linearized` control alone (no template) gives "
                         f"top-1 {lin['top1_acc']:.3f}, so their loss is that of the linearisation, not of the template.")
        lines.append("")
    else:
        lines += ["Classification skipped (no --images).", ""]
    lines += [f"Variants ran through the sweep runner (computed: {', '.join(m['sweep']['computed']) or 'none'}; "
              f"from the cache: {', '.join(m['sweep']['loaded_from_cache']) or 'none'}).",
              f"Wall time {m.get('wall_time_s', 'n/a')} s."]
    return "\n".join(lines) + "\n"

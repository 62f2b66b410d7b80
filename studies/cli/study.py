"""``circuits study``: run a study (curve-ablation, combing, echo, family-ablation, sweep) and write a report folder."""

from __future__ import annotations

import argparse
import sys

from studies.cli import artificial_curves, sweep
from studies.cli.common import (
    BATCH,
    COUNT,
    DEGREES,
    JOBS,
    add_checkpoint_arg,
    add_out_args,
    add_seed_arg,
    add_study_run_args,
    add_weights_arg,
    device,
    executor_settings,
    number,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("study", help="run a study and write a report folder")
    sub = p.add_subparsers(dest="study", metavar="STUDY")
    q = sub.add_parser(
        "curve-ablation",
        help="discover a layer's curve family, zero-ablate it, measure tuning and classification",
        description="The main job: discover the curve family of --layer (default mixed3b), zero-ablate it on a "
        "copy of the model, and write radial tuning before/after, top-1/top-5 before/after (with --images), "
        "the edit as JSON, per-unit metrics and a markdown summary to --out.",
    )
    add_checkpoint_arg(q)
    q.add_argument("--images", default=None, help="labelled image folder (<wnid>_*.JPEG or <wnid>/); "
                   "without it, classification is skipped and the frozen family of the catalog is used")
    add_out_args(q)
    q.add_argument("--layer", default="mixed3b", help="layer whose curve family is ablated (default mixed3b)")
    add_weights_arg(q)
    q.add_argument("--limit", type=COUNT, default=None, help="classify only the first N images")
    q.add_argument("--batch-size", type=BATCH, default=64)
    q.add_argument("--orientation-step", type=DEGREES, default=5.0, help="degrees between tuning orientations")
    q.add_argument("--no-downstream", action="store_true", help="skip the next layer's curve units")
    add_study_run_args(q)
    q.set_defaults(func=_cmd_study_curve_ablation)
    _add_study_combing(sub)
    _add_study_echo(sub)
    _add_study_family_ablation(sub)
    artificial_curves.add_parser(sub)
    sweep.add_parser(sub)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _add_study_family_ablation(sub) -> None:
    q = sub.add_parser(
        "family-ablation",
        help="zero/mean/resample-ablate curve families and random controls; accuracy with CIs",
        description="Ablate each curve family and K size-matched random unit sets (same branches) with each "
        "mode; top-1/top-5 change vs the unedited model with paired bootstrap CIs and McNemar tests, the "
        "classes most hurt, and a report folder. Results are cached per plan (resumable).",
    )
    add_checkpoint_arg(q)
    q.add_argument("--images", required=True, help="labelled image folder (<wnid>_*.JPEG or <wnid>/)")
    add_out_args(q)
    q.add_argument("--limit", type=COUNT, default=None, help="evaluate only the first N images")
    q.add_argument("--families", default="conv2d2/curves,mixed3a/curves,mixed3b/curves,mixed4a/curves")
    q.add_argument("--modes", default="zero,mean,resample")
    q.add_argument("--controls", type=number(int, 0, 1000), default=1, help="random control sets per family (default 1)")
    add_seed_arg(q, "the random control sets, the bootstrap resamples and the resample donors")
    q.add_argument("--bootstrap", type=number(int, 1, 10**6), default=1000, help="bootstrap resamples (default 1000)")
    q.add_argument("--reference-images", type=COUNT, default=50, help="images for mean ablation (default 50)")
    q.add_argument("--jobs", type=JOBS, default=1, help="worker processes (default 1)")
    q.add_argument("--plans-per-pass", type=number(int, 1, 1024), default=8, help="plans evaluated in one pass (default 8)")
    q.add_argument("--cache-dir", default=None, help="per-plan result cache (default $CIRCUITS_CACHE/sweeps)")
    add_weights_arg(q)
    q.add_argument("--batch-size", type=BATCH, default=64)
    add_study_run_args(q)
    q.set_defaults(func=_cmd_study_family_ablation)


def _cmd_study_family_ablation(args: argparse.Namespace) -> int:
    from studies.family_ablation import FamilyAblationConfig, run_family_ablation

    cfg = FamilyAblationConfig(
        model=args.checkpoint, images=args.images, weights=args.weights, limit=args.limit,
        families=args.families.split(","), modes=args.modes.split(","), controls=args.controls, seed=args.seed,
        bootstrap=args.bootstrap, reference_images=args.reference_images, jobs=args.jobs,
        plans_per_pass=args.plans_per_pass, batch_size=args.batch_size, device=str(device(args)),
        executor=executor_settings(args),
        cache_dir=args.cache_dir,
    )
    m = run_family_ablation(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    b = m["baseline"]
    print(f"unedited: top-1 {b['top1']:.4f}, top-5 {b['top5']:.4f} on {m['n_images']} images")
    for name, v in m["variants"].items():
        print(f"{name}: top-1 {v['top1_delta']:+.4f} [{v['top1_ci_low']:+.4f}, {v['top1_ci_high']:+.4f}] "
              f"p={v['top1_mcnemar_p']:.3g}; top-5 {v['top5_delta']:+.4f}")
    print(f"report: {args.out}/summary.md ({m['wall_time_s']} s)")
    return 0


def _cmd_study_curve_ablation(args: argparse.Namespace) -> int:
    from studies.curve_ablation import CurveAblationConfig, run_curve_ablation

    cfg = CurveAblationConfig(
        model=args.checkpoint, layer=args.layer, images=args.images, weights=args.weights, limit=args.limit,
        batch_size=args.batch_size, orientation_step=args.orientation_step, downstream=not args.no_downstream,
        device=str(device(args)), executor=executor_settings(args),
    )
    m = run_curve_ablation(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    c = m["classification"]
    print(f"family {m['family']['key']}: {len(m['family']['units'])} units {m['family']['units']}")
    if c:
        print(f"top-1 {c['top1_before']:.4f} -> {c['top1_after']:.4f} ({c['top1_change']:+.4f}); "
              f"top-5 {c['top5_before']:.4f} -> {c['top5_after']:.4f} ({c['top5_change']:+.4f}) "
              f"on {c['n_images']} images")
    else:
        print("classification skipped (no --images)")
    print(f"report: {args.out}/summary.md ({m['wall_time_s']} s)")
    return 0


def _add_study_echo(sub) -> None:
    q = sub.add_parser(
        "echo", help="Curve Circuits echoes: radial tuning of mixed3b curves under the Linearize/PrunePathway edits",
        description="Radial tuning of the mixed3b curve family for (a) the unedited model, (b) its 3x3/5x5 units "
        "linearised, (c) driven only by mixed3a curves, (d) = (c) without their negative expanded weights; echo "
        "ratios, peaks, widths, top-1/top-5 per variant (with --images) and a report folder at --out.",
    )
    add_checkpoint_arg(q)
    q.add_argument("--images", default=None, help="labelled image folder; without it classification is skipped")
    q.add_argument("--limit", type=COUNT, default=None, help="classify only the first N images")
    add_out_args(q)
    q.add_argument("--orientation-step", type=DEGREES, default=5.0, help="degrees between tuning orientations")
    add_weights_arg(q)
    q.add_argument("--batch-size", type=BATCH, default=64)
    q.add_argument("--vis-steps", type=number(int, 0, 100_000), default=128,
                   help="feature-visualization steps for the before/after grid of the variants (0: no grid)")
    add_seed_arg(q, "the feature visualizations (their random start and transforms)")
    add_study_run_args(q)
    q.set_defaults(func=_cmd_study_echo)


def _cmd_study_echo(args: argparse.Namespace) -> int:
    from studies.echo import VARIANTS, EchoConfig, run_echo

    cfg = EchoConfig(model=args.checkpoint, images=args.images, weights=args.weights, limit=args.limit,
                     batch_size=args.batch_size, orientation_step=args.orientation_step, device=str(device(args)),
                     executor=executor_settings(args), vis_steps=args.vis_steps, seed=args.seed)
    m = run_echo(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    for v in VARIANTS:
        r = m["variants"][v]
        acc = f"; top-1 {r['top1']:.4f} top-5 {r['top5']:.4f}" if "top1" in r else ""
        print(f"{v}: median echo ratio {r['median_echo_ratio']:.3f}, median peak {r['median_peak']:.1f}{acc}")
    if m["classification"] is None:
        print("classification skipped (no --images)")
    print(f"reproduces Lucid (median echo ≈0 → ≈0.2): {'yes' if m['reproduces_lucid'] else 'no'}")
    print(f"report: {args.out}/summary.md ({m['wall_time_s']} s)")
    return 0


def _add_study_combing(sub) -> None:
    q = sub.add_parser(
        "combing", help="measure combing of curve units, prune the pathways that carry it, re-measure",
        description="Combing index of the mixed3a/mixed3b curve units, attribution of (combed − plain) to the "
        "previous layer's units, exact PrunePathway edits of the top pathways, tuning/classification/attribution "
        "maps before/after (studies.combing).",
    )
    add_checkpoint_arg(q)
    q.add_argument("--images", default=None, help="labelled image folder (classification and real-image maps)")
    add_out_args(q)
    add_weights_arg(q)
    q.add_argument("--units", default=None, help="comma-separated units (default: mixed3a/curves + mixed3b/curves)")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--top-pathways", type=number(int, 1, 10**4), default=8, help="sources pruned per unit (default 8)")
    g.add_argument("--share", type=number(float, 1e-6, 1.0), default=None, help="prune the top sources reaching this share of the "
                   "positive attribution to combing")
    q.add_argument("--limit", type=COUNT, default=None, help="classify only the first N images")
    q.add_argument("--batch-size", type=BATCH, default=64)
    q.add_argument("--orientation-step", type=DEGREES, default=10.0, help="degrees between tuning orientations")
    q.add_argument("--map-images", type=COUNT, default=64, help="images scanned for attribution maps")
    add_study_run_args(q)
    q.set_defaults(func=_cmd_study_combing)


def _cmd_study_combing(args: argparse.Namespace) -> int:
    from studies.combing import CombingConfig, run_combing

    cfg = CombingConfig(
        model=args.checkpoint, images=args.images, weights=args.weights,
        units=[u.strip() for u in args.units.split(",") if u.strip()] if args.units else None,
        top_pathways=args.top_pathways, share=args.share, limit=args.limit, batch_size=args.batch_size,
        orientation_step=args.orientation_step, map_images=args.map_images, device=str(device(args)),
        executor=executor_settings(args),
    )
    m = run_combing(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"median combing index {m['median_combing_before']:.3f} -> {m['median_combing_after']:.3f}")
    c = m["classification"]
    print(f"top-1 {c['top1_before']:.4f} -> {c['top1_after']:.4f}; top-5 {c['top5_before']:.4f} -> "
          f"{c['top5_after']:.4f}" if c else "classification skipped (no --images)")
    print(f"report: {args.out}/summary.md ({m['wall_time_s']} s)")
    return 0

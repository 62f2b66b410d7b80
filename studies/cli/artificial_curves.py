"""``circuits study artificial-curves``: hand-written curve detectors vs the natural family
(:mod:`studies.artificial_curves`)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    """Add ``artificial-curves`` to the ``circuits study`` subcommands."""
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
        number,
    )

    q = subparsers.add_parser(
        "artificial-curves",
        help="replace the mixed3b curve family by hand-written rotated-template units; equivariance, tuning, "
        "accuracy with CIs",
        description="Equivariance of the curve family's expanded weights (vs shuffled orientations); the family's "
        "weights replaced by one template (a learned unit's, or analytic) rotated to each unit's orientation "
        "(edits.HandwrittenFamily); radial tuning, curve/line preference, echo and combing of each artificial unit "
        "next to the natural one; top-1/top-5 of natural, zero-ablated and hand-written variants with paired "
        "bootstrap CIs and the fraction of the ablation drop recovered. Variants run through the sweep runner "
        "(cached; local or Ray).",
    )
    add_checkpoint_arg(q)
    q.add_argument("--images", default=None, help="labelled image folder; without it classification is skipped")
    add_out_args(q)
    q.add_argument("--limit", type=COUNT, default=None, help="classify only the first N images")
    add_weights_arg(q)
    q.add_argument("--family", default="mixed3b/curves", help="family written (default mixed3b/curves)")
    q.add_argument("--src-family", default="mixed3a/curves", help="its source family (default mixed3a/curves)")
    q.add_argument("--template-unit", default=None, help="learned template unit (default: chosen by equivariance)")
    q.add_argument("--rest", default="zero", choices=["zero", "keep"],
                   help="incoming weights from outside the source family: zero (default) or keep")
    q.add_argument("--keep-variants", action="store_true", help="also run the hand-written variants with the other --rest")
    q.add_argument("--orientation-step", type=DEGREES, default=5.0, help="degrees between tuning orientations")
    q.add_argument("--shuffles", type=number(int, 1, 10**6), default=1000, help="shuffled-orientation controls (default 1000)")
    q.add_argument("--bootstrap", type=number(int, 100, 10**6), default=2000, help="bootstrap resamples (default 2000)")
    add_seed_arg(q, "the shuffled-orientation controls and the bootstrap resamples")
    q.add_argument("--no-combing", action="store_true", help="skip the combing index")
    q.add_argument("--batch-size", type=BATCH, default=64)
    q.add_argument("--jobs", type=JOBS, default=1, help="worker processes of the local executor")
    q.add_argument("--cache-dir", default=None, help="sweep cache (default $CIRCUITS_CACHE/sweeps)")
    add_study_run_args(q)
    q.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run the study from parsed arguments; prints the headline numbers. Returns the exit status."""
    from studies.artificial_curves import ArtificialCurvesConfig, run_artificial_curves
    from studies.cli.common import device, executor_settings

    cfg = ArtificialCurvesConfig(
        model=args.checkpoint, images=args.images, weights=args.weights, family=args.family,
        src_family=args.src_family, template_unit=args.template_unit, rest=args.rest, keep_variants=args.keep_variants,
        orientation_step=args.orientation_step, n_shuffles=args.shuffles, bootstrap=args.bootstrap, seed=args.seed,
        combing=not args.no_combing, limit=args.limit, batch_size=args.batch_size, device=str(device(args)),
        executor=executor_settings(args), cache_dir=args.cache_dir, jobs=args.jobs)
    m = run_artificial_curves(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    eq = m["equivariance"]
    print(f"equivariance {eq['family_score']:.3f} vs shuffled {eq['control']['mean']:.3f} "
          f"(p95 {eq['control']['p95']:.3f}, p = {eq['control']['p_value']:.4f}); template {m['template_unit']}")
    for r in m["classification"] or []:
        def pct(x):
            return "n/a" if x is None else f"{100 * x:.0f}"
        rec = "" if r["top1_recovered"] is None else (
            f", recovered {pct(r['top1_recovered'])}% [{pct(r['top1_recovered_low'])}, "
            f"{pct(r['top1_recovered_high'])}] (95 % CI)")
        print(f"{r['variant']}: top-1 {r['top1_acc']:.4f} top-5 {r['top5_acc']:.4f}{rec}")
    if not m["classification"]:
        print("classification skipped (no --images)")
    print(f"report: {args.out}/summary.md ({m['wall_time_s']} s)")
    return 0

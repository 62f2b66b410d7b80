"""``circuits tune``: tuning curves, joint tuning, combing, angles and dataset statistics of units."""

from __future__ import annotations

import argparse
import sys

from studies.cli.common import (
    COUNT,
    DEGREES,
    PIXELS,
    add_checkpoint_arg,
    add_device_arg,
    add_out_args,
    add_quiet_arg,
    add_weights_arg,
    device,
    number,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune", help="tuning curves, joint tuning, combing, angles and dataset statistics of units",
        description="Measure units (3b:358, mixed3b:9,mixed3b:12) or families (mixed3b/curves, from the "
        "checkpoint's catalog) on synthetic curves, lines, combed curves and angles at their receptive-field "
        "centre, and write tables (CSV) and plots to --out (atomically). With --images: σ units (pre-ReLU "
        "statistics over reference images, all positions) and dataset statistics (activation histogram, "
        "exponential tail, top examples, rotation tuning); without it those are skipped.",
    )
    p.add_argument("targets", nargs="+", metavar="UNIT_OR_FAMILY", help="e.g. 3b:358 or mixed3b/curves")
    add_checkpoint_arg(p)
    add_out_args(p)
    p.add_argument("--images", default=None, help="image folder for σ units and dataset statistics")
    p.add_argument("--orientation-step", type=DEGREES, default=5.0, metavar="DEG",
                   help="degrees between orientations (0.5 = the published 720 bins; default 5)")
    p.add_argument("--radii", type=PIXELS, nargs="+", default=None, metavar="PX",
                   help="curve radii in px (default 8 12 18 27 40 60 90 135 200)")
    p.add_argument("--n-radii", type=number(int, 1, 64), default=None, metavar="N",
                   help="instead of --radii: N radii geometrically spaced from 8 to 200 px")
    p.add_argument("--stroke-width", type=number(float, 0.25, 50.0, " px"), default=2.0, metavar="PX")
    p.add_argument("--top-k", type=number(int, 1, 1000), default=8, help="top dataset examples per unit (default 8)")
    p.add_argument("--limit", type=COUNT, default=None, help="dataset statistics over the first N images only")
    p.add_argument("--reference-images", type=COUNT, default=100, help="images for the σ reference (default 100)")
    p.add_argument("--rotation-step", type=DEGREES, default=10.0, metavar="DEG", help="rotation tuning step")
    p.add_argument("--vis-steps", type=number(int, 0, 100_000), default=0, metavar="N",
                   help="also feature visualizations with N steps (featurevis.png, vis/; 512 is the usual; default 0: none)")
    add_weights_arg(p)
    add_quiet_arg(p)
    add_device_arg(p)
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(args: argparse.Namespace) -> int:
    from circuits import load_model
    from circuits.spec import get_spec
    from circuits.units import resolve_targets
    from studies.measure import stimuli as S
    from studies.report.folder import check_out_dir
    from studies.tune import tune_report

    # everything the user can get wrong is checked before the model is loaded
    try:
        units, labels = resolve_targets(args.targets, get_spec(args.checkpoint))
    except IndexError as e:  # a unit index out of range: a user error like an unknown name
        raise ValueError(str(e)) from None
    if args.radii is not None and args.n_radii is not None:
        raise ValueError("give --radii or --n-radii, not both")
    radii = S.radius_grid(args.n_radii) if args.n_radii is not None else (args.radii or list(S.DEFAULT_RADII))
    S.curves(S.orientation_grid(args.orientation_step)[:1], radii, stroke_width=args.stroke_width)
    check_out_dir(args.out, args.overwrite)
    if args.images is not None:
        from studies.measure.images import list_images

        list_images(args.images)
    model = load_model(args.checkpoint, weights=args.weights, device=device(args))

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    s = tune_report(model, units, args.out, images=args.images, orientation_step=args.orientation_step, radii=radii,
                    stroke_width=args.stroke_width, top_k=args.top_k, limit=args.limit,
                    reference_images=args.reference_images, rotation_step=args.rotation_step,
                    overwrite=args.overwrite, log=log, labels=labels, vis_steps=args.vis_steps,
                    progress=not args.quiet)
    for row in s["per_unit"]:
        line = (f"{row['unit']}: preferred {row['preferred_orientation']:.1f}°, width {row['tuning_width']:.0f}°, "
                f"echo {row['echo_ratio']:.2f}")
        if "curve_sigma" in row:
            line += (f", best curve {row['curve_sigma']:.1f}σ vs line {row['line_sigma']:.1f}σ "
                     f"(×{row['ratio_sigma']:.1f} above the mean)")
        else:
            line += f", best curve {row['best_curve']:.0f} vs line {row['best_line']:.0f} (pre-ReLU)"
        print(line)
    print(f"report: {args.out} ({', '.join(s['files'])}; {s['wall_time_s']} s)")
    return 0

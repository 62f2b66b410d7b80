"""``circuits dataset`` and ``circuits attribute``: the command lines of
:mod:`studies.dataset_analysis`."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


# ============================================================================ parsers
def add_parser(subparsers) -> None:
    """Register ``dataset`` and ``attribute`` on the ``circuits`` sub-command parser."""
    from studies.cli.common import (
        BATCH,
        COUNT,
        DEGREES,
        add_out_args,
        add_quiet_arg,
        add_seed_arg,
        add_weights_arg,
        number,
    )
    from studies.cli.common import add_checkpoint_arg as _add_checkpoint_arg
    from studies.cli.common import add_device_arg as _add_device_arg

    p = subparsers.add_parser(
        "dataset", help="dataset analysis of units: sparsity, pdf and expected value, activation-range examples, "
        "rotation of natural examples",
        description="Stream an image folder once (never all images in memory) and write, for units or a family: "
        "sparsity, pre-ReLU mean, pdf with exponential tail and contribution to E[max(x,0)] (Curve Detectors fig. "
        "12), random receptive-field examples per activation range (figs. 6-7) with attribution overlays, "
        "rotation tuning of the top examples (fig. 13), attribution flow of each unit's top example (fig. 8).")
    p.add_argument("targets", nargs="+", metavar="UNIT_OR_FAMILY", help="e.g. 3b:358 or mixed3b/curves")
    p.add_argument("--images", required=True, help="image folder (read recursively, sorted)")
    add_out_args(p)
    p.add_argument("--limit", type=COUNT, default=None, help="first N images (sorted) only")
    add_seed_arg(p, "the random choice of examples in each activation range")
    p.add_argument("--k", type=COUNT, default=8, help="examples per activation range (default 8)")
    p.add_argument("--top-k", type=COUNT, default=8, help="top examples per unit for rotation tuning (default 8)")
    p.add_argument("--ranges", default=None, metavar="SPEC",
                   help="activation ranges: quantiles q0.99:1,q0.9:0.99 or values 400:800,0:400,-300:0 "
                   "(default q0.99:1,q0.9:0.99,q0.45:0.55,q0:0.01)")
    p.add_argument("--batch-size", type=BATCH, default=32)
    p.add_argument("--rotation-step", type=DEGREES, default=10.0, metavar="DEG",
                   help="degrees between the rotations of the top examples, 0.1–180 (default 10)")
    p.add_argument("--no-overlays", action="store_true", help="range examples without attribution overlays")
    p.add_argument("--no-flow", action="store_true", help="skip the per-unit attribution flow figures")
    add_quiet_arg(p)
    add_weights_arg(p)
    _add_checkpoint_arg(p)
    _add_device_arg(p)
    p.set_defaults(func=_cmd_dataset)

    q = subparsers.add_parser(
        "attribute", help="linear attribution of a unit to earlier layers on one image",
        description="Attribution of UNIT (summed over its active positions) to the previous layer and to the curve "
        "families of earlier layers, exact with the image's ReLU/max-pool/LRN gates frozen "
        "(studies.measure.attribution); writes CSVs and the family-flow figure (Curve Detectors fig. 8).")
    q.add_argument("unit", help="e.g. 3b:358")
    q.add_argument("image", help="an image file")
    add_out_args(q)
    q.add_argument("--positions", default="active", choices=["active", "all", "max"],
                   help="which positions of the unit's map to attribute (default active: pre-ReLU > 0)")
    q.add_argument("--vis-steps", type=number(int, 0, 100_000), default=0, metavar="N",
                   help="also a feature visualization of the attribution vector to the previous layer (a direction "
                   "objective, Curve Detectors fig. 8), N steps (default 0: none; 512 is the usual)")
    add_seed_arg(q, "the feature visualization of the attribution vector (its random start and transforms)")
    add_weights_arg(q)
    _add_checkpoint_arg(q)
    _add_device_arg(q)
    q.set_defaults(func=_cmd_attribute)


def _cmd_dataset(args: argparse.Namespace) -> int:
    from circuits import load_model
    from circuits.spec import get_spec
    from circuits.units import resolve_targets
    from studies.cli.common import device as _device
    from studies.dataset_analysis import run_dataset
    from studies.measure.activation_stats import parse_ranges
    from studies.measure.dataset import dataset_files
    from studies.report.folder import check_out_dir

    try:
        units, _ = resolve_targets(args.targets, get_spec(args.checkpoint))
    except IndexError as e:
        raise ValueError(str(e)) from None
    ranges = parse_ranges(args.ranges) if args.ranges else None
    layers = sorted({u.layer for u in units})
    if len(layers) != 1:
        raise ValueError(f"give units of one layer (got {', '.join(layers)})")
    dataset_files(get_spec(args.checkpoint), layers, args.images, args.limit, report=False)  # run_dataset reports
    check_out_dir(args.out, args.overwrite)
    torch.manual_seed(args.seed)
    model = load_model(args.checkpoint, weights=args.weights, device=_device(args))
    s = run_dataset(model, args.targets, args.images, args.out, limit=args.limit, seed=args.seed, k=args.k,
                    top_k=args.top_k, ranges=ranges, batch_size=args.batch_size, rotation_step=args.rotation_step,
                    overlays=not args.no_overlays, flow=not args.no_flow, overwrite=args.overwrite, quiet=args.quiet)
    for r in s["summary"].itertuples():
        print(f"{r.unit}: active at {100 * r.frac_active:.1f} % of positions ({100 * r.frac_images_active:.0f} % of "
              f"images), mean {r.mean:.0f}, E[max(x,0)] {r.expected_relu:.3g}, top 1 % carries "
              f"{100 * r.ev_share_top1:.0f} % of it, tail λ {r.tail_rate_sigma:.2f}/σ")
    print(f"report: {args.out} ({s['n_images']} images, pass {s['pass_images_per_s']} images/s, "
          f"{s['wall_time_s']} s)")
    return 0


def _cmd_attribute(args: argparse.Namespace) -> int:
    from circuits import load_model
    from circuits.spec import get_spec
    from circuits.units import resolve_targets
    from studies.cli.common import device as _device
    from studies.dataset_analysis import run_attribute
    from studies.report.folder import check_out_dir

    try:
        units, _ = resolve_targets([args.unit], get_spec(args.checkpoint))
    except IndexError as e:
        raise ValueError(str(e)) from None
    if len(units) != 1:
        raise ValueError(f"attribute takes one unit such as 3b:358; {args.unit} is {len(units)} units")
    if not Path(args.image).is_file():
        raise FileNotFoundError(f"image {args.image} does not exist")
    check_out_dir(args.out, args.overwrite)
    model = load_model(args.checkpoint, weights=args.weights, device=_device(args))
    s = run_attribute(model, args.unit, args.image, args.out, args.positions, args.overwrite,
                      vis_steps=args.vis_steps, seed=args.seed)
    for t in s["totals"]:
        print(f"{t['unit']} → {t['src']}: attribution {t['attribution_sum']:.1f} + upstream biases "
              f"{t['bias_terms']:.1f} = Σ mask·(pre − bias) {t['target']:.1f}")
    for f in s["families"]:
        print(f"  {f['family']}: {f['total']:.1f} ({100 * f['share']:.0f} %)")
    if "attribution_vis" in s:
        v = s["attribution_vis"]
        print(f"feature visualization of the attribution vector to {v['layer']}: attribution_vis.png "
              f"(objective {v['objective']:.4g}, {v['steps']} steps)")
    print(f"report: {args.out}")
    return 0

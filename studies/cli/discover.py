"""``circuits discover``: find a layer's curve family from synthetic curves and lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studies.cli.common import add_checkpoint_arg, add_device_arg, add_weights_arg, device, layer_arg, number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "discover", help="find a layer's curve family from synthetic curves and lines",
        description="Curve-family discovery (criteria: studies.measure.discovery). With --freeze, writes the family "
        "into the packaged catalog of the checkpoint.",
    )
    add_checkpoint_arg(p)
    p.add_argument("--layer", default="mixed3b", help="layer to search (Lucid name, e.g. mixed3b; default mixed3b)")
    p.add_argument("--images", required=True, help="reference image folder for the dataset σ")
    p.add_argument("--min-sigma", type=number(float, -1e6, 1e6), default=None, help="default: the layer's (studies.measure.discovery)")
    p.add_argument("--min-curve-line", type=number(float, -1e6, 1e6), default=None, help="default: the layer's")
    p.add_argument("--min-selectivity", type=number(float, -1e6, 1e6), default=None, help="default: the layer's")
    add_weights_arg(p)
    p.add_argument("--csv", default=None, help="write the per-unit table here")
    p.add_argument("--freeze", action="store_true", help="write the family into the packaged catalog")
    add_device_arg(p)
    p.set_defaults(func=_cmd_discover)


def _cmd_discover(args: argparse.Namespace) -> int:
    from circuits import load_model
    from studies.measure.discovery import discover_curves
    from studies.measure.frozen import freeze_family
    from studies.measure.images import load_reference_set
    from studies.measure.statistics import reference_statistics

    args.layer = layer_arg("--layer", args.layer, args.checkpoint)
    if not Path(args.images).expanduser().is_dir():
        raise FileNotFoundError(f"--images {args.images} is not a folder")
    model = load_model(args.checkpoint, weights=args.weights, device=device(args))
    ref = load_reference_set(args.images, 100)
    print(f"σ from {len(ref.images)} reference images ({ref.description})", file=sys.stderr)
    if len(ref.images) < 100:
        from studies.base import warn

        warn(f"discovery uses only {len(ref.images)} usable reference image(s) of the 100 asked for: the "
             "σ thresholds and the family found are unreliable (the frozen catalogs used 100)")
    d = discover_curves(model, args.layer, reference_statistics(model, args.layer, ref), min_sigma=args.min_sigma,
                        min_curve_line=args.min_curve_line, min_selectivity=args.min_selectivity)
    fam = d.family
    print(f"{fam.key}: {len(fam)} units")
    for u, o in zip(fam.units, fam.orientations or ()):
        print(f"  {fam.layer}:{u}  preferred {o:.1f}°")
    if args.csv:
        d.table.to_csv(args.csv, index=False)
    if args.freeze:
        opts = "".join(f" --{k.replace('_', '-')} {v:g}" for k, v in
                       (("min_sigma", args.min_sigma), ("min_curve_line", args.min_curve_line),
                        ("min_selectivity", args.min_selectivity)) if v is not None)
        cmd = (f"circuits discover --model {args.checkpoint} --layer {fam.layer}{opts} "
               f"--images $CIRCUITS_DATA/imagenet-sample-1000 --freeze")
        print(f"wrote {freeze_family(d, args.checkpoint, cmd)}")
    return 0

"""CLI of the curve applications: ``circuits curves``, ``trace``, ``factor``, ``bench-curves``.

Each ``add_<name>(subparsers)`` creates its parser; :func:`add_parser` registers all four. The work
is done in :mod:`studies.applications` (imported when a command runs, so ``--help`` stays fast).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from studies.cli.common import COUNT, add_out_args, add_seed_arg, add_weights_arg, number


def _common(p: argparse.ArgumentParser, families: bool = True) -> None:
    from studies.cli.common import add_checkpoint_arg

    add_checkpoint_arg(p)
    add_weights_arg(p)
    if families:
        p.add_argument("--families", default=None, metavar="KEYS",
                       help="curve families, comma-separated (e.g. mixed3b/curves), or 'all' (every curves family "
                            "of the checkpoint's catalog); default mixed3a/curves,mixed3b/curves")
    add_out_args(p, metavar="DIR")


POWER = number(float, 0.5, 16.0)  #: exponent of the curve objective (studies.applications.extraction)
MAX_SIDE = number(int, 32, 8192, " px")


def _check(args) -> None:
    """Every check that needs no model, before it is loaded: ``--out``, ``--families`` (against the
    checkpoint's catalog), ``--layer``, ``--quantile``.

    Raises:
        KeyError / ValueError: naming the option and the valid values; ReportExistsError: ``--out``.
    """
    from circuits.spec import get_spec
    from circuits.units import canonical_layer
    from studies.applications.extraction import curve_families
    from studies.cli.common import message
    from studies.report.folder import check_out_dir

    spec = get_spec(args.checkpoint)
    if getattr(args, "quantile", None) is not None and not 0 < args.quantile < 1:
        raise ValueError(f"--quantile must be in (0, 1); got {args.quantile}")
    if hasattr(args, "families"):
        try:
            curve_families(spec, args.families)
        except (KeyError, ValueError) as e:
            raise ValueError(f"--families {args.families}: {message(e)}") from None
    if hasattr(args, "layer"):
        try:
            canonical_layer(args.layer, spec)
        except KeyError as e:
            raise KeyError(f"--layer: {message(e)}") from None
    plan = getattr(args, "combing_plan", None)
    if plan and not Path(plan).is_file():
        raise FileNotFoundError(f"--combing-plan {plan} does not exist")
    check_out_dir(args.out, args.overwrite)


def _model(args):
    from circuits import load_model

    _check(args)
    return load_model(args.checkpoint, weights=args.weights)


def add_curves(subparsers) -> None:
    p = subparsers.add_parser(
        "curves", help="curve map of images from the curve families' attribution, beside Canny edges",
        description="Per-pixel curve map (gradient x (input - mean colour), positive part, of the summed "
        "curve-family activations raised to --power) at the images' own size, the top pixels marked, and "
        "skimage's Canny edges; writes curves.png, maps.npz, summary.csv.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    _common(p)
    p.add_argument("--power", type=POWER, default=4.0,
                   help="exponent of the activations in the objective, 0.5–16 (default 4)")
    p.add_argument("--quantile", type=number(float, 0.0, 1.0), default=0.92,
                   help="mark pixels above this quantile of each map, in (0, 1)")
    p.add_argument("--canny-sigma", type=number(float, 0.1, 50.0, " px"), default=2.0,
                   help="Canny's Gaussian sigma, px (default 2)")
    p.add_argument("--max-side", type=MAX_SIDE, default=512,
                   help="shrink images whose longer side exceeds this, px (32–8192)")
    p.set_defaults(func=_cmd_curves)


def _cmd_curves(args) -> int:
    from studies.applications.commands import run_curves

    r = run_curves(_model(args), args.images, args.out, args.families, args.power, args.quantile,
                   canny_sigma=args.canny_sigma, max_side=args.max_side, overwrite=args.overwrite)
    print(f"{r['images']} images ({r['seconds_per_image']:.2f} s each, {r['families']}); wrote {args.out}")
    return 0


def add_trace(subparsers) -> None:
    p = subparsers.add_parser(
        "trace", help="fit cubic Bezier splines to an image's curve map; overlay PNG and SVG paths",
        description="Gradient ascent of spline control points on the curve map (studies.applications.splines); "
        "writes trace.png, splines.svg (the image with the splines as <path>s) and splines.csv.")
    p.add_argument("image", metavar="IMAGE")
    _common(p)
    p.add_argument("--splines", type=number(int, 1, 1000), default=24,
                   help="most splines kept (default 24)")
    p.add_argument("--explain-rounds", type=number(int, 1, 100), default=4,
                   help="curve maps computed: after each, the traced curves are painted over (see --fill) so "
                   "weaker curves get their own attribution (default 4)")
    p.add_argument("--fill", choices=("local", "mean"), default="local",
                   help="what the traced curves are painted with: the local background (normalised convolution; "
                   "default) or the image's mean colour (leaves band edges that get traced)")
    p.add_argument("--floor", type=number(float, 0.0, 1e6), default=0.75,
                   help="a later map is scaled by max(its 99.5th percentile, FLOOR × the first map's), so faint "
                   "residue is not raised to full scale (0: each map on its own scale; default 0.75)")
    p.add_argument("--rounds", type=number(int, 1, 100), default=2,
                   help="seeding rounds of 12 peaks per map, each on what the splines kept so far leave unexplained "
                   "(default 2)")
    p.add_argument("--steps", type=number(int, 1, 100_000), default=200, help="optimiser steps (default 200)")
    p.add_argument("--tau", type=number(float, 0.0, 1.0), default=0.15,
                   help="map level (fraction of its 99.5th percentile) below which a spline shrinks (default 0.15)")
    p.add_argument("--max-side", type=MAX_SIDE, default=512,
                   help="shrink images whose longer side exceeds this, px (32–8192)")
    p.set_defaults(func=_cmd_trace)


def _cmd_trace(args) -> int:
    from studies.applications.commands import run_trace

    r = run_trace(_model(args), args.image, args.out, args.families, args.splines, args.steps, args.tau,
                  args.max_side, args.overwrite, rounds=args.rounds,
                  explain_rounds=args.explain_rounds, fill=args.fill, floor=args.floor)
    print(f"{r['splines']} splines in {r['seconds']:.2f} s; wrote {args.out}")
    return 0


def add_factor(subparsers) -> None:
    p = subparsers.add_parser(
        "factor", help="NMF of a layer's activations over images: factor maps, top units, a factor traced",
        description="sklearn NMF of the post-ReLU activations (positions x units) of --layer over the images "
        "(centre crop --size); the factor that drives the images' own classes most (wnid file names) is traced by "
        "splines. Writes factors.png, loadings.csv, maps.npz, summary.json.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    _common(p, families=False)
    p.add_argument("--layer", default="mixed4d", help="Lucid layer name (default mixed4d)")
    p.add_argument("--k", type=number(int, 1, 1024), default=4, help="number of factors (default 4)")
    p.add_argument("--size", type=number(int, 64, 1024, " px"), default=224, help="centre crop, px (default 224)")
    p.add_argument("--splines", type=number(int, 1, 1000), default=3,
                   help="splines per image on the traced factor (default 3)")
    add_seed_arg(p, "the NMF initialisation (scikit-learn random_state)")
    p.set_defaults(func=_cmd_factor)


def _cmd_factor(args) -> int:
    from studies.applications.commands import run_factor

    s = run_factor(_model(args), args.images, args.layer, args.k, args.out, args.size, args.splines, args.seed,
                   args.overwrite)
    print(f"{args.k} factors of {args.layer} ({100 * s['explained']:.0f} % of the activations' energy); traced "
          f"factor {s['traced_factor']} ({s['chosen_by']}); wrote {args.out}")
    return 0


def add_bench_curves(subparsers) -> None:
    p = subparsers.add_parser(
        "bench-curves", help="benchmark: curve map vs Canny on synthetic scenes with ground truth; spline tracing",
        description="Seeded synthetic scenes (curves, lines, angles, textured/noisy backgrounds, occluders); Canny and "
        "our thresholds tuned on a tuning split, measured on a test split; curve F1, line false-positive rate, "
        "combing artefacts before/after the combing edit; spline distance and time. Writes table.md, extraction.csv, "
        "by_background.csv, tracing.csv, tracing_tune.csv, examples.png, tracing.png, config.json.")
    _common(p)
    p.add_argument("--power", type=POWER, default=4.0,
                   help="exponent of the activations in the curve map's objective, 0.5–16 (default 4)")
    p.add_argument("--n-tune", type=COUNT, default=24, help="tuning scenes (default 24)")
    p.add_argument("--n-test", type=COUNT, default=48, help="test scenes (default 48)")
    p.add_argument("--n-trace", type=COUNT, default=48, help="test scenes with occluders for spline tracing (default 48)")
    p.add_argument("--n-trace-tune", type=number(int, 0, 10_000), default=96,
                   help="tracing's tuning scenes, reported beside the test split (default 96; 0 skips them)")
    p.add_argument("--size", type=number(int, 64, 1024, " px"), default=128, help="scene side, px (default 128)")
    add_seed_arg(p, "the synthetic scenes (tuning, test and tracing splits)")
    p.add_argument("--tol", type=number(float, 0.0, 100.0, " px"), default=2.0, help="match tolerance, px (default 2)")
    p.add_argument("--combing-plan", default=None, metavar="PLAN",
                   help="edit plan of the combing edit (e.g. a combing study's plan.json); default: built")
    p.add_argument("--no-edit", action="store_true", help="skip the combing-edit rows")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    from studies.applications.bench_curves import BenchConfig, run_bench_curves

    _check(args)
    cfg = BenchConfig(model=args.checkpoint, weights=args.weights, families=args.families, power=args.power,
                      n_tune=args.n_tune, n_test=args.n_test, n_trace=args.n_trace,
                      n_trace_tune=args.n_trace_tune, size=args.size, seed=args.seed,
                      tol=args.tol, combing_plan=args.combing_plan, edit=not args.no_edit)
    r = run_bench_curves(cfg, args.out, args.overwrite)
    print(r["markdown"])
    return 0


def add_parser(subparsers) -> None:
    """Register ``curves``, ``trace``, ``factor`` and ``bench-curves``."""
    for add in (add_curves, add_trace, add_factor, add_bench_curves):
        add(subparsers)

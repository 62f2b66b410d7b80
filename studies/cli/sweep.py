"""``circuits study sweep``: evaluate many edit plans, cached per plan (a subcommand of ``study``)."""

from __future__ import annotations

import argparse
import sys

from studies.cli.common import (
    BATCH,
    COUNT,
    DEGREES,
    JOBS,
    add_checkpoint_arg,
    add_out_args,
    add_seed_arg,
    add_study_run_args,
    device,
    executor_settings,
    number,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sweep`` to the ``study`` group's subparsers."""
    w = subparsers.add_parser("sweep", help="evaluate many edit plans (files or every single-unit ablation of a family), "
                       "cached per plan; resumes when interrupted")
    add_checkpoint_arg(w)
    w.add_argument("--images", default=None, help="labelled image folder to classify")
    w.add_argument("--tune", nargs="*", default=[], metavar="UNITS",
                   help="also measure radial tuning of these units / families (e.g. mixed3b/curves) under every plan")
    w.add_argument("--orientation-step", type=DEGREES, default=5.0, help="degrees between tuning orientations (default 5)")
    w.add_argument("--radii", type=number(int, 1, 64), default=16, help="curve radii, 8-200 px geometric (default 16)")
    w.add_argument("--plans", nargs="*", default=[], metavar="FILE", help="plan files (.json/.yaml)")
    w.add_argument("--single-unit-ablations", metavar="FAMILY|LAYER", help="add one Ablate per unit of FAMILY (e.g. mixed3b/curves) or of a whole LAYER (e.g. mixed3b: 480 plans)")
    w.add_argument("--mode", default="zero", choices=["zero", "resample"], help="ablation mode for --single-unit-ablations")
    w.add_argument("--limit", type=COUNT, default=None)
    w.add_argument("--jobs", type=JOBS, default=1, help="worker processes of the local executor")
    w.add_argument("--batch-size", type=BATCH, default=64)
    w.add_argument("--plans-per-pass", type=number(int, 1, 1024), default=8, help="plans per task, sharing the unedited prefix (default 8)")
    w.add_argument("--shard-size", type=number(int, 1, 10**6), default=None, help="images per task (default 16 × batch size)")
    w.add_argument("--stimulus-batch", type=BATCH, default=512, help="stimuli per task (default 512)")
    w.add_argument("--cache-dir", default=None, help="per-plan result cache (default $CIRCUITS_CACHE/sweeps)")
    add_seed_arg(w, "the resample ablations' donors and the paired bootstrap resamples")
    add_out_args(w)
    add_study_run_args(w)
    w.set_defaults(func=_cmd_study_sweep)


def _cmd_study_sweep(args: argparse.Namespace) -> int:
    from studies.sweep_study import SweepConfig, run_sweep_study

    cfg = SweepConfig(model=args.checkpoint, images=args.images or "", plans=list(args.plans),
                      single_unit_ablations=args.single_unit_ablations, mode=args.mode, limit=args.limit,
                      jobs=args.jobs, batch_size=args.batch_size, device=str(device(args)), seed=args.seed,
                      tune=list(args.tune), orientation_step=args.orientation_step, radii=args.radii,
                      plans_per_pass=args.plans_per_pass, shard_size=args.shard_size,
                      stimulus_batch=args.stimulus_batch, cache_dir=args.cache_dir,
                      executor=executor_settings(args))
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    m = run_sweep_study(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet, log=log)
    failed = f"; {len(m['failed'])} plan(s) FAILED (see summary.md)" if m["failed"] else ""
    print(f"{m['variants']} plans + unedited: computed {len(m['computed'])}, loaded {len(m['loaded_from_cache'])} "
          f"from the cache ({m['tasks']} task(s) on the {m['executor']['executor']} executor){failed}; "
          f"report: {args.out}/summary.md")
    return 0

"""``circuits vis``: feature visualizations of units or families, for a model or an edited one.

Writes to ``--out``: one PNG per unit (``mixed3b_379.png``, the optimised picture), ``grid.png``
(the family sorted by preferred orientation, labelled with unit and orientation),
``objective.png`` (objective per step), ``metrics.csv`` (``step, unit, objective``: the value
at each optimisation step, under that step's transforms), ``units.csv`` (per unit: preferred
orientation and its source, final objective without transforms, file) and ``summary.json``.
Results are cached under ``$CIRCUITS_CACHE/vis`` (see :mod:`studies.measure.featurevis.render`).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from pathlib import Path

import pandas as pd

from studies.report.html import write_report
from studies.report.provenance import run_provenance


def add_parser(subparsers) -> None:
    """Register ``circuits vis``."""
    from studies.cli.common import add_checkpoint_arg as _add_checkpoint_arg
    from studies.cli.common import add_device_arg as _add_device_arg
    from studies.cli.common import add_out_args, add_seed_arg, add_weights_arg, number

    p = subparsers.add_parser(
        "vis", help="feature visualization: optimise an image per unit, write PNGs, a family grid and metrics",
        description="Feature visualization (Olah et al. 2017; Curve Detectors figs. 2 and 5): for every unit an "
        "image optimised from noise (Fourier parameterization, colour decorrelation, Lucid's standard transforms, "
        "Adam 0.05) to maximise the unit at the centre of its receptive field (neuron) or over the whole map "
        "(channel). A family is one batched optimisation. Example: circuits vis mixed3b/curves --out runs/vis",
    )
    p.add_argument("units", nargs="+", metavar="UNITS", help="units or families: 3b:379, mixed3b:379, mixed3b/curves")
    _add_checkpoint_arg(p)
    p.add_argument("--plan", default=None, help="an edit plan file (.json/.yaml): visualise the edited model")
    add_weights_arg(p, "explicit weights file (or an edited model from `edit apply`); default: the user cache")
    add_out_args(p, "output folder (must be empty or absent unless --overwrite)")
    p.add_argument("--steps", type=number(int, 1, 100_000), default=512, help="optimisation steps (default 512)")
    p.add_argument("--size", type=number(int, 16, 1024, " px"), default=None,
                   help="picture side in px (default: the layer's receptive-field window, 96 px for mixed3b; "
                   "128 for --objective channel)")
    add_seed_arg(p, "the optimisation: the random start image and the random transforms of each step")
    p.add_argument("--objective", choices=("neuron", "channel"), default="neuron",
                   help="neuron: the unit at the centre of its receptive field; channel: its mean over the whole map")
    relu = p.add_mutually_exclusive_group()
    relu.add_argument("--pre-relu", dest="pre_relu", action="store_true", default=True,
                      help="maximise the pre-ReLU value (the default)")
    relu.add_argument("--post-relu", dest="pre_relu", action="store_false",
                      help="maximise the post-ReLU value instead")
    p.add_argument("--param", choices=("fft", "pixel"), default="fft",
                   help="image parameterization: fft (Fourier, decorrelated colour) or pixel")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    _add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The ``circuits vis`` command (arguments as :func:`add_parser`); returns the exit status."""
    from circuits import load_model
    from studies.cli.common import device as _device
    from studies.measure.featurevis import VisSettings
    from studies.report.folder import check_out_dir

    settings = VisSettings(steps=args.steps, size=args.size, seed=args.seed, param=args.param)
    settings.check()
    check_out_dir(args.out, args.overwrite)
    plan_label = ""
    if args.plan:
        from edits import EditPlan

        plan_path = Path(args.plan)
        plan = EditPlan.load(plan_path)
        plan_label = f"{plan_path.name}:{hashlib.sha256(plan_path.read_bytes()).hexdigest()[:16]}"
    from circuits.catalog import catalog
    from circuits.spec import get_spec

    try:  # units checked before loading anything
        units = catalog(get_spec(args.checkpoint)).resolve(args.units)
    except IndexError as e:
        raise ValueError(str(e)) from None
    model = load_model(args.checkpoint, weights=args.weights, device=_device(args))
    if args.plan:
        plan.validate(model.spec)
        model, _ = plan.apply(model)
    s = write_vis(model, units, args.out, settings, objective=args.objective, pre_relu=args.pre_relu,
                  plan=plan_label, cache=not args.no_cache, overwrite=args.overwrite, edited=bool(args.plan))
    print(f"{len(units)} unit(s): {timing(s)}; wrote {args.out}")
    return 0


def timing(summary: dict) -> str:
    """How the pictures of a ``circuits vis`` summary were obtained: ``"12.3 s optimising"`` now, or
    ``"cached, computed in 12.3 s on 2026-11-30 20:45 UTC"`` (the original run's time and date:
    a cached result took no optimisation now)."""
    secs = summary["seconds_optimising"]
    if not summary["cached"]:
        return f"{secs} s optimising" + (" (partly cached)" if summary.get("computed_at") else "")
    when = summary.get("computed_at") or []
    dates = sorted({w[:16].replace("T", " ") for w in when})
    on = (f" on {dates[0]} UTC" if len(dates) == 1 else f" between {dates[0]} and {dates[-1]} UTC") if dates else ""
    return f"cached, computed in {secs} s{on}"


def write_vis(model, units, out, settings, objective: str = "neuron", pre_relu: bool = True, plan: str = "",
              cache: bool = True, overwrite: bool = False, edited: bool = False, log=print) -> dict:
    """Visualise ``units`` and write the ``circuits vis`` folder ``out`` atomically (module
    docstring). Preferred orientations: the catalog's for an unedited model, else measured
    (:func:`studies.measure.featurevis.units.preferred_orientations`). Returns ``summary.json``."""
    from studies.measure.featurevis.units import preferred_orientations, visualize_units
    from studies.measure.tuning import joint_sweep, radial_tuning, tuning_metrics
    from studies.report import vis_plots as P
    from studies.report.folder import report_folder, write_json

    t0 = time.perf_counter()
    vis = visualize_units(model, units, objective=objective, pre_relu=pre_relu, settings=settings, cache=cache,
                          plan=plan, log=log)
    us = [v.unit for v in vis]
    if edited:
        met = tuning_metrics(radial_tuning(joint_sweep(model, us, orientation_step=5.0, lines=False)))
        pref = dict(zip(met["unit"], met["preferred_orientation"]))
        ors = {u: float(pref.get(str(u), math.nan)) for u in us}
        source = "measured on the edited model (radial tuning, 5° steps, studies.tuning)"
    else:
        ors = preferred_orientations(model, us)
        source = "catalog where recorded, else measured (radial tuning, 5° steps)"
    results = {id(v.result): v.result for v in vis}
    with report_folder(out, overwrite) as tmp:
        rows, units_rows = [], []
        for v in vis:
            P.save_png(v.image, tmp / P.unit_file(v.unit))
            rows.append(pd.DataFrame({"step": range(1, len(v.history) + 1), "unit": str(v.unit),
                                      "objective": v.history}))
            units_rows.append(dict(unit=str(v.unit), layer=v.unit.layer, index=v.unit.index,
                                   preferred_orientation=ors[v.unit], final_objective=v.final,
                                   file=P.unit_file(v.unit)))
        pd.concat(rows).to_csv(tmp / "metrics.csv", index=False)
        pd.DataFrame(units_rows).to_csv(tmp / "units.csv", index=False)
        what = f"{objective}, {'pre' if pre_relu else 'post'}-ReLU, {settings.steps} steps, seed {settings.seed}"
        P.plot_family_grid([v.image for v in vis], us, tmp / "grid.png", ors, [v.final for v in vis],
                           title=f"{model.spec.name}{' (edited)' if edited else ''}: {what}; sorted by preferred "
                           "orientation")
        import numpy as np

        P.plot_objective(np.stack([v.history for v in vis], 1), us, tmp / "objective.png", ors,
                         title=f"objective per step ({what})")
        summary = dict(model=model.spec.name, plan=plan or None, units=[str(u) for u in us], objective=objective,
                       pre_relu=pre_relu, settings=dict(vars(vis[0].result.settings)), orientation_source=source,
                       paths=sorted({r.path for r in results.values()}), cached=all(r.cached for r in results.values()),
                       computed_at=sorted({r.meta["computed_at"] for r in results.values()
                                           if r.cached and "computed_at" in r.meta}),
                       seconds_optimising=round(sum(r.seconds for r in results.values()), 1),
                       wall_time_s=round(time.perf_counter() - t0, 1), cache_keys=sorted({r.key for r in results.values()}))
        summary["provenance"] = run_provenance(model, seed=settings.seed)
        summary["files"] = sorted(p.name for p in tmp.iterdir() if not p.name.startswith(".")) + ["summary.json"]
        write_json(tmp / "summary.json", summary)
        write_report(tmp, "Feature visualization")
    return summary

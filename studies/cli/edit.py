"""``circuits edit``: validate, apply or diff an edit plan (JSON/YAML)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studies.cli.common import (
    COUNT,
    add_checkpoint_arg,
    add_device_arg,
    add_out_args,
    add_weights_arg,
    device,
    error,
    number,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "edit", help="validate, apply or diff an edit plan (JSON/YAML)",
        description="Edit plans (edits.EditPlan) saved as .json/.yaml/.yml: check them against a checkpoint, "
        "apply them to a copy of the model and save the result, or list what they change.",
    )
    sub = p.add_subparsers(dest="edit_command", metavar="ACTION")

    q = sub.add_parser("validate", help="check a plan file (exit 2 and the error when invalid)",
                       description="Reads the plan (YAML with safe_load only) and checks every edit. With --model, "
                                   "also checks units, families and ranges against that checkpoint and rejects "
                                   "conflicting edits. No weights are loaded.")
    q.add_argument("plan", metavar="PLAN", help="plan file (.json, .yaml, .yml)")
    add_checkpoint_arg(q, default=None)
    q.set_defaults(func=_cmd_edit_validate)

    q = sub.add_parser("apply", help="apply a plan to a copy of the model and save the edited model",
                       description="Writes the edited model with edits.save_edited (reload with circuits.load_model or edits.load_edited): "
                                   "weights, widened structure and, in the metadata, the applied plan (with measured "
                                   "means and resolved families). Activation interventions (resample ablation) are "
                                   "not weights: re-install them from the plan (EditPlan.install_interventions).")
    q.add_argument("plan", metavar="PLAN", help="plan file (.json, .yaml, .yml)")
    add_checkpoint_arg(q)
    add_out_args(q, "edited model (.safetensors)", metavar="FILE", replaces="an existing --out")
    q.add_argument("--save-plan", metavar="FILE", help="also write the applied plan (.json/.yaml) here")
    _add_edit_common(q)
    q.set_defaults(func=_cmd_edit_apply)

    q = sub.add_parser("diff", help="list the tensors a plan changes, with counts and the largest changes",
                       description="Applies the plan to a copy and compares state dicts: tensors changed, entries "
                                   "changed, the largest absolute changes per tensor, channels added by "
                                   "structural edits, and installed interventions.")
    q.add_argument("plan", metavar="PLAN", help="plan file (.json, .yaml, .yml)")
    add_checkpoint_arg(q)
    q.add_argument("--top", type=number(int, 0, 10**6), default=3, help="largest changes listed per tensor (default 3)")
    q.add_argument("--json", action="store_true", help="print the diff as JSON")
    _add_edit_common(q)
    q.set_defaults(func=_cmd_edit_diff)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _add_edit_common(q: argparse.ArgumentParser) -> None:
    add_weights_arg(q)
    q.add_argument("--reference", metavar="DIR", default=None,
                   help="image folder for edits that measure statistics (Ablate mode 'mean' without stored means)")
    q.add_argument("--n-reference", type=COUNT, default=100, metavar="N",
                   help="evenly spaced reference images to use (default 100)")
    add_device_arg(q)


def _load_plan(path: str):
    from edits import EditPlan

    return EditPlan.load(Path(path).expanduser())


def _applied(args: argparse.Namespace):
    """(plan, model, edited, record) for ``edit apply`` / ``edit diff``."""
    from circuits import load_model

    plan = _load_plan(args.plan)
    plan.validate(args.checkpoint)  # before loading weights or images
    need = plan.needs_reference()
    if need and not args.reference:
        i, kind, field = need[0]
        raise ValueError(f"{args.plan}: edits[{i}] ({kind}) field {field!r} is measured on reference images: "
                         "pass --reference DIR (e.g. $CIRCUITS_DATA/imagenet-sample-1000)")
    if args.reference and not Path(args.reference).expanduser().is_dir():
        raise FileNotFoundError(f"--reference {args.reference} is not a folder")
    model = load_model(args.checkpoint, weights=args.weights, device=device(args))
    reference = None
    if need:
        from studies.measure.images import load_reference_images

        reference = load_reference_images(args.reference, args.n_reference)
    edited, record = plan.apply(model, reference=reference)
    return plan, model, edited, record


def _cmd_edit_validate(args: argparse.Namespace) -> int:
    from edits import EditError

    try:
        plan = _load_plan(args.plan)
        if args.checkpoint:
            plan.validate(args.checkpoint)
        elif not len(plan):
            raise EditError("the plan has no edits; it would change nothing", field="edits")
    except EditError as e:
        error(f"{args.plan}: {e}")
        return 2
    where = f"valid for {args.checkpoint}" if args.checkpoint else "document valid (add --model to check units)"
    print(f"OK {args.plan}: plan {plan.name!r}, {len(plan)} edit(s), {where}")
    for i, kind, field in plan.needs_reference():
        print(f"  note: edits[{i}] ({kind}) measures {field!r} on reference images when applied (--reference DIR)")
    return 0


def _check_output_file(path: Path, flag: str, suffixes: tuple[str, ...], overwrite: bool) -> None:
    """Everything about an output file that can be wrong, checked before any compute."""
    from studies.report.folder import check_writable

    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{flag} {path}: must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise ValueError(f"{flag} {path} exists; pass --overwrite to replace it")
    check_writable(path)


def _cmd_edit_apply(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    _check_output_file(out, "--out", (".safetensors",), args.overwrite)
    save_plan = Path(args.save_plan).expanduser() if args.save_plan else None
    if save_plan is not None:
        _check_output_file(save_plan, "--save-plan", (".json", ".yaml", ".yml"), args.overwrite)
        if save_plan.resolve() == out.resolve():
            raise ValueError("--save-plan and --out are the same file")
    plan, _, edited, record = _applied(args)
    from edits import save_edited

    path = save_edited(edited, out)
    print(f"applied {args.plan} ({len(plan)} edit(s)) to {args.checkpoint}: {record.num_changed:,} weights changed "
          f"in {len(record.changed)} tensor(s), {len(record.interventions)} intervention(s)")
    for h in record.interventions:
        print(f"  intervention on {h.name}: {h.note} (not a weight: re-install with EditPlan.install_interventions)")
    print(f"wrote {path}")
    if save_plan is not None:
        print(f"wrote {record.applied_plan.save(save_plan)} (the applied plan)")
    return 0


def _cmd_edit_diff(args: argparse.Namespace) -> int:
    import json

    from edits.diff import weight_diff

    if args.top < 0:
        raise ValueError(f"--top must be ≥ 0, got {args.top}")
    plan, model, edited, record = _applied(args)
    diffs = weight_diff(model, edited, top=args.top)
    if args.json:
        print(json.dumps({
            "plan": record.plan, "num_changed": record.num_changed, "tensors": [d.to_dict() for d in diffs],
            "interventions": [{"hook_point": h.name, "note": h.note} for h in record.interventions],
        }, indent=2))
        return 0
    print(f"plan {plan.name!r} on {args.checkpoint}: {len(plan)} edit(s); {len(diffs)} tensor(s) differ, "
          f"{sum(d.changed for d in diffs):,} entries changed; {len(record.interventions)} intervention(s)")
    for d in diffs:
        shape = "×".join(map(str, d.shape_after or d.shape_before or ()))
        if d.status in ("added", "removed"):
            print(f"{d.key}  ({shape})  {d.status} tensor, {d.numel:,} entries ({d.new_nonzero:,} non-zero)")
            continue
        print(f"{d.key}  ({shape})  changed {d.changed:,} / {d.numel:,}  max |Δ| {d.max_abs:.6g}")
        for dim, (a, b) in d.added.items():
            print(f"    added channels: dim {dim}: {a} → {b} (+{b - a})")
        if d.new_entries:
            print(f"    {d.new_entries:,} new entries, {d.new_nonzero:,} non-zero")
        for dim, (a, b) in d.removed.items():
            print(f"    removed channels: dim {dim}: {a} → {b}")
        for idx, before, after in d.top:
            print(f"    [{', '.join(map(str, idx))}]  {before:.6g} → {after:.6g}  (Δ {after - before:+.6g})")
    for h in record.interventions:
        print(f"intervention on {h.name}: {h.note}")
    return 0

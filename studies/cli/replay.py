"""``circuits replay``: re-run a study from the ``config.yaml`` of its report folder and say
whether the numbers are the same as the folder's ``metrics.json``."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path

from studies.cli.common import add_device_arg, add_out_args, add_quiet_arg

#: ``config.yaml`` ``study`` → (module, config class, run function)
STUDIES = {
    "curve-ablation": ("studies.curve_ablation", "CurveAblationConfig", "run_curve_ablation"),
    "echo": ("studies.echo", "EchoConfig", "run_echo"),
    "combing": ("studies.combing", "CombingConfig", "run_combing"),
    "family-ablation": ("studies.family_ablation", "FamilyAblationConfig", "run_family_ablation"),
    "sweep": ("studies.sweep_study", "SweepConfig", "run_sweep_study"),
}

#: metrics keys that describe the run, not its result (ignored when comparing)
VOLATILE = ("wall_time", "seconds", "per_s", "provenance", "loaded", "computed", "tasks", "executor", "sweep")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay", help="re-run a study from its report's config.yaml and compare the numbers",
        description="Re-run the study recorded in a report folder's config.yaml (written by every `circuits "
        "study ...`) with the same settings and seed, write a new report folder --out, and compare its "
        "metrics.json with the one beside config.yaml (run times and provenance ignored). Exit 0 when the "
        "numbers are the same (or there is nothing to compare), 1 when they differ.",
    )
    p.add_argument("config", metavar="CONFIG", help="DIR/config.yaml of a report folder (or the folder)")
    add_out_args(p, "new report folder (must be empty or absent unless --overwrite)")
    add_device_arg(p)
    add_quiet_arg(p)
    p.set_defaults(func=_cmd_replay)


def load_study_config(path: str | Path):
    """``(study name, config dataclass, run function)`` from a report's ``config.yaml``.

    Raises:
        FileNotFoundError: no such file. ValueError: not a study config, unknown study or field.
    """
    import dataclasses

    from circuits.documents import load_yaml, read_text

    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    doc = load_yaml(read_text(path, "study config"), f"study config {path}")
    if not isinstance(doc, dict) or "study" not in doc:
        raise ValueError(f"{path} is not a study config (no `study:` key; written by `circuits study ...` since "
                         "config_format 1)")
    study = doc["study"]
    if study not in STUDIES:
        raise ValueError(f"{path}: unknown study {study!r}; valid: {', '.join(STUDIES)}")
    mod, cls_name, fn = STUDIES[study]
    module = importlib.import_module(mod)
    cls = getattr(module, cls_name)
    names = {f.name for f in dataclasses.fields(cls)}
    fields = {k: v for k, v in doc.items() if k not in ("study", "config_format", "extra", "provenance")}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {unknown} for {study}; valid: {sorted(names)}")
    for f in dataclasses.fields(cls):  # the types the study expects (a list where a path goes fails here)
        v = fields.get(f.name)
        want = {"str | None": (str, type(None)), "str": (str,), "int": (int,), "int | None": (int, type(None)),
                "float": (int, float), "bool": (bool,)}.get(str(f.type))
        if f.name in fields and want and (not isinstance(v, want) or (isinstance(v, bool) and bool not in want)):
            raise ValueError(f"{path}: setting {f.name} must be {f.type}; got {v!r}")
    return study, cls(**fields), getattr(module, fn)


def _flat(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if any(s in str(k) for s in VOLATILE):
                continue
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flat(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): obj}


def compare_metrics(a: dict, b: dict, rel: float = 1e-9) -> list[str]:
    """Keys whose values differ between two ``metrics.json`` (numbers within ``rel``; run
    times, provenance and cache counters ignored)."""
    fa, fb = _flat(a), _flat(b)
    diff = []
    for k in sorted(set(fa) | set(fb)):
        x, y = fa.get(k), fb.get(k)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if not (math.isclose(x, y, rel_tol=rel, abs_tol=1e-12) or (math.isnan(x) and math.isnan(y))):
                diff.append(k)
        elif x != y:
            diff.append(k)
    return diff


def _cmd_replay(args: argparse.Namespace) -> int:
    import dataclasses

    from studies.cli.common import device

    study, cfg, run = load_study_config(args.config)
    if args.device is not None:
        cfg = dataclasses.replace(cfg, device=str(device(args)))
    src = Path(args.config)
    src = src if src.is_dir() else src.parent
    kw = {"log": (lambda m: None) if args.quiet else None} if study == "sweep" else {}
    m = run(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet, **kw)
    old = src / "metrics.json"
    if not old.is_file():
        print(f"replayed {study} into {args.out}; no metrics.json in {src} to compare with")
        return 0
    before = json.loads(old.read_text())
    diff = compare_metrics(before, json.loads(json.dumps(m, default=str)))
    w0 = (before.get("provenance") or {}).get("weights", {}).get("sha256")
    w1 = (m.get("provenance") or {}).get("weights", {}).get("sha256")
    if w0 and w1 and w0 != w1:
        print(f"circuits: warning: weights differ from the original run (sha256 {w0[:12]}… vs {w1[:12]}…)",
              file=sys.stderr)
    if diff:
        print(f"replayed {study} into {args.out}: numbers DIFFER from {old} in {len(diff)} key(s): "
              f"{', '.join(diff[:12])}{' …' if len(diff) > 12 else ''}")
        return 1
    print(f"replayed {study} into {args.out}: same numbers as {old}")
    return 0

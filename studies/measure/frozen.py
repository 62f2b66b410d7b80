"""The frozen family catalogs (``circuits/data/families_<checkpoint>.yaml``): writing
discoveries into them and checking them against fresh discoveries, and the command that
does both for every frozen family of a checkpoint::

    python -m studies.measure.frozen --model inceptionv1_caffe --images $CIRCUITS_DATA/imagenet-sample-1000 --freeze
    python -m studies.measure.frozen --model inceptionv1_caffe --images $CIRCUITS_DATA/imagenet-sample-1000 --check

(the packaged catalogs record that command).
Discovery itself (criteria, sweeps) is :mod:`studies.measure.discovery`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from studies.measure.discovery import (
    FAMILY_ALIASES,
    ORIENTATION_TOLERANCE,
    REFERENCE_FOLDER,
    Discovery,
    discover_families,
    regenerate_command,
)


def _entry(discovery: Discovery, command: str) -> dict:
    fam = discovery.family
    t = discovery.table.set_index("index").loc[list(fam.units)]
    entry = {
        "name": fam.name, "layer": fam.layer, "kind": fam.kind,
        **({"aliases": FAMILY_ALIASES[fam.layer, fam.name]} if (fam.layer, fam.name) in FAMILY_ALIASES else {}),
        "units": [int(u) for u in fam.units],
        "orientations": [float(o) for o in fam.orientations or ()],
    }
    if fam.layer.startswith("mixed"):
        entry["branches"] = [str(b) for b in t["branch"]]
    if fam.kind == "line":
        entry["line_sigma"] = [round(float(v), 2) for v in t["line_sigma"]]
        entry["selectivity"] = [round(float(v), 3) for v in t["selectivity"]]
    else:
        entry["curve_sigma"] = [round(float(v), 2) for v in t["curve_sigma"]]
        entry["selectivity"] = [round(float(v), 3) for v in t["selectivity"]]
        if "echo_ratio" in t:
            entry["echo_ratio"] = [round(float(v), 2) for v in t["echo_ratio"]]
    entry.update(source=fam.source, criteria=discovery.criteria, regenerate=command)
    return entry


def _write(path: Path, data: dict) -> None:
    import yaml

    data["families"].sort(key=lambda f: (f["layer"], f["name"]))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, width=120, default_flow_style=None, allow_unicode=True))
    tmp.replace(path)


def _read(path: Path, checkpoint: str) -> dict:
    from circuits.documents import load_yaml, read_text

    data = load_yaml(read_text(path, "catalog"), str(path)) if path.is_file() else None
    data = data or {"checkpoint": checkpoint, "families": []}
    data.setdefault("families", [])
    return data


def freeze_family(discovery: Discovery, checkpoint: str, command: str, path: str | Path | None = None) -> Path:
    """Write (or replace) a discovered family in the checkpoint's catalog YAML.

    The entry records the units, preferred orientations, criteria, per-unit measurements
    and the ``command`` that regenerates it. Other families and file-level fields are kept.
    """
    from circuits.catalog import catalog_path

    path = Path(path) if path else catalog_path(checkpoint)
    data = _read(path, checkpoint)
    fam = discovery.family
    data["families"] = [f for f in data["families"] if (f["layer"], f["name"]) != (fam.layer, fam.name)]
    data["families"].append(_entry(discovery, command))
    _write(path, data)
    return path


_HEADER = {
    "note": "Families found by the project's own discovery from synthetic stimuli (studies.measure.discovery; "
            "criteria and reasons in its module docstring and in each family's `criteria`). Not Lucid's "
            "indices: the BVLC checkpoint has the same kinds of units at other indices.",
    "orientation_convention": "degrees counter-clockwise from +x with +y up (studies.measure.stimuli). Curves: the "
                              "arc opens towards θ, [0, 360). Lines: θ is the direction of the line's normal, "
                              "[0, 180) (180°-periodic).",
}


def write_catalog(discoveries: dict[str, Discovery], checkpoint: str, path: str | Path | None = None) -> Path:
    """Freeze several discoveries into a catalog YAML at once (the ``--freeze`` entry point):
    file-level fields record the regenerate/check commands; families not in ``discoveries``
    are kept."""
    from circuits.catalog import catalog_path

    path = Path(path) if path else catalog_path(checkpoint)
    data = _read(path, checkpoint)
    fams = data.pop("families")
    header = {"checkpoint": checkpoint, **_HEADER, "regenerate": regenerate_command(checkpoint),
              "check": regenerate_command(checkpoint, check=True)}
    data = {**header, **{k: v for k, v in data.items() if k not in header}}
    keys = {(d.family.layer, d.family.name) for d in discoveries.values()}
    data["families"] = [f for f in fams if (f["layer"], f["name"]) not in keys]
    data["families"] += [_entry(d, regenerate_command(checkpoint)) for d in discoveries.values()]
    _write(path, data)
    return path


def _circ_diff(a: float, b: float, period: float) -> float:
    return abs((a - b + period / 2) % period - period / 2)


def compare_with_catalog(discoveries: dict[str, Discovery], cat, tolerance: float = ORIENTATION_TOLERANCE) -> list[str]:
    """Differences between fresh discoveries and a :class:`~circuits.catalog.FamilyCatalog`.

    Units must be the same sets and each unit's preferred orientation must agree within
    ``tolerance`` degrees (modulo 180° for lines, 360° otherwise). Returns one line per
    difference (empty: everything matches).
    """
    problems = []
    for key, d in discoveries.items():
        if key not in cat:
            problems.append(f"{key}: not in the frozen catalog ({', '.join(cat) or 'empty'})")
            continue
        frozen, fresh = cat[key], d.family
        if set(frozen.units) != set(fresh.units):
            gone = sorted(set(frozen.units) - set(fresh.units))
            new = sorted(set(fresh.units) - set(frozen.units))
            problems.append(f"{key}: units differ (frozen only: {gone}; discovered only: {new})")
            continue
        period = 180.0 if fresh.kind == "line" else 360.0
        fo = dict(zip(frozen.units, frozen.orientations or ()))
        for u, o in zip(fresh.units, fresh.orientations or ()):
            if u not in fo or _circ_diff(fo[u], o, period) > tolerance:
                problems.append(f"{key}: {fresh.layer}:{u} preferred orientation {o:.1f}° vs frozen {fo.get(u)}°")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m studies.measure.frozen``: re-discover every frozen family of a checkpoint and
    print them; ``--freeze`` rewrites the packaged catalog, ``--check`` exits 1 when the
    catalog no longer matches."""
    p = argparse.ArgumentParser(
        prog="python -m studies.measure.frozen",
        description="Re-discover the frozen families of a checkpoint (studies.measure.discovery.FROZEN_FAMILIES) with the "
                    "per-layer default criteria; print them, rewrite the catalog (--freeze) or compare (--check).",
    )
    p.add_argument("--model", default="inceptionv1_caffe", help="checkpoint (default inceptionv1_caffe)")
    p.add_argument("--images", required=True, help=f"reference image folder (the catalog uses {REFERENCE_FOLDER})")
    p.add_argument("--weights", default=None, help="weights file (default: the user cache)")
    p.add_argument("--catalog", default=None, help="catalog YAML to write or check (default: the packaged one)")
    p.add_argument("--device", default="cpu")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--freeze", action="store_true", help="rewrite the catalog with the fresh discoveries")
    g.add_argument("--check", action="store_true", help="compare with the catalog; exit 1 on a mismatch")
    args = p.parse_args(argv)

    from circuits import load_model
    from circuits.catalog import catalog_path, load_catalog

    try:
        model = load_model(args.model, weights=args.weights, device=args.device)
        found = discover_families(model, args.images, progress=sys.stderr.isatty())
    except (KeyError, FileNotFoundError, ValueError) as e:
        print(f"{p.prog}: error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    for key, d in found.items():
        fam = d.family
        print(f"{key}: {len(fam)} units")
        print("  " + ", ".join(f"{u} ({o:.1f}°)" for u, o in zip(fam.units, fam.orientations or ())))
    path = Path(args.catalog) if args.catalog else catalog_path(model.spec)
    if args.freeze:
        print(f"wrote {write_catalog(found, model.spec.name, path)}")
    elif args.check:
        problems = compare_with_catalog(found, load_catalog(model.spec, path))
        for line in problems:
            print(f"MISMATCH {line}")
        print(f"{path}: " + ("does not match" if problems else "matches"))
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reference measurements of the curve families of a checkpoint (frozen as a CSV).

Regenerate (BVLC weights, from the project root)::

    python -m studies.measure.reference --model inceptionv1_caffe --images $CIRCUITS_DATA/imagenet-sample-1000 --out tests/reference_bvlc.csv

Verify (recompute and compare; exit 1 on a mismatch)::

    python -m studies.measure.reference --model inceptionv1_caffe --images $CIRCUITS_DATA/imagenet-sample-1000 --check tests/reference_bvlc.csv

Definition (deterministic; ``tests/test_reference.py`` recomputes it):

* **Units**: the families ``conv2d2/curves``, ``mixed3a/curves``, ``mixed3b/curves`` and
  ``mixed4a/curves`` of the packaged catalog of the model (:func:`circuits.catalog.catalog`).
* **Sweep** (:func:`studies.measure.tuning.joint_sweep`, fast cone path, pre-ReLU, at the
  receptive-field centre): dark 2-px arcs at orientations 0, 5, …, 355° (:data:`ORIENTATION_STEP`)
  × the layer's radii (:func:`studies.measure.discovery.default_radii`: the default radii
  8 … 200 px scaled by receptive field / 91 px), plus straight lines at 0, 5, …, 175°.
* ``peak``, ``preferred_orientation`` (vector-sum angle, deg), ``echo_ratio``,
  ``tuning_width`` (deg): :func:`studies.measure.tuning.tuning_metrics` of the radial tuning curve
  (:func:`studies.measure.tuning.radial_tuning`: positive responses averaged over radius).
* ``curve_sigma``, ``line_sigma``, ``curve_line_ratio_sigma``: :func:`studies.measure.tuning.curve_line_preference`
  with the unit's pre-ReLU statistics over :data:`N_IMAGES` evenly spaced images of the
  reference folder, all spatial positions (:func:`studies.measure.statistics.reference_statistics_by_layer`);
  ``curve_sigma`` = (best curve − mean) / std, ``line_sigma`` likewise for the best line,
  ``curve_line_ratio_sigma`` = the tool's ``ratio_sigma`` = (best curve − mean) / (best line − mean)
  = curve_sigma / line_sigma, left empty (NaN) when the best line does not rise above the
  dataset mean (``line_sigma`` ≤ 0: the tool's 1e-9 floor would give ~1e11).
* ``combing_index`` (side ``both``), ``combing_inward``, ``combing_outward``:
  :func:`studies.measure.tuning.combing_index` with its defaults (teeth spacing 8 px, length 8 px,
  2-px stroke) at each unit's preferred orientation and best radius
  (:func:`studies.measure.tuning.best_stimulus` among the layer's radii; ``best_radius`` column).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from circuits.catalog import catalog
from circuits.spec import MIXED_LAYERS
from studies.measure import tuning as T
from studies.measure.discovery import default_radii
from studies.measure.images import load_reference_set
from studies.measure.statistics import reference_statistics_by_layer

FAMILIES = ("conv2d2/curves", "mixed3a/curves", "mixed3b/curves", "mixed4a/curves")
ORIENTATION_STEP = 5.0
STROKE_WIDTH = 2.0
N_IMAGES = 100
COMBING = {"spacing_px": 8.0, "length_px": 8.0}

COLUMNS = ["layer", "unit", "index", "branch", "preferred_orientation", "peak", "echo_ratio", "tuning_width",
           "curve_sigma", "line_sigma", "curve_line_ratio_sigma", "best_curve_orientation", "best_radius",
           "combing_index", "combing_inward", "combing_outward"]
KEYS = ["layer", "unit", "index", "branch"]


def regenerate_command(checkpoint: str, out: str = "tests/reference_bvlc.csv", check: bool = False) -> str:
    return (f"python -m studies.measure.reference --model {checkpoint} --images $CIRCUITS_DATA/imagenet-sample-1000 "
            + (f"--check {out}" if check else f"--out {out}"))


def reference_measurements(model, images_dir, families=FAMILIES, orientation_step: float = ORIENTATION_STEP,
                           n_images: int = N_IMAGES) -> pd.DataFrame:
    """One row per unit of ``families`` (see the module docstring for every column)."""
    cat = catalog(model)
    fams = [cat[f] for f in families]
    images = load_reference_set(images_dir, n_images)
    stats = reference_statistics_by_layer(model, [f.layer for f in fams], images)
    parts = []
    for fam in fams:
        layer = fam.layer
        units = list(fam)
        radii = default_radii(model.spec, layer)
        sw = T.joint_sweep(model, units, orientation_step, radii, STROKE_WIDTH, lines=True, fast=True)
        met = T.tuning_metrics(T.radial_tuning(sw)).set_index("unit")
        clp = T.curve_line_preference(sw, stats).set_index("unit")
        best = T.best_stimulus(model, units, tuning=sw, radii=radii, stroke_width=STROKE_WIDTH, fast=True)
        comb = T.combing_index(model, units, best=best, stroke_width=STROKE_WIDTH, fast=True, **COMBING)
        comb = comb.pivot(index="unit", columns="side", values="combing_index")
        bidx = best.set_index("unit")
        for u in units:
            n = str(u)
            parts.append(dict(
                layer=layer, unit=n, index=int(u.index),
                branch=model.spec.branch_of(layer, u.index) if layer in MIXED_LAYERS else "",
                preferred_orientation=met.loc[n, "preferred_orientation"], peak=met.loc[n, "peak"],
                echo_ratio=met.loc[n, "echo_ratio"], tuning_width=met.loc[n, "tuning_width"],
                curve_sigma=clp.loc[n, "curve_sigma"], line_sigma=clp.loc[n, "line_sigma"],
                curve_line_ratio_sigma=(clp.loc[n, "ratio_sigma"] if clp.loc[n, "line_sigma"] > 0
                                        else float("nan")),
                best_curve_orientation=clp.loc[n, "best_curve_orientation"],
                best_radius=bidx.loc[n, "best_radius"],
                combing_index=comb.loc[n, "both"], combing_inward=comb.loc[n, "inward"],
                combing_outward=comb.loc[n, "outward"]))
    df = pd.DataFrame(parts, columns=COLUMNS)
    for c in COLUMNS[4:]:
        df[c] = df[c].astype(float)
    return df


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per-layer summary: unit count, median echo ratio / combing index / curve σ, max curve σ."""
    g = df.groupby("layer", sort=False)
    return pd.DataFrame({
        "units": g.size(),
        "echo_median": g["echo_ratio"].median(), "echo_min": g["echo_ratio"].min(),
        "echo_max": g["echo_ratio"].max(),
        "combing_median": g["combing_index"].median(),
        "curve_sigma_median": g["curve_sigma"].median(), "curve_sigma_max": g["curve_sigma"].max(),
        "best_unit": g.apply(lambda d: d.loc[d["curve_sigma"].idxmax(), "unit"], include_groups=False),
    })


def read_reference(path) -> pd.DataFrame:
    df = pd.read_csv(path, comment="#", keep_default_na=False, na_values=[""])
    df["branch"] = df["branch"].fillna("").astype(str)
    return df


def write_reference(df: pd.DataFrame, path, checkpoint: str) -> None:
    path = Path(path)
    with path.open("w") as f:
        f.write(f"# regenerate: {regenerate_command(checkpoint, str(path))}\n")
        f.write(f"# curve families {', '.join(FAMILIES)}; orientation step {ORIENTATION_STEP:g} deg; "
                f"radii = studies.measure.discovery.default_radii; sigma over {N_IMAGES} reference images; "
                f"combing: spacing {COMBING['spacing_px']:g} px, length {COMBING['length_px']:g} px "
                "(combing_index = side both)\n")
        df.to_csv(f, index=False, float_format="%.6g")


def compare(df: pd.DataFrame, ref: pd.DataFrame, rtol: float = 1e-3, atol: float = 1e-3) -> list[str]:
    """Differences between a recomputed table and a reference (empty: they agree)."""
    problems = []
    a = df[KEYS].astype(str).values.tolist()
    b = ref[KEYS].astype(str).values.tolist()
    if a != b:
        return [f"units differ: {sorted(set(map(tuple, a)) ^ set(map(tuple, b)))[:10]}"]
    for c in COLUMNS[4:]:
        if c not in ref.columns:
            problems.append(f"column {c} missing in reference")
            continue
        x, y = df[c].to_numpy(float), ref[c].to_numpy(float)
        bad = ~np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
        if c.endswith("orientation"):  # circular: 359.9995 vs 0.0003 agree
            d = np.abs((x - y + 180.0) % 360.0 - 180.0)
            bad &= ~(d <= atol + rtol * 360.0)
        for i in np.flatnonzero(bad):
            problems.append(f"{df['unit'].iloc[i]} {c}: {x[i]!r} vs reference {y[i]!r}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="inceptionv1_caffe")
    ap.add_argument("--images", required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--out")
    g.add_argument("--check")
    args = ap.parse_args(argv)
    from circuits import load_model

    model = load_model(args.model)
    t0 = time.perf_counter()
    df = reference_measurements(model, args.images)
    print(f"measured {len(df)} units in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_rows", 200):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print()
        print(summary(df).to_string(float_format=lambda v: f"{v:.3f}"))
    if args.out:
        write_reference(df, args.out, args.model)
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    problems = compare(df, read_reference(args.check))
    for p in problems:
        print(p, file=sys.stderr)
    print("OK" if not problems else f"{len(problems)} mismatch(es)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

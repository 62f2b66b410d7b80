"""A first script with the Python API; writes only under ``runs/examples/`` (run from the
repository root after ``make setup``):

    CIRCUITS_DATA=../shared/data .venv/bin/python examples/quickstart.py

It loads the verified BVLC weights, zero-ablates the mixed3b curve family on a copy of the
model, measures radial tuning before/after on synthetic curves, applies the Curve Circuits
edit (linearise the 5x5 branch of the curve units, drop the negative expanded weights from
mixed3a curves), saves that plan, and writes a figure, the tables and report.html.
"""

from __future__ import annotations

import os
from pathlib import Path

from circuits import load_model
from circuits.catalog import catalog
from edits import Ablate, EditPlan, Linearize, PrunePathway, in_branch
from studies.measure import stimuli, tuning
from studies.measure.images import load_image
from studies.report.html import write_report
from studies.report.plots import plot_radial

OUT = Path("runs/examples")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model = load_model("inceptionv1_caffe")  # verified weights, eval mode
    fam = catalog(model)
    curves = fam["mixed3b/curves"]

    data = os.environ.get("CIRCUITS_DATA")
    if data:  # one image through the network, stopping after mixed3b
        img = load_image(Path(data) / "imagenet-sample-1000" / "n01440764_tench.JPEG")[None]  # (1, 3, 224, 224)
        acts = model.run(img, ["mixed3b_pre_relu"])
        print("mixed3b pre-ReLU activations:", tuple(acts["mixed3b_pre_relu"].shape))

    edited, record = EditPlan([Ablate(curves)]).apply(model)  # `model` is unchanged
    stim = stimuli.curves(orientations=range(0, 360, 10), radii=[20, 40, 80])
    df = tuning.compare({"before": model, "after": edited}, curves, stim)  # tidy DataFrame
    radial = tuning.radial_tuning(df)
    radial.to_csv(OUT / "radial.csv", index=False)
    plot_radial(radial, OUT / "radial_tuning.png", variants=["before", "after"],
                title="mixed3b curves before/after zero ablation")

    units5 = in_branch(curves, "mixed3b_5x5", model.spec)
    plan = EditPlan([Linearize("mixed3b_5x5", units5),
                     PrunePathway(src=fam["mixed3a/curves"], dst=units5, sign="negative")], name="no-negative")
    plan.apply(model)
    plan.save(OUT / "no-negative.yaml")
    (OUT / "summary.md").write_text(f"# Quick start\n\nAblated {len(curves)} mixed3b curve units "
                                    f"({record.num_changed} weights changed). Plan saved: `no-negative.yaml`.\n")
    print("wrote", write_report(OUT, "circuits quick start", tables={"Radial tuning": "radial.csv"}))


if __name__ == "__main__":
    main()

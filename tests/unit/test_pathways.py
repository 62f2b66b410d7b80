"""Structural edits on the real BVLC weights and real images: PrunePathway, Scale, Linearize,
SetWeights/ReplaceUnits, structural undo, save/load of widened models.

Exactness is checked against references computed by hand from the *unedited* block's own
modules; "bitwise" means ``torch.equal``.
"""

from __future__ import annotations

import pytest
import torch

from edits import (
    EditError,
    EditPlan,
    Linearize,
    PrunePathway,
    ReplaceUnits,
    Scale,
    SetWeights,
)

#: mixed3b units of the 5x5 branch (BVLC offsets: 5x5 is [320, 416)); curve units there.
DST = [330, 368, 386]
DST_REFS = [f"mixed3b:{d}" for d in DST]


def test_plan_serialisation_round_trip(tmp_path):
    plan = EditPlan([
        PrunePathway(src="3a:1,3a:2", dst="mixed3b:330", sign="negative", via="3b_5x5"),
        Scale(src=["mixed3a:7"], dst=["mixed3b:5"], factor=-0.25),
        Linearize("mixed3b_5x5", DST_REFS),
        SetWeights("mixed3b:5", [[[0.5]]] * 256, bias=1.0),
        ReplaceUnits(["mixed3b:6", "mixed3b:7"], torch.zeros(2, 256, 1, 1), biases=[0.0, 2.0]),
    ], name="rt")
    d = plan.to_dict()
    assert d["edits"][0] == {"type": "PrunePathway", "src": ["mixed3a:1", "mixed3a:2"], "dst": ["mixed3b:330"],
                             "sign": "negative", "via": "mixed3b_5x5"}
    assert EditPlan.from_json(plan.to_json()) == plan
    assert EditPlan.load(plan.save(tmp_path / "p.yaml")) == plan
    assert EditPlan.load(plan.save(tmp_path / "p.json")) == plan
    with pytest.raises(EditError, match="field 'sign'"):
        PrunePathway(src="3a:1", dst="3b:1", sign="neg")
    with pytest.raises(EditError, match="field 'via'"):
        PrunePathway(src="3a:1", dst="3b:1", via="7x7")
    with pytest.raises(EditError, match="field 'factor'"):
        Scale(src="3a:1", dst="3b:1", factor=float("nan"))

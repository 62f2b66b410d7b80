"""An edited model written by ``edits.save_edited`` (or ``circuits edit apply``) loads back through
``circuits.load_model(weights=...)`` — the path every ``--weights`` option uses — with its
widened structure and linear paths, giving bitwise the same outputs."""

from __future__ import annotations

import pytest
import torch

from circuits import WeightsError, load_model
from circuits.catalog import catalog
from edits import EditPlan, Linearize, PrunePathway, in_branch, save_edited


def test_edited_file_loads_through_circuits_load_model(caffe_model, tmp_path):
    fam = catalog(caffe_model)
    units = in_branch(fam["mixed3b/curves"], "mixed3b_5x5", caffe_model.spec)
    plan = EditPlan([Linearize("mixed3b_5x5", units),
                     PrunePathway(src=fam["mixed3a/curves"], dst=units, sign="negative"),
                     PrunePathway(src="mixed3a:0,mixed3a:1", dst="mixed3b:9")])
    edited, _ = plan.apply(caffe_model)
    path = save_edited(edited, tmp_path / "edited.safetensors")
    again = load_model("inceptionv1_caffe", weights=path)
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    assert torch.equal(edited(x), again(x))
    assert again.edit_plan == edited.edit_plan
    with pytest.raises(WeightsError, match="inceptionv1_caffe"):
        load_model("inceptionv1", weights=path)

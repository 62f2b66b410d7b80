"""``studies.classify.shared_prefix`` on variants that differ only by hooks (issue 14: removing
the "no hooks installed" condition passed every test). A resample ablation changes no weight —
it installs an activation hook — so the weights alone would call the whole network shared."""

from __future__ import annotations

from edits import Ablate, EditPlan
from studies.measure.classify import shared_prefix


def test_a_hook_ends_the_shared_prefix_before_its_stage(caffe_model):
    for unit, prefix in [("3a:5", "maxpool1"), ("3b:1", "mixed3a"), ("4c:3", "mixed4b")]:
        edited, record = EditPlan([Ablate(unit, mode="resample", seed=0)]).apply(caffe_model)
        assert record.num_changed == 0 and len(record.interventions) == 1  # weights identical, one hook
        assert shared_prefix({"before": caffe_model, "after": edited}) == prefix, unit
        assert shared_prefix({"after": edited, "before": caffe_model}) == prefix, unit  # order does not matter
    # once the hook is removed the copy is identical again: everything up to the classifier is shared
    assert shared_prefix({"before": caffe_model, "after": record.undo(edited)}) == "mixed5b"
    assert shared_prefix({"a": caffe_model}) is None  # a single model shares nothing

"""edits — what we change: serialisable edit plans compiled to weight surgery or activation interventions.

>>> from edits import Ablate, EditPlan
>>> edited, record = EditPlan([Ablate(["3b:379", "3b:385"])]).apply(model)   # model unchanged
>>> edited, record = EditPlan([Ablate("mixed3b/curves", mode="mean")]).apply(model, reference=images)
>>> with intervene(model, {"mixed3b": zero_units([379])}):                  # hooks removed on exit
...     logits = model(images)

Modules: :mod:`edits.base` (Edit, registry, compiled ops, errors), one module per edit kind
(:mod:`edits.ablate`, :mod:`edits.pathways`, :mod:`edits.linearize`, :mod:`edits.unit_weights`),
:mod:`edits.plan` (EditPlan, EditRecord), :mod:`edits.interventions`, :mod:`edits.diff` and
:mod:`edits.io` (edited-model files).
"""

from .ablate import ABLATE_MODES, Ablate, unit_means
from .base import (
    EDIT_TYPES,
    Edit,
    EditError,
    EditWarning,
    SliceBackup,
    StructOp,
    WeightOp,
    producing_conv,
    register_edit,
)
from .blocks import input_layer
from .diff import TensorDiff, weight_diff
from .interventions import (
    InstalledHook,
    derangement,
    intervene,
    mean_units,
    patch,
    resample_units,
    zero_units,
)
from .io import SAVE_FORMAT, load_edited, load_model, save_edited, save_model
from .linearize import Linearize, linear_kernel
from .pathways import SIGNS, PrunePathway, Scale, in_branch
from .plan import SCHEMA_VERSION, EditPlan, EditRecord
from .unit_weights import READS, ReplaceUnits, SetWeights

__all__ = [
    "ABLATE_MODES", "Ablate", "EDIT_TYPES", "Edit", "EditError", "EditPlan", "EditRecord", "EditWarning",
    "InstalledHook", "SCHEMA_VERSION", "SliceBackup", "WeightOp", "derangement", "intervene", "mean_units", "patch",
    "producing_conv", "register_edit", "resample_units", "unit_means", "zero_units", "TensorDiff", "weight_diff",
    # structural edits
    "Linearize", "PrunePathway", "ReplaceUnits", "SIGNS", "Scale", "SetWeights", "StructOp", "in_branch",
    # edited-model files (load_model: deprecated alias of load_edited)
    "load_edited", "load_model", "save_edited", "save_model",
    # also importable (formerly from edits.pathways)
    "READS", "SAVE_FORMAT", "input_layer", "linear_kernel",
]

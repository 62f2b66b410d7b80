"""edits — what we change: serialisable edit plans compiled to weight surgery or activation interventions.

>>> from edits import Ablate, EditPlan
>>> edited, record = EditPlan([Ablate(["3b:379", "3b:385"])]).apply(model)   # model unchanged
>>> edited, record = EditPlan([Ablate("mixed3b/curves", mode="mean")]).apply(model, reference=images)
>>> with intervene(model, {"mixed3b": zero_units([379])}):                  # hooks removed on exit
...     logits = model(images)
"""

from .diff import TensorDiff, weight_diff
from .handwritten import HandwrittenFamily  # hand-written families (issue 19)
from .interventions import (
    InstalledHook,
    derangement,
    intervene,
    mean_units,
    patch,
    resample_units,
    zero_units,
)
from .pathways import (  # structural edits (edit-1)
    SIGNS,
    Linearize,
    PrunePathway,
    ReplaceUnits,
    Scale,
    SetWeights,
    in_branch,
    load_model,
    save_model,
)
from .plan import (
    ABLATE_MODES,
    EDIT_TYPES,
    SCHEMA_VERSION,
    Ablate,
    Edit,
    EditError,
    EditPlan,
    EditRecord,
    EditWarning,
    SliceBackup,
    StructOp,
    WeightOp,
    producing_conv,
    register_edit,
    unit_means,
)

__all__ = [
    "ABLATE_MODES", "Ablate", "EDIT_TYPES", "Edit", "EditError", "EditPlan", "EditRecord", "EditWarning",
    "InstalledHook", "SCHEMA_VERSION", "SliceBackup", "WeightOp", "derangement", "intervene", "mean_units", "patch",
    "producing_conv", "register_edit", "resample_units", "unit_means", "zero_units", "TensorDiff", "weight_diff",
    # structural edits (edits.pathways)
    "Linearize", "PrunePathway", "ReplaceUnits", "SIGNS", "Scale", "SetWeights", "StructOp", "in_branch", "load_model",
    "save_model",
    "HandwrittenFamily",
]

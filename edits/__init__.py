"""edits — what we change: serialisable edit plans compiled to weight surgery on a copy.

>>> from edits import Ablate, EditPlan
>>> edited, record = EditPlan([Ablate(["3b:379", "3b:385"])]).apply(model)   # model unchanged
"""

from .plan import (
    ABLATE_MODES,
    EDIT_TYPES,
    SCHEMA_VERSION,
    Ablate,
    Edit,
    EditError,
    EditPlan,
    EditRecord,
    SliceBackup,
    WeightOp,
    producing_conv,
    register_edit,
)

__all__ = [
    "ABLATE_MODES", "Ablate", "EDIT_TYPES", "Edit", "EditError", "EditPlan", "EditRecord", "SCHEMA_VERSION",
    "SliceBackup", "WeightOp", "producing_conv", "register_edit",
]

"""circuits — what the network is: InceptionV1 models, checkpoints, weights, units.

>>> from circuits import load_model, Unit
>>> model = load_model("inceptionv1_caffe")
>>> acts = model.run(images, ["mixed3b_pre_relu"])   # stops after mixed3b
>>> model.provenance.weights_source                   # where the weights came from

Modules: ``spec`` / ``names`` (checkpoint facts, the naming table), ``layers`` / ``model``
(the network), ``cone`` (receptive-field cone forward pass), ``weights`` / ``loading`` /
``edited_format`` (files), ``provenance``, ``units`` / ``catalog`` (the unit/family grammar and
families), ``geometry``, ``expanded``, ``graph``.
"""

from . import catalog  # registers the packaged catalogs as the family source of circuits.units
from .loading import load_model, resolve_weights
from .model import HookPoint, InceptionV1
from .names import hook_name
from .provenance import Provenance
from .spec import LAYERS, MIXED_LAYERS, ModelSpec, get_spec
from .units import Family, FamilyKey, Unit, canonical_layer, parse_refs, resolve_targets, resolve_units
from .weights import WeightsError

__all__ = [
    "catalog", "Family", "FamilyKey", "HookPoint", "InceptionV1", "LAYERS", "MIXED_LAYERS", "ModelSpec", "Provenance", "Unit",
    "WeightsError", "canonical_layer", "get_spec", "hook_name", "load_model", "parse_refs", "resolve_targets",
    "resolve_units", "resolve_weights",
]
__version__ = "0.1.0"

"""circuits — what the network is: InceptionV1 models, checkpoints, weights, units.

>>> from circuits import load_model, Unit
>>> model = load_model("inceptionv1_caffe")
>>> acts = model.run(images, ["mixed3b_pre_relu"])   # stops after mixed3b
"""

from .loading import load_model, resolve_weights
from .model import HookPoint, InceptionV1
from .spec import LAYERS, MIXED_LAYERS, ModelSpec, get_spec
from .units import Family, Unit, canonical_layer, resolve_units
from .weights import WeightsError

__all__ = [
    "Family", "HookPoint", "InceptionV1", "LAYERS", "MIXED_LAYERS", "ModelSpec", "Unit", "WeightsError",
    "canonical_layer", "get_spec", "load_model", "resolve_units", "resolve_weights",
]
__version__ = "0.1.0"

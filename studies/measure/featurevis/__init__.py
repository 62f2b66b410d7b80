"""Feature visualization (Olah et al., Distill 2017; Curve Detectors figs. 2 and 5): images
optimised from noise to excite a unit, for the unedited model or any edit plan variant.

- :mod:`.param`: pixel / Fourier parameterizations, colour decorrelation, sigmoid;
- :mod:`.transforms`: Lucid's standard transformation robustness, on plain torch;
- :mod:`.objectives`: neuron, channel, direction, diversity, negative; composable;
- the differentiable receptive-field forward pass is :class:`circuits.cone.GradCone`;
- :mod:`.render`: the optimisation loop and its cache; :mod:`.units`: families in one batch.
"""

from .objectives import Objective, channel, direction, diversity, negative, neuron, unit_objective
from .param import COLOR_CORRELATION_SQRT, ImageParam, color_matrix, fft_scale, image_param, rfft2d_freqs
from .render import VisResult, VisSettings, cache_key, centre_responses, render, vis_cache_dir
from .transforms import standard_transforms
from .units import UnitVis, visualize_units

__all__ = [
    "COLOR_CORRELATION_SQRT", "ImageParam", "Objective", "UnitVis", "VisResult", "VisSettings", "cache_key",
    "centre_responses", "channel", "color_matrix", "direction", "diversity", "fft_scale", "image_param", "negative",
    "neuron", "render", "rfft2d_freqs", "standard_transforms", "unit_objective", "vis_cache_dir", "visualize_units",
]

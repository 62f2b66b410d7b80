"""Receptive-field geometry of every layer, computed from the spec's padding rules.

For a stage with kernel ``k``, stride ``s`` and left padding ``p`` the receptive field
size grows by ``(k-1)·j`` and the centre of output position 0 moves by ``((k-1)/2 - p)·j``
(``j`` the cumulative stride). In an inception block the receptive field is the largest of
its branches (5x5 for the block output). Coordinates are pixel indices (the centre of pixel
``(row, col)`` is at ``(row, col)``).

Example: BVLC mixed3b units sit on a stride-8 grid whose position ``i`` is centred on pixel
``8i + 6``; their receptive field is 91 px wide (Branch Specialization: "about 91 px").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .names import INPUT_EXTENT, split_hook_name
from .spec import MIXED_LAYERS, ModelSpec, get_spec
from .units import canonical_layer


@dataclass(frozen=True)
class ReceptiveField:
    """Geometry of one layer: ``size`` (px), ``stride`` (px per position), ``offset``
    (pixel index of the centre of position 0)."""

    size: int
    stride: int
    offset: float

    def center(self, i: int) -> float:
        """Pixel index of the centre of output position ``i`` (same along rows and columns)."""
        return self.offset + self.stride * i

    def span(self, i: int) -> tuple[float, float]:
        """First and last pixel index seen by position ``i`` (may fall outside the image)."""
        c = self.center(i)
        return c - (self.size - 1) / 2, c + (self.size - 1) / 2


def _same_left(size: int, k: int, s: int) -> int:
    out = math.ceil(size / s)
    return max((out - 1) * s + k - size, 0) // 2


def _pool_out(size: int, spec: ModelSpec) -> int:
    if spec.padding == "caffe":
        return math.ceil((size - 3) / 2) + 1
    return math.ceil(size / 2)


def receptive_field(spec: ModelSpec | str, layer: str, input_size: int = 224) -> ReceptiveField:
    """Receptive field of a layer (``conv2d0`` … ``mixed5b``, or a branch activation such as
    ``mixed3b_5x5`` / ``mixed3b_3x3_bottleneck``) for a square input of ``input_size`` px.

    For Caffe padding the geometry does not depend on ``input_size``; for TF 'SAME'
    padding (Lucid) it depends on its parity.

    Raises:
        KeyError: unknown layer.
    """
    spec = get_spec(spec)
    layer = canonical_layer(layer)
    parts = split_hook_name(layer)
    block, conv = (parts[0], parts[1]) if parts else (layer, None)
    r, j, start, size = 1, 1, 0.0, input_size

    def op(k, s, p):
        nonlocal r, j, start
        r += (k - 1) * j
        start += ((k - 1) / 2 - p) * j
        j *= s

    # conv2d0: 7x7/2
    op(7, 2, 3 if spec.padding == "caffe" else _same_left(size, 7, 2))
    size = (size + 6 - 7) // 2 + 1 if spec.padding == "caffe" else math.ceil(size / 2)
    if layer == "conv2d0":
        return ReceptiveField(r, j, start)
    op(3, 2, 0 if spec.padding == "caffe" else _same_left(size, 3, 2))
    size = _pool_out(size, spec)
    if layer == "conv2d1":
        return ReceptiveField(r, j, start)
    op(3, 1, 1)
    if layer == "conv2d2":
        return ReceptiveField(r, j, start)
    op(3, 2, 0 if spec.padding == "caffe" else _same_left(size, 3, 2))
    size = _pool_out(size, spec)
    for name in MIXED_LAYERS:
        if name in ("mixed4a", "mixed5a"):
            op(3, 2, 0 if spec.padding == "caffe" else _same_left(size, 3, 2))
            size = _pool_out(size, spec)
        if block == name:  # the block's widest branch (5x5), or one convolution seen from the block input
            k = 5 if conv is None else INPUT_EXTENT[conv]
            return ReceptiveField(r + (k - 1) * j, j, start)
        op(5, 1, 2)
    raise KeyError(layer)


def measurement_window(spec: ModelSpec | str, layer: str, margin: int = 0) -> tuple[int, int, float]:
    """Smallest square input in which one position of ``layer`` sees no padding.

    Returns:
        ``(size, position, center)``: image size in px, the output position index (same for
        row and column) whose receptive field lies inside the image, and that position's
        centre in pixel coordinates. Rendering a stimulus centred on ``center`` in an image of
        ``size`` px gives the unit at ``position`` exactly the response it has to the same
        stimulus in any larger image (receptive-field cropping).
    """
    spec = get_spec(spec)
    rf = receptive_field(spec, layer, 224)
    half = (rf.size - 1) / 2 + margin
    pos = max(0, math.ceil((half - rf.offset) / rf.stride))
    center = rf.center(pos)
    size = int(math.ceil(center + half + 1))
    # A multiple of the cumulative stride keeps every strided stage's input even, so Lucid's
    # 'SAME' padding (which depends on parity) is the same as for a 224-px input.
    step = max(2, rf.stride)
    size += (-size) % step
    # Lucid's geometry depends on the input size; make sure it matches the 224-px grid.
    if spec.padding != "caffe":
        rf2 = receptive_field(spec, layer, size)
        assert rf2.offset == rf.offset and rf2.stride == rf.stride
    return size, pos, center

"""Expanded weights: the linear map between two layers with the nonlinearities removed.

Source: Olah et al., "Visualizing Weights" (Distill 2020) and "An Overview of Early Vision"
— expanded weights between non-adjacent layers are the product of the weights along every
path with ReLUs removed; through a bottleneck branch, the 1x1 bottleneck times the spatial
convolution.

Linear surrogates used here (and in :func:`circuits.model.linearized`, whose Jacobian these
weights equal): ReLU → identity; every 3x3 max-pool (the strided ones and the pool branch's)
→ a 3x3 average pool with the same stride (each of the 9 inputs weighted 1/9); local
response normalisation → identity. Biases are not part of the map.

Computed analytically by composing convolution kernels (a transposed convolution of one
kernel by the next, with the earlier stage's stride), never by autograd over units.

The result ``E`` of :func:`expand` is a correlation kernel: for destination position ``p``
(along each axis), ``dst_pre[d, p] = Σ_{s, w} E.weight[d, s, w] · src[s, E.stride·p − E.padding + w]``
(interior positions, where no zero padding is involved).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import InceptionV1
from .names import bottleneck, split_conv_activation
from .spec import MIXED_LAYERS
from .units import canonical_layer

#: Layers expanded weights can start or end at, in forward order.
EXPANDABLE = ("conv2d0", "conv2d1", "conv2d2") + MIXED_LAYERS


@dataclass
class ExpandedWeights:
    """A composed linear map ``src → dst`` (pre-activation of ``dst``).

    Attributes:
        weight: ``(dst_units, src_units, kh, kw)``.
        stride: ``dst`` stride in ``src`` positions.
        padding: offset of the kernel's first tap (see the module docstring).
        src, dst: layer names; dst_units / src_units: the rows/columns kept (``None`` = all).
    """

    weight: Tensor
    stride: int
    padding: int
    src: str
    dst: str
    dst_units: list[int] | None = None
    src_units: list[int] | None = None


@dataclass
class _Op:
    kind: str  # "conv" | "pool"
    stride: int
    pad: int
    weight: Tensor | None = None  # conv: (out, in, k, k)

    def __post_init__(self):
        if self.kind not in ("conv", "pool"):
            raise AssertionError(f"unknown linear stage kind {self.kind!r}")


def _branch_kernel(model: InceptionV1, layer: str, conv: str, rows: Tensor | None, dtype) -> Tensor:
    """Kernel of one branch (through its bottleneck), ``(rows, cin, k, k)`` with k = 1, 3 or 5."""
    blk = model.block(layer)
    if conv in ("1x1", "3x3_bottleneck", "5x5_bottleneck"):
        w = blk.unit(conv).conv.weight.to(dtype)
        return w if rows is None else w[rows]
    if conv in ("3x3", "5x5"):
        w2 = blk.unit(conv).conv.weight.to(dtype)
        w2 = w2 if rows is None else w2[rows]
        wb = blk.unit(bottleneck(conv)).conv.weight.to(dtype)[:, :, 0, 0]  # (b, cin)
        k = torch.einsum("obhw,bi->oihw", w2, wb)
        if conv in blk.linear_paths:  # linearised units (edits.Linearize): their kernel is explicit
            lp = blk.linear_paths[conv]
            pos = {u: i for i, u in enumerate(lp.units.tolist())}
            sel = range(k.shape[0]) if rows is None else rows.tolist()
            for r, u in enumerate(sel):
                if u in pos:
                    k[r] = lp.conv.weight[pos[u], :-1].to(dtype)
        return k
    if conv == "pool_reduce":
        wp = blk.unit("pool_reduce").conv.weight.to(dtype)
        wp = wp if rows is None else wp[rows]
        return wp.expand(-1, -1, 3, 3) / 9.0
    raise KeyError(conv)


def block_kernel(model: InceptionV1, layer: str, rows: list[int] | None = None, dtype=torch.float32) -> Tensor:
    """The whole inception block as one 5x5 kernel ``(out or len(rows), in, 5, 5)`` (padding 2).

    The 1x1 branch sits at the centre tap, the 3x3 and pool branches in the central 3x3.
    """
    blk = model.block(layer)
    widths = [blk.b1x1.conv.out_channels, blk.b3x3.conv.out_channels, blk.b5x5.conv.out_channels,
              blk.bpool_reduce.conv.out_channels]
    sel = torch.arange(sum(widths)) if rows is None else torch.as_tensor(rows)
    out = torch.zeros(len(sel), blk.in_channels, 5, 5, dtype=dtype)
    start = 0
    for conv, w in zip(("1x1", "3x3", "5x5", "pool_reduce"), widths):
        mask = (sel >= start) & (sel < start + w)
        if mask.any():
            k = _branch_kernel(model, layer, conv, sel[mask] - start, dtype)
            o = (5 - k.shape[-1]) // 2
            out[mask, :, o:o + k.shape[-1], o:o + k.shape[-1]] = k
        start += w
    return out


def _ops(model: InceptionV1, src: str, dst: str, rows: list[int] | None, dtype) -> list[_Op]:
    """Linear stages after ``src``'s activation up to ``dst``'s pre-activation."""
    caffe_or_same = 0  # strided pools have no left padding for Caffe and for even TF-'SAME' inputs
    chain: list[tuple[str, str]] = [
        ("pool", "maxpool0"), ("conv", "conv2d1"), ("conv", "conv2d2"), ("pool", "maxpool1"),
        ("block", "mixed3a"), ("block", "mixed3b"), ("pool", "maxpool4"), ("block", "mixed4a"),
        ("block", "mixed4b"), ("block", "mixed4c"), ("block", "mixed4d"), ("block", "mixed4e"),
        ("pool", "maxpool10"), ("block", "mixed5a"), ("block", "mixed5b"),
    ]
    dst_layer = dst if dst in EXPANDABLE else split_conv_activation(dst)[0]
    names = [n for _, n in chain]
    i0 = 0 if src == "conv2d0" else names.index(src) + 1  # the stage after src (conv2d0 is not in the chain)
    i1 = names.index(dst_layer)
    ops = []
    for kind, name in chain[i0:i1 + 1]:
        last = name == dst_layer
        r = rows if last else None
        if kind == "pool":
            ops.append(_Op("pool", 2, caffe_or_same))
        elif kind == "conv":
            w = model.conv_unit(name).conv.weight.to(dtype)
            ops.append(_Op("conv", 1, w.shape[-1] // 2, w if r is None else w[r]))
        elif kind != "block":
            raise AssertionError(f"unknown stage kind {kind!r} for {name}")
        elif last and dst != dst_layer:  # a branch activation of the destination block
            conv = split_conv_activation(dst)[1]
            k = _branch_kernel(model, dst_layer, conv, None if r is None else torch.as_tensor(r), dtype)
            ops.append(_Op("conv", 1, k.shape[-1] // 2, k))
        else:
            ops.append(_Op("conv", 1, 2, block_kernel(model, name, r, dtype)))
    return ops


def _compose(later: Tensor, earlier: _Op) -> Tensor:
    """Kernel of ``later ∘ earlier`` (``later`` reads ``earlier``'s output)."""
    s = earlier.stride
    if earlier.kind == "pool":
        o, i, k, _ = later.shape
        box = torch.full((1, 1, 3, 3), 1.0 / 9.0, dtype=later.dtype)
        out = F.conv_transpose2d(later.reshape(o * i, 1, k, k), box, stride=s)
        return out.reshape(o, i, out.shape[-2], out.shape[-1])
    return F.conv_transpose2d(later, earlier.weight, stride=s)


def expand(
    model: InceptionV1,
    src: str,
    dst: str,
    dst_units: list[int] | None = None,
    src_units: list[int] | None = None,
    dtype: torch.dtype = torch.float32,
) -> ExpandedWeights:
    """Expanded weights from ``src`` activations to ``dst`` pre-activations.

    Args:
        model: an InceptionV1 (any checkpoint; edits included).
        src: ``conv2d0`` … ``mixed5a`` (post-ReLU activation of that layer).
        dst: a later layer (``mixed3b``), or a branch activation of it (``mixed3b_5x5``,
            ``mixed3b_5x5_bottleneck``), as pre-activation.
        dst_units: rows to keep (indices into ``dst``'s channels); computing only these is
            much cheaper. src_units: columns to keep.
        dtype: float32 (default) or float64.

    Returns:
        :class:`ExpandedWeights`; ``weight`` is ``(dst_units, src_units, kh, kw)``.
        Adjacent mixed layers give 5x5 kernels; across a strided pool they grow (e.g.
        mixed3b → mixed4a: 11x11 in mixed3b positions).

    Raises:
        KeyError: unknown layer. ValueError: ``dst`` is not after ``src``.
    """
    with torch.no_grad():  # a block, not a decorator: mutmut mutates the body
        src = canonical_layer(src)
        dst = canonical_layer(dst)
        bc = split_conv_activation(dst)
        dst_layer = dst if dst in EXPANDABLE else bc[0]
        if src not in EXPANDABLE[:-1]:
            raise KeyError(f"src must be one of {', '.join(EXPANDABLE[:-1])}; got {src!r}")
        if EXPANDABLE.index(dst_layer) <= EXPANDABLE.index(src):
            raise ValueError(f"dst {dst!r} must come after src {src!r}")
        ops = _ops(model, src, dst, dst_units, dtype)
        k = ops[-1].weight
        stride, pad = ops[-1].stride, ops[-1].pad
        for op in reversed(ops[:-1]):
            k = _compose(k, op)
            pad = op.stride * pad + op.pad
            stride = op.stride * stride
        if src_units is not None:
            k = k[:, torch.as_tensor(src_units)]
        return ExpandedWeights(k.contiguous(), stride, pad, src, dst, dst_units, src_units)


def expanded_weights(model: InceptionV1, src: str, dst: str, **kwargs) -> Tensor:
    """``expand(...).weight``: tensor ``(dst_units, src_units, kh, kw)``."""
    return expand(model, src, dst, **kwargs).weight

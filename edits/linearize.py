"""Linearise units of a 3x3/5x5 branch: compute them without the bottleneck's ReLU, by one convolution.

:func:`linear_kernel` is the exact kernel (expanded weights plus the bias through a padded
ones-map); :class:`Linearize` installs it as a :class:`circuits.model.LinearPath`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from circuits.model import InceptionV1
from circuits.names import bottleneck, hook_name
from circuits.spec import ModelSpec

from .base import (
    _ERRORS,
    Edit,
    WeightOp,
    _constant,
    _reason,
    mentions_families,
    normalise_refs,
    register_edit,
    resolve_refs,
)
from .blocks import conv_target, in_block, linear_key, linear_rows_op, parse_branch


def linear_kernel(model: InceptionV1, block: str, branch: str, units: Sequence[int]) -> tuple[Tensor, Tensor]:
    """The exact linearised kernel of branch-local ``units`` of a 3x3/5x5 branch, in float64.

    Returns ``(weight (n, C_in + 1, k, k), bias (n,))`` such that, with ``x`` the block input,
    ``W_s ⋆ pad(W_b x + b_b) + b_s = weight[:, :C_in] ⋆ pad(x) + weight[:, C_in] ⋆ pad(1) + bias``:
    ``weight[:, :C_in] = Σ_b W_s[:, b] W_b[b, :]`` (the expanded weights) and
    ``weight[:, C_in] = Σ_b W_s[:, b] b_b[b]`` (the bottleneck bias pushed through the spatial
    kernel, applied to a zero-padded map of ones so border positions are exact). Units already
    computed by a linear path return that path's kernel.
    """
    blk = model.block(block)
    bott, spat = blk.unit(bottleneck(branch)).conv, blk.unit(branch).conv
    wb = bott.weight.detach().double()[:, :, 0, 0]  # (B, C_in)
    bb = bott.bias.detach().double()  # (B,)
    rows = []
    for u in units:  # one unit at a time: a unit's kernel does not depend on which others are computed with it
        ws = spat.weight.detach()[u].double()  # (B, k, k)
        rows.append(torch.cat([torch.einsum("bhw,bi->ihw", ws, wb), torch.einsum("bhw,b->hw", ws, bb)[None]], 0))
    weight = torch.stack(rows) if rows else torch.zeros(0, wb.shape[1] + 1, *spat.kernel_size, dtype=torch.float64)
    bias = spat.bias.detach().double()[torch.as_tensor(list(units), dtype=torch.long)].clone()
    pos = {u: i for i, u in enumerate(blk.linear_units(branch))}
    for r, u in enumerate(units):
        if u in pos:
            lp = blk.linear_paths[branch].conv
            weight[r] = lp.weight[pos[u]].double()
            bias[r] = lp.bias[pos[u]].double()
    return weight, bias



@register_edit
@dataclass(frozen=True)
class Linearize(Edit):
    """Compute units of a 3x3/5x5 branch without the bottleneck's ReLU, by one convolution.

    Args:
        branch: ``"mixed3b_5x5"`` (or ``"3b_5x5"``): a bottleneck branch of a block.
        units: units that branch writes — ``"mixed3b:379"`` or ``"mixed3b_5x5:59"``, a Family,
            a family key or a list; restrict a family first with :func:`in_branch`.

    Construction. For each unit ``d``, the pre-activation becomes exactly
    ``W_s[d] ⋆ pad(W_b x + b_b) + b_s[d]`` — the original with the bottleneck's ReLU removed,
    nothing else — computed as a single convolution of the block input ``x``: the block gets
    a :class:`circuits.model.LinearPath` whose row for ``d`` holds the expanded weights
    ``Σ_b W_s[d, b] W_b[b]`` (bottleneck × spatial, computed in float64 and rounded once) and
    bias ``b_s[d]``. Border exactness: in the original the bottleneck output, bias included,
    is zero-padded before the spatial convolution, so near the border the bias reaches only
    the taps inside the image. The linear path therefore reads one more input channel, a map
    of ones zero-padded like ``x``, with the kernel ``Σ_b W_s[d, b] b_b[b]`` — the bias term is
    a convolution over that padded ones-map and is exact at every position. The block's
    forward pass writes these channels into the branch's pre-ReLU output before the
    ``<block>_<branch>_pre_relu`` hook point (hooks see the linearised values); the unit's own
    ReLU is kept; every other unit is bitwise unchanged. Afterwards :class:`PrunePathway` /
    :class:`Scale` with these units as ``dst`` act on the expanded weights.

    Raises:
        EditError: an invalid branch (field ``branch``); units not in that branch (field
            ``units``, naming the branch's range), or already linearised.
    """

    branch: str
    units: Any

    def __post_init__(self) -> None:
        try:
            block, conv = parse_branch(self.branch)
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="branch") from None
        object.__setattr__(self, "branch", hook_name(block, conv))
        try:
            object.__setattr__(self, "units", normalise_refs(self.units))
        except (*_ERRORS, RecursionError) as e:
            raise self.error(_reason(e), field="units") from None

    def _locals(self, spec: ModelSpec) -> tuple[str, str, list[tuple[int, str]]]:
        block, conv = parse_branch(self.branch)
        try:
            units = resolve_refs(self.units, spec)
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="units") from None
        lo, hi = spec.block(block).branch_offsets()[conv]
        out = []
        for u in units:
            t = conv_target(u, spec) if in_block(u) else None
            if t is None or t[0] != block or t[1] != conv:
                raise self.error(
                    f"{u} is not in branch {self.branch}: its units are {block}:{lo}..{hi - 1} "
                    f"({self.branch}:0..{hi - lo - 1})", field="units")
            out.append((t[2], str(u)))
        return block, conv, out

    def validate(self, spec: ModelSpec) -> None:
        self._locals(spec)

    def claims(self, spec: ModelSpec) -> list:
        """A ``(branch, channel, "linearize")`` claim per unit: conflicts with another Linearize of the
        unit and with edits that set the unit as a whole (Ablate, SetWeights — the linear path would
        override them), not with pathway edits of the unit (which then act on its kernel)."""
        _, _, items = self._locals(spec)
        return [((self.branch, ch, "linearize"), label) for ch, label in items]

    def prepare(self, model: InceptionV1, reference: Tensor | None = None) -> Edit:
        if not mentions_families(self.units):
            return self
        return dataclasses.replace(self, units=tuple(str(u) for u in resolve_refs(self.units, model.spec)))

    def compile(self, model: InceptionV1) -> list:
        block, conv, items = self._locals(model.spec)
        blk = model.block(block)
        chans = [ch for ch, _ in items]
        done = [label for ch, label in items if ch in blk.linear_units(conv)]
        if done:
            raise self.error(f"{', '.join(done)} already linearised", field="units")
        weight, bias = linear_kernel(model, block, conv, chans)
        start = len(blk.linear_units(conv))
        rows = (slice(start, start + len(chans)),)
        return [
            linear_rows_op(block, conv, chans, "Linearize"),
            WeightOp(linear_key(block, conv), rows, _constant(weight), f"linearise {len(chans)} unit(s) of {self.branch}"),
            WeightOp(linear_key(block, conv, "bias"), rows, _constant(bias), f"bias of {self.branch}'s linearised units"),
        ]


__all__ = ["Linearize", "linear_kernel"]

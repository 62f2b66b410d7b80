"""Where units live inside an inception block, and the structural ops that grow a block.

Shared by the edits that act on connections (:mod:`edits.pathways`, :mod:`edits.linearize`,
:mod:`edits.unit_weights`): a block unit ``mixed3b:379`` *is* output channel 59 of the
convolution ``mixed3b_5x5`` (:func:`target`); a block reads the channels of the layer before it
(:func:`input_layer`). The structural ops add bottleneck channels (:func:`widen_op`) or rows of
a :class:`circuits.model.LinearPath` (:func:`linear_rows_op`) and undo that exactly.
Names come from the naming table :mod:`circuits.names`.
"""

from __future__ import annotations

from typing import Any

from circuits.model import InceptionV1
from circuits.names import (
    BOTTLENECK_BRANCHES,
    BRANCH_CONVS,
    LAYERS,
    MIXED_LAYERS,
    conv_name,
    hook_name,
    linear_path_path,
    output_conv,
    param_key,
    split_conv_activation,
)
from circuits.spec import ModelSpec
from circuits.units import Unit, canonical_layer

from .base import EditError, StructOp


def conv_target(u: Unit, spec: ModelSpec) -> tuple[str, str, int]:
    """``(block, conv, channel)``: the convolution output channel that *is* unit ``u`` of a block.

    Raises:
        ValueError: ``u`` is not in an inception block or one of its branch activations.
    """
    if u.layer in MIXED_LAYERS:
        branch = spec.branch_of(u.layer, u.index)
        start = spec.block(u.layer).branch_offsets()[branch][0]
        return u.layer, output_conv(branch), u.index - start
    bc = split_conv_activation(u.layer)
    if bc is None:
        raise ValueError(f"{u} is not a unit of an inception block (mixed3a … mixed5b or one of their branches)")
    return bc[0], bc[1], u.index


def in_block(u: Unit) -> bool:
    """Whether unit ``u`` is a unit of an inception block or of one of its branch activations."""
    return u.layer in MIXED_LAYERS or split_conv_activation(u.layer) is not None


def channel_label(block: str, conv: str, ch: int, spec: ModelSpec) -> str:
    """Canonical name of a block convolution's channel (``mixed3b:379`` for branch outputs)."""
    branch = conv_name(conv).branch
    if output_conv(branch) == conv:
        return f"{block}:{spec.block(block).branch_offsets()[branch][0] + ch}"
    return f"{hook_name(block, conv)}:{ch}"


def input_layer(block: str) -> str:
    """The layer whose channels form ``block``'s input (``mixed3b`` → ``mixed3a``, ``mixed3a`` → ``conv2d2``)."""
    return LAYERS[LAYERS.index(canonical_layer(block)) - 1]


def parse_branch(branch: Any) -> tuple[str, str]:
    """``"mixed3b_5x5"`` / ``"3b_5x5"`` → ``("mixed3b", "5x5")``; 3x3/5x5 branches only.

    Raises:
        TypeError: not a string. ValueError: not a bottleneck branch of a block.
    """
    if not isinstance(branch, str):
        raise TypeError(f"branch must be a string such as 'mixed3b_5x5', got {branch!r}")
    try:
        bc = split_conv_activation(canonical_layer(branch))
    except KeyError:
        bc = None
    if bc is None or bc[1] not in BOTTLENECK_BRANCHES:
        raise ValueError(f"{branch!r} is not a bottleneck branch; expected '<block>_3x3' or '<block>_5x5', e.g. 'mixed3b_5x5'")
    return bc


def branch_key(block: str, conv: str, what: str = "weight") -> str:
    """State-dict key of a block convolution's parameter (``mixed3b.b5x5.conv.weight``)."""
    return param_key(block, conv, what)


def linear_key(block: str, branch: str, what: str = "weight") -> str:
    """State-dict key of a linear-path parameter (``mixed3b.linear_paths.5x5.conv.weight``)."""
    return f"{linear_path_path(block, branch)}.{what}"


def widen_op(block: str, branch: str, old: int, new: int, reason: str) -> StructOp:
    """Add ``new - old`` channels to ``block``'s ``branch`` bottleneck (and to its spatial conv's input)."""
    bname = BRANCH_CONVS[branch][0]
    what = hook_name(block, bname)

    def forward(m: InceptionV1) -> None:
        blk = m.block(block)
        if blk.unit(bname).conv.out_channels != old or blk.unit(branch).conv.in_channels != old:
            raise EditError(f"{what} has changed width since the edit was compiled")
        blk.resize_conv(bname, out_channels=new)
        blk.resize_conv(branch, in_channels=new)

    def revert(m: InceptionV1) -> None:
        blk = m.block(block)
        b, s = blk.unit(bname).conv, blk.unit(branch).conv
        if b.out_channels != new or s.in_channels != new:
            raise EditError(f"cannot undo: {what} has {b.out_channels} channels, this plan left {new}")
        if bool(b.weight[old:].any()) or bool(b.bias[old:].any()) or bool(s.weight[:, old:].any()):
            raise EditError(f"cannot undo: the channels this plan added to {what} carry other weights")
        blk.resize_conv(bname, out_channels=old)
        blk.resize_conv(branch, in_channels=old)

    summary = {"op": "add_channels", "block": block, "conv": what, "channels": new - old,
               "widths": [old, new], "reason": reason}
    return StructOp(forward, revert, summary, f"{what}: {old} → {new} channels ({reason})")


def linear_rows_op(block: str, branch: str, units: list[int], reason: str) -> StructOp:
    """Append rows for branch-local ``units`` to ``block``'s linear path of ``branch``."""
    n = len(units)
    what = hook_name(block, branch)

    def forward(m: InceptionV1) -> None:
        blk = m.block(block)
        blk.set_linear_path(branch, blk.linear_units(branch) + units)

    def revert(m: InceptionV1) -> None:
        blk = m.block(block)
        cur = blk.linear_units(branch)
        if cur[len(cur) - n:] != units:
            raise EditError(f"cannot undo: the linear path of {what} does not end with the rows this plan added")
        lp = blk.linear_paths[branch].conv
        if bool(lp.weight[len(cur) - n:].any()) or bool(lp.bias[len(cur) - n:].any()):
            raise EditError(f"cannot undo: the linear-path rows this plan added to {what} carry other weights")
        blk.set_linear_path(branch, cur[:len(cur) - n])

    summary = {"op": "linear_path", "block": block, "branch": what, "rows": n, "units": list(units),
               "reason": reason}
    return StructOp(forward, revert, summary, f"{what}: linear path for {n} unit(s) ({reason})")


__all__ = [
    "branch_key", "channel_label", "conv_target", "in_block", "input_layer", "linear_key", "linear_rows_op",
    "parse_branch", "widen_op",
]

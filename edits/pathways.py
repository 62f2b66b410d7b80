"""Structural circuit edits: prune or scale pathways, linearise bottleneck branches, transplant units.

These edits change *connections* rather than whole units, and they are exact: the edited
network computes what the edit's description says and nothing else changes. They compile,
like :class:`~edits.plan.Ablate`, to :class:`~edits.plan.WeightOp` lists run on a copy of the
model by :meth:`EditPlan.apply`, plus :class:`~edits.plan.StructOp` steps where exactness needs
new channels (a duplicated bottleneck unit) or a new module (a linear path). The
:class:`~edits.plan.EditRecord` lists both; :meth:`EditRecord.undo` removes the added
structure and restores the original weights and shapes bitwise.

- :class:`PrunePathway` ``(src, dst, sign, via)`` — the ``dst`` units stop receiving the
  ``src`` units' contribution (all of it, or only its positive or negative weights).
- :class:`Scale` ``(src, dst, factor, sign, via)`` — that contribution is multiplied by
  ``factor`` (``factor=0`` is :class:`PrunePathway`).
- :class:`Linearize` ``(branch, units)`` — the units of a 3x3/5x5 branch are computed without
  the bottleneck's ReLU, by one convolution with the expanded weights.
- :class:`SetWeights` ``(dst, kernel, bias, reads)`` / :class:`ReplaceUnits` ``(units,
  weights, biases, reads)`` — hand-built or transplanted incoming weights.
- :func:`save_model` / :func:`load_model` — an edited (possibly widened) model as a
  safetensors file with its plans and its shapes in the metadata.

Sources and destinations. ``dst`` units live in an inception block ``B`` (``"mixed3b:379"``,
``"mixed3b_5x5:59"``, a :class:`~circuits.units.Family`, or a family key such as
``"mixed3b/curves"`` looked up in the checkpoint's packaged catalog when the plan is
validated). ``src`` units are channels of ``B``'s input, named by the layer that produced
them: ``conv2d2`` for mixed3a (after LRN and max-pool, channel ``c`` is still conv2d2's channel
``c``), ``mixed3a`` for mixed3b, ``mixed3b`` for mixed4a (after the strided max-pool), and so on.

Example — the Curve Circuits edit (keep 3b curves' positive expanded weights from 3a)::

    fam = catalog(model)
    curves5 = in_branch(fam["mixed3b/curves"], "mixed3b_5x5", model.spec)
    plan = EditPlan([
        Linearize("mixed3b_5x5", curves5),
        PrunePathway(src=fam["mixed3a/curves"], dst=curves5, sign="negative"),
    ])
    edited, record = plan.apply(model)
    record.structure        # [{"op": "linear_path", "branch": "mixed3b_5x5", "rows": …}]
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from circuits.model import InceptionBlock, InceptionV1
from circuits.spec import BRANCH_CONVS, CONV_KERNEL, LAYERS, MIXED_LAYERS, ModelSpec, get_spec
from circuits.units import Family, Unit, canonical_layer

from .plan import Edit, EditError, StructOp, WeightOp, register_edit

#: Which entries of a pathway :class:`PrunePathway` and :class:`Scale` act on.
SIGNS: tuple[str, ...] = ("all", "positive", "negative")
#: What a kernel given to :class:`SetWeights` / :class:`ReplaceUnits` is applied to.
READS: tuple[str, ...] = ("conv", "input")
#: Branch names ``via`` accepts (``"pool"`` is short for ``"pool_reduce"``).
VIA_BRANCHES: tuple[str, ...] = ("1x1", "3x3", "5x5", "pool_reduce", "pool")

#: ``format`` of a file written by :func:`save_model`.
SAVE_FORMAT = "circuits-edited-1"

_SHORT_BLOCK = re.compile(r"^([345][a-e])_")
_ERRORS = (KeyError, ValueError, TypeError, IndexError, OverflowError)


def _finite_number(v: Any) -> bool:
    """A real number (not a bool) that converts to a finite float (huge ints do not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _reason(e: BaseException) -> str:
    return str(e.args[0]) if e.args else type(e).__name__


# ============================================================================ unit references
def _parse_refs(value: Any) -> tuple[str, ...]:
    """Spec-free normalisation of a units field: canonical ``"layer:index"`` strings; family
    keys (``"mixed3b/curves"``) kept for :func:`_resolve` to look up; Family objects expanded."""
    if isinstance(value, str):
        items: list = [r for r in value.split(",") if r.strip()]
    elif isinstance(value, (Unit, Family)):
        items = [value]
    elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
        items = [value]
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = []
        for r in value:
            items.extend([x for x in r.split(",") if x.strip()] if isinstance(r, str) else [r])
    else:
        raise TypeError(f"expected units ('3b:379'), a family ('mixed3b/curves' or a Family) or a list; got {value!r}")
    out: list[str] = []
    for r in items:
        if isinstance(r, Family):
            out.extend(str(u) for u in r)
        elif isinstance(r, str) and "/" in r:
            layer, _, name = r.strip().partition("/")
            if not name:
                raise ValueError(f"cannot parse family {r!r}; expected 'layer/name' such as 'mixed3b/curves'")
            out.append(f"{canonical_layer(layer)}/{name.strip()}")
        else:
            out.append(str(Unit.parse(r)))
    if not out:
        raise ValueError("names no unit; give at least one, e.g. '3b:379'")
    return tuple(dict.fromkeys(out))


def _resolve(refs: Sequence[str], spec: ModelSpec) -> list[Unit]:
    """Units of normalised refs, family keys looked up in ``spec``'s packaged catalog; range-checked."""
    units: list[Unit] = []
    for r in refs:
        if "/" in r:
            from circuits.catalog import load_catalog

            try:
                cat = load_catalog(spec)
            except FileNotFoundError:
                raise KeyError(f"{r!r} names a family, but {spec.name} has no family catalog; list the units") from None
            units.extend(cat[r])
        else:
            units.append(Unit.parse(r))
    for u in units:
        u.validate(spec)
    return list(dict.fromkeys(units))


def _branch_conv(layer: str) -> tuple[str, str] | None:
    """``"mixed3b_5x5"`` → ``("mixed3b", "5x5")``; ``None`` for a plain layer."""
    for m in MIXED_LAYERS:
        if layer.startswith(m + "_") and layer[len(m) + 1:] in CONV_KERNEL:
            return m, layer[len(m) + 1:]
    return None


def _branch_of_conv(conv: str) -> str:
    return next(b for b, convs in BRANCH_CONVS.items() if conv in convs)


def _target(u: Unit, spec: ModelSpec) -> tuple[str, str, int]:
    """``(block, conv, channel)``: the convolution output channel that *is* unit ``u`` of a block."""
    if u.layer in MIXED_LAYERS:
        branch = spec.branch_of(u.layer, u.index)
        start = spec.block(u.layer).branch_offsets()[branch][0]
        return u.layer, BRANCH_CONVS[branch][-1], u.index - start
    bc = _branch_conv(u.layer)
    if bc is None:
        raise ValueError(f"{u} is not a unit of an inception block (mixed3a … mixed5b or one of their branches)")
    return bc[0], bc[1], u.index


def _label(block: str, conv: str, ch: int, spec: ModelSpec) -> str:
    """Canonical name of a block convolution's channel (``mixed3b:379`` for branch outputs)."""
    branch = _branch_of_conv(conv)
    if BRANCH_CONVS[branch][-1] == conv:
        return f"{block}:{spec.block(block).branch_offsets()[branch][0] + ch}"
    return f"{block}_{conv}:{ch}"


def input_layer(block: str) -> str:
    """The layer whose channels form ``block``'s input (``mixed3b`` → ``mixed3a``, ``mixed3a`` → ``conv2d2``)."""
    return LAYERS[LAYERS.index(canonical_layer(block)) - 1]


def _src_channels(units: Sequence[Unit], block: str, spec: ModelSpec) -> list[int]:
    layer = input_layer(block)
    out = []
    for u in units:
        if u.layer == layer:
            out.append(u.index)
            continue
        bc = _branch_conv(u.layer)
        if bc and bc[0] == layer and bc[1] in BRANCH_CONVS and BRANCH_CONVS[bc[1]][-1] == bc[1]:
            out.append(spec.block(layer).branch_offsets()[bc[1]][0] + u.index)
            continue
        raise ValueError(f"{u} is not a channel of {layer}, the input of {block} (where the dst units are)")
    return list(dict.fromkeys(out))


def in_branch(units: Any, branch: str, spec: ModelSpec | str) -> list[Unit]:
    """The units (anything :class:`PrunePathway` accepts) that a branch (``"mixed3b_5x5"``) writes.

    E.g. ``in_branch(fam["mixed3b/curves"], "mixed3b_5x5", model.spec)`` for :class:`Linearize`.
    """
    spec = get_spec(spec)
    block, conv = _parse_branch(branch)
    keep = []
    for u in _resolve(_parse_refs(units), spec):
        b, c, _ = _target(u, spec)
        if b == block and c == conv:
            keep.append(u)
    return keep


def _parse_branch(branch: Any) -> tuple[str, str]:
    """``"mixed3b_5x5"`` / ``"3b_5x5"`` → ``("mixed3b", "5x5")``; 3x3/5x5 branches only."""
    if not isinstance(branch, str):
        raise TypeError(f"branch must be a string such as 'mixed3b_5x5', got {branch!r}")
    name = _SHORT_BLOCK.sub(r"mixed\1_", branch.strip())
    bc = _branch_conv(name)
    if bc is None or bc[1] not in ("3x3", "5x5"):
        raise ValueError(f"{branch!r} is not a bottleneck branch; expected '<block>_3x3' or '<block>_5x5', e.g. 'mixed3b_5x5'")
    return bc


def _parse_via(via: Any) -> tuple[str, str]:
    """``"5x5"`` → ``("", "5x5")``; ``"mixed3b_pool"``/``"3b_pool"`` → ``("mixed3b", "pool_reduce")``."""
    if not isinstance(via, str):
        raise TypeError(f"via must be a branch name such as '5x5' or 'mixed3b_5x5', got {via!r}")
    v = _SHORT_BLOCK.sub(r"mixed\1_", via.strip())
    block = next((b for b in MIXED_LAYERS if v.startswith(b + "_")), "")
    br = v[len(block) + 1:] if block else v
    br = "pool_reduce" if br == "pool" else br
    if br not in BRANCH_CONVS:
        raise ValueError(f"{via!r} is not a branch")
    return block, br


# ============================================================================ weight helpers
def _state_key(block: str, conv: str, what: str = "weight") -> str:
    return f"{block}.b{conv}.conv.{what}"


def _linear_key(block: str, branch: str, what: str = "weight") -> str:
    return f"{block}.linear_paths.{branch}.conv.{what}"


def _rescale(sel: Tensor, sign: str, factor: float) -> Tensor:
    """``sel`` with the entries selected by ``sign`` multiplied by ``factor`` (set to +0 when 0)."""
    mask = torch.ones_like(sel, dtype=torch.bool) if sign == "all" else (sel > 0 if sign == "positive" else sel < 0)
    new = torch.zeros_like(sel) if factor == 0 else sel * factor
    return torch.where(mask, new, sel)


def _columns_transform(cols: list[int], sign: str, factor: float):
    idx = torch.as_tensor(cols, dtype=torch.long)

    def transform(row: Tensor) -> Tensor:
        new = row.clone()
        i = idx.to(row.device)
        new[i] = _rescale(row[i], sign, factor)
        return new

    return transform


def _constant(value: Tensor):
    def transform(current: Tensor) -> Tensor:
        return value.to(device=current.device, dtype=current.dtype).reshape(current.shape).clone()

    return transform


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
    bott, spat = blk.unit(f"{branch}_bottleneck").conv, blk.unit(branch).conv
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


# ============================================================================ structural ops
def _widen_op(block: str, branch: str, old: int, new: int, reason: str) -> StructOp:
    """Add ``new - old`` channels to ``block``'s ``branch`` bottleneck (and to its spatial conv's input)."""
    bname = f"{branch}_bottleneck"

    def forward(m: InceptionV1) -> None:
        blk = m.block(block)
        if blk.unit(bname).conv.out_channels != old or blk.unit(branch).conv.in_channels != old:
            raise EditError(f"{block}_{bname} has changed width since the edit was compiled")
        blk.resize_conv(bname, out_channels=new)
        blk.resize_conv(branch, in_channels=new)

    def revert(m: InceptionV1) -> None:
        blk = m.block(block)
        b, s = blk.unit(bname).conv, blk.unit(branch).conv
        if b.out_channels != new or s.in_channels != new:
            raise EditError(f"cannot undo: {block}_{bname} has {b.out_channels} channels, this plan left {new}")
        if bool(b.weight[old:].any()) or bool(b.bias[old:].any()) or bool(s.weight[:, old:].any()):
            raise EditError(f"cannot undo: the channels this plan added to {block}_{bname} carry other weights")
        blk.resize_conv(bname, out_channels=old)
        blk.resize_conv(branch, in_channels=old)

    summary = {"op": "add_channels", "block": block, "conv": f"{block}_{bname}", "channels": new - old,
               "widths": [old, new], "reason": reason}
    return StructOp(forward, revert, summary, f"{block}_{bname}: {old} → {new} channels ({reason})")


def _linear_rows_op(block: str, branch: str, units: list[int], reason: str) -> StructOp:
    """Append rows for branch-local ``units`` to ``block``'s linear path of ``branch``."""
    n = len(units)

    def forward(m: InceptionV1) -> None:
        blk = m.block(block)
        blk.set_linear_path(branch, blk.linear_units(branch) + units)

    def revert(m: InceptionV1) -> None:
        blk = m.block(block)
        cur = blk.linear_units(branch)
        if cur[len(cur) - n:] != units:
            raise EditError(f"cannot undo: the linear path of {block}_{branch} does not end with the rows this plan added")
        lp = blk.linear_paths[branch].conv
        if bool(lp.weight[len(cur) - n:].any()) or bool(lp.bias[len(cur) - n:].any()):
            raise EditError(f"cannot undo: the linear-path rows this plan added to {block}_{branch} carry other weights")
        blk.set_linear_path(branch, cur[:len(cur) - n])

    summary = {"op": "linear_path", "block": block, "branch": f"{block}_{branch}", "rows": n, "units": list(units),
               "reason": reason}
    return StructOp(forward, revert, summary, f"{block}_{branch}: linear path for {n} unit(s) ({reason})")


# ============================================================================ pathways
def _through_bottleneck_ops(
    model: InceptionV1, block: str, branch: str, rows: list[int], src: list[int], sign: str, factor: float, reason: str
) -> list:
    """Exact pathway edit for spatial rows ``rows`` of a bottleneck branch (see :class:`PrunePathway`)."""
    blk = model.block(block)
    bott, spat = blk.unit(f"{branch}_bottleneck").conv, blk.unit(branch).conv
    width = bott.out_channels
    wb = bott.weight.detach()[:, :, 0, 0]
    ws = spat.weight.detach()
    reads = (ws[torch.as_tensor(rows)] != 0).flatten(2).any(2)  # (len(rows), B): row reads channel b
    idx = torch.as_tensor(src, dtype=torch.long)
    cand = reads.any(0).nonzero()[:, 0]  # channels some dst row reads
    new = _rescale(wb[cand][:, idx], sign, factor)
    differs = (new != wb[cand][:, idx]).any(1)  # else nothing of src (of that sign) reaches it: no copy needed
    js = cand[differs].tolist()
    if not js:
        return []
    copies = wb[js].clone()
    copies[:, idx] = new[differs]
    n = len(js)
    ops: list = [
        _widen_op(block, branch, width, width + n, reason),
        WeightOp(_state_key(block, f"{branch}_bottleneck"), (slice(width, width + n),),
                 _constant(copies[:, :, None, None]),
                 f"{block}_{branch}_bottleneck[{width}:{width + n}] = copies of {js} ({reason})"),
        WeightOp(_state_key(block, f"{branch}_bottleneck", "bias"), (slice(width, width + n),),
                 _constant(bott.bias.detach()[js]), f"{block}_{branch}_bottleneck bias of the copies"),
    ]
    reads_js = reads[:, js]
    for i, d in enumerate(rows):
        moved = reads_js[i].nonzero()[:, 0].tolist()
        if not moved:
            continue
        old_cols, new_cols = [js[t] for t in moved], [width + t for t in moved]

        def move(row: Tensor, old_cols=old_cols, new_cols=new_cols) -> Tensor:
            out = row.clone()
            out[new_cols] = row[old_cols]
            out[old_cols] = 0
            return out

        ops.append(WeightOp(_state_key(block, branch), (d,), move,
                            f"{_label(block, branch, d, model.spec)} reads the copies ({reason})"))
    return ops


class _PathwayEdit(Edit):
    """Shared machinery of :class:`PrunePathway` and :class:`Scale`."""

    src: Any
    dst: Any
    sign: str
    via: str | None

    def _factor(self) -> float:
        raise NotImplementedError

    def _normalise(self) -> None:
        for f in ("src", "dst"):
            try:
                object.__setattr__(self, f, _parse_refs(getattr(self, f)))
            except (*_ERRORS, RecursionError) as e:
                raise self.error(_reason(e), field=f) from None
        if not isinstance(self.sign, str) or self.sign not in SIGNS:
            raise self.error(f"{self.sign!r} is not a sign", field="sign", choices=SIGNS)
        if self.via is not None:
            try:
                block, br = _parse_via(self.via)
            except (*_ERRORS,) as e:
                raise self.error(_reason(e), field="via",
                                 choices=list(VIA_BRANCHES) + ["<block>_<branch>, e.g. 'mixed3b_5x5'"]) from None
            object.__setattr__(self, "via", f"{block}_{br}" if block else br)

    # -- resolution against a spec
    def _resolved(self, spec: ModelSpec) -> tuple[str, list[int], list[tuple[str, int, str]]]:
        """``(block, src channels, [(conv, channel, label), …])`` with ``via`` applied."""
        try:
            dst = _resolve(self.dst, spec)
            targets = [_target(u, spec) for u in dst]
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="dst") from None
        blocks = list(dict.fromkeys(b for b, _, _ in targets))
        if len(blocks) != 1:
            raise self.error(f"dst units must be in one inception block; got units of {', '.join(blocks)}", field="dst")
        block = blocks[0]
        try:
            src = _src_channels(_resolve(self.src, spec), block, spec)
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="src") from None
        seen: dict[tuple[str, int], str] = {}  # aliases (mixed3b:330 = mixed3b_5x5:10) name one channel
        for u, (_, c, ch) in zip(dst, targets):
            seen.setdefault((c, ch), str(u))
        out = [(c, ch, label) for (c, ch), label in seen.items()]
        if self.via is not None:
            vblock, vbranch = _parse_via(self.via)
            if vblock and vblock != block:
                raise self.error(f"via {self.via!r} is not a branch of {block}, where the dst units are", field="via")
            out = [t for t in out if _branch_of_conv(t[0]) == vbranch]
            if not out:
                raise self.error(f"no dst unit is in the {vbranch} branch of {block}", field="via")
        return block, src, out

    def validate(self, spec: ModelSpec) -> None:
        self._resolved(spec)

    def claims(self, spec: ModelSpec) -> list:
        """One ``(conv, dst channel, src channel)`` claim per pathway: two edits may not rewrite the
        same src → dst pathway, and no other edit may set a ``dst`` unit as a whole (Ablate,
        SetWeights). Through a bottleneck the third index is the block-input channel (the
        pathway), not a column of the spatial convolution."""
        block, src, targets = self._resolved(spec)
        layer = input_layer(block)
        return [((f"{block}_{conv}", ch, s), f"{layer}:{s} → {label}", "dst") for conv, ch, label in targets for s in src]

    def prepare(self, model: InceptionV1, reference: Tensor | None = None) -> Edit:
        """Family keys resolved to units (the applied plan then needs no catalog)."""
        if not any("/" in r for r in (*self.src, *self.dst)):
            return self
        spec = model.spec
        return dataclasses.replace(self, src=tuple(str(u) for u in _resolve(self.src, spec)),
                                   dst=tuple(str(u) for u in _resolve(self.dst, spec)))

    def compile(self, model: InceptionV1) -> list:
        block, src, targets = self._resolved(model.spec)
        factor = self._factor()
        blk = model.block(block)
        reason = f"{self.type_name} {self.sign}" + ("" if factor == 0 else f" ×{factor:g}")
        ops: list = []
        by_conv: dict[str, list[tuple[int, str]]] = {}
        for conv, ch, label in targets:
            by_conv.setdefault(conv, []).append((ch, label))
        transform = _columns_transform(src, self.sign, factor)
        for conv, items in by_conv.items():
            if conv not in ("3x3", "5x5"):  # reads the block input (or its pool) through a 1x1: raw weights
                for ch, label in items:
                    ops.append(WeightOp(_state_key(block, conv), (ch,), transform, f"{label}: {reason}"))
                continue
            lin = {u: r for r, u in enumerate(blk.linear_units(conv))}
            for ch, label in items:
                if ch in lin:  # linearised: the expanded kernel is explicit
                    ops.append(WeightOp(_linear_key(block, conv), (lin[ch],), transform,
                                        f"{label}: {reason} on the linearised kernel"))
            rest = [ch for ch, _ in items if ch not in lin]
            if rest:
                ops.extend(_through_bottleneck_ops(model, block, conv, rest, src, self.sign, factor, reason))
        return ops


_PATHWAY_DOC = """
    Args:
        src: units of the layer feeding ``dst``'s block (``mixed3a`` units for a mixed3b ``dst``;
            see the module docstring) — units, a :class:`~circuits.units.Family`, a family key
            (``"mixed3a/curves"``) or a list. Stored as canonical strings.
        dst: units of one inception block: block units (``"mixed3b:379"``), branch units
            (``"mixed3b_5x5:59"``, ``"mixed3b_5x5_bottleneck:3"``), a Family or a family key.
        sign: ``"all"`` (default), ``"positive"`` or ``"negative"``: which weights of the
            pathway to act on. For a path through a 1x1 convolution (1x1 branch, pool branch,
            a bottleneck unit as ``dst``) the sign of the raw weight entries. Through a
            bottleneck (3x3/5x5 ``dst``) the sign of the *bottleneck's raw 1x1 weights* from
            ``src`` — unless the ``dst`` unit was linearised (:class:`Linearize`, earlier in
            the plan or in an earlier plan), in which case the sign of its *expanded weights*
            (each tap of the linearised kernel), which is the edit of Curve Circuits.
        via: restrict to the ``dst`` units of one branch: ``"1x1"``, ``"3x3"``, ``"5x5"``,
            ``"pool_reduce"`` (or ``"pool"``), optionally with the block (``"mixed3b_5x5"``).
            ``None`` (default): every path, i.e. every ``dst`` unit (each branch unit is
            reached from the block input by exactly one path).

    Construction, by the path that reaches a ``dst`` unit:

    - 1x1 branch, pool branch, bottleneck unit: the entries ``weight[dst, src]`` of that 1x1
      convolution (for the pool branch: of ``pool_reduce``, which reads the channel-wise 3x3
      max-pool of the input, so input channel ``s`` reaches it only through column ``s``).
    - 3x3/5x5 branch (through the bottleneck): a bottleneck unit ``b`` mixes many inputs
      before its ReLU, so editing ``b`` would change every unit that reads it, and zeroing
      the spatial weights would remove more than ``src``. Instead, every bottleneck unit ``b``
      that feeds a ``dst`` unit (non-zero spatial weights) and receives ``src`` (non-zero
      weights of the selected sign) is *duplicated*: the copy ``b'`` gets ``b``'s 1x1 weights
      with the selected ``src`` entries scaled (zero for a prune) and ``b``'s bias; the ``dst``
      rows of the spatial convolution read ``b'`` instead of ``b`` (their weights move from
      input channel ``b`` to ``b'``; zeros remain on ``b``); every other row keeps reading
      ``b`` (zero weights on ``b'``). The bottleneck gets wider and the spatial convolution
      reads more channels; the network stays a plain convolutional network, every unit other
      than ``dst`` is bitwise unchanged (:class:`circuits.model.WideConv2d`) and ``dst``
      equals the unedited branch fed with the ``src`` entries changed, for ``dst`` only.
      The record lists the added channels (:attr:`EditRecord.added_channels`).
    - linearised ``dst`` units: the ``src`` columns of their linear kernel.

    Raises:
        EditError: unparsable units (field ``src``/``dst``), an unknown ``sign`` or ``via``;
            at validation, ``dst`` across several blocks, ``src`` not in the block's input
            layer, no ``dst`` unit in the ``via`` branch, indices out of range.
"""


@register_edit
@dataclass(frozen=True)
class PrunePathway(_PathwayEdit):
    """Remove the connection from ``src`` units to ``dst`` units of the next layer — exactly.

    The edited network equals one in which only the ``dst`` units stop receiving the ``src``
    units' contribution (of the selected ``sign``); every other unit is bitwise unchanged.
    """

    src: Any
    dst: Any
    sign: str = "all"
    via: str | None = None

    def __post_init__(self) -> None:
        self._normalise()

    def _factor(self) -> float:
        return 0.0


@register_edit
@dataclass(frozen=True)
class Scale(_PathwayEdit):
    """Multiply the pathway from ``src`` units to ``dst`` units by ``factor`` — exactly.

    Same arguments and construction as :class:`PrunePathway` (``factor=0`` is a prune; the
    duplicated bottleneck units get the selected ``src`` weights times ``factor``), plus

    Args:
        factor: a finite number.
    """

    src: Any
    dst: Any
    factor: float = 1.0
    sign: str = "all"
    via: str | None = None

    def __post_init__(self) -> None:
        f = self.factor
        if not _finite_number(f):
            raise self.error(f"factor must be a finite number, got {f!r}", field="factor")
        object.__setattr__(self, "factor", float(f))
        self._normalise()

    def _factor(self) -> float:
        return self.factor


PrunePathway.__doc__ = (PrunePathway.__doc__ or "") + _PATHWAY_DOC
Scale.__doc__ = (Scale.__doc__ or "") + _PATHWAY_DOC


# ============================================================================ Linearize
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
            block, conv = _parse_branch(self.branch)
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="branch") from None
        object.__setattr__(self, "branch", f"{block}_{conv}")
        try:
            object.__setattr__(self, "units", _parse_refs(self.units))
        except (*_ERRORS, RecursionError) as e:
            raise self.error(_reason(e), field="units") from None

    def _locals(self, spec: ModelSpec) -> tuple[str, str, list[tuple[int, str]]]:
        block, conv = _parse_branch(self.branch)
        try:
            units = _resolve(self.units, spec)
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="units") from None
        lo, hi = spec.block(block).branch_offsets()[conv]
        out = []
        for u in units:
            t = _target(u, spec) if (u.layer in MIXED_LAYERS or _branch_conv(u.layer)) else None
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
        if not any("/" in r for r in self.units):
            return self
        return dataclasses.replace(self, units=tuple(str(u) for u in _resolve(self.units, model.spec)))

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
            _linear_rows_op(block, conv, chans, "Linearize"),
            WeightOp(_linear_key(block, conv), rows, _constant(weight), f"linearise {len(chans)} unit(s) of {self.branch}"),
            WeightOp(_linear_key(block, conv, "bias"), rows, _constant(bias), f"bias of {self.branch}'s linearised units"),
        ]


# ============================================================================ SetWeights / ReplaceUnits
def _nested(value: Any, field: str, edit: Edit) -> tuple[Tensor, Any]:
    """``(float64 tensor, nested tuples)`` of an array-like; EditError on ragged or non-finite input."""
    try:
        t = value.detach().to("cpu", torch.float64) if isinstance(value, Tensor) else torch.as_tensor(
            value, dtype=torch.float64)
    except (*_ERRORS, RuntimeError) as e:
        raise edit.error(f"not a numeric array ({_reason(e)})", field=field) from None
    if not bool(torch.isfinite(t).all()):
        raise edit.error("contains NaN or infinite values", field=field)
    if t.numel() and float(t.abs().max()) > torch.finfo(torch.float32).max:
        raise edit.error("has values beyond the float32 range of the weights", field=field)

    def tup(x):
        return tuple(tup(v) for v in x) if isinstance(x, list) else float(x)

    return t, tup(t.tolist())


def _listify(v: Any) -> Any:
    return [_listify(x) for x in v] if isinstance(v, (tuple, list)) else v


def _conv_in(spec: ModelSpec, block: str | None, conv: str) -> int:
    if block is None:
        return {"conv2d0": 3, "conv2d1": spec.conv_widths[0], "conv2d2": spec.conv_widths[1]}[conv]
    bs = spec.block(block)
    cin = spec.layer_width(input_layer(block))
    return {"3x3": bs.c3x3_bottleneck, "5x5": bs.c5x5_bottleneck}.get(conv, cin)


def _row_plan(u: Unit, spec: ModelSpec, reads: str) -> tuple[str | None, str, int, list[tuple[int, ...]]]:
    """``(block or None, conv, channel, accepted kernel shapes)`` of unit ``u`` for ``reads``."""
    if u.layer in ("conv2d0", "conv2d1", "conv2d2"):
        if reads == "input":
            raise ValueError(f"reads='input' is for units of inception blocks; {u} reads its input already")
        k = {"conv2d0": 7, "conv2d1": 1, "conv2d2": 3}[u.layer]
        return None, u.layer, u.index, [(_conv_in(spec, None, u.layer), k, k)]
    block, conv, ch = _target(u, spec)
    k = CONV_KERNEL[conv]
    if reads == "input" and conv in ("3x3", "5x5"):
        cin = _conv_in(spec, block, "1x1")
        return block, conv, ch, [(cin, k, k), (cin + 1, k, k)]
    if reads == "input" and conv == "pool_reduce":
        raise ValueError(f"{u} reads the 3x3 max-pool of the block input; reads='input' is not supported there")
    return block, conv, ch, [(_conv_in(spec, block, conv), k, k)]


def _describe_shapes(shapes: list[tuple[int, ...]]) -> str:
    return " or ".join(str(s) for s in shapes)


class _UnitWeightsEdit(Edit):
    """Shared machinery of :class:`SetWeights` and :class:`ReplaceUnits`."""

    reads: str

    def _pairs(self) -> list[tuple[str, Tensor, float | None]]:
        """``[(unit ref, kernel, bias or None), …]`` (unit refs may be family keys before resolution)."""
        raise NotImplementedError

    def _units_field(self) -> str:
        raise NotImplementedError

    def _kernel_field(self) -> str:
        raise NotImplementedError

    def _check_reads(self) -> None:
        if not isinstance(self.reads, str) or self.reads not in READS:
            raise self.error(f"{self.reads!r} is not a valid choice", field="reads", choices=READS)

    def _rows(self, spec: ModelSpec) -> list[tuple[Unit, str | None, str, int, Tensor, float | None]]:
        out = []
        for u, kernel, bias in self._resolved_pairs(spec):
            try:
                block, conv, ch, shapes = _row_plan(u, spec, self.reads)
            except (*_ERRORS,) as e:
                raise self.error(_reason(e), field=self._units_field()) from None
            if tuple(kernel.shape) not in shapes:
                what = f"{block}_{conv}" if block else conv
                src = f"the input of {block}" if (self.reads == "input" and block) else f"{what}'s input"
                raise self.error(
                    f"{u}: expected a kernel of shape {_describe_shapes(shapes)} ({src}, {shapes[0][0]} channels, "
                    f"{shapes[0][1]}x{shapes[0][2]}), got {tuple(kernel.shape)}", field=self._kernel_field())
            out.append((u, block, conv, ch, kernel, bias))
        return out

    def _resolved_pairs(self, spec: ModelSpec) -> list[tuple[Unit, Tensor, float | None]]:
        raise NotImplementedError

    def validate(self, spec: ModelSpec) -> None:
        self._rows(spec)

    def claims(self, spec: ModelSpec) -> list:
        out = []
        for u, block, conv, ch, _, _ in self._rows(spec):
            out.append((((f"{block}_{conv}" if block else conv), ch), str(u), self._units_field()))
        return out

    def compile(self, model: InceptionV1) -> list:
        ops: list = []
        added: dict[tuple[str, str], list[int]] = {}  # linear-path rows this edit adds, per (block, branch)
        for u, block, conv, ch, kernel, bias in self._rows(model.spec):
            if block is None:
                path = f"{conv}.conv"
                ops.extend(self._row_ops(path, ch, kernel, bias, str(u)))
                continue
            blk: InceptionBlock = model.block(block)
            lin = blk.linear_units(conv) + added.get((block, conv), []) if conv in ("3x3", "5x5") else []
            if self.reads == "conv" or conv not in ("3x3", "5x5"):
                if ch in lin:
                    raise self.error(f"{u} is computed by a linear path (Linearize); give its kernel with reads='input'",
                                     field="reads")
                ops.extend(self._row_ops(f"{block}.b{conv}.conv", ch, kernel, bias, str(u)))
                continue
            if ch in lin:
                row = lin.index(ch)
            else:
                row = len(lin)
                added.setdefault((block, conv), []).append(ch)
                ops.append(_linear_rows_op(block, conv, [ch], f"{self.type_name} {u}"))
                if bias is None:  # keep the unit's own bias
                    bias = float(blk.unit(conv).conv.bias[ch])
            ops.extend(self._row_ops(f"{block}.linear_paths.{conv}.conv", row, kernel, bias, str(u)))
        return ops

    @staticmethod
    def _row_ops(path: str, row: int, kernel: Tensor, bias: float | None, label: str) -> list[WeightOp]:
        def set_row(current: Tensor, kernel=kernel) -> Tensor:
            out = torch.zeros_like(current)  # channels past the kernel's (duplicates, ones-map) read nothing
            out[:kernel.shape[0]] = kernel.to(device=current.device, dtype=current.dtype)
            return out

        ops = [WeightOp(f"{path}.weight", (row,), set_row, f"set the weights of {label}")]
        if bias is not None:
            ops.append(WeightOp(f"{path}.bias", (row,), _constant(torch.tensor(float(bias))), f"set the bias of {label}"))
        return ops

    def to_dict(self) -> dict[str, Any]:
        return {k: _listify(v) for k, v in super().to_dict().items()}


@register_edit
@dataclass(frozen=True)
class SetWeights(_UnitWeightsEdit):
    """Give units a hand-built incoming kernel (and optionally bias).

    Args:
        dst: one unit or several (each gets the same kernel): ``"mixed3b:379"``,
            ``"mixed3b_5x5:59"``, ``"conv2d2:5"``, a Family …
        kernel: array-like ``(C, kh, kw)``. With ``reads="conv"`` (default) the weights of the
            unit's own convolution: ``C`` = that convolution's input width in the unedited
            architecture (e.g. ``(32, 5, 5)`` for a BVLC mixed3b 5x5 unit, reading the 5x5
            bottleneck; ``(256, 1, 1)`` for a 1x1 unit). With ``reads="input"`` (3x3/5x5 branch
            units) a kernel on the block input, ``(C_in, k, k)`` — or ``(C_in + 1, k, k)`` whose
            last channel acts on the zero-padded ones-map (see :class:`Linearize`) — realised
            as a :class:`circuits.model.LinearPath` row (no bottleneck, no bottleneck ReLU).
            Stored as nested tuples of floats (exact for float32 weights).
        bias: a number, or ``None`` to keep the unit's bias.
        reads: ``"conv"`` or ``"input"``.

    Input channels the unedited architecture does not have (bottleneck copies added by
    :class:`PrunePathway`) get zero weights: the unit reads the original channels only.

    Raises:
        EditError: a malformed kernel (field ``kernel``); at validation, a kernel of the wrong
            shape — the message names the unit, the expected and the given shape.
    """

    dst: Any
    kernel: Any
    bias: float | None = None
    reads: str = "conv"

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "dst", _parse_refs(self.dst))
        except (*_ERRORS, RecursionError) as e:
            raise self.error(_reason(e), field="dst") from None
        t, nested = _nested(self.kernel, "kernel", self)
        if t.dim() != 3:
            raise self.error(f"expected a kernel of shape (C, kh, kw), got {tuple(t.shape)}", field="kernel")
        object.__setattr__(self, "kernel", nested)
        if self.bias is not None:
            if not _finite_number(self.bias):
                raise self.error(f"bias must be a finite number or None, got {self.bias!r}", field="bias")
            object.__setattr__(self, "bias", float(self.bias))
        self._check_reads()

    def _units_field(self) -> str:
        return "dst"

    def _kernel_field(self) -> str:
        return "kernel"

    def _resolved_pairs(self, spec: ModelSpec) -> list[tuple[Unit, Tensor, float | None]]:
        try:
            units = _resolve(self.dst, spec)
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="dst") from None
        k = torch.tensor(self.kernel, dtype=torch.float64)
        return [(u, k, self.bias) for u in units]

    def prepare(self, model: InceptionV1, reference: Tensor | None = None) -> Edit:
        if not any("/" in r for r in self.dst):
            return self
        return dataclasses.replace(self, dst=tuple(str(u) for u in _resolve(self.dst, model.spec)))


@register_edit
@dataclass(frozen=True)
class ReplaceUnits(_UnitWeightsEdit):
    """Replace units' incoming weights by given ones (e.g. transplanted from another model).

    Args:
        units: the units (as :class:`SetWeights` ``dst``; family keys are not accepted here,
            since weights are matched to units by position).
        weights: one kernel per unit, in order (a sequence of arrays, or one array
            ``(n, C, kh, kw)`` when all units share a shape); shapes as :class:`SetWeights`.
        biases: one number per unit, or ``None`` to keep the biases.
        reads: ``"conv"`` or ``"input"`` (see :class:`SetWeights`).

    :meth:`from_model` builds one from units of another :class:`InceptionV1`.

    Raises:
        EditError: a malformed or mis-counted ``weights``/``biases``; at validation, a kernel
            of the wrong shape (field ``weights``, naming the unit, expected and given shape).
    """

    units: Any
    weights: Any
    biases: Any = None
    reads: str = "conv"

    def __post_init__(self) -> None:
        try:
            units = _parse_refs(self.units)
            if any("/" in u for u in units):
                raise ValueError("family keys cannot be matched to weights; list the units (or pass a Family)")
        except (*_ERRORS, RecursionError) as e:
            raise self.error(_reason(e), field="units") from None
        object.__setattr__(self, "units", units)
        w = self.weights
        if isinstance(w, Tensor) or (not isinstance(w, (list, tuple)) and hasattr(w, "shape")):
            t, nested = _nested(w, "weights", self)
            if t.dim() != 4:
                raise self.error(f"expected weights of shape (n, C, kh, kw), got {tuple(t.shape)}", field="weights")
            kernels = nested
        elif isinstance(w, (list, tuple)):
            kernels = []
            for i, k in enumerate(w):
                t, nested = _nested(k, "weights", self)
                if t.dim() != 3:
                    raise self.error(f"weights[{i}]: expected a kernel (C, kh, kw), got shape {tuple(t.shape)}",
                                     field="weights")
                kernels.append(nested)
            kernels = tuple(kernels)
        else:
            raise self.error(f"expected one kernel per unit, got {type(w).__name__}", field="weights")
        if len(kernels) != len(units):
            raise self.error(f"{len(kernels)} kernel(s) for {len(units)} unit(s)", field="weights")
        object.__setattr__(self, "weights", kernels)
        if self.biases is not None:
            t, nested = _nested(self.biases, "biases", self)
            if t.dim() != 1 or len(nested) != len(units):
                raise self.error(f"expected {len(units)} biases, got shape {tuple(t.shape)}", field="biases")
            object.__setattr__(self, "biases", nested)
        self._check_reads()

    def _units_field(self) -> str:
        return "units"

    def _kernel_field(self) -> str:
        return "weights"

    def _resolved_pairs(self, spec: ModelSpec) -> list[tuple[Unit, Tensor, float | None]]:
        try:
            units = [Unit.parse(u).validate(spec) for u in self.units]
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="units") from None
        biases = self.biases if self.biases is not None else [None] * len(units)
        return [(u, torch.tensor(k, dtype=torch.float64), b) for u, k, b in zip(units, self.weights, biases)]

    @classmethod
    def from_model(cls, model: InceptionV1, units: Any, reads: str = "conv") -> ReplaceUnits:
        """The incoming weights and biases of ``units`` in ``model`` (another checkpoint, an edited copy …).

        ``reads="conv"``: the rows of each unit's own convolution (only the channels of the
        unedited architecture; a unit that reads added bottleneck copies raises, since its
        weights do not fit the target). ``reads="input"`` for 3x3/5x5 branch units: the exact
        linearised kernel on the block input (:func:`linear_kernel`, ``(C_in + 1, k, k)``).
        """
        if reads not in READS:
            raise EditError(f"{reads!r} is not a valid choice", edit_type=cls.__name__, field="reads", choices=READS)
        spec = model.spec
        try:
            units = [Unit.parse(r).validate(spec) for r in _parse_refs(units)]
        except (*_ERRORS,) as e:
            raise EditError(_reason(e), edit_type=cls.__name__, field="units") from None
        kernels, biases = [], []
        for u in units:
            block, conv, ch, shapes = _row_plan(u, spec, reads)
            if block is not None and reads == "input" and conv in ("3x3", "5x5"):
                w, b = linear_kernel(model, block, conv, [ch])
                kernels.append(w[0])
                biases.append(float(b[0]))
                continue
            c = model.conv_unit(f"{block}_{conv}" if block else conv).conv
            row = c.weight.detach()[ch].double()
            if block is not None and conv in ("3x3", "5x5") and ch in model.block(block).linear_units(conv):
                raise ValueError(f"{u} is computed by a linear path in that model; use reads='input'")
            width = shapes[0][0]
            if bool(row[width:].any()):
                raise ValueError(f"{u} reads channels added by a structural edit in that model; use reads='input'")
            kernels.append(row[:width])
            biases.append(float(c.bias.detach()[ch]))
        return cls(tuple(str(u) for u in units), kernels, biases, reads=reads)


# ============================================================================ save / load
def save_model(model: InceptionV1, path: str | Path) -> Path:
    """Write an (edited) model as safetensors, with what is needed to rebuild it in the metadata.

    Metadata: ``format`` (:data:`SAVE_FORMAT`), ``checkpoint`` (spec name), ``structure``
    (JSON of :meth:`InceptionV1.structure`: widened convolutions and linear paths, ``{module
    path: weight shape}``), ``edit_plan`` and ``edit_history`` (JSON of the plans applied,
    ``null``/``[]`` for an unedited model) and ``digest`` (:func:`circuits.weights.state_digest`).
    Written atomically. Returns the path.
    """
    from safetensors.torch import save_file

    from circuits.weights import state_digest

    if not isinstance(model, InceptionV1):
        raise TypeError(f"save_model needs an InceptionV1, got {type(model).__name__}")
    path = Path(path).expanduser()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": SAVE_FORMAT,
        "checkpoint": model.spec.name,
        "structure": json.dumps(model.structure()),
        "edit_plan": json.dumps(model.provenance.edit_plan),
        "edit_history": json.dumps(list(model.provenance.edit_history)),
        "digest": state_digest(state),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> InceptionV1:
    """Rebuild a model written by :func:`save_model`: architecture (widened convolutions, linear
    paths) from the metadata, then the weights; ``edit_plan``/``edit_history`` restored.
    (The same loader serves ``circuits.load_model(checkpoint, weights=path)`` and every
    ``--weights`` option.)

    Returns:
        The model in eval mode, ``requires_grad`` off; outputs are bitwise those of the saved model.

    Raises:
        ValueError: not such a file, or tensors that do not match the recorded structure or
            the digest.
    """
    from safetensors import safe_open

    from circuits.loading import load_model as _load
    from circuits.weights import WeightsError

    path = Path(path).expanduser()
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from e
    if meta.get("format") != SAVE_FORMAT or "checkpoint" not in meta:
        raise ValueError(f"{path}: not an edited model written by edits.save_model (format {meta.get('format')!r})")
    try:
        return _load(meta["checkpoint"], weights=path, device=device)
    except WeightsError as e:
        raise ValueError(str(e)) from None


__all__ = [
    "Linearize", "PrunePathway", "READS", "ReplaceUnits", "SAVE_FORMAT", "SIGNS", "Scale", "SetWeights",
    "in_branch", "input_layer", "linear_kernel", "load_model", "save_model",
]

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
- (:mod:`edits.linearize`) / (:mod:`edits.unit_weights`): these two live in their own modules;
  :mod:`edits.io` saves and loads edited (possibly widened) models.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from circuits.model import InceptionV1
from circuits.names import (
    BOTTLENECK_BRANCHES,
    BRANCHES,
    MIXED_LAYERS,
    bottleneck,
    conv_name,
    hook_name,
    output_conv,
    split_conv_activation,
)
from circuits.spec import ModelSpec, get_spec
from circuits.units import Unit, canonical_layer

from .base import (
    _ERRORS,
    Edit,
    WeightOp,
    _constant,
    _finite_number,
    _reason,
    mentions_families,
    normalise_refs,
    register_edit,
    resolve_refs,
)
from .blocks import branch_key, channel_label, conv_target, input_layer, linear_key, parse_branch, widen_op
from .io import SAVE_FORMAT, load_model, save_model  # noqa: F401  (importable from edits.pathways before the split)
from .linearize import Linearize, linear_kernel  # noqa: F401  (idem)
from .unit_weights import READS, ReplaceUnits, SetWeights  # noqa: F401  (idem)

#: Which entries of a pathway :class:`PrunePathway` and :class:`Scale` act on.
SIGNS: tuple[str, ...] = ("all", "positive", "negative")
#: Branch names ``via`` accepts (``"pool"`` is short for ``"pool_reduce"``).
VIA_BRANCHES: tuple[str, ...] = ("1x1", "3x3", "5x5", "pool_reduce", "pool")


def _src_channels(units: Sequence[Unit], block: str, spec: ModelSpec) -> list[int]:
    layer = input_layer(block)
    out = []
    for u in units:
        if u.layer == layer:
            out.append(u.index)
            continue
        bc = split_conv_activation(u.layer)
        if bc and bc[0] == layer and bc[1] in BRANCHES and output_conv(bc[1]) == bc[1]:
            out.append(spec.block(layer).branch_offsets()[bc[1]][0] + u.index)
            continue
        raise ValueError(f"{u} is not a channel of {layer}, the input of {block} (where the dst units are)")
    return list(dict.fromkeys(out))


def in_branch(units: Any, branch: str, spec: ModelSpec | str) -> list[Unit]:
    """The units (anything :class:`PrunePathway` accepts) that a branch (``"mixed3b_5x5"``) writes.

    E.g. ``in_branch(fam["mixed3b/curves"], "mixed3b_5x5", model.spec)`` for :class:`Linearize`.
    """
    spec = get_spec(spec)
    block, conv = parse_branch(branch)
    keep = []
    for u in resolve_refs(normalise_refs(units), spec):
        b, c, _ = conv_target(u, spec)
        if b == block and c == conv:
            keep.append(u)
    return keep



def _parse_via(via: Any) -> tuple[str, str]:
    """``"5x5"`` → ``("", "5x5")``; ``"mixed3b_pool"``/``"3b_pool"`` → ``("mixed3b", "pool_reduce")``."""
    if not isinstance(via, str):
        raise TypeError(f"via must be a branch name such as '5x5' or 'mixed3b_5x5', got {via!r}")
    v = via.strip()
    block, br = "", v
    if v not in VIA_BRANCHES:  # "<block>_<branch>": the block's name has no underscore
        prefix, _, br = v.partition("_")
        try:
            block = canonical_layer(prefix)
        except KeyError:
            raise ValueError(f"{via!r} is not a branch") from None
    br = "pool_reduce" if br == "pool" else br
    if br not in BRANCHES or block not in ("", *MIXED_LAYERS):
        raise ValueError(f"{via!r} is not a branch")
    return block, br



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


# ============================================================================ pathways
def _through_bottleneck_ops(
    model: InceptionV1, block: str, branch: str, rows: list[int], src: list[int], sign: str, factor: float, reason: str
) -> list:
    """Exact pathway edit for spatial rows ``rows`` of a bottleneck branch (see :class:`PrunePathway`)."""
    blk = model.block(block)
    bname = bottleneck(branch)
    bott, spat = blk.unit(bname).conv, blk.unit(branch).conv
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
        widen_op(block, branch, width, width + n, reason),
        WeightOp(branch_key(block, bname), (slice(width, width + n),),
                 _constant(copies[:, :, None, None]),
                 f"{hook_name(block, bname)}[{width}:{width + n}] = copies of {js} ({reason})"),
        WeightOp(branch_key(block, bname, "bias"), (slice(width, width + n),),
                 _constant(bott.bias.detach()[js]), f"{hook_name(block, bname)} bias of the copies"),
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

        ops.append(WeightOp(branch_key(block, branch), (d,), move,
                            f"{channel_label(block, branch, d, model.spec)} reads the copies ({reason})"))
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
                object.__setattr__(self, f, normalise_refs(getattr(self, f)))
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
            object.__setattr__(self, "via", hook_name(block, br) if block else br)

    # -- resolution against a spec
    def _resolved(self, spec: ModelSpec) -> tuple[str, list[int], list[tuple[str, int, str]]]:
        """``(block, src channels, [(conv, channel, label), …])`` with ``via`` applied."""
        try:
            dst = resolve_refs(self.dst, spec)
            targets = [conv_target(u, spec) for u in dst]
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="dst") from None
        blocks = list(dict.fromkeys(b for b, _, _ in targets))
        if len(blocks) != 1:
            raise self.error(f"dst units must be in one inception block; got units of {', '.join(blocks)}", field="dst")
        block = blocks[0]
        try:
            src = _src_channels(resolve_refs(self.src, spec), block, spec)
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
            out = [t for t in out if conv_name(t[0]).branch == vbranch]
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
        return [((hook_name(block, conv), ch, s), f"{layer}:{s} → {label}", "dst") for conv, ch, label in targets for s in src]

    def prepare(self, model: InceptionV1, reference: Tensor | None = None) -> Edit:
        """Family keys resolved to units (the applied plan then needs no catalog)."""
        if not mentions_families((*self.src, *self.dst)):
            return self
        spec = model.spec
        return dataclasses.replace(self, src=tuple(str(u) for u in resolve_refs(self.src, spec)),
                                   dst=tuple(str(u) for u in resolve_refs(self.dst, spec)))

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
            if conv not in BOTTLENECK_BRANCHES:  # reads the block input (or its pool) through a 1x1: raw weights
                for ch, label in items:
                    ops.append(WeightOp(branch_key(block, conv), (ch,), transform, f"{label}: {reason}"))
                continue
            lin = {u: r for r, u in enumerate(blk.linear_units(conv))}
            for ch, label in items:
                if ch in lin:  # linearised: the expanded kernel is explicit
                    ops.append(WeightOp(linear_key(block, conv), (lin[ch],), transform,
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


#: Largest ``|factor|`` of :class:`Scale` (float32 weights times it must stay finite, and so must
#: the activations they produce).
MAX_SCALE_FACTOR = 1e6


@register_edit
@dataclass(frozen=True)
class Scale(_PathwayEdit):
    """Multiply the pathway from ``src`` units to ``dst`` units by ``factor`` — exactly.

    Same arguments and construction as :class:`PrunePathway` (``factor=0`` is a prune; the
    duplicated bottleneck units get the selected ``src`` weights times ``factor``), plus

    Args:
        factor: a finite number with ``|factor| ≤`` :data:`MAX_SCALE_FACTOR` (10⁶): larger
            factors overflow float32 activations downstream (``1e300`` would write ``inf`` weights).
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
        if abs(float(f)) > MAX_SCALE_FACTOR:
            raise self.error(f"factor {f!r} is beyond ±{MAX_SCALE_FACTOR:g} (it would overflow float32 weights "
                             "or activations)", field="factor")
        object.__setattr__(self, "factor", float(f))
        self._normalise()

    def _factor(self) -> float:
        return self.factor


PrunePathway.__doc__ = (PrunePathway.__doc__ or "") + _PATHWAY_DOC
Scale.__doc__ = (Scale.__doc__ or "") + _PATHWAY_DOC

__all__ = [
    "Linearize", "PrunePathway", "READS", "ReplaceUnits", "SAVE_FORMAT", "SIGNS", "Scale", "SetWeights",
    "in_branch", "input_layer", "linear_kernel", "load_model", "save_model",
]

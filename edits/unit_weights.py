"""Hand-built or transplanted incoming weights: :class:`SetWeights` and :class:`ReplaceUnits`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from circuits.model import InceptionBlock, InceptionV1
from circuits.names import (
    BOTTLENECK_BRANCHES,
    CONV_KERNEL,
    CONV_LAYERS,
    bottleneck,
    hook_name,
    linear_path_path,
    module_path,
)
from circuits.spec import ModelSpec
from circuits.units import Unit

from .base import (
    _ERRORS,
    Edit,
    EditError,
    WeightOp,
    _constant,
    _finite_number,
    _reason,
    mentions_families,
    normalise_refs,
    register_edit,
    resolve_refs,
)
from .blocks import conv_target, input_layer, linear_rows_op
from .linearize import linear_kernel

#: What a kernel given to :class:`SetWeights` / :class:`ReplaceUnits` is applied to.
READS: tuple[str, ...] = ("conv", "input")


def _unreadable(value: Any) -> str | None:
    """Why an array-like, or a nested sequence of them, would silently change as weights: complex values (the
    imaginary part dropped) or a numpy masked array's masked entries (their hidden values used); None if neither.
    Walks nested lists/tuples at any depth (torch accepts nestings deeper than 64), each list once (a list that
    contains itself is left to torch, which refuses it)."""
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        if isinstance(v, np.ma.MaskedArray) and np.ma.is_masked(v):
            return "a masked array with masked entries (their values would be used); fill them first"
        dtype = getattr(v, "dtype", None)  # a torch or numpy dtype (arrays and numpy scalars)
        if dtype is not None:
            if dtype.is_complex if isinstance(dtype, torch.dtype) else str(dtype).startswith("complex"):
                return f"complex values ({dtype}) cannot be weights"
        elif isinstance(v, complex):
            return "complex values (complex) cannot be weights"
        elif isinstance(v, (list, tuple)) and id(v) not in seen:
            seen.add(id(v))
            stack.extend(v)
    return None


def _nested(value: Any, field: str, edit: Edit) -> tuple[Tensor, Any]:
    """``(float64 tensor, nested tuples)`` of an array-like; EditError on ragged, complex, masked or non-finite
    input."""
    why = _unreadable(value)  # also inside lists: torch would take numpy complex scalars' real parts silently
    if why:
        raise edit.error(why, field=field)
    if isinstance(value, Tensor) and value.layout != torch.strided:
        value = value.to_dense()
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
    return bs.conv_width(bottleneck(conv)) if conv in BOTTLENECK_BRANCHES else cin


def _row_plan(u: Unit, spec: ModelSpec, reads: str) -> tuple[str | None, str, int, list[tuple[int, ...]]]:
    """``(block or None, conv, channel, accepted kernel shapes)`` of unit ``u`` for ``reads``."""
    if u.layer in CONV_LAYERS:
        if reads == "input":
            raise ValueError(f"reads='input' is for units of inception blocks; {u} reads its input already")
        k = {"conv2d0": 7, "conv2d1": 1, "conv2d2": 3}[u.layer]
        return None, u.layer, u.index, [(_conv_in(spec, None, u.layer), k, k)]
    block, conv, ch = conv_target(u, spec)
    k = CONV_KERNEL[conv]
    if reads == "input" and conv in BOTTLENECK_BRANCHES:
        cin = spec.layer_width(input_layer(block))
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
                what = hook_name(block, conv) if block else conv
                src = f"the input of {block}" if (self.reads == "input" and block) else f"{what}'s input"
                raise self.error(
                    f"{u}: expected a kernel of shape {_describe_shapes(shapes)} ({src}, {shapes[0][0]} channels, "
                    f"{'x'.join(map(str, shapes[0][1:]))}), got {tuple(kernel.shape)}", field=self._kernel_field())
            out.append((u, block, conv, ch, kernel, bias))
        return out

    def _resolved_pairs(self, spec: ModelSpec) -> list[tuple[Unit, Tensor, float | None]]:
        raise NotImplementedError

    def validate(self, spec: ModelSpec) -> None:
        self._rows(spec)

    def claims(self, spec: ModelSpec) -> list:
        out = []
        for u, block, conv, ch, _, _ in self._rows(spec):
            out.append((((hook_name(block, conv) if block else conv), ch), str(u), self._units_field()))
        return out

    def compile(self, model: InceptionV1) -> list:
        ops: list = []
        added: dict[tuple[str, str], list[int]] = {}  # linear-path rows this edit adds, per (block, branch)
        for u, block, conv, ch, kernel, bias in self._rows(model.spec):
            if block is None:
                path = module_path(conv)
                ops.extend(self._row_ops(path, ch, kernel, bias, str(u)))
                continue
            blk: InceptionBlock = model.block(block)
            lin = blk.linear_units(conv) + added.get((block, conv), []) if conv in BOTTLENECK_BRANCHES else []
            if self.reads == "conv" or conv not in BOTTLENECK_BRANCHES:
                if ch in lin:
                    raise self.error(f"{u} is computed by a linear path (Linearize); give its kernel with reads='input'",
                                     field="reads")
                ops.extend(self._row_ops(module_path(block, conv), ch, kernel, bias, str(u)))
                continue
            if ch in lin:
                row = lin.index(ch)
            else:
                row = len(lin)
                added.setdefault((block, conv), []).append(ch)
                ops.append(linear_rows_op(block, conv, [ch], f"{self.type_name} {u}"))
                if bias is None:  # keep the unit's own bias
                    bias = float(blk.unit(conv).conv.bias[ch].detach())
            ops.extend(self._row_ops(linear_path_path(block, conv), row, kernel, bias, str(u)))
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
            object.__setattr__(self, "dst", normalise_refs(self.dst))
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
            units = resolve_refs(self.dst, spec)
        except (*_ERRORS,) as e:
            raise self.error(_reason(e), field="dst") from None
        k = torch.tensor(self.kernel, dtype=torch.float64)
        return [(u, k, self.bias) for u in units]

    def prepare(self, model: InceptionV1, reference: Tensor | None = None) -> Edit:
        if not mentions_families(self.dst):
            return self
        return dataclasses.replace(self, dst=tuple(str(u) for u in resolve_refs(self.dst, model.spec)))


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
            units = normalise_refs(self.units)
            if mentions_families(units):
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
            units = [Unit.parse(r).validate(spec) for r in normalise_refs(units)]
        except (*_ERRORS,) as e:
            raise EditError(_reason(e), edit_type=cls.__name__, field="units") from None
        kernels, biases = [], []
        for u in units:
            block, conv, ch, shapes = _row_plan(u, spec, reads)
            if block is not None and reads == "input" and conv in BOTTLENECK_BRANCHES:
                w, b = linear_kernel(model, block, conv, [ch])
                kernels.append(w[0].detach())
                biases.append(float(b[0].detach()))
                continue
            c = model.conv_unit(hook_name(block, conv) if block else conv).conv
            row = c.weight.detach()[ch].double()
            if block is not None and conv in BOTTLENECK_BRANCHES and ch in model.block(block).linear_units(conv):
                raise ValueError(f"{u} is computed by a linear path in that model; use reads='input'")
            width = shapes[0][0]
            if bool(row[width:].any()):
                raise ValueError(f"{u} reads channels added by a structural edit in that model; use reads='input'")
            kernels.append(row[:width])
            biases.append(float(c.bias.detach()[ch]))
        return cls(tuple(str(u) for u in units), kernels, biases, reads=reads)


__all__ = ["READS", "ReplaceUnits", "SetWeights"]

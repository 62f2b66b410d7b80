"""The edit framework: :class:`Edit` and its registry, the compiled operations, errors and shared helpers.

Every edit kind (:mod:`edits.ablate`, :mod:`edits.pathways`, :mod:`edits.linearize`,
:mod:`edits.unit_weights`) is a frozen dataclass subclassing :class:`Edit`, registered with
:func:`register_edit` under its class name so that plans (:mod:`edits.plan`) can be read back.
An edit compiles to :class:`WeightOp` items ("at state-dict key ``k``, index ``i``, replace the
slice by ``f(slice)``") and :class:`StructOp` items (channels or modules added);
:meth:`edits.EditPlan.apply` runs them on a copy of the model. Problems with an edit are
:class:`EditError` (a ``ValueError``) raised before any weight is touched.

Units are addressed through :mod:`circuits.units` (the one parser of ``"3b:379"``,
``"mixed3b/curves"``, Families and lists): :func:`normalise_refs` turns a units field into
canonical strings without a checkpoint, :func:`resolve_refs` into range-checked units.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from circuits.model import InceptionV1
from circuits.names import hook_name, output_conv
from circuits.spec import MIXED_LAYERS, ModelSpec
from circuits.units import Family, FamilyKey, Unit, parse_refs, resolve_units

from .interventions import ActivationFn

#: Registry of edit types by their serialised ``type`` name (filled by :func:`register_edit`).
EDIT_TYPES: dict[str, type[Edit]] = {}

_E = TypeVar("_E", bound="type[Edit]")

#: Exceptions that, raised while reading or checking an edit, mean "the spec is malformed".
_SPEC_ERRORS = (KeyError, ValueError, TypeError, IndexError, OverflowError, AttributeError)
#: The same, for lookups against a spec (no attribute errors expected there).
_ERRORS = (KeyError, ValueError, TypeError, IndexError, OverflowError)

# ---------------------------------------------------------------------------- errors
class EditError(ValueError):
    """An invalid edit or plan: names the edit (index in the plan, type), the field and the choices.

    Every problem with a plan document or an edit spec — wrong types, missing or unknown fields,
    unknown layers/units/families, indices out of range, conflicting edits, missing reference
    images — is raised as an ``EditError`` (a ``ValueError``) before any weight is touched.

    Attributes:
        detail: what is wrong, without the location prefix.
        index: position of the edit in the plan (``None`` when raised outside a plan).
        edit_type: the edit's type name (``"Ablate"``), if known.
        field: the offending field (``"units"``, ``"mode"``, …), if any.
        choices: the valid choices for that field, if they form a short list.
    """

    def __init__(
        self,
        detail: str,
        *,
        index: int | None = None,
        edit_type: str | None = None,
        field: str | None = None,
        choices: Sequence[Any] | None = None,
    ):
        self.detail = detail
        self.index = index
        self.edit_type = edit_type
        self.field = field
        self.choices = list(choices) if choices is not None else None
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"edits[{self.index}]")
        if self.edit_type:
            where.append(f"({self.edit_type})" if self.index is not None else self.edit_type)
        if self.field is not None:
            where.append(f"field {self.field!r}")
        msg = (" ".join(where) + ": " if where else "") + self.detail
        if self.choices is not None:
            msg += f"; valid choices: {self.choices!r}"
        return msg

    def at(self, index: int, edit_type: str | None = None) -> EditError:
        """The same error, located at ``edits[index]`` of a plan."""
        return EditError(
            self.detail, index=index, edit_type=self.edit_type or edit_type, field=self.field, choices=self.choices
        )


class EditWarning(UserWarning):
    """An edit that applied but changed nothing (no weight value, no intervention)."""


def _reason(e: BaseException) -> str:
    """The message of an exception (``KeyError`` wraps its message in quotes otherwise)."""
    return str(e.args[0]) if e.args else type(e).__name__



# ---------------------------------------------------------------------------- compiled form
@dataclass(frozen=True)
class WeightOp:
    """One compiled weight rewrite: ``tensor[index] = transform(tensor[index])``.

    Attributes:
        key: state-dict key of the parameter or buffer (``"mixed3b.b5x5.conv.weight"``).
        index: a basic-indexing tuple (ints and slices) selecting the slice to rewrite.
        transform: maps the current slice to its new value (same shape and dtype).
        note: human-readable description, e.g. ``"zero mixed3b:379"``.
    """

    key: str
    index: tuple
    transform: Callable[[Tensor], Tensor]
    note: str = ""


@dataclass(frozen=True, eq=False)
class SliceBackup:
    """Values of ``tensor[index]`` before (``before``) and after (``after``) one :class:`WeightOp`."""

    key: str
    index: tuple
    before: Tensor
    after: Tensor


@dataclass(frozen=True, eq=False)
class StructOp:
    """One compiled structural change of the copy: channels or modules added (see :mod:`edits.pathways`).

    An edit's :meth:`Edit.compile` list may contain these between its :class:`WeightOp` items;
    :meth:`EditPlan.apply` runs them in order. ``forward(model)`` makes the change with zeros
    in every new entry; the weight ops after it fill them in. ``revert(model)`` undoes it on a model whose later weight ops have
    been undone, raising :class:`EditError` when the model does not carry the change (it checks
    that the entries it removes are zero again). ``summary`` describes it for
    :attr:`EditRecord.structure`, e.g. ``{"op": "add_channels", "conv": "mixed3b_5x5_bottleneck",
    "channels": 32}``. The record keeps the op in :attr:`EditRecord.inverse`, in write order.
    """

    forward: Callable[[InceptionV1], None]
    revert: Callable[[InceptionV1], None]
    summary: Mapping[str, Any]
    note: str = ""


def _zero_extended(orig: Tensor, shape: torch.Size) -> Tensor:
    """``orig`` padded with zeros at the end of each dimension up to ``shape`` (structural edits only grow)."""
    if orig.shape == shape:
        return orig
    out = orig.new_zeros(shape)
    out[tuple(slice(0, n) for n in orig.shape)] = orig
    return out


def producing_conv(unit: Unit, spec: ModelSpec) -> tuple[str, int]:
    """The convolution whose output channel *is* ``unit``, as ``(activation name, channel)``.

    ``conv2d0..2`` are their own convolutions. Channel ``c`` of a mixed layer is written by the
    last convolution of the branch whose range (:meth:`BlockSpec.branch_offsets`) contains
    ``c``, at the branch-local index: for BVLC ``mixed3b:379`` → ``("mixed3b_5x5", 59)``.
    Branch activations (``mixed3b_5x5_bottleneck:3``) are their own convolutions.

    Raises:
        IndexError: the unit is out of range for ``spec``.
    """
    unit.validate(spec)
    if unit.layer in MIXED_LAYERS:
        branch = spec.branch_of(unit.layer, unit.index)
        start = spec.block(unit.layer).branch_offsets()[branch][0]
        return hook_name(unit.layer, output_conv(branch)), unit.index - start
    return unit.layer, unit.index


def _module_path(model: InceptionV1, module: torch.nn.Module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise KeyError(f"module {module!r} is not part of the model")


def _state_tensor(model: torch.nn.Module, key: str) -> Tensor:
    """The parameter or buffer at state-dict ``key`` (the live tensor, not a copy)."""
    try:
        return model.get_parameter(key)
    except AttributeError:
        pass
    try:
        return model.get_buffer(key)
    except AttributeError:
        raise KeyError(f"model has no parameter or buffer {key!r}") from None


def _value_changed(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise: did the value change (NaN → NaN counts as unchanged)."""
    same = (a == b) | (torch.isnan(a) & torch.isnan(b)) if a.is_floating_point() else (a == b)
    return ~same


# ---------------------------------------------------------------------------- edits
#: What :meth:`Edit.claims` returns: ``(target, label)`` or ``(target, label, field)``, where
#: ``target`` is ``(conv activation name, out channel)`` — the whole row: weights and bias —
#: or ``(conv activation name, out channel, in channel)`` — only ``weight[out, in]``.
Claim = tuple


class Edit:
    """Base class of every edit. Subclasses are frozen dataclasses registered with :func:`register_edit`.

    A subclass provides:

    - normalisation and spec-free checks in ``__post_init__`` (raise :class:`EditError`);
    - :meth:`validate` — checks against a :class:`ModelSpec` (ranges, widths, shapes);
    - :meth:`claims` — the weight slices it owns, so a plan can reject conflicting edits;
    - :meth:`prepare` — optional: resolve measured or looked-up values on the model;
    - :meth:`compile` — the :class:`WeightOp` list that realises it on a model;
    - :meth:`interventions` — optional: activation hooks to install on the copy.

    Serialisation (:meth:`to_dict` / :meth:`from_dict`) is generic over the dataclass fields;
    tuples are written as lists.
    """

    type_name: ClassVar[str] = "Edit"

    def validate(self, spec: ModelSpec) -> None:
        """Check the edit against ``spec``. Raises :class:`EditError`."""

    def claims(self, spec: ModelSpec) -> list[Claim]:
        """What this edit writes, so that :meth:`EditPlan.validate` can reject conflicts.

        A list of ``(target, label)`` or ``(target, label, field)``: ``target`` is
        ``(conv, out)`` — the whole output row ``weight[out]`` and ``bias[out]`` of convolution
        ``conv`` (an activation name, as :func:`producing_conv` returns), i.e. the unit itself —
        or ``(conv, out, in)`` — only the weights ``weight[out, in]`` from one input channel.
        Two whole-row claims on the same row conflict, a whole-row claim conflicts with any
        claim in its row, and two ``(conv, out, in)`` claims conflict when equal. ``label`` names
        the unit in messages; ``field`` (default ``"units"``) is the field reported. Default: none.
        """
        return []

    def prepare(self, model: InceptionV1, reference: Tensor | None = None) -> Edit:
        """This edit with everything it measures or looks up resolved (default: ``self``).

        Called by :meth:`EditPlan.apply` on the copy (after the plan's earlier edits), just
        before :meth:`compile`; the result is what the applied plan stores.
        """
        return self

    def needs_reference(self) -> str | None:
        """The field whose value must be measured on reference images at apply time, or ``None``."""
        return None

    def compile(self, model: InceptionV1) -> list[WeightOp]:
        """The weight rewrites that realise this edit on ``model`` (which has been validated)."""
        raise NotImplementedError

    def interventions(self, model: InceptionV1) -> list[tuple[str, ActivationFn, str]]:
        """Activation interventions to install on the copy: ``[(hook point, fn, note), …]``. Default: none."""
        return []

    def error(self, detail: str, field: str | None = None, choices: Sequence[Any] | None = None) -> EditError:
        return EditError(detail, edit_type=self.type_name, field=field, choices=choices)

    # -- serialisation
    def to_dict(self) -> dict[str, Any]:
        """``{"type": <name>, <field>: <value>, …}`` with JSON-compatible values."""
        out: dict[str, Any] = {"type": self.type_name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Edit:
        """Build the edit from :meth:`to_dict` output (``type`` key optional here).

        Raises:
            EditError: an unknown or a missing field, naming the valid fields.
        """
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        kwargs = {k: v for k, v in d.items() if k != "type"}
        for k in kwargs:
            if k not in names:
                raise EditError(f"unknown field {k!r}", edit_type=cls.type_name, field=str(k), choices=names)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and f.name not in kwargs:
                raise EditError("missing required field", edit_type=cls.type_name, field=f.name)
        return cls(**kwargs)


def register_edit(cls: _E) -> _E:
    """Class decorator: register an edit type under its class name for (de)serialisation."""
    cls.type_name = cls.__name__
    EDIT_TYPES[cls.__name__] = cls
    return cls


#: Ablation modes :class:`Ablate` supports.
#:
#: - ``"zero"`` — compiled to weights: the producing convolution's output channel gets zero

# ---------------------------------------------------------------------------- shared helpers
def _finite_number(v: Any) -> bool:
    """A real number (not a bool; numpy scalars such as ``np.float32`` count) that converts to a finite float
    (huge ints do not)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _constant(value: Tensor) -> Callable[[Tensor], Tensor]:
    """A :attr:`WeightOp.transform` that writes ``value`` (reshaped to the slice, on its device and dtype)."""
    def transform(current: Tensor) -> Tensor:
        return value.to(device=current.device, dtype=current.dtype).reshape(current.shape).clone()

    return transform


def _filler(value: float) -> Callable[[Tensor], Tensor]:
    """A :attr:`WeightOp.transform` that fills the slice with ``value``."""
    def fill(t: Tensor) -> Tensor:
        return torch.full_like(t, value)

    return fill


def _check_reference(reference: Any) -> None:
    """Raise :class:`EditError` (field ``reference``) unless ``reference`` is ``(N ≥ 1, 3, H, W)`` float images."""
    if not (
        isinstance(reference, Tensor) and reference.dim() == 4 and reference.shape[1] == 3
        and reference.is_floating_point() and reference.shape[0] >= 1
    ):
        got = f"shape {tuple(reference.shape)} dtype {reference.dtype}" if isinstance(reference, Tensor) else repr(
            type(reference).__name__)
        raise EditError(f"reference images must be a float tensor (N ≥ 1, 3, H, W), RGB in [0, 1]; got {got}",
                        field="reference")


# ---------------------------------------------------------------------------- unit fields
def normalise_refs(value: Any, *, unique: bool = True, families: dict[str, tuple[int, ...]] | None = None
                   ) -> tuple[str, ...]:
    """Spec-free normal form of a units field (:func:`circuits.units.parse_refs` grammar):
    canonical ``"layer:index"`` strings; family keys (``"mixed3b/curves"``) kept for
    :func:`resolve_refs` to look up — or expanded from ``families`` (``{key: indices}``) when
    listed there; :class:`Family` objects expanded (and recorded in ``families`` if given).

    Raises:
        TypeError / ValueError / KeyError / IndexError: an unparsable field; ValueError when it
            names nothing.
    """
    out: list[str] = []
    for r in parse_refs(value):
        if isinstance(r, Family):
            if families is not None:
                if r.key in families and families[r.key] != r.units:
                    raise ValueError(f"family {r.key!r} is given with two different unit lists")
                families[r.key] = r.units
            out.extend(str(u) for u in r)
        elif isinstance(r, FamilyKey) and families is not None and str(r) in families:
            out.extend(f"{r.layer}:{i}" for i in families[str(r)])
        else:
            out.append(str(r))
    if not out:
        raise ValueError("names no unit; give at least one, e.g. '3b:379'")
    return tuple(dict.fromkeys(out)) if unique else tuple(out)


def resolve_refs(refs: Sequence[str], spec: ModelSpec) -> list[Unit]:
    """Units of a normalised units field, family keys looked up in ``spec``'s packaged catalog;
    range-checked, repeats dropped (:func:`circuits.units.resolve_units`)."""
    return resolve_units(refs, spec, unique=True)


def mentions_families(refs: Sequence[str]) -> bool:
    """Whether a normalised units field still holds family keys (resolved at apply time)."""
    return any(isinstance(r, FamilyKey) for r in parse_refs(refs))


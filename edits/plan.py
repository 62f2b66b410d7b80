"""Edit plans: serialisable specs of circuit edits, validated up front, compiled to weights or interventions.

An :class:`EditPlan` is an ordered list of edits (frozen dataclasses such as :class:`Ablate`).
It is data: it round-trips through ``to_dict``/``to_json``/``save`` and validates against a
:class:`~circuits.spec.ModelSpec` before anything is copied or computed. Applying it
deep-copies the model and rewrites weights of the copy; the caller's model is never modified::

    plan = EditPlan([Ablate(["3b:379", "3b:385"])], name="no-curves")
    edited, record = plan.apply(model)      # `model` untouched
    record.num_changed                      # scalar weights whose value changed
    restored = record.undo(edited)          # bitwise the original weights

    plan = EditPlan([Ablate("mixed3b/curves", mode="mean")])
    edited, record = plan.apply(model, reference=images)   # means measured once, on `images`
    record.applied_plan.save("mean.yaml")   # carries the means and the resolved family

How an edit is applied. :meth:`EditPlan.apply` takes each edit in turn and

1. :meth:`Edit.prepare` — resolves what it measures or looks up (the units' mean activations,
   a family named through the packaged catalog) on the copy as edited so far. The prepared
   edit is what the applied plan (``record.plan``, ``edited.edit_plan``) stores, so re-applying
   it needs no reference images and no catalog;
2. :meth:`Edit.compile` — a list of :class:`WeightOp`: "at state-dict key ``k``, index ``i``,
   replace the slice ``s`` by ``f(s)``", run on the copy with a backup of every slice it
   overwrites (that backup is the :attr:`EditRecord.inverse`);
3. :meth:`Edit.interventions` — activation interventions that cannot be expressed in weights
   (resample ablation), installed as persistent forward hooks on the copy's named hook points
   (:mod:`edits.interventions`), recorded in :attr:`EditRecord.interventions` and removed by
   :meth:`EditRecord.undo`.

Units are addressed as in :mod:`circuits.units` (``"3b:379"``, ``"mixed3b:379"``,
``Unit("mixed3b", 379)``, a :class:`~circuits.units.Family`, or branch activations such as
``"mixed3b_5x5_bottleneck:3"``); families also by key (``"mixed3b/curves"``), see :class:`Ablate`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

import torch
from torch import Tensor

from circuits.model import InceptionV1
from circuits.spec import BRANCH_CONVS, MIXED_LAYERS, ModelSpec, get_spec
from circuits.units import Family, Unit, canonical_layer, group_by_layer

from .interventions import ActivationFn, InstalledHook, ResampleUnits, has_hook, install_hook

#: Version of the serialised plan format written by :meth:`EditPlan.to_dict`.
SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)

#: What an :class:`Ablate` can accept as ``units``.
UnitsLike = Union[str, Unit, Family, tuple, Iterable[Union[str, Unit, Family, tuple]]]

#: Registry of edit types by their serialised ``type`` name (filled by :func:`register_edit`).
EDIT_TYPES: dict[str, type[Edit]] = {}

_E = TypeVar("_E", bound="type[Edit]")

#: Exceptions that, raised while reading or checking an edit, mean "the spec is malformed".
_SPEC_ERRORS = (KeyError, ValueError, TypeError, IndexError, OverflowError, AttributeError)


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


# --- structural ops (edit-1: edits/pathways.py) -------------------------------------------
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
# --- end structural ops --------------------------------------------------------------------


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
        return f"{unit.layer}_{BRANCH_CONVS[branch][-1]}", unit.index - start
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
#:   weights and zero bias, so the unit is exactly 0 before and after its ReLU.
#: - ``"mean"`` — compiled to weights: zero weights and bias = the unit's mean post-ReLU
#:   activation over reference images (all positions), so ``relu(mean) = mean`` everywhere.
#:   The means are measured once at apply time (``EditPlan.apply(model, reference=images)``)
#:   and stored in the applied plan (field ``means``), or given in the plan.
#: - ``"resample"`` — an activation intervention (not expressible in weights): a forward hook
#:   on the unit's hook point replaces the unit's channel of each image by the same channel of
#:   another image of the batch (a fixed derangement drawn with ``seed``; see
#:   :func:`edits.interventions.resample_units`).
ABLATE_MODES: tuple[str, ...] = ("zero", "mean", "resample")

_FAMILY_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _family_key(ref: str) -> str:
    """``"3b/curves"`` → ``"mixed3b/curves"``. Raises KeyError/ValueError."""
    layer, _, name = ref.strip().partition("/")
    layer = canonical_layer(layer)
    if not _FAMILY_NAME_RE.match(name):
        raise ValueError(f"cannot parse family {ref!r}; expected 'layer/name' such as 'mixed3b/curves'")
    return f"{layer}/{name}"


def _catalog_family(spec: ModelSpec, key: str) -> Family:
    """The family ``key`` of the packaged catalog of ``spec``'s checkpoint. Raises KeyError."""
    from circuits.catalog import load_catalog

    try:
        cat = load_catalog(spec)
    except FileNotFoundError:
        raise KeyError(f"{key!r} names a family, but {spec.name} has no packaged family catalog; "
                       "list the units (or pass a Family object)") from None
    return cat[key]


def _int_index(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{what} must be an integer, got {v!r}")
    if v < 0:
        raise ValueError(f"{what} must be ≥ 0, got {v}")
    return v


def _parse_families(value: Any) -> dict[str, tuple[int, ...]]:
    if value is None:
        return {}
    items = value.items() if isinstance(value, Mapping) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"must map family keys to unit indices, e.g. {{'mixed3b/curves': [379, 385]}}; got {value!r}")
    out: dict[str, tuple[int, ...]] = {}
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"must map family keys to unit indices; got the entry {item!r}")
        key, units = item
        if not isinstance(key, str):
            raise TypeError(f"family keys are strings such as 'mixed3b/curves'; got {key!r}")
        key = _family_key(key)
        if isinstance(units, (str, bytes, Mapping)) or not isinstance(units, Iterable):
            raise TypeError(f"{key!r} must list unit indices, got {units!r}")
        idx = tuple(_int_index(u, f"a unit index of {key!r}") for u in units)
        if not idx:
            raise ValueError(f"{key!r} lists no unit")
        if key in out and out[key] != idx:
            raise ValueError(f"{key!r} is given twice with different units")
        out[key] = idx
    return out


def _flatten_refs(refs: Any) -> list:
    if isinstance(refs, str):
        return [r for r in refs.split(",") if r.strip()]
    if isinstance(refs, (Unit, Family)) or (
        isinstance(refs, tuple) and len(refs) == 2 and isinstance(refs[0], str) and ":" not in refs[0]
        and "/" not in refs[0] and not isinstance(refs[1], (str, Unit, Family, tuple, list))
    ):
        return [refs]
    if isinstance(refs, (bytes, Mapping)) or not isinstance(refs, Iterable):
        raise TypeError(
            f"units must be a unit ('3b:379'), a family ('mixed3b/curves' or a Family) or a list of those; got {refs!r}"
        )
    out: list = []
    for r in refs:
        out.extend([x for x in r.split(",") if x.strip()] if isinstance(r, str) else [r])
    return out


@register_edit
@dataclass(frozen=True)
class Ablate(Edit):
    """Ablate units: make their activations constant (``zero``, ``mean``) or uninformative (``resample``).

    Args:
        units: anything :func:`circuits.units.resolve_units` accepts — ``"3b:379"``,
            ``"mixed3b:379,mixed3b:385"``, ``Unit("mixed3b", 379)``, a :class:`Family`, or a
            list of those; branch activations (``"mixed3b_5x5_bottleneck:3"``) too — and family
            keys (``"mixed3b/curves"``, ``"3b/curves"``). Stored normalised as a tuple of
            canonical strings, ``("mixed3b:379", …)``.
        mode: one of :data:`ABLATE_MODES` (``"zero"``, ``"mean"``, ``"resample"``).
        means: ``mode="mean"`` only: the units' mean activations, one per unit (finite, ≥ 0).
            Usually left out and measured by ``EditPlan.apply(model, reference=images)``, which
            stores them in the applied plan.
        seed: ``mode="resample"`` only: seed of the donor-image permutation (default 0).
        families: provenance, ``{family key: unit indices}``. Filled in for you.

    Families. A :class:`Family` object is resolved at once: its units go into ``units`` and
    ``families`` records ``{"mixed3b/curves": (…)}``. A family *key* string cannot be resolved
    without a checkpoint, so it stays in ``units`` until :meth:`EditPlan.validate` /
    :meth:`EditPlan.apply` look it up in the packaged catalog of the model's checkpoint
    (:func:`circuits.catalog.load_catalog`); the applied plan stores the resolved units plus the
    ``families`` entry, so it keeps its meaning even if the catalog is regenerated. A key whose
    units are given in ``families`` is expanded from there, never from the catalog.

    Construction. For each unit, the convolution that produces it (:func:`producing_conv`) —
    for a mixed layer the branch's last one (1x1, 3x3, 5x5 or pool_reduce) at the branch-local
    index — gets weight row ``weight[c] (C_in, kh, kw)`` set to 0 and ``bias[c]`` set to 0
    (``zero``) or to the unit's mean (``mean``); its pre- and post-ReLU activations are then
    that constant at every position, and every downstream unit sees it on that channel.
    ``resample`` changes no weight: it installs an intervention on the hook point named like the
    unit's layer (``"mixed3b"``); all units of one edit draw from the same donor image.

    Raises:
        EditError: ``units`` cannot be parsed or is empty (field ``units``); unknown ``mode``
            (field ``mode``, with the valid choices); ``means``/``seed`` given for another mode
            or malformed. Ranges and family names are checked by :meth:`validate`.
    """

    units: UnitsLike
    mode: str = "zero"
    means: Sequence[float] | None = None
    seed: int | None = None
    families: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in ABLATE_MODES:
            raise self.error(f"{self.mode!r} is not a supported ablation mode", field="mode", choices=ABLATE_MODES)
        try:
            fams = _parse_families(self.families)
        except (*_SPEC_ERRORS, RecursionError) as e:
            raise self.error(_reason(e), field="families") from None
        try:
            items = self._normalise_units(fams)
        except (*_SPEC_ERRORS, RecursionError) as e:
            raise self.error(_reason(e), field="units") from None
        if not items:
            raise self.error("names no unit; give at least one, e.g. '3b:379'", field="units")
        listed = {u for u in items if "/" not in u}
        for key, idx in fams.items():
            layer = key.split("/")[0]
            missing = [i for i in idx if f"{layer}:{i}" not in listed]
            if missing:
                raise self.error(f"{key!r} lists {layer}:{missing[0]}, which is not among the units", field="families")
        object.__setattr__(self, "units", tuple(items))
        object.__setattr__(self, "families", tuple(fams.items()) or None)
        self._check_seed()
        self._check_means()

    def _normalise_units(self, fams: dict[str, tuple[int, ...]]) -> list[str]:
        out: list[str] = []
        for r in _flatten_refs(self.units):
            if isinstance(r, Family):
                if r.key in fams and fams[r.key] != r.units:
                    raise ValueError(f"family {r.key!r} is given with two different unit lists")
                fams[r.key] = r.units
                out.extend(str(u) for u in r)
            elif isinstance(r, str) and "/" in r:
                key = _family_key(r)
                if key in fams:
                    layer = key.split("/")[0]
                    out.extend(f"{layer}:{i}" for i in fams[key])
                else:
                    out.append(key)
            elif isinstance(r, (str, Unit, tuple)):
                out.append(str(Unit.parse(r)))
            else:
                raise TypeError(f"cannot interpret {r!r} as a unit; use 'layer:index' such as '3b:379'")
        return out

    def _check_seed(self) -> None:
        if self.seed is None:
            return
        if self.mode != "resample":
            raise self.error(f"a seed applies to mode 'resample' only, not {self.mode!r}", field="seed")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise self.error(f"must be an integer in [0, 2**63), got {self.seed!r}", field="seed")

    def _check_means(self) -> None:
        if self.means is None:
            return
        if self.mode != "mean":
            raise self.error(f"means apply to mode 'mean' only, not {self.mode!r}", field="means")
        if isinstance(self.means, (str, bytes, Mapping)) or not isinstance(self.means, Iterable):
            raise self.error(f"must be a list of numbers, one per unit; got {self.means!r}", field="means")
        if any("/" in u for u in self.units):
            raise self.error("means need a resolved unit list (no family keys in 'units')", field="means")
        vals = list(self.means)
        if len(vals) != len(self.units):
            raise self.error(f"{len(vals)} values for {len(self.units)} units", field="means")
        out = []
        for u, v in zip(self.units, vals):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.error(f"the mean of {u} must be a number, got {v!r}", field="means")
            try:
                f = float(v)
            except OverflowError:
                f = math.inf
            if not math.isfinite(f) or f < 0 or f > torch.finfo(torch.float32).max:
                raise self.error(
                    f"the mean of {u} must be finite and ≥ 0 (a post-ReLU mean), got {v!r}", field="means"
                )
            out.append(f)
        object.__setattr__(self, "means", tuple(out))

    # -- resolution
    @property
    def family_map(self) -> dict[str, tuple[int, ...]]:
        """``{family key: unit indices}`` of the families this edit names (resolved ones)."""
        return dict(self.families or ())

    def _resolve(self, spec: ModelSpec | None) -> tuple[list[Unit], dict[str, tuple[int, ...]]]:
        units: list[Unit] = []
        fams = self.family_map
        for item in self.units:
            if "/" in item:
                if spec is None:
                    raise self.error(f"family {item!r} is resolved against a checkpoint; validate first", field="units")
                try:
                    fam = _catalog_family(spec, item)
                except (KeyError, ValueError) as e:
                    raise self.error(_reason(e), field="units") from None
                fams[fam.key] = fam.units  # the catalog's own key (an alias resolves to it)
                units.extend(fam)
            else:
                units.append(Unit.parse(item))
        return units, fams

    def unit_list(self, spec: ModelSpec | None = None) -> list[Unit]:
        """The units as :class:`Unit` objects (family keys resolved through ``spec``'s catalog)."""
        return self._resolve(spec)[0]

    def validate(self, spec: ModelSpec) -> None:
        """Resolve family keys and range-check every unit against ``spec``.

        Raises:
            EditError: field ``units``; the message gives the layer's valid range
                (``mixed3b has units 0..479``), the valid layer names, or the valid families.
        """
        for u in self.unit_list(spec):
            try:
                u.validate(spec)
            except (KeyError, IndexError) as e:
                raise self.error(_reason(e), field="units") from None

    def claims(self, spec: ModelSpec) -> list[Claim]:
        return [(producing_conv(u, spec), str(u)) for u in self.unit_list(spec)]

    def needs_reference(self) -> str | None:
        return "means" if self.mode == "mean" and self.means is None else None

    def prepare(self, model: InceptionV1, reference: Tensor | None = None) -> Ablate:
        """Resolve family keys; for ``mean`` without ``means``, measure them on ``reference``.

        Raises:
            EditError: field ``means`` — mean mode, no stored means and no ``reference``.
        """
        units, fams = self._resolve(model.spec)
        means = self.means
        if self.mode == "mean" and means is None:
            if reference is None:
                raise self.error(
                    "mode 'mean' needs the units' mean activations: pass reference images "
                    "(EditPlan.apply(model, reference=images), CLI --reference DIR) or give 'means'",
                    field="means",
                )
            means = unit_means(model, units, reference)
        seed = (0 if self.seed is None else self.seed) if self.mode == "resample" else None
        return Ablate([str(u) for u in units], mode=self.mode, means=means, seed=seed, families=fams or None)

    def compile(self, model: InceptionV1) -> list[WeightOp]:
        if self.mode == "resample":
            return []
        units = self.unit_list(model.spec)
        if self.mode == "mean" and self.means is None:
            raise self.error("mean ablation needs its means; EditPlan.apply measures them", field="means")
        ops: list[WeightOp] = []
        for k, u in enumerate(units):
            conv_name, ch = producing_conv(u, model.spec)
            path = _module_path(model, model.conv_unit(conv_name).conv)
            where = f"{u} ({conv_name}[{ch}])"
            if self.mode == "zero":
                for p in ("weight", "bias"):
                    ops.append(WeightOp(f"{path}.{p}", (ch,), torch.zeros_like, f"zero {where}"))
            elif self.mode == "mean":
                m = float(self.means[k])  # type: ignore[index]
                ops.append(WeightOp(f"{path}.weight", (ch,), torch.zeros_like, f"mean-ablate {where}: weights 0"))
                ops.append(WeightOp(f"{path}.bias", (ch,), _filler(m), f"mean-ablate {where}: bias {m:g}"))
            else:  # pragma: no cover - guarded by __post_init__
                raise self.error(f"mode {self.mode!r} has no compiler", field="mode", choices=ABLATE_MODES)
        return ops

    def interventions(self, model: InceptionV1) -> list[tuple[str, ActivationFn, str]]:
        if self.mode != "resample":
            return []
        seed = 0 if self.seed is None else self.seed
        out = []
        for layer, idx in group_by_layer(self.unit_list(model.spec)).items():
            names = ", ".join(f"{layer}:{i}" for i in idx)
            out.append((layer, ResampleUnits(idx, seed), f"resample {names} (seed {seed})"))
        return out

    # -- serialisation: optional fields only when set
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type_name, "units": list(self.units), "mode": self.mode}
        if self.means is not None:
            out["means"] = list(self.means)
        if self.seed is not None:
            out["seed"] = self.seed
        if self.families:
            out["families"] = {k: list(v) for k, v in self.families}
        return out


def _filler(value: float) -> Callable[[Tensor], Tensor]:
    def fill(t: Tensor) -> Tensor:
        return torch.full_like(t, value)

    return fill


@torch.no_grad()
def unit_means(
    model: InceptionV1, units: Iterable[Unit | str], reference: Tensor, batch_size: int = 32
) -> list[float]:
    """Mean post-ReLU activation of each unit over ``reference`` images and all positions.

    Args:
        model: the model to measure (interventions installed on it are active).
        units: the units (any layer, branch activations included).
        reference: ``(N, 3, H, W)`` RGB in [0, 1] (e.g. ``studies.discovery.load_reference_images``).
        batch_size: images per forward pass.

    Returns:
        One float per unit, rounded to float32 (the value the bias will hold).

    Raises:
        EditError: field ``reference`` — not a float 4-D RGB tensor with at least one image.
    """
    units = [Unit.parse(u) for u in units]
    _check_reference(reference)
    device = next(model.parameters()).device
    layers = group_by_layer(units)
    sums = {layer: torch.zeros(len(idx), dtype=torch.float64) for layer, idx in layers.items()}
    count = dict.fromkeys(layers, 0)
    for start in range(0, reference.shape[0], batch_size):
        batch = reference[start:start + batch_size].to(device, torch.float32)
        acts = model.run(batch, list(layers))
        for layer, idx in layers.items():
            a = acts[layer][:, idx].double()
            sums[layer] += a.sum(dim=[d for d in range(a.dim()) if d != 1]).cpu()
            count[layer] += a.numel() // len(idx)
    per_unit = {layer: (sums[layer] / count[layer]).float().tolist() for layer in layers}
    pos = {layer: 0 for layer in layers}
    out = []
    for u in units:
        out.append(float(per_unit[u.layer][pos[u.layer]]))
        pos[u.layer] += 1
    return out


def _check_reference(reference: Any) -> None:
    if not (
        isinstance(reference, Tensor) and reference.dim() == 4 and reference.shape[1] == 3
        and reference.is_floating_point() and reference.shape[0] >= 1
    ):
        got = f"shape {tuple(reference.shape)} dtype {reference.dtype}" if isinstance(reference, Tensor) else repr(
            type(reference).__name__)
        raise EditError(f"reference images must be a float tensor (N ≥ 1, 3, H, W), RGB in [0, 1]; got {got}",
                        field="reference")


# ---------------------------------------------------------------------------- record
@dataclass(frozen=True, eq=False, repr=False)
class EditRecord:
    """What :meth:`EditPlan.apply` changed, and how to undo it.

    Attributes:
        plan: the applied plan, as :meth:`EditPlan.to_dict` — with everything :meth:`Edit.prepare`
            resolved (measured means, family units), so it re-applies without reference images.
        changed: ``{state-dict key: number of scalar entries whose value changed}``, only keys
            with at least one change, in the order they were first touched.
        touched: every state-dict key an op wrote to (a superset of ``changed``).
        inverse: the original (and edited) values of every slice written, and every
            :class:`StructOp` (channels or linear paths added), in write order; :meth:`undo`
            replays them backwards.
        interventions: the activation hooks installed on the edited copy (resample ablation),
            in installation order; :meth:`undo` removes them.
    """

    plan: dict[str, Any]
    changed: dict[str, int]
    touched: tuple[str, ...]
    inverse: tuple[SliceBackup | StructOp, ...]
    interventions: tuple[InstalledHook, ...] = ()

    def __repr__(self) -> str:
        n = self.plan.get("name", "") if isinstance(self.plan, dict) else ""
        return (f"EditRecord(plan={n!r}, tensors_changed={len(self.changed)}, "
                f"weights_changed={self.num_changed})")

    @property
    def tensors(self) -> tuple[str, ...]:
        """State-dict keys of the tensors whose values changed."""
        return tuple(self.changed)

    @property
    def num_changed(self) -> int:
        """Total number of scalar weights whose value changed."""
        return sum(self.changed.values())

    @property
    def structure(self) -> tuple[dict[str, Any], ...]:
        """Structural changes (:attr:`StructOp.summary`), in order; ``()`` for pure weight edits."""
        return tuple(dict(op.summary) for op in self.inverse if isinstance(op, StructOp))

    @property
    def added_channels(self) -> dict[str, int]:
        """``{convolution or linear path: channels added}`` summed over :attr:`structure`
        (e.g. ``{"mixed3b_5x5_bottleneck": 64}``)."""
        out: dict[str, int] = {}
        for s in self.structure:
            if s.get("channels"):
                out[s["conv"]] = out.get(s["conv"], 0) + int(s["channels"])
        return out

    @property
    def applied_plan(self) -> EditPlan:
        """:attr:`plan` as an :class:`EditPlan` (save it to re-apply without reference images)."""
        return EditPlan.from_dict(self.plan)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible summary (without the backed-up tensors), for reports."""
        return {
            "plan": self.plan, "changed": dict(self.changed), "num_changed": self.num_changed,
            "interventions": [{"hook_point": h.name, "note": h.note} for h in self.interventions],
            "structure": [dict(s) for s in self.structure],
        }

    def undo(self, edited: InceptionV1) -> InceptionV1:
        """A copy of ``edited`` with the original values written back (bitwise) and this plan's
        interventions removed; ``edited`` is not modified.

        The copy's ``edit_plan``/``edit_history`` drop this plan.

        Raises:
            EditError: ``edited`` does not carry this edit (a slice differs from what the plan
                wrote, or an intervention is missing — another model, or changed since).
        """
        for h in self.interventions:
            if not has_hook(edited, h):
                raise EditError(f"cannot undo: the model does not carry the intervention {h.note!r} on {h.name}")
        restored = copy.deepcopy(edited)
        # Replay backwards on the copy, checking each slice just before restoring it (later ops
        # may overwrite an earlier op's slice; structural ops resize tensors in between).
        with torch.no_grad():
            for b in reversed(self.inverse):
                if isinstance(b, StructOp):
                    b.revert(restored)
                    continue
                try:
                    t = _state_tensor(restored, b.key)
                    current = t[b.index]
                except (KeyError, IndexError) as e:
                    raise EditError(f"cannot undo: {_reason(e)}") from None
                if not torch.equal(current, b.after.to(current.device)):
                    raise EditError(
                        f"cannot undo: {b.key}[{b.index}] is not what this plan wrote; "
                        "the model is not the one this record came from, or it changed since"
                    )
                t[b.index] = b.before.to(t.device)
        from .interventions import remove_hook

        for h in reversed(self.interventions):
            remove_hook(restored, h)
        restored.provenance = restored.provenance.without_plan(self.plan)
        return restored


# ---------------------------------------------------------------------------- plan
def _spec_of(spec_or_model: ModelSpec | InceptionV1 | str) -> ModelSpec:
    if isinstance(spec_or_model, ModelSpec):
        return spec_or_model
    if isinstance(spec_or_model, str):
        return get_spec(spec_or_model)
    spec = getattr(spec_or_model, "spec", None)
    if isinstance(spec, ModelSpec):
        return spec
    raise TypeError(f"expected a ModelSpec, an InceptionV1 or a checkpoint name, got {type(spec_or_model).__name__}")


def _claim_parts(claim: Claim) -> tuple[tuple, str, str]:
    if len(claim) == 2:
        return claim[0], claim[1], "units"
    return claim[0], claim[1], claim[2]


@dataclass(frozen=True)
class EditPlan:
    """An ordered, serialisable list of edits.

    Args:
        edits: the edits (a single :class:`Edit` is accepted too), applied in order.
        name: a label for reports and file names.

    Raises:
        EditError: an element is not an :class:`Edit`.
    """

    edits: tuple[Edit, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.edits, Edit):
            edits: tuple = (self.edits,)
        elif isinstance(self.edits, (str, bytes, Mapping)) or not isinstance(self.edits, Iterable):
            raise EditError(f"'edits' must be a list of edits, got {type(self.edits).__name__}", field="edits")
        else:
            edits = tuple(self.edits)
        for i, e in enumerate(edits):
            if not isinstance(e, Edit):
                raise EditError(
                    f"{e!r} is not an edit", index=i, field="type", choices=sorted(EDIT_TYPES)
                )
        object.__setattr__(self, "edits", edits)
        if not isinstance(self.name, str):
            raise EditError(f"plan name must be a string, got {type(self.name).__name__}", field="name")

    def __len__(self) -> int:
        return len(self.edits)

    # -- validation and application
    def validate(self, spec_or_model: ModelSpec | InceptionV1 | str) -> EditPlan:
        """Check every edit against the checkpoint's spec, before any copy or compute.

        First every edit's own :meth:`Edit.validate` runs (layers and families exist, indices
        are in range — the message gives the range —, shapes fit), in plan order; then the
        :meth:`Edit.claims` of all edits are compared: no unit (weight row) is set by two edits
        or twice by one (aliases included: ``mixed3b:330`` and ``mixed3b_5x5:10`` are the same
        BVLC channel), and no two edits write the same weights.

        Returns:
            ``self``, for chaining.

        Raises:
            EditError: located at ``edits[i] (Type) field '…'``; also when the plan has no edits.
        """
        spec = _spec_of(spec_or_model)
        if not self.edits:
            raise EditError("the plan has no edits; it would change nothing", field="edits")
        for i, e in enumerate(self.edits):
            try:
                e.validate(spec)
            except EditError as err:
                raise err.at(i, e.type_name) from None
            except _SPEC_ERRORS as err:
                raise EditError(_reason(err), index=i, edit_type=e.type_name) from None
        rows: dict[tuple, tuple[int, str]] = {}      # (conv, out) → first whole-row claim
        parts: dict[tuple, tuple[int, str]] = {}     # (conv, out, in) → first partial claim
        partial_rows: dict[tuple, tuple[int, str]] = {}  # (conv, out) → first partial claim in it
        for i, e in enumerate(self.edits):
            try:
                claims = e.claims(spec)
            except EditError as err:
                raise err.at(i, e.type_name) from None
            except _SPEC_ERRORS as err:
                raise EditError(_reason(err), index=i, edit_type=e.type_name) from None
            for claim in claims:
                target, label, field = _claim_parts(claim)
                row = tuple(target[:2])
                clash = rows.get(row) or (parts.get(tuple(target)) if len(target) == 3 else partial_rows.get(row))
                if clash is not None:
                    j, other = clash
                    if other == label and len(target) == 2:
                        what = f"{label} appears twice, already set by edits[{j}]; a unit may be edited once per plan"
                    elif len(target) == 2 and other != label and row in rows:
                        what = (f"{label} is the same channel as {other} ({row[0]}:{row[1]}), already set by "
                                f"edits[{j}]; a unit may be edited once per plan")
                    else:
                        what = (f"{label} writes weights of {row[0]}:{row[1]} that edits[{j}] ({other}) also "
                                "writes; two edits may not rewrite the same weights")
                    raise EditError(what, index=i, edit_type=e.type_name, field=field)
                if len(target) == 2:
                    rows[row] = (i, label)
                else:
                    parts[tuple(target)] = (i, label)
                    partial_rows.setdefault(row, (i, label))
        return self

    def needs_reference(self) -> list[tuple[int, str, str]]:
        """``[(index, type, field), …]`` of edits that measure values on reference images at apply time."""
        out = []
        for i, e in enumerate(self.edits):
            f = e.needs_reference()
            if f:
                out.append((i, e.type_name, f))
        return out

    def apply(self, model: InceptionV1, reference: Tensor | None = None) -> tuple[InceptionV1, EditRecord]:
        """Validate, deep-copy ``model`` and realise the edits on the copy (weights and interventions).

        Args:
            model: an :class:`InceptionV1` (never modified).
            reference: ``(N, 3, H, W)`` RGB images in [0, 1] for edits that measure statistics
                (``Ablate(mode="mean")`` without stored means); measured on the copy as edited
                by the plan's earlier edits, once, and stored in ``record.plan``.

        Returns:
            ``(edited, record)``: the edited copy — with ``edited.edit_plan`` (the applied plan
            as a dict, measured values included) and ``edited.edit_history`` (every plan applied
            so far, in order) — and the :class:`EditRecord`. An edit that changes no weight
            value and installs nothing triggers an :class:`EditWarning`.

        Raises:
            TypeError: ``model`` is not an :class:`InceptionV1`.
            EditError: the plan does not validate against ``model.spec``, or an edit needs
                ``reference`` and none (or a malformed one) was given — raised before copying.
        """
        if not isinstance(model, InceptionV1):
            raise TypeError(f"EditPlan.apply needs an InceptionV1, got {type(model).__name__}")
        self.validate(model.spec)
        for i, kind, field in self.needs_reference():
            if reference is None:
                raise EditError(
                    "needs reference images to measure it: pass EditPlan.apply(model, reference=images) "
                    "(CLI: --reference DIR) or store the values in the plan",
                    index=i, edit_type=kind, field=field,
                )
        if reference is not None:
            _check_reference(reference)
        edited = copy.deepcopy(model)
        originals: dict[str, Tensor] = {}
        backups: list[SliceBackup | StructOp] = []
        hooks: list[InstalledHook] = []
        applied: list[Edit] = []
        with torch.no_grad():
            for i, e in enumerate(self.edits):
                try:
                    e = e.prepare(edited, reference)
                except EditError as err:
                    raise err.at(i, e.type_name) from None
                applied.append(e)
                n_backups, n_hooks = len(backups), len(hooks)
                for op in e.compile(edited):
                    if isinstance(op, StructOp):  # channels/modules added (edits.pathways)
                        op.forward(edited)
                        backups.append(op)
                        continue
                    t = _state_tensor(edited, op.key)
                    if op.key not in originals:
                        originals[op.key] = t.detach().clone()
                    before = t[op.index].clone()
                    new = op.transform(before)
                    if new.shape != before.shape:
                        raise RuntimeError(f"{op.note}: transform changed shape {tuple(before.shape)} → {tuple(new.shape)}")
                    t[op.index] = new
                    backups.append(SliceBackup(op.key, op.index, before, t[op.index].clone()))
                for name, fn, note in e.interventions(edited):
                    hooks.append(install_hook(edited, name, fn, note))
                if len(hooks) == n_hooks and not any(
                    isinstance(b, StructOp) or bool(_value_changed(b.before, b.after).any())
                    for b in backups[n_backups:]
                ):
                    warnings.warn(f"edits[{i}] ({e.type_name}) changed no weight and installed no intervention",
                                  EditWarning, stacklevel=2)
            changed: dict[str, int] = {}
            for key, orig in originals.items():
                now = _state_tensor(edited, key)  # a tensor a StructOp widened: compare zero-extended
                n = int(_value_changed(_zero_extended(orig, now.shape), now).sum())
                if n:
                    changed[key] = n
        plan_dict = EditPlan(tuple(applied), name=self.name).to_dict()
        edited.provenance = model.provenance.with_plan(plan_dict)
        record = EditRecord(
            plan=plan_dict, changed=changed, touched=tuple(originals), inverse=tuple(backups), interventions=tuple(hooks)
        )
        return edited, record

    def install_interventions(self, model: InceptionV1) -> tuple[InstalledHook, ...]:
        """Install this plan's activation interventions on ``model`` itself (no copy, no weight change).

        For a model whose weights already carry an applied plan (a file written by ``circuits
        edit apply`` holds the weights and the applied plan, not the hooks). Every edit must be
        resolved (an applied plan: ``record.plan``), so nothing is measured.

        Raises:
            EditError: the plan does not validate against ``model.spec``.
        """
        self.validate(model.spec)
        hooks = []
        for i, e in enumerate(self.edits):
            try:
                items = e.interventions(model)
            except EditError as err:
                raise err.at(i, e.type_name) from None
            hooks.extend(install_hook(model, name, fn, note) for name, fn, note in items)
        return tuple(hooks)

    # -- serialisation
    def to_dict(self) -> dict[str, Any]:
        """``{"schema_version": 1, "name": …, "edits": [{"type": "Ablate", "units": [...], "mode": "zero"}]}``."""
        return {"schema_version": SCHEMA_VERSION, "name": self.name, "edits": [e.to_dict() for e in self.edits]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EditPlan:
        """Inverse of :meth:`to_dict`.

        Raises:
            EditError: not a mapping, missing/unsupported ``schema_version``, unknown top-level
                field, an edit of unknown ``type``, or an invalid edit (located by index).
        """
        if not isinstance(d, Mapping):
            raise EditError(f"a plan must be a mapping, got {type(d).__name__}")
        allowed = ["schema_version", "name", "edits"]
        for k in d:
            if k not in allowed:
                raise EditError(f"unknown plan field {k!r}", field=str(k), choices=allowed)
        version = d.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or version not in SUPPORTED_SCHEMA_VERSIONS:
            raise EditError(
                f"unsupported plan schema_version {version!r}", field="schema_version", choices=SUPPORTED_SCHEMA_VERSIONS
            )
        name = d.get("name", "")
        if name is None:
            name = ""
        if not isinstance(name, str):
            raise EditError(f"plan name must be a string, got {type(name).__name__}", field="name")
        raw = d.get("edits")
        if not isinstance(raw, list):
            raise EditError(f"'edits' must be a list, got {type(raw).__name__}", field="edits")
        edits: list[Edit] = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise EditError(f"an edit must be a mapping, got {type(item).__name__}", index=i)
            kind = item.get("type")
            if not isinstance(kind, str) or kind not in EDIT_TYPES:
                raise EditError(f"unknown edit type {kind!r}", index=i, field="type", choices=sorted(EDIT_TYPES))
            try:
                edits.append(EDIT_TYPES[kind].from_dict(item))
            except EditError as err:
                raise err.at(i, kind) from None
            except (*_SPEC_ERRORS, RecursionError) as err:
                raise EditError(f"invalid {kind}: {_reason(err)}", index=i, edit_type=kind) from None
        return cls(tuple(edits), name=name)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> EditPlan:
        """Parse :meth:`to_json` output. Raises :class:`EditError` on invalid JSON or content."""
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, RecursionError, TypeError) as e:
            raise EditError(f"not valid JSON: {e}") from None
        return cls.from_dict(d)

    @classmethod
    def from_yaml(cls, text: str) -> EditPlan:
        """Parse YAML with ``yaml.safe_load`` only: tags such as ``!!python/object`` are rejected.

        Raises:
            EditError: invalid YAML, an unsafe tag, or invalid content.
        """
        import yaml

        try:
            d = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError) as e:
            raise EditError(f"not valid YAML (only plain YAML is read, no python/* tags): {e}") from None
        return cls.from_dict(d)

    def save(self, path: str | Path) -> Path:
        """Write the plan as JSON (``.json``) or YAML (``.yaml``/``.yml``); returns the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = self.to_json() + "\n"
        elif suffix in (".yaml", ".yml"):
            text = self.to_yaml()
        else:
            raise EditError(f"cannot save a plan as {path.name!r}", field="path", choices=_SUFFIXES)
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EditPlan:
        """Read a plan written by :meth:`save` (YAML through ``yaml.safe_load`` only).

        Raises:
            FileNotFoundError: no such file.
            EditError: unknown suffix, unreadable text, or invalid content.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in _SUFFIXES:
            raise EditError(f"cannot load a plan from {path.name!r}", field="path", choices=_SUFFIXES)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise EditError(f"{path.name} is not UTF-8 text: {e}") from None
        return cls.from_json(text) if suffix == ".json" else cls.from_yaml(text)


_SUFFIXES = [".json", ".yaml", ".yml"]

__all__ = [
    "ABLATE_MODES", "Ablate", "EDIT_TYPES", "Edit", "EditError", "EditPlan", "EditRecord", "EditWarning",
    "SCHEMA_VERSION", "SliceBackup", "StructOp", "WeightOp", "producing_conv", "register_edit", "unit_means",
]

"""Edit plans: serialisable specs of circuit edits, validated up front, compiled to weights.

An :class:`EditPlan` is an ordered list of edits (frozen dataclasses such as :class:`Ablate`).
It is data: it round-trips through ``to_dict``/``to_json``/``save`` and validates against a
:class:`~circuits.spec.ModelSpec` before anything is copied or computed. Applying it
deep-copies the model and rewrites weights of the copy; the caller's model is never modified::

    plan = EditPlan([Ablate(["3b:379", "3b:385"])], name="no-curves")
    edited, record = plan.apply(model)      # `model` untouched
    record.num_changed                      # scalar weights whose value changed
    restored = record.undo(edited)          # bitwise the original weights

How an edit is compiled. Each edit turns into a list of :class:`WeightOp` — "at state-dict
key ``k``, index ``i``, replace the slice ``s`` by ``f(s)``" — that :meth:`EditPlan.apply`
runs on the copy, backing up every slice it overwrites (that backup is the
:attr:`EditRecord.inverse`). A new weight edit only has to say which slices it rewrites and
how. Edits that cannot be expressed in weights (resample ablation, patching) will install
hooks on the copy instead; :meth:`Edit.compile` is the place where an edit says which.

Units are addressed as in :mod:`circuits.units` (``"3b:379"``, ``"mixed3b:379"``,
``Unit("mixed3b", 379)``, a :class:`~circuits.units.Family`, or branch activations such as
``"mixed3b_5x5_bottleneck:3"``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

import torch
from torch import Tensor

from circuits.model import InceptionV1
from circuits.spec import BRANCH_CONVS, MIXED_LAYERS, ModelSpec, get_spec
from circuits.units import Family, Unit, resolve_units

#: Version of the serialised plan format written by :meth:`EditPlan.to_dict`.
SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)

#: What an :class:`Ablate` can accept as ``units``.
UnitsLike = Union[str, Unit, Family, tuple, Iterable[Union[str, Unit, Family, tuple]]]

#: Registry of edit types by their serialised ``type`` name (filled by :func:`register_edit`).
EDIT_TYPES: dict[str, type[Edit]] = {}

_E = TypeVar("_E", bound="type[Edit]")


# ---------------------------------------------------------------------------- errors
class EditError(ValueError):
    """An invalid edit or plan: names the edit (index in the plan, type), the field and the choices.

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
        if self.field:
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
class Edit:
    """Base class of every edit. Subclasses are frozen dataclasses registered with :func:`register_edit`.

    A subclass provides:

    - normalisation and spec-free checks in ``__post_init__`` (raise :class:`EditError`);
    - :meth:`validate` — checks against a :class:`ModelSpec` (ranges, widths);
    - :meth:`claims` — the weight slices it owns, so a plan can reject conflicting edits;
    - :meth:`compile` — the :class:`WeightOp` list that realises it on a model.

    Serialisation (:meth:`to_dict` / :meth:`from_dict`) is generic over the dataclass fields;
    tuples are written as lists.
    """

    type_name: ClassVar[str] = "Edit"

    def validate(self, spec: ModelSpec) -> None:
        """Check the edit against ``spec``. Raises :class:`EditError`."""

    def claims(self, spec: ModelSpec) -> list[tuple[tuple[str, int], str]]:
        """``[((conv activation name, channel), label), …]`` this edit sets. Default: none."""
        return []

    def compile(self, model: InceptionV1) -> list[WeightOp]:
        """The weight rewrites that realise this edit on ``model`` (which has been validated)."""
        raise NotImplementedError

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
                raise EditError(f"unknown field {k!r}", edit_type=cls.type_name, field=k, choices=names)
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
#:
#: Planned: ``"mean"`` (zero weights, bias = the unit's dataset-mean activation; needs the
#: statistics, which the edit will carry or reference) and ``"resample"`` (activation
#: patching from other images; not expressible in weights, compiled to a hook on the copy).
#: Add the mode here and a branch in :meth:`Ablate.compile`.
ABLATE_MODES: tuple[str, ...] = ("zero",)


@register_edit
@dataclass(frozen=True)
class Ablate(Edit):
    """Ablate units: make their activations constant (``mode="zero"``: exactly 0).

    Args:
        units: anything :func:`circuits.units.resolve_units` accepts — ``"3b:379"``,
            ``"mixed3b:379,mixed3b:385"``, ``Unit("mixed3b", 379)``, a :class:`Family`, or a
            list of those; branch activations (``"mixed3b_5x5_bottleneck:3"``) too. Stored
            normalised as a tuple of canonical strings, ``("mixed3b:379", …)``.
        mode: one of :data:`ABLATE_MODES`.

    Construction (zero mode): for each unit, the convolution that produces it
    (:func:`producing_conv`) gets weight rows ``weight[c] (C_in, kh, kw)`` and ``bias[c]`` set
    to 0, so its pre-ReLU and post-ReLU activations are exactly 0 at every position and every
    downstream unit sees a zero input on that channel. For a mixed layer that convolution is
    the branch's last one (1x1, 3x3, 5x5 or pool_reduce) at the branch-local index.

    Raises:
        EditError: ``units`` cannot be parsed or is empty (field ``units``); unknown ``mode``
            (field ``mode``, with the valid choices). Ranges are checked by :meth:`validate`.
    """

    units: UnitsLike
    mode: str = "zero"

    def __post_init__(self) -> None:
        try:
            units = resolve_units(self.units)
        except (KeyError, ValueError, TypeError, IndexError) as e:
            raise self.error(_reason(e), field="units") from None
        if not units:
            raise self.error("names no unit; give at least one, e.g. '3b:379'", field="units")
        object.__setattr__(self, "units", tuple(str(u) for u in units))
        if self.mode not in ABLATE_MODES:
            raise self.error(f"{self.mode!r} is not a supported ablation mode", field="mode", choices=ABLATE_MODES)

    def unit_list(self) -> list[Unit]:
        """The units as :class:`Unit` objects."""
        return [Unit.parse(u) for u in self.units]

    def validate(self, spec: ModelSpec) -> None:
        """Range-check every unit against ``spec``.

        Raises:
            EditError: field ``units``; the message gives the layer's valid range
                (``mixed3b has units 0..479``) or the valid layer names.
        """
        for u in self.unit_list():
            try:
                u.validate(spec)
            except (KeyError, IndexError) as e:
                raise self.error(_reason(e), field="units") from None

    def claims(self, spec: ModelSpec) -> list[tuple[tuple[str, int], str]]:
        return [(producing_conv(u, spec), str(u)) for u in self.unit_list()]

    def compile(self, model: InceptionV1) -> list[WeightOp]:
        ops: list[WeightOp] = []
        for u in self.unit_list():
            conv_name, ch = producing_conv(u, model.spec)
            path = _module_path(model, model.conv_unit(conv_name).conv)
            if self.mode == "zero":
                for p in ("weight", "bias"):
                    ops.append(WeightOp(f"{path}.{p}", (ch,), torch.zeros_like, f"zero {u} ({conv_name}[{ch}])"))
            else:  # pragma: no cover - guarded by __post_init__
                raise self.error(f"mode {self.mode!r} has no compiler", field="mode", choices=ABLATE_MODES)
        return ops


# ---------------------------------------------------------------------------- record
@dataclass(frozen=True, eq=False)
class EditRecord:
    """What :meth:`EditPlan.apply` changed, and how to undo it.

    Attributes:
        plan: the plan, as :meth:`EditPlan.to_dict`.
        changed: ``{state-dict key: number of scalar entries whose value changed}``, only keys
            with at least one change, in the order they were first touched.
        touched: every state-dict key an op wrote to (a superset of ``changed``).
        inverse: the original (and edited) values of every slice written, in write order;
            :meth:`undo` replays them backwards.
    """

    plan: dict[str, Any]
    changed: dict[str, int]
    touched: tuple[str, ...]
    inverse: tuple[SliceBackup, ...]

    @property
    def tensors(self) -> tuple[str, ...]:
        """State-dict keys of the tensors whose values changed."""
        return tuple(self.changed)

    @property
    def num_changed(self) -> int:
        """Total number of scalar weights whose value changed."""
        return sum(self.changed.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible summary (without the backed-up tensors), for reports."""
        return {"plan": self.plan, "changed": dict(self.changed), "num_changed": self.num_changed}

    def undo(self, edited: InceptionV1) -> InceptionV1:
        """A copy of ``edited`` with the original values written back (bitwise); ``edited`` is not modified.

        The copy's ``edit_plan``/``edit_history`` drop this plan.

        Raises:
            EditError: ``edited`` does not carry this edit (a slice differs from what the plan
                wrote — another model, or weights changed since).
        """
        for b in self.inverse:
            try:
                current = _state_tensor(edited, b.key)[b.index]
            except (KeyError, IndexError) as e:
                raise EditError(f"cannot undo: {_reason(e)}") from None
            if not torch.equal(current, b.after.to(current.device)):
                raise EditError(
                    f"cannot undo: {b.key}[{b.index}] is not what this plan wrote; "
                    "the model is not the one this record came from, or it changed since"
                )
        restored = copy.deepcopy(edited)
        with torch.no_grad():
            for b in reversed(self.inverse):
                t = _state_tensor(restored, b.key)
                t[b.index] = b.before.to(t.device)
        history = list(getattr(restored, "edit_history", []))
        if history and history[-1] == self.plan:
            history.pop()
        if history:
            restored.edit_history = history
            restored.edit_plan = history[-1]
        else:
            for attr in ("edit_history", "edit_plan"):
                if hasattr(restored, attr):
                    delattr(restored, attr)
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
        edits = (self.edits,) if isinstance(self.edits, Edit) else tuple(self.edits)
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

        Checks: layers exist, indices are in range (the message gives the range), no unit is
        set by two edits or twice by one (aliases included: ``mixed3b:330`` and
        ``mixed3b_5x5:10`` are the same BVLC channel).

        Returns:
            ``self``, for chaining.

        Raises:
            EditError: located at ``edits[i] (Type) field '…'``.
        """
        spec = _spec_of(spec_or_model)
        seen: dict[tuple[str, int], tuple[int, str]] = {}
        for i, e in enumerate(self.edits):
            try:
                e.validate(spec)
            except EditError as err:
                raise err.at(i, e.type_name) from None
            for target, label in e.claims(spec):
                if target in seen:
                    j, other = seen[target]
                    same = "appears twice" if other == label else f"is the same channel as {other} ({target[0]}:{target[1]})"
                    raise EditError(
                        f"{label} {same}, already set by edits[{j}]; a unit may be edited once per plan",
                        index=i, edit_type=e.type_name, field="units",
                    )
                seen[target] = (i, label)
        return self

    def apply(self, model: InceptionV1) -> tuple[InceptionV1, EditRecord]:
        """Validate, deep-copy ``model`` and compile the edits into the copy's weights.

        Args:
            model: an :class:`InceptionV1` (never modified).

        Returns:
            ``(edited, record)``: the edited copy — with ``edited.edit_plan`` (this plan as a
            dict) and ``edited.edit_history`` (every plan applied so far, in order) — and the
            :class:`EditRecord`.

        Raises:
            TypeError: ``model`` is not an :class:`InceptionV1`.
            EditError: the plan does not validate against ``model.spec`` (raised before copying).
        """
        if not isinstance(model, InceptionV1):
            raise TypeError(f"EditPlan.apply needs an InceptionV1, got {type(model).__name__}")
        self.validate(model.spec)
        plan_dict = self.to_dict()
        edited = copy.deepcopy(model)
        originals: dict[str, Tensor] = {}
        backups: list[SliceBackup] = []
        with torch.no_grad():
            for e in self.edits:
                for op in e.compile(edited):
                    t = _state_tensor(edited, op.key)
                    if op.key not in originals:
                        originals[op.key] = t.detach().clone()
                    before = t[op.index].clone()
                    new = op.transform(before)
                    if new.shape != before.shape:
                        raise RuntimeError(f"{op.note}: transform changed shape {tuple(before.shape)} → {tuple(new.shape)}")
                    t[op.index] = new
                    backups.append(SliceBackup(op.key, op.index, before, t[op.index].clone()))
            changed: dict[str, int] = {}
            for key, orig in originals.items():
                n = int(_value_changed(orig, _state_tensor(edited, key)).sum())
                if n:
                    changed[key] = n
        edited.edit_plan = plan_dict
        edited.edit_history = [*getattr(model, "edit_history", []), plan_dict]
        record = EditRecord(plan=plan_dict, changed=changed, touched=tuple(originals), inverse=tuple(backups))
        return edited, record

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
                raise EditError(f"unknown plan field {k!r}", field=k, choices=allowed)
        version = d.get("schema_version")
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            raise EditError(
                f"unsupported plan schema_version {version!r}", field="schema_version", choices=SUPPORTED_SCHEMA_VERSIONS
            )
        raw = d.get("edits")
        if not isinstance(raw, list):
            raise EditError(f"'edits' must be a list, got {type(raw).__name__}", field="edits")
        edits: list[Edit] = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise EditError(f"an edit must be a mapping, got {type(item).__name__}", index=i)
            kind = item.get("type")
            if kind not in EDIT_TYPES:
                raise EditError(f"unknown edit type {kind!r}", index=i, field="type", choices=sorted(EDIT_TYPES))
            try:
                edits.append(EDIT_TYPES[kind].from_dict(item))
            except EditError as err:
                raise err.at(i, kind) from None
        return cls(tuple(edits), name=d.get("name", "") or "")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> EditPlan:
        """Parse :meth:`to_json` output. Raises :class:`EditError` on invalid JSON or content."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise EditError(f"not valid JSON: {e}") from None
        return cls.from_dict(d)

    def save(self, path: str | Path) -> Path:
        """Write the plan as JSON (``.json``) or YAML (``.yaml``/``.yml``); returns the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = self.to_json() + "\n"
        elif suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            raise EditError(f"cannot save a plan as {path.name!r}", field="path", choices=_SUFFIXES)
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EditPlan:
        """Read a plan written by :meth:`save` (YAML through ``yaml.safe_load`` only)."""
        path = Path(path)
        suffix = path.suffix.lower()
        text = path.read_text(encoding="utf-8")
        if suffix == ".json":
            return cls.from_json(text)
        if suffix in (".yaml", ".yml"):
            import yaml

            try:
                d = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise EditError(f"not valid YAML: {e}") from None
            return cls.from_dict(d)
        raise EditError(f"cannot load a plan from {path.name!r}", field="path", choices=_SUFFIXES)


_SUFFIXES = [".json", ".yaml", ".yml"]

__all__ = [
    "ABLATE_MODES", "Ablate", "EDIT_TYPES", "Edit", "EditError", "EditPlan", "EditRecord", "SCHEMA_VERSION",
    "SliceBackup", "WeightOp", "producing_conv", "register_edit",
]

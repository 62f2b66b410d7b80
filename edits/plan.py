"""Edit plans: serialisable specs of circuit edits, validated up front, compiled to weights or interventions.

An :class:`EditPlan` is an ordered list of edits (frozen dataclasses such as :class:`Ablate`).
It is data: it round-trips through ``to_dict``/``to_json``/``save`` and validates against a
:class:`~circuits.spec.ModelSpec` before anything is copied or computed. Applying it
deep-copies the model and rewrites weights of the copy; the caller's model is never modified, and
hooks others attached to it (a user's forward hook, an active :func:`~edits.interventions.intervene`)
do not travel into the copy — only the interventions earlier plans installed, which are part of an
edited model (:func:`circuits.fingerprint.own_copy`)::

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
   edit is what the applied plan (``record.plan``, ``edited.provenance.edit_plan``) stores, so re-applying
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

import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from circuits.fingerprint import own_copy
from circuits.model import InceptionV1
from circuits.spec import ModelSpec, get_spec

from .ablate import ABLATE_MODES, Ablate, UnitsLike, unit_means  # noqa: F401  (old import path)
from .base import (  # noqa: F401  (names importable from edits.plan before the split)
    _SPEC_ERRORS,
    EDIT_TYPES,
    Claim,
    Edit,
    EditError,
    EditWarning,
    SliceBackup,
    StructOp,
    WeightOp,
    _check_reference,
    _reason,
    _state_tensor,
    _value_changed,
    _zero_extended,
    producing_conv,
    register_edit,
)
from .interventions import InstalledHook, has_hook, install_hook, remove_hook

#: Version of the serialised plan format written by :meth:`EditPlan.to_dict`.
SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)


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

        The copy's :attr:`~circuits.model.InceptionV1.provenance` drops this plan (``edit_plan`` becomes
        the plan before it, or ``None``).

        Raises:
            EditError: ``edited`` does not carry this edit (a slice differs from what the plan
                wrote, or an intervention is missing — another model, or changed since).
        """
        for h in self.interventions:
            if not has_hook(edited, h):
                raise EditError(f"cannot undo: the model does not carry the intervention {h.note!r} on {h.name}")
        restored = own_copy(edited)
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
            reference: ``(N, 3, H, W)`` RGB images in [0, 1] for edits that measure statistics (``Ablate(mode="mean")``
                without stored means); measured on the copy as edited by the plan's earlier edits, once, stored in ``record.plan``.

        Returns:
            ``(edited, record)``: the edited copy — with ``edited.provenance.edit_plan`` (the applied plan as a dict,
            measured values included) and ``.edit_history`` (every plan applied so far, in order) — and the
            :class:`EditRecord`. An edit that changes no weight value and installs nothing triggers an :class:`EditWarning`.

        Raises:
            TypeError: ``model`` is not an :class:`InceptionV1`.
            EditError: the plan does not validate against ``model.spec``, or an edit needs ``reference`` and none (or a
                malformed one) was given — raised before copying; an edit's ``prepare``/``compile`` fails (``edits[i]``).
        """
        if not isinstance(model, InceptionV1):
            raise TypeError(f"EditPlan.apply needs an InceptionV1, got {type(model).__name__}")
        self.validate(model.spec)
        for i, kind, field in self.needs_reference():
            if reference is None:
                raise EditError("needs reference images to measure it: pass EditPlan.apply(model, reference=images) "
                                "(CLI: --reference DIR) or store the values in the plan", index=i, edit_type=kind,
                                field=field)
        if reference is not None:
            _check_reference(reference)
        edited = own_copy(model)  # the model itself: hooks others attached to it stay behind
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
                try:
                    ops = e.compile(edited)
                except EditError as err:  # e.g. a unit a linear path computes: located like the others
                    raise err.at(i, e.type_name) from None
                for op in ops:
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
            EditError: not a mapping, unsupported ``schema_version`` (a missing one means the current
                version, :data:`SCHEMA_VERSION`), unknown top-level
                field, an edit of unknown ``type``, or an invalid edit (located by index).
        """
        if not isinstance(d, Mapping):
            raise EditError(f"a plan must be a mapping, got {type(d).__name__}")
        allowed = ["schema_version", "name", "edits"]
        for k in d:
            if k not in allowed:
                raise EditError(f"unknown plan field {k!r}", field=str(k), choices=allowed)
        version = d.get("schema_version", SCHEMA_VERSION)  # missing: the current version
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
        from circuits.documents import DocumentError, load_json

        try:
            d = load_json(text, "plan")
        except DocumentError as e:
            raise EditError(str(e).removeprefix("plan: ")) from None
        return cls.from_dict(d)

    @classmethod
    def from_yaml(cls, text: str) -> EditPlan:
        """Parse YAML with the safe loader only: tags such as ``!!python/object`` are rejected;
        size, aliases and nesting are bounded before objects are built (:mod:`circuits.documents`).

        Raises:
            EditError: invalid YAML, an unsafe tag, a document over a limit, or invalid content.
        """
        from circuits.documents import DocumentError, load_yaml

        try:
            d = load_yaml(text, "plan")
        except DocumentError as e:
            raise EditError(str(e).removeprefix("plan: ")) from None
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
            EditError: unknown suffix, not a regular file, over 16 MiB (:mod:`circuits.documents`),
                unreadable text, or invalid content.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in _SUFFIXES:
            raise EditError(f"cannot load a plan from {path.name!r}", field="path", choices=_SUFFIXES)
        from circuits.documents import DocumentError, read_text

        try:
            text = read_text(path, "plan")
        except DocumentError as e:
            raise EditError(str(e)) from None
        return cls.from_json(text) if suffix == ".json" else cls.from_yaml(text)


_SUFFIXES = [".json", ".yaml", ".yml"]

__all__ = [
    "ABLATE_MODES", "Ablate", "EDIT_TYPES", "Edit", "EditError", "EditPlan", "EditRecord", "EditWarning",
    "SCHEMA_VERSION", "SliceBackup", "StructOp", "WeightOp", "producing_conv", "register_edit", "unit_means",
]


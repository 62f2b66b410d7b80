"""The edited-model file format: safetensors with the structure and provenance in the metadata.

Written by :func:`edits.save_edited` (``circuits edit apply``), read by
:func:`circuits.load_model` (``weights=`` / ``--weights``). This module owns the format: its
name (:data:`EDITED_FORMAT`) and the metadata fields (:class:`EditedMeta`), so the writer in
:mod:`edits.io` and the reader in :mod:`circuits.loading` cannot drift apart.

Metadata (all strings, as safetensors requires): ``format`` (:data:`EDITED_FORMAT`),
``checkpoint`` (spec name), ``structure`` (JSON of :meth:`InceptionV1.structure`: widened
convolutions and linear paths, ``{module path: weight shape}``), ``edit_plan`` and
``edit_history`` (JSON of the applied plans, ``null``/``[]`` for an unedited model) and
``digest`` (:func:`circuits.weights.state_digest` of the tensors).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .documents import DocumentError, load_json

#: Largest channel count of a widened convolution in an edited-model file's ``structure``.
MAX_CHANNELS = 65_536
#: Largest tensor (elements) a ``structure`` entry may ask for: 2²⁶ = 67 M floats, 256 MiB;
#: the largest tensor of InceptionV1 (the classifier) has 1 M.
MAX_STRUCTURE_ELEMENTS = 2**26

#: ``format`` metadata of an edited-model file.
EDITED_FORMAT = "circuits-edited-1"


@dataclass(frozen=True)
class EditedMeta:
    """The metadata of an edited-model file, decoded.

    Attributes:
        checkpoint: spec name of the model (``"inceptionv1_caffe"``).
        structure: ``{module path: weight shape}`` (:meth:`InceptionV1.structure`).
        edit_plan: the last applied plan (``EditPlan.to_dict()``), or ``None``.
        edit_history: every applied plan, in order.
        digest: :func:`circuits.weights.state_digest` of the tensors, or ``None`` (older files).
    """

    checkpoint: str
    structure: dict[str, list[int]] = field(default_factory=dict)
    edit_plan: dict[str, Any] | None = None
    edit_history: tuple[dict[str, Any], ...] = ()
    digest: str | None = None

    def to_metadata(self) -> dict[str, str]:
        """The safetensors metadata (string values) of this file."""
        meta = {
            "format": EDITED_FORMAT,
            "checkpoint": self.checkpoint,
            "structure": json.dumps(self.structure),
            "edit_plan": json.dumps(self.edit_plan),
            "edit_history": json.dumps(list(self.edit_history)),
        }
        if self.digest is not None:
            meta["digest"] = self.digest
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], where: str = "file") -> EditedMeta:
        """Decode :meth:`to_metadata` output.

        Raises:
            ValueError: not :data:`EDITED_FORMAT`, no ``checkpoint``, or a field that is not
                valid JSON of the right type (the message names ``where`` and the field).
        """
        if meta.get("format") != EDITED_FORMAT or "checkpoint" not in meta:
            raise ValueError(f"{where}: not an edited model file (format {meta.get('format')!r}, "
                             f"expected {EDITED_FORMAT!r} with a checkpoint)")

        def field_json(name: str, default: str, kind: type | tuple[type, ...]) -> Any:
            try:
                value = load_json(meta.get(name) or default, "")
            except DocumentError as e:
                raise ValueError(f"{where}: metadata field {name!r} is not valid JSON ({str(e).removeprefix(': ')})") from None
            if not isinstance(value, kind):
                raise ValueError(f"{where}: metadata field {name!r} has the wrong type ({type(value).__name__})")
            return value

        history = field_json("edit_history", "[]", list)
        if not all(isinstance(h, dict) for h in history):
            raise ValueError(f"{where}: metadata field 'edit_history' must be a list of plans (objects)")
        digest = meta.get("digest")
        if digest is not None and not (isinstance(digest, str) and len(digest) <= 128 and digest.isalnum()):
            raise ValueError(f"{where}: metadata field 'digest' is not a hex digest")
        if not isinstance(meta["checkpoint"], str) or len(meta["checkpoint"]) > 100:
            raise ValueError(f"{where}: metadata field 'checkpoint' is not a checkpoint name")
        return cls(
            checkpoint=meta["checkpoint"],
            structure=_checked_structure(field_json("structure", "{}", dict), where),
            edit_plan=field_json("edit_plan", "null", (dict, type(None))),
            edit_history=tuple(history),
            digest=digest,
        )

    def has_resample(self) -> bool:
        """Whether a plan of this file has resample ablations (activation interventions, not weights)."""
        plans = self.edit_history or ((self.edit_plan,) if self.edit_plan else ())
        return any(isinstance(e, Mapping) and e.get("type") == "Ablate" and e.get("mode") == "resample"
                   for p in plans if isinstance(p, Mapping) for e in p.get("edits", []) or [])


def read_metadata(path: str | Path) -> dict[str, str] | None:
    """The safetensors metadata of ``path``, or ``None`` when it is not a readable safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # safetensors raises its own error types
        return None


def is_edited_file(path: str | Path) -> bool:
    """Whether ``path`` is a safetensors file in :data:`EDITED_FORMAT`."""
    meta = read_metadata(path)
    return meta is not None and meta.get("format") == EDITED_FORMAT


__all__ = ["EDITED_FORMAT", "EditedMeta", "is_edited_file", "read_metadata"]


def _checked_structure(structure: dict, where: str) -> dict[str, list[int]]:
    """``structure`` metadata checked before any tensor is allocated from it: ``{str: [4 ints]}``,
    each dimension in 1..:data:`MAX_CHANNELS`, each tensor at most :data:`MAX_STRUCTURE_ELEMENTS`.

    Raises:
        ValueError: naming ``where``, the field and the entry.
    """
    out: dict[str, list[int]] = {}
    for key, shape in structure.items():
        bad = f"{where}: metadata field 'structure' entry {key!r}"
        if not (isinstance(shape, list) and len(shape) == 4
                and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)):
            raise ValueError(f"{bad} is not a weight shape of 4 integers: {str(shape)[:80]}")
        if not all(1 <= d <= MAX_CHANNELS for d in shape):
            raise ValueError(f"{bad}: dimensions {shape} outside 1..{MAX_CHANNELS}")
        numel = shape[0] * shape[1] * shape[2] * shape[3]
        if numel > MAX_STRUCTURE_ELEMENTS:
            raise ValueError(f"{bad} asks for a tensor of {numel:,} elements ({numel * 4 / 2**30:.1f} GiB); "
                             f"the limit is {MAX_STRUCTURE_ELEMENTS:,}")
        out[key] = shape
    return out

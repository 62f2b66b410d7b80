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
                value = json.loads(meta.get(name) or default)
            except (json.JSONDecodeError, RecursionError) as e:
                raise ValueError(f"{where}: metadata field {name!r} is not valid JSON ({e})") from None
            if not isinstance(value, kind):
                raise ValueError(f"{where}: metadata field {name!r} has the wrong type ({type(value).__name__})")
            return value

        return cls(
            checkpoint=meta["checkpoint"],
            structure=field_json("structure", "{}", dict),
            edit_plan=field_json("edit_plan", "null", (dict, type(None))),
            edit_history=tuple(field_json("edit_history", "[]", list)),
            digest=meta.get("digest"),
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

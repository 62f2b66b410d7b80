"""Where a model's weights come from and what was done to them: :class:`Provenance`.

Every :class:`~circuits.model.InceptionV1` carries one as :attr:`InceptionV1.provenance`
(default: nothing known). It is set by the code that makes the model — the loader
(:func:`circuits.load_model`: weights file and digest), :func:`circuits.model.linearized`
(the linear surrogate flag) and the edits (:meth:`edits.EditPlan.apply`: the applied plan and
the history of plans) — and read by whoever reports on it. It is immutable: a change makes a
new value (:meth:`Provenance.replace`, :meth:`Provenance.with_plan`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Provenance:
    """Origin and edit history of a model's weights.

    Attributes:
        weights_source: the file or folder the weights were read from (``None``: built
            in memory, e.g. random weights).
        weights_digest: :func:`circuits.weights.state_digest` recorded with the weights file,
            when the file has one (canonical and edited safetensors files).
        edit_plan: the last plan applied (``EditPlan.to_dict()`` of the *applied* plan:
            measured means and family units resolved), or ``None`` for an unedited model.
        edit_history: every plan applied so far, in order (the last one is ``edit_plan``).
        linear_surrogate: ``True`` for a :func:`~circuits.model.linearized` copy (ReLU,
            max-pool and LRN replaced by linear surrogates).
    """

    weights_source: str | None = None
    weights_digest: str | None = None
    edit_plan: Mapping[str, Any] | None = None
    edit_history: tuple[Mapping[str, Any], ...] = ()
    linear_surrogate: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "edit_history", tuple(self.edit_history))

    def replace(self, **changes: Any) -> Provenance:
        """A copy with ``changes`` (field names as keyword arguments)."""
        return dataclasses.replace(self, **changes)

    def with_plan(self, plan: Mapping[str, Any]) -> Provenance:
        """After applying ``plan`` (an applied plan as a dict): it becomes :attr:`edit_plan`
        and is appended to :attr:`edit_history`."""
        return self.replace(edit_plan=plan, edit_history=(*self.edit_history, plan))

    def without_plan(self, plan: Mapping[str, Any]) -> Provenance:
        """After undoing ``plan``: dropped from the end of the history if it is the last one;
        :attr:`edit_plan` becomes the plan before it (``None`` when none is left)."""
        history = list(self.edit_history)
        if history and history[-1] == plan:
            history.pop()
        return self.replace(edit_plan=history[-1] if history else None, edit_history=tuple(history))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict of every field (the history as a list)."""
        d = dataclasses.asdict(self)
        d["edit_history"] = list(self.edit_history)
        return d


__all__ = ["Provenance"]

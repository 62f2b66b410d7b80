"""What an edit changed: a per-tensor comparison of two models' state dicts (``circuits edit diff``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["TensorDiff", "weight_diff"]


@dataclass
class TensorDiff:
    """How one state-dict tensor differs between two models.

    Attributes:
        key: the state-dict key.
        shape_before / shape_after: shapes (``None`` when the tensor exists on one side only).
        changed: entries whose value differs, over the overlapping region (NaN → NaN unchanged).
        numel: entries of the overlapping region.
        max_abs: largest absolute change over the overlap (0.0 when none).
        top: the largest absolute changes, ``[(index, before, after), …]``, largest first.
        added: ``{dim: (before, after)}`` for dimensions that grew (channels added by a
            structural edit); ``removed`` likewise for dimensions that shrank.
        new_entries / new_nonzero: entries of ``after`` outside the overlap, and how many of
            them are non-zero (what the edit wrote into added channels).
        status: ``"changed"``, ``"resized"``, ``"added"`` (new tensor) or ``"removed"``.
    """

    key: str
    shape_before: tuple[int, ...] | None
    shape_after: tuple[int, ...] | None
    changed: int = 0
    numel: int = 0
    max_abs: float = 0.0
    top: list[tuple[tuple[int, ...], float, float]] = field(default_factory=list)
    added: dict[int, tuple[int, int]] = field(default_factory=dict)
    removed: dict[int, tuple[int, int]] = field(default_factory=dict)
    new_entries: int = 0
    new_nonzero: int = 0
    status: str = "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "status": self.status,
            "shape_before": list(self.shape_before) if self.shape_before is not None else None,
            "shape_after": list(self.shape_after) if self.shape_after is not None else None,
            "changed": self.changed, "numel": self.numel, "max_abs": self.max_abs,
            "top": [{"index": list(i), "before": b, "after": a} for i, b, a in self.top],
            "added": {str(d): list(v) for d, v in self.added.items()},
            "removed": {str(d): list(v) for d, v in self.removed.items()},
            "new_entries": self.new_entries, "new_nonzero": self.new_nonzero,
        }


def _changed_mask(a: Tensor, b: Tensor) -> Tensor:
    if a.is_floating_point():
        return ~((a == b) | (torch.isnan(a) & torch.isnan(b)))
    return a != b


@torch.no_grad()
def weight_diff(before: nn.Module, after: nn.Module, top: int = 3) -> list[TensorDiff]:
    """The tensors of ``after``'s state dict that differ from ``before``'s, in ``after``'s order.

    Args:
        before, after: two models (typically the unedited model and ``plan.apply(model)[0]``).
        top: how many of the largest absolute changes to list per tensor.

    Returns:
        One :class:`TensorDiff` per tensor that changed value, changed shape, or exists on one
        side only. Values are compared on the overlapping region (``[:min(n0, n1)]`` on every
        dimension); channels beyond it are reported in ``added``/``removed``, not as changes.
    """
    sa, sb = before.state_dict(), after.state_dict()
    out: list[TensorDiff] = []
    for key in list(sb) + [k for k in sa if k not in sb]:
        if key not in sa:
            t = sb[key]
            out.append(TensorDiff(key, None, tuple(t.shape), numel=int(t.numel()), new_entries=int(t.numel()),
                                  new_nonzero=int(torch.count_nonzero(t)), status="added"))
            continue
        if key not in sb:
            t = sa[key]
            out.append(TensorDiff(key, tuple(t.shape), None, numel=int(t.numel()), status="removed"))
            continue
        a, b = sa[key], sb[key]
        d = TensorDiff(key, tuple(a.shape), tuple(b.shape))
        if a.dim() != b.dim():
            d.status = "resized"
            out.append(d)
            continue
        region = tuple(slice(0, min(x, y)) for x, y in zip(a.shape, b.shape))
        ra, rb = a[region].cpu(), b[region].to("cpu")
        d.numel = int(ra.numel())
        for dim, (x, y) in enumerate(zip(a.shape, b.shape)):
            if y > x:
                d.added[dim] = (x, y)
            elif y < x:
                d.removed[dim] = (x, y)
        d.new_entries = int(b.numel()) - d.numel
        if d.new_entries:
            d.new_nonzero = int(torch.count_nonzero(b)) - int(torch.count_nonzero(rb))
        mask = _changed_mask(ra, rb)
        d.changed = int(mask.sum())
        if d.changed and ra.is_floating_point():
            delta = (rb.double() - ra.double()).abs()
            delta[~mask] = -1.0
            delta = torch.nan_to_num(delta, nan=float("inf"))
            flat = delta.flatten()
            k = min(top, d.changed)
            vals, idx = flat.topk(k)
            d.max_abs = float(vals[0])
            for i in idx.tolist():
                pos = tuple(int(p) for p in torch.unravel_index(torch.tensor(i), ra.shape)) if ra.dim() else ()
                d.top.append((pos, float(ra[pos]), float(rb[pos])))
        if d.added or d.removed:
            d.status = "resized"
        if d.changed or d.added or d.removed:
            out.append(d)
    return out

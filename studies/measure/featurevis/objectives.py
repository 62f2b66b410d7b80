"""Composable feature-visualization objectives (maximised), one value per image.

An :class:`Objective` maps the activations of a batch (:class:`Acts`) to a ``(N,)`` tensor:
image ``i``'s value. Objectives combine with ``+``, ``-`` and multiplication by a scalar
(``neuron("3b:379") - 0.1 * diversity("mixed3b")``); ``-obj`` (or :func:`negative`) minimises.
The optimiser maximises the sum over the batch.

Kinds (Olah et al., "Feature Visualization", Distill 2017; Lucid ``optvis/objectives.py``;
shared/docs/science.md §5):

- :func:`neuron`: one unit at one spatial position, by default the position whose receptive
  field is centred in the optimised window (the articles' unit pictures);
- :func:`channel`: one unit averaged over all positions;
- :func:`direction`: the dot product of a vector over a layer's units with the activation
  (at the centre, or averaged over positions);
- :func:`diversity`: minus the mean cosine similarity of each image's Gram matrix (channels ×
  channels, over positions) to the other images' (Lucid ``diversity``: penalise similarity);
- pre- or post-ReLU: ``pre_relu=True`` reads ``<layer>_pre_relu`` (the default for units, as
  the tuning measures), ``False`` the layer output.

Units are addressed as everywhere in the project: ``"3b:379"``, :class:`~circuits.units.Unit`,
a :class:`~circuits.units.Family` or a family key ``"mixed3b/curves"`` (resolved through the
model's catalog when the objective is bound to a model). A list of ``N`` units makes a
*per-image* objective: image ``i`` maximises unit ``i`` (a whole family in one batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from circuits.catalog import catalog
from circuits.spec import ModelSpec
from circuits.units import Unit, canonical_layer


@dataclass
class Acts:
    """Activations of a batch: ``maps[name]`` is ``(N, C, h, w)`` and ``center[name]`` the
    ``(row, col)`` position whose receptive field is centred in the optimised window.

    On the fast (cone) path maps are ``(N, C, 1, 1)``: only the centre position, and only the
    channels some objective asked for hold values (the others are 0)."""

    maps: dict[str, Tensor]
    center: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: the rows ``[start, stop)`` of the whole batch these maps hold (``None``: all); per-image
    #: objectives pick their units for these rows (the batch may be split over threads)
    rows: tuple[int, int] | None = None

    def __getitem__(self, name: str) -> Tensor:
        return self.maps[name]


@dataclass(frozen=True)
class Need:
    """What an objective reads: activation ``name``, ``channels`` (``None`` = all) and whether it
    reads only the centre position (``center_only``; then the fast cone path can serve it)."""

    name: str
    channels: frozenset[int] | None
    center_only: bool


def _act_name(layer: str, pre_relu: bool) -> str:
    return f"{layer}_pre_relu" if pre_relu else layer


class Objective:
    """A per-image objective. Build with the module's functions; combine with + - * and unary -.

    Attributes:
        desc: a readable description, also part of the render cache key.
    """

    def __init__(self, desc: str):
        self.desc = desc

    # -- to implement
    def bind(self, spec: ModelSpec) -> Objective:
        """Resolve unit references against a checkpoint (catalog families, range checks).

        Raises:
            KeyError / IndexError / ValueError: unknown family, layer or unit (before compute)."""
        return self

    def needs(self) -> list[Need]:
        raise NotImplementedError

    def __call__(self, acts: Acts) -> Tensor:
        raise NotImplementedError

    def batch_size(self) -> int | None:
        """The batch size a per-image objective requires (``None``: any)."""
        return None

    def coupled(self) -> bool:
        """Whether an image's value depends on the other images (diversity): then the batch
        cannot be split into independent chunks."""
        return False

    # -- algebra
    def __add__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Sum([(1.0, self), (1.0, other)])

    def __sub__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Sum([(1.0, self), (-1.0, other)])

    def __mul__(self, k: float) -> Objective:
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            return NotImplemented
        return Sum([(float(k), self)])

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return Sum([(-1.0, self)])

    def __repr__(self) -> str:
        return f"Objective({self.desc})"


class Sum(Objective):
    """``Σ_k weight_k · term_k`` (flattened when nested)."""

    def __init__(self, terms: Sequence[tuple[float, Objective]]):
        flat: list[tuple[float, Objective]] = []
        for w, t in terms:
            if isinstance(t, Sum):
                flat.extend((w * w2, t2) for w2, t2 in t.terms)
            else:
                flat.append((float(w), t))
        self.terms = flat
        desc = " ".join(f"{'+' if w >= 0 else '-'} {abs(w):g}*{t.desc}" for w, t in flat)
        super().__init__(desc.removeprefix("+ "))

    def bind(self, spec: ModelSpec) -> Objective:
        return Sum([(w, t.bind(spec)) for w, t in self.terms])

    def needs(self) -> list[Need]:
        return [n for _, t in self.terms for n in t.needs()]

    def coupled(self) -> bool:
        return any(t.coupled() for _, t in self.terms)

    def batch_size(self) -> int | None:
        sizes = {t.batch_size() for _, t in self.terms} - {None}
        if len(sizes) > 1:
            raise ValueError(f"objective terms ask for different batch sizes {sorted(sizes)}: {self.desc}")
        return sizes.pop() if sizes else None

    def __call__(self, acts: Acts) -> Tensor:
        out = None
        for w, t in self.terms:
            v = t(acts) * w
            out = v if out is None else out + v
        return out


def _resolve(refs, spec: ModelSpec) -> list[Unit]:
    """Units named by ``refs`` (catalog families included), range-checked, order and duplicates
    kept (a per-image list may name a unit twice)."""
    if isinstance(refs, (str, Unit)) or (isinstance(refs, tuple) and len(refs) == 2 and isinstance(refs[0], str)):
        refs = [refs]
    cat = catalog(spec)
    out: list[Unit] = []
    for r in refs:
        out.extend(cat.resolve(r))
    return out


class _UnitObjective(Objective):
    """Neuron or channel objective over a list of units of one layer (one per image, or one)."""

    kind = ""

    def __init__(self, units, pre_relu: bool = True, pos: tuple[int, int] | None = None,
                 _resolved: list[Unit] | None = None):
        self.refs, self.pre_relu, self.pos = units, bool(pre_relu), pos
        self.units = _resolved
        what = ",".join(str(u) for u in _resolved) if _resolved else str(units)
        where = "" if pos is None else f"@{tuple(pos)}"
        super().__init__(f"{self.kind}({what}{where}, {'pre' if pre_relu else 'post'}-ReLU)")

    def bind(self, spec: ModelSpec) -> Objective:
        units = _resolve(self.refs, spec)
        if not units:
            raise ValueError(f"{self.kind} objective names no units: {self.refs!r}")
        layers = sorted({u.layer for u in units})
        if len(layers) > 1:
            raise ValueError(f"a {self.kind} objective reads one layer; {self.refs!r} spans {', '.join(layers)}")
        return type(self)(self.refs, self.pre_relu, self.pos, _resolved=units)

    def _bound(self) -> list[Unit]:
        if self.units is None:
            raise RuntimeError(f"{self.desc} is not bound to a model (call .bind(model.spec))")
        return self.units

    @property
    def name(self) -> str:
        return _act_name(self._bound()[0].layer, self.pre_relu)

    def batch_size(self) -> int | None:
        u = self._bound() if self.units is not None else None
        return len(u) if u is not None and len(u) > 1 else None

    def _index(self, acts: Acts, n: int, device) -> Tensor:
        idx = [u.index for u in self._bound()]
        if len(idx) > 1 and acts.rows is not None:
            idx = idx[acts.rows[0]:acts.rows[1]]
        if len(idx) not in (1, n):
            raise ValueError(f"{self.desc}: {len(idx)} units for a batch of {n} images (need 1 or {n})")
        return torch.tensor(idx * (n if len(idx) == 1 else 1), device=device)


class _Neuron(_UnitObjective):
    kind = "neuron"

    def needs(self) -> list[Need]:
        return [Need(self.name, frozenset(u.index for u in self._bound()), self.pos is None)]

    def __call__(self, acts: Acts) -> Tensor:
        a = acts[self.name]
        r, c = acts.center[self.name] if self.pos is None else self.pos
        n = a.shape[0]
        return a[torch.arange(n, device=a.device), self._index(acts, n, a.device), r, c]


class _Channel(_UnitObjective):
    kind = "channel"

    def needs(self) -> list[Need]:
        return [Need(self.name, frozenset(u.index for u in self._bound()), False)]

    def __call__(self, acts: Acts) -> Tensor:
        a = acts[self.name]
        n = a.shape[0]
        return a[torch.arange(n, device=a.device), self._index(acts, n, a.device)].mean((-2, -1))


def neuron(units, pre_relu: bool = True, pos: tuple[int, int] | None = None) -> Objective:
    """One unit at one position: ``pos`` (row, col) of the layer's map, default the centre
    position of the optimised window. ``units``: one unit for every image, or a list/family
    (image ``i`` ↔ unit ``i``)."""
    return _Neuron(units, pre_relu, pos)


def channel(units, pre_relu: bool = True) -> Objective:
    """One unit averaged over all positions of its map (per image, like :func:`neuron`)."""
    return _Channel(units, pre_relu)


class _Direction(Objective):
    def __init__(self, layer: str, vector, pre_relu: bool = True, at: str = "mean"):
        if at not in ("mean", "center"):
            raise ValueError(f"direction objective: at must be 'mean' or 'center'; got {at!r}")
        self.layer = canonical_layer(layer)
        v = torch.as_tensor(vector, dtype=torch.float32).flatten()
        if not torch.isfinite(v).all() or v.numel() == 0:
            raise ValueError("direction vector must be non-empty and finite")
        self.vector, self.pre_relu, self.at = v, bool(pre_relu), at
        super().__init__(f"direction({self.layer}, |v|={float(v.norm()):.4g}, {at}, "
                         f"{'pre' if pre_relu else 'post'}-ReLU, sha={_digest(v)})")

    def bind(self, spec: ModelSpec) -> Objective:
        width = spec.layer_width(self.layer)
        if self.vector.numel() != width:
            raise ValueError(f"direction vector has {self.vector.numel()} entries; {self.layer} has {width} units")
        return self

    def needs(self) -> list[Need]:
        return [Need(_act_name(self.layer, self.pre_relu), None, self.at == "center")]

    def __call__(self, acts: Acts) -> Tensor:
        name = _act_name(self.layer, self.pre_relu)
        a = acts[name]
        v = self.vector.to(a)
        if self.at == "center":
            r, c = acts.center[name]
            return a[:, :, r, c] @ v
        return torch.einsum("nchw,c->n", a, v) / (a.shape[-2] * a.shape[-1])


def _digest(v: Tensor) -> str:
    import hashlib

    return hashlib.sha256(v.numpy().tobytes()).hexdigest()[:12]


def direction(layer: str, vector, pre_relu: bool = True, at: str = "mean") -> Objective:
    """``vector · activation`` over a layer's units (e.g. an attribution vector), averaged
    over positions (``at="mean"``, Lucid ``direction``) or at the centre position."""
    return _Direction(layer, vector, pre_relu, at)


class _Diversity(Objective):
    def __init__(self, layer: str, pre_relu: bool = False):
        self.layer, self.pre_relu = canonical_layer(layer), bool(pre_relu)
        super().__init__(f"diversity({self.layer}, {'pre' if pre_relu else 'post'}-ReLU)")

    def needs(self) -> list[Need]:
        return [Need(_act_name(self.layer, self.pre_relu), None, False)]

    def coupled(self) -> bool:
        return True

    def __call__(self, acts: Acts) -> Tensor:
        a = acts[_act_name(self.layer, self.pre_relu)]
        n, c = a.shape[:2]
        flat = a.reshape(n, c, -1)
        gram = flat @ flat.transpose(1, 2)  # (N, C, C)
        g = gram.reshape(n, -1)
        g = g / g.norm(dim=1, keepdim=True).clamp(min=1e-10)
        sim = g @ g.T  # cosine similarities of the Gram matrices
        if n < 2:
            return sim.new_zeros(n)
        return -(sim.sum(1) - sim.diagonal()) / n


def diversity(layer: str, pre_relu: bool = False) -> Objective:
    """Minus the mean cosine similarity between each image's Gram matrix of ``layer`` (channels
    × channels, summed over positions) and the other images' — Lucid's ``diversity`` penalty
    (summed over the batch it equals minus Lucid's value). Add it with a weight:
    ``neuron(...) + 100 * diversity("mixed3b")``."""
    return _Diversity(layer, pre_relu)


def negative(obj: Objective) -> Objective:
    """``-obj``: minimise the objective (e.g. a unit's most inhibiting image)."""
    return -obj


OBJECTIVES: dict[str, Callable[..., Objective]] = {"neuron": neuron, "channel": channel}


def unit_objective(kind: str, units, pre_relu: bool = True) -> Objective:
    """``neuron`` or ``channel`` by name (the CLI's ``--objective``).

    Raises:
        ValueError: unknown kind (lists the valid ones)."""
    if kind not in OBJECTIVES:
        raise ValueError(f"unknown objective {kind!r}; valid: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[kind](units, pre_relu=pre_relu)

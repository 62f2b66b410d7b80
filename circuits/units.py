"""Units (neurons) and families, addressed the way the Circuits articles write them.

``Unit("mixed3b", 379)``, ``"3b:379"`` and ``"mixed3b:379"`` all name channel 379 of
mixed3b. Layer short names: ``3a`` … ``5b`` for mixed layers, ``conv2d0`` … ``conv2d2``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .spec import CONV_KERNEL, LAYERS, MIXED_LAYERS, ModelSpec

_UNIT_RE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*:\s*(-?\d+)\s*$")


def canonical_layer(name: str, spec: ModelSpec | None = None) -> str:
    """``"3b"`` → ``"mixed3b"``; canonical names and branch activations pass through.

    Raises:
        KeyError: unknown layer; lists the valid ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"layer must be a string, got {type(name).__name__}")
    n = name.strip()
    if re.fullmatch(r"[345][a-e]", n):
        n = "mixed" + n
    if n in LAYERS:
        if spec is not None and n in MIXED_LAYERS:
            spec.block(n)
        return n
    for layer in MIXED_LAYERS:
        if n.startswith(layer + "_") and n[len(layer) + 1:] in CONV_KERNEL:
            return n
    raise KeyError(f"unknown layer {name!r}; valid layers: {', '.join(LAYERS)} (or short forms 3a … 5b)")


@dataclass(frozen=True, order=True)
class Unit:
    """One channel (unit, neuron) of a layer: ``Unit("mixed3b", 379)``."""

    layer: str
    index: int

    def __post_init__(self):
        object.__setattr__(self, "layer", canonical_layer(self.layer))
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            try:
                idx = int(self.index)
            except (TypeError, ValueError):
                raise TypeError(f"unit index must be an integer, got {self.index!r}") from None
            if idx != self.index:
                raise TypeError(f"unit index must be an integer, got {self.index!r}")
            object.__setattr__(self, "index", idx)
        if self.index < 0:
            raise IndexError(f"unit index must be ≥ 0, got {self.layer}:{self.index}")

    @classmethod
    def parse(cls, ref: "str | Unit | tuple[str, int]") -> "Unit":
        """Parse ``"3b:379"``, ``"mixed3b:379"``, ``("mixed3b", 379)`` or a Unit.

        Raises:
            ValueError: a string not of the form ``layer:index``.
            KeyError: unknown layer.
        """
        if isinstance(ref, Unit):
            return ref
        if isinstance(ref, tuple) and len(ref) == 2:
            return cls(ref[0], ref[1])
        if isinstance(ref, str):
            m = _UNIT_RE.match(ref)
            if not m:
                raise ValueError(f"cannot parse unit {ref!r}; expected 'layer:index' such as '3b:379' or 'mixed3b:379'")
            return cls(m.group(1), int(m.group(2)))
        raise TypeError(f"cannot interpret {ref!r} as a unit")

    def validate(self, spec: ModelSpec) -> "Unit":
        """Check the index against the layer's width in ``spec``.

        Raises:
            IndexError: index out of range, naming the valid range.
        """
        width = spec.layer_width(self.layer)
        if not 0 <= self.index < width:
            raise IndexError(f"{self} is out of range for {spec.name}: {self.layer} has units 0..{width - 1}")
        return self

    @property
    def short(self) -> str:
        return f"{self.layer[5:]}:{self.index}" if self.layer in MIXED_LAYERS else str(self)

    def __str__(self) -> str:
        return f"{self.layer}:{self.index}"


@dataclass(frozen=True)
class Family:
    """A named set of units of one layer (``mixed3b/curves``), with provenance.

    ``orientations`` (degrees, the project's convention; see :mod:`studies.stimuli`) is
    optional and parallel to ``units``.
    """

    name: str
    layer: str
    units: tuple[int, ...]
    kind: str = ""
    source: str = ""
    orientations: tuple[float, ...] | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "layer", canonical_layer(self.layer))
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.name}"

    def __iter__(self) -> Iterator[Unit]:
        return (Unit(self.layer, i) for i in self.units)

    def __len__(self) -> int:
        return len(self.units)


def resolve_units(refs: "str | Unit | Family | Iterable", spec: ModelSpec | None = None) -> list[Unit]:
    """Turn a unit, family, ``"3b:379"`` string or an iterable of those into a list of Units.

    Comma-separated strings (``"3b:379,3b:385"``) are accepted. With ``spec`` every unit is
    range-checked.
    """
    out: list[Unit] = []
    if isinstance(refs, (Unit, Family)) or (
        isinstance(refs, tuple) and len(refs) == 2 and isinstance(refs[0], str) and isinstance(refs[1], int)
    ):
        refs = [refs]
    elif isinstance(refs, str):
        refs = [r for r in refs.split(",") if r.strip()]
    for r in refs:
        if isinstance(r, Family):
            out.extend(r)
        else:
            out.append(Unit.parse(r))
    if spec is not None:
        for u in out:
            u.validate(spec)
    return out


def group_by_layer(units: Sequence[Unit]) -> dict[str, list[int]]:
    """``{layer: [indices]}`` in first-seen order."""
    out: dict[str, list[int]] = {}
    for u in units:
        out.setdefault(u.layer, []).append(u.index)
    return out

"""Units (neurons) and families, addressed the way the Circuits articles write them — the one
parser of that grammar.

``Unit("mixed3b", 379)``, ``"3b:379"`` and ``"mixed3b:379"`` all name channel 379 of
mixed3b; ``"mixed3b_5x5:59"`` is channel 59 of the 5x5 branch activation. Layer short names:
``3a`` … ``5b`` for mixed layers, ``conv2d0`` … ``conv2d2``. Families are
:class:`Family` objects or keys ``"mixed3b/curves"`` (``"3b/curves"``; :class:`FamilyKey`)
looked up in a catalog (:mod:`circuits.catalog`). Strings may list several items separated by
commas; lists may nest.

- :func:`parse_refs` — the parser (no lookups): ``[Unit | Family | FamilyKey, …]``;
- :func:`resolve_units` — units, family keys looked up, optionally range-checked / unique;
- :func:`resolve_targets` — units plus one label per item (command lines);
- :func:`lookup_family` — one family key → :class:`Family`.

Every other module (catalog, edits, studies) goes through these.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .names import LAYERS, MIXED_LAYERS, split_conv_activation
from .spec import ModelSpec

_UNIT_RE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*:\s*(-?\d+)\s*$")


def canonical_layer(name: str, spec: ModelSpec | None = None) -> str:
    """``"3b"`` → ``"mixed3b"``, ``"3b_5x5"`` → ``"mixed3b_5x5"``; canonical names and branch
    activations pass through.

    Raises:
        KeyError: unknown layer; lists the valid ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"layer must be a string, got {type(name).__name__}")
    n = name.strip()
    if re.fullmatch(r"[345][a-e](_\w+)?", n):  # 3b, 3b_5x5
        n = "mixed" + n
    if n in LAYERS:
        if spec is not None and n in MIXED_LAYERS:
            spec.block(n)
        return n
    if split_conv_activation(n) is not None:
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


# ============================================================================ the grammar
_FAMILY_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True, order=True)
class FamilyKey:
    """A family named by key, ``"mixed3b/curves"`` (``"3b/curves"`` is canonicalised), not yet
    looked up in a catalog (:func:`lookup_family`)."""

    layer: str
    name: str

    def __post_init__(self):
        object.__setattr__(self, "layer", canonical_layer(self.layer))
        if not isinstance(self.name, str) or not _FAMILY_NAME_RE.match(self.name):
            raise ValueError(f"cannot parse family {str(self.layer) + '/' + str(self.name)!r}; expected 'layer/name' "
                             "such as 'mixed3b/curves' (name: letters, digits, '_', '.', '-')")

    @classmethod
    def parse(cls, text: str) -> FamilyKey:
        """``"3b/curves"`` → ``FamilyKey("mixed3b", "curves")``.

        Raises:
            ValueError: not of the form ``layer/name``. KeyError: unknown layer.
        """
        if not isinstance(text, str):
            raise TypeError(f"a family key is a string such as 'mixed3b/curves', got {text!r}")
        layer, sep, name = text.strip().partition("/")
        if not sep or not layer.strip() or not name.strip():
            raise ValueError(f"cannot parse family {text!r}; expected 'layer/name' such as 'mixed3b/curves'")
        return cls(layer.strip(), name.strip())

    def __str__(self) -> str:
        return f"{self.layer}/{self.name}"


#: One parsed reference: a unit, a family object, or a family key still to look up.
Ref = Union[Unit, Family, FamilyKey]
#: What the grammar accepts (see :func:`parse_refs`).
RefsLike = Union[str, Unit, Family, FamilyKey, tuple, Iterable]


def _is_unit_tuple(r: Any) -> bool:
    """``("mixed3b", 379)``: a unit, not a list of two references."""
    return (isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], str) and ":" not in r[0] and "/" not in r[0]
            and not isinstance(r[1], (str, bytes, Mapping, Unit, Family, FamilyKey)) and not isinstance(r[1], Iterable))


def _parse_text(part: str, hint: str) -> Ref:
    if "/" in part:
        return FamilyKey.parse(part)
    if ":" in part:
        return Unit.parse(part)
    raise ValueError(f"cannot parse {part!r}: expected a unit such as '3b:379' or a family such as "
                     f"'mixed3b/curves'{hint}")


def parse_refs(refs: RefsLike, *, with_text: bool = False, hint: str = "") -> list:
    """The parser of the unit/family grammar (spec-free: nothing is looked up or range-checked).

    Accepts a :class:`Unit`, a :class:`Family`, a :class:`FamilyKey`, a ``("mixed3b", 379)``
    tuple, a string — ``"3b:379"``, ``"mixed3b:379"``, a branch activation unit
    ``"mixed3b_5x5:59"``, a family key ``"mixed3b/curves"`` / ``"3b/curves"``, or a
    comma-separated list of those (blank items are skipped) — or any (nested) iterable of
    these. Order and duplicates are kept.

    Args:
        refs: the references.
        with_text: return ``(text, ref)`` pairs, ``text`` being the item as written (a string
            item, stripped) or ``str(ref)``.
        hint: appended to syntax-error messages (e.g. the valid families).

    Returns:
        ``[Unit | Family | FamilyKey, …]`` (or ``(text, ref)`` pairs).

    Raises:
        TypeError: something that is not a reference (bytes, a mapping, a number …).
        ValueError: a string that is neither ``layer:index`` nor ``layer/name``.
        KeyError: an unknown layer (lists the valid layers). IndexError: a negative index.
    """
    out: list = []

    def add(r: Any) -> None:
        if isinstance(r, (Unit, Family, FamilyKey)):
            out.append((str(r) if not isinstance(r, Family) else r.key, r))
        elif isinstance(r, str):
            for part in (p.strip() for p in r.split(",")):
                if part:
                    out.append((part, _parse_text(part, hint)))
        elif _is_unit_tuple(r):
            u = Unit.parse(r)
            out.append((str(u), u))
        elif isinstance(r, (bytes, bytearray, Mapping)) or not isinstance(r, Iterable):
            raise TypeError(f"cannot interpret {r!r} as units: expected a unit ('3b:379'), a family ('mixed3b/curves' "
                            "or a Family) or a list of those")
        else:
            for x in r:
                add(x)

    add(refs)
    return out if with_text else [r for _, r in out]


#: Where family keys are looked up when no ``families`` are given: ``spec → {key: Family}``.
#: :mod:`circuits.catalog` registers its packaged-catalog loader here (:func:`set_family_source`)
#: when it is imported, which the ``circuits`` package always does; the catalog builds on this
#: module, so this module does not import it.
_FAMILY_SOURCE: Callable[[ModelSpec], Mapping[str, Family]] | None = None


def set_family_source(source: Callable[[ModelSpec], Mapping[str, Family]] | None) -> None:
    """Register the default family lookup of :func:`lookup_family` (``spec → {key: Family}``;
    raising ``FileNotFoundError`` when a checkpoint has no catalog). Called by :mod:`circuits.catalog`."""
    global _FAMILY_SOURCE
    _FAMILY_SOURCE = source


def lookup_family(key: FamilyKey | str, spec: ModelSpec | None = None,
                  families: Mapping[str, Family] | None = None) -> Family:
    """The family ``key`` names, from ``families`` (a :class:`~circuits.catalog.FamilyCatalog`
    or ``{key: Family}``) or, by default, the packaged catalog of ``spec``'s checkpoint.

    Raises:
        KeyError: unknown family (lists the valid ones), no catalog for the checkpoint, or no
            ``spec`` and no ``families`` to look in.
    """
    key = str(FamilyKey.parse(key) if isinstance(key, str) else key)
    if families is None:
        if spec is None:
            raise KeyError(f"{key!r} names a family; it is resolved against a checkpoint's catalog — give a spec "
                           "(or list the units)")
        if _FAMILY_SOURCE is None:
            raise KeyError(f"{key!r} names a family, but no family catalog is available (import circuits.catalog)")
        try:
            families = _FAMILY_SOURCE(spec)
        except FileNotFoundError:
            raise KeyError(f"{key!r} names a family, but {spec.name} has no packaged family catalog; "
                           "list the units (or pass a Family object)") from None
    try:
        return families[key]
    except KeyError as e:
        if hasattr(families, "spec"):  # a FamilyCatalog: its message lists the valid families
            raise
        raise KeyError(f"no family {key!r}; valid families: {', '.join(families) or '(none)'}") from e


def resolve_units(refs: RefsLike, spec: ModelSpec | None = None, *, families: Mapping[str, Family] | None = None,
                  unique: bool = False, hint: str = "") -> list[Unit]:
    """Units named by ``refs`` (anything :func:`parse_refs` accepts), family keys looked up
    with :func:`lookup_family` (``families``, or the packaged catalog of ``spec``).

    Args:
        refs: the references.
        spec: with a spec, every unit is range-checked.
        families: where family keys are looked up (default: ``spec``'s packaged catalog).
        unique: drop repeated units (first occurrence kept).
        hint: appended to syntax-error messages.

    Returns:
        ``[Unit, …]`` in the order given.

    Raises:
        TypeError / ValueError / KeyError: as :func:`parse_refs` and :func:`lookup_family`.
        IndexError: a unit out of range for ``spec`` (names the valid range).
    """
    out: list[Unit] = []
    for r in parse_refs(refs, hint=hint):
        if isinstance(r, FamilyKey):
            r = lookup_family(r, spec, families)
        if isinstance(r, Family):
            out.extend(r)
        else:
            out.append(r)
    if spec is not None:
        for u in out:
            u.validate(spec)
    return list(dict.fromkeys(out)) if unique else out


def resolve_targets(targets: RefsLike, spec: ModelSpec, *, families: Mapping[str, Family] | None = None
                    ) -> tuple[list[Unit], list[str]]:
    """Units and labels of command-line style targets (``"3b:358"``, ``"mixed3b:358,mixed3b:9"``,
    ``"mixed3b/curves"``): ``(units, labels)`` with units range-checked and without
    repeats; one label per item — the family's key for a family, the item as written for a
    unit.

    Raises:
        ValueError: no unit at all, or an unparsable item. KeyError / IndexError: unknown
            family or layer, unit out of range.
    """
    units: list[Unit] = []
    labels: list[str] = []
    for text, r in parse_refs(targets, with_text=True):
        if isinstance(r, FamilyKey):
            r = lookup_family(r, spec, families)
        if isinstance(r, Family):
            units.extend(r)
            labels.append(r.key)
        else:
            units.append(r)
            labels.append(text)
    if not units:
        raise ValueError("no units given (e.g. 3b:358 or mixed3b/curves)")
    units = list(dict.fromkeys(units))
    for u in units:
        u.validate(spec)
    return units, labels


def group_by_layer(units: Sequence[Unit]) -> dict[str, list[int]]:
    """``{layer: [indices]}`` in first-seen order."""
    out: dict[str, list[int]] = {}
    for u in units:
        out.setdefault(u.layer, []).append(u.index)
    return out

"""Family catalogs: named unit families per checkpoint, loaded from packaged YAML files.

``catalog(model)["mixed3b/curves"]`` → :class:`~circuits.units.Family`; ``"3b/curves"`` works
too, and :meth:`FamilyCatalog.resolve` turns ``"3b:379"``, ``"mixed3b/curves"``, Units,
Families or lists of them into range-checked Units. Each file records where every family
comes from:

- ``families_inceptionv1.yaml`` (Lucid's checkpoint): the lists of the Distill Circuits
  articles, with citations (shared/docs/science.md §2);
- ``families_inceptionv1_caffe.yaml`` (BVLC): the project's own discovery
  (:mod:`studies.measure.discovery`), with the criteria and the command that regenerates it.

File format (``yaml.safe_load``): file-level fields (``checkpoint``, notes …) and a list
``families`` of mappings with ``name``, ``layer``, ``units`` (required), ``kind``,
``source``, ``orientations`` (degrees, parallel to ``units``), ``aliases`` (other names in
the same layer, e.g. Lucid's ``mixed3a/early_curves`` is also ``mixed3a/curves``) and any
other fields, which land in :attr:`Family.meta`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path

from .documents import load_yaml, read_text
from .spec import ModelSpec, get_spec
from .units import Family, FamilyKey, Unit, canonical_layer, resolve_units, set_family_source

_CORE_FIELDS = ("name", "layer", "units", "kind", "source", "orientations")


def catalog_path(checkpoint: str | ModelSpec) -> Path:
    """Path of the packaged catalog file of a checkpoint."""
    spec = get_spec(checkpoint)
    return Path(str(resources.files("circuits").joinpath(f"data/families_{spec.name}.yaml")))


class FamilyCatalog(Mapping):
    """Families of one checkpoint, keyed ``"<layer>/<name>"`` (``"mixed3b/curves"``; short
    layer names such as ``"3b/curves"`` and a family's ``aliases`` are accepted).

    Every unit is range-checked against the spec when the catalog is built.

    Raises (on lookup):
        KeyError: unknown family or layer; the message lists the valid families.
    """

    def __init__(self, spec: ModelSpec, families: list[Family], meta: dict | None = None):
        self.spec = spec
        self.meta = meta or {}
        self._f: dict[str, Family] = {}
        self._alias: dict[str, str] = {}
        for f in families:
            if f.key in self._f:
                raise ValueError(f"{spec.name}: family {f.key} is defined twice")
            spec.layer_width(f.layer)  # the layer exists in this checkpoint
            for u in f:
                u.validate(spec)
            if len(set(f.units)) != len(f.units):
                dup = sorted({u for u in f.units if f.units.count(u) > 1})
                raise ValueError(f"{spec.name}: family {f.key} lists units {dup} more than once")
            if f.orientations is not None and len(f.orientations) != len(f.units):
                raise ValueError(f"{spec.name}: family {f.key} has {len(f.orientations)} orientations for "
                                 f"{len(f.units)} units")
            self._f[f.key] = f
        for f in families:
            for a in f.meta.get("aliases", ()) or ():
                k = f"{f.layer}/{a}"
                if k in self._f or k in self._alias:
                    raise ValueError(f"{spec.name}: alias {k} of {f.key} clashes with another family or alias")
                self._alias[k] = f.key

    # ----------------------------------------------------------------- lookup
    def _valid(self) -> str:
        return ", ".join(self._f) or "(none)"

    def _key(self, key: str) -> str:
        try:
            k = str(FamilyKey.parse(key))
        except KeyError:
            layer = key.split("/", 1)[0]
            raise KeyError(f"unknown layer {layer!r} in family key {key!r}; valid families of {self.spec.name}: "
                           f"{self._valid()}") from None
        except (ValueError, TypeError):
            raise KeyError(f"family keys look like 'mixed3b/curves'; got {key!r}. Valid families of "
                           f"{self.spec.name}: {self._valid()}") from None
        return self._alias.get(k, k)

    def __getitem__(self, key: str) -> Family:
        k = self._key(key)
        if k not in self._f:
            layer = k.split("/", 1)[0]
            here = [f for f in self._f if f.startswith(layer + "/")]
            hint = f" ({layer} has: {', '.join(here)})" if here else f" (none in {layer})"
            raise KeyError(f"no family {key!r} for {self.spec.name}{hint}; valid families: {self._valid()}")
        return self._f[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._f)

    def __len__(self) -> int:
        return len(self._f)

    def __contains__(self, key) -> bool:
        try:
            return self._key(key) in self._f
        except KeyError:
            return False

    def __repr__(self) -> str:
        return f"FamilyCatalog({self.spec.name}: {len(self)} families: {self._valid()})"

    @property
    def layers(self) -> list[str]:
        """Layers that have families, in first-seen order."""
        return list(dict.fromkeys(f.layer for f in self._f.values()))

    def in_layer(self, layer: str) -> list[Family]:
        """Families of one layer (short names accepted)."""
        layer = canonical_layer(layer)
        return [f for f in self._f.values() if f.layer == layer]

    def of_kind(self, kind: str) -> list[Family]:
        """Families of one kind (``"curve"``, ``"line"`` …)."""
        return [f for f in self._f.values() if f.kind == kind]

    def families_of(self, unit: Unit | str) -> list[Family]:
        """Families that contain ``unit`` (a unit may be in several)."""
        u = Unit.parse(unit).validate(self.spec)
        return [f for f in self._f.values() if f.layer == u.layer and u.index in f.units]

    def orientation_of(self, unit: Unit | str) -> float | None:
        """The preferred orientation the catalog records for ``unit`` (first family that
        has one), or None."""
        u = Unit.parse(unit)
        for f in self.families_of(u):
            if f.orientations is not None:
                return float(f.orientations[f.units.index(u.index)])
        return None

    def resolve(self, refs: str | Unit | Family | tuple | Iterable) -> list[Unit]:
        """Units named by ``refs``, range-checked against the checkpoint.

        Accepts ``"3b:379"`` / ``"mixed3b:379"`` / ``("mixed3b", 379)`` / :class:`Unit`, a
        family key (``"mixed3b/curves"``, ``"3b/curves"``, an alias), a :class:`Family`, a
        comma-separated string of any of those, or an iterable of them. Order is kept;
        duplicates are dropped.

        Raises:
            KeyError: unknown family or layer (lists the valid families / layers).
            IndexError: a unit out of range (names the valid range).
            ValueError: a string that is neither ``layer:index`` nor ``layer/family``.
        """
        if isinstance(refs, str) and not refs.replace(",", "").strip():
            raise ValueError(f"empty unit/family reference {refs!r}")
        return resolve_units(refs, self.spec, families=self, unique=True, hint=f" (valid families: {self._valid()})")


def _family(f: dict, path: Path, i: int) -> Family:
    if not isinstance(f, dict):
        raise ValueError(f"{path}: family #{i} is not a mapping")
    for k in ("name", "layer", "units"):
        if k not in f:
            raise ValueError(f"{path}: family #{i} ({f.get('layer', '?')}/{f.get('name', '?')}) lacks field {k!r}")
    where = f"{path}: family {f['layer']}/{f['name']}"
    units = f["units"]
    if not isinstance(units, list) or not all(isinstance(u, int) and not isinstance(u, bool) for u in units):
        raise ValueError(f"{where}: units must be a list of integers, got {units!r}")
    ors = f.get("orientations")
    if ors is not None:
        if not isinstance(ors, list) or not all(isinstance(o, (int, float)) and math.isfinite(o) for o in ors):
            raise ValueError(f"{where}: orientations must be a list of finite numbers, got {ors!r}")
        ors = tuple(float(o) for o in ors)
    try:
        return Family(name=str(f["name"]), layer=f["layer"], units=tuple(units), kind=f.get("kind", ""),
                      source=f.get("source", ""), orientations=ors,
                      meta={k: v for k, v in f.items() if k not in _CORE_FIELDS})
    except KeyError as e:
        raise ValueError(f"{where}: {e.args[0] if e.args else e}") from None


def load_catalog(checkpoint: str | ModelSpec, path: str | Path | None = None) -> FamilyCatalog:
    """Load a catalog YAML (default: the packaged one) with ``yaml.safe_load``.

    Raises:
        FileNotFoundError: no catalog for this checkpoint.
        ValueError: malformed file (names the family and field), a duplicate family, or
            orientations not parallel to units.
        IndexError: a unit out of range for the checkpoint.
    """
    spec = get_spec(checkpoint)
    path = Path(path) if path else catalog_path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"no family catalog for {spec.name} at {path}")
    data = load_yaml(read_text(path, "catalog"), str(path)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with a 'families' list")
    if data.get("checkpoint", spec.name) != spec.name:
        raise ValueError(f"{path} is the catalog of {data['checkpoint']!r}, not {spec.name!r}")
    fams = [_family(f, path, i) for i, f in enumerate(data.get("families") or [])]
    meta = {k: v for k, v in data.items() if k != "families"}
    return FamilyCatalog(spec, fams, meta)


def catalog(model_or_checkpoint) -> FamilyCatalog:
    """The packaged catalog of a model (or checkpoint name / spec)."""
    spec = getattr(model_or_checkpoint, "spec", model_or_checkpoint)
    return load_catalog(spec)


# family keys in the unit grammar (circuits.units) resolve through the packaged catalogs
set_family_source(load_catalog)

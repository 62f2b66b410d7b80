"""Family catalogs: named unit families per checkpoint, loaded from packaged YAML files.

``catalog(model)["mixed3b/curves"]`` → :class:`~circuits.units.Family`. Each file records
where every family comes from (an article for Lucid's ``inceptionv1``; the project's own
discovery, with the command that regenerates it, for BVLC ``inceptionv1_caffe``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path

import yaml

from .spec import ModelSpec, get_spec
from .units import Family, Unit, canonical_layer


def catalog_path(checkpoint: str | ModelSpec) -> Path:
    """Path of the packaged catalog file of a checkpoint."""
    spec = get_spec(checkpoint)
    return Path(str(resources.files("circuits").joinpath(f"data/families_{spec.name}.yaml")))


class FamilyCatalog(Mapping):
    """Families of one checkpoint, keyed ``"<layer>/<name>"`` (``"mixed3b/curves"``; short
    layer names such as ``"3b/curves"`` are accepted)."""

    def __init__(self, spec: ModelSpec, families: list[Family], meta: dict | None = None):
        self.spec = spec
        self.meta = meta or {}
        self._f = {f.key: f for f in families}
        for f in families:
            for u in f:
                u.validate(spec)

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or "/" not in key:
            raise KeyError(f"family keys look like 'mixed3b/curves'; got {key!r}. Valid: {', '.join(self._f)}")
        layer, name = key.split("/", 1)
        try:
            layer = canonical_layer(layer)
        except KeyError:
            raise KeyError(f"unknown layer in family key {key!r}; valid families: {', '.join(self._f)}") from None
        return f"{layer}/{name}"

    def __getitem__(self, key: str) -> Family:
        k = self._key(key)
        if k not in self._f:
            raise KeyError(f"no family {key!r} for {self.spec.name}; valid families: {', '.join(self._f) or '(none)'}")
        return self._f[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._f)

    def __len__(self) -> int:
        return len(self._f)

    def families_of(self, unit: Unit | str) -> list[Family]:
        """Families that contain ``unit``."""
        u = Unit.parse(unit)
        return [f for f in self._f.values() if f.layer == u.layer and u.index in f.units]


def load_catalog(checkpoint: str | ModelSpec, path: str | Path | None = None) -> FamilyCatalog:
    """Load a catalog YAML (default: the packaged one) with ``yaml.safe_load``.

    Raises:
        FileNotFoundError: no catalog for this checkpoint.
        ValueError: malformed file (names the family and field).
    """
    spec = get_spec(checkpoint)
    path = Path(path) if path else catalog_path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"no family catalog for {spec.name} at {path}")
    data = yaml.safe_load(path.read_text()) or {}
    fams = []
    for i, f in enumerate(data.get("families", [])):
        try:
            fams.append(Family(
                name=f["name"], layer=f["layer"], units=tuple(f["units"]), kind=f.get("kind", ""),
                source=f.get("source", ""),
                orientations=tuple(f["orientations"]) if f.get("orientations") is not None else None,
                meta={k: v for k, v in f.items() if k not in ("name", "layer", "units", "kind", "source", "orientations")},
            ))
        except KeyError as e:
            raise ValueError(f"{path}: family #{i} lacks field {e}") from None
    meta = {k: v for k, v in data.items() if k != "families"}
    return FamilyCatalog(spec, fams, meta)


def catalog(model_or_checkpoint) -> FamilyCatalog:
    """The packaged catalog of a model (or checkpoint name)."""
    spec = getattr(model_or_checkpoint, "spec", model_or_checkpoint)
    return load_catalog(spec)

"""One fresh discovery of every frozen BVLC family per test session, shared by
``test_catalog.py`` and ``test_discovery.py`` (the reference statistics come from one pass
over the reference images for all layers, and each layer is swept once)."""

from __future__ import annotations

from studies.measure.discovery import REFERENCE_IMAGES, discover_families
from studies.measure.images import load_reference_set

_CACHE: dict = {}


def fresh_discoveries(model, images_dir) -> dict:
    """``{"<layer>/<name>": Discovery}`` for every family frozen for ``model``'s checkpoint."""
    key = (id(model), str(images_dir))
    if key not in _CACHE:
        ref = load_reference_set(images_dir, REFERENCE_IMAGES)
        _CACHE[key] = discover_families(model, ref)
    return _CACHE[key]

"""Class lists of the two checkpoints (wnid per output index).

BVLC ``inceptionv1_caffe`` outputs the 1000 ILSVRC-2012 classes in the standard order of
``synset_words.txt``. Lucid's ``inceptionv1`` has 1008 outputs: index 0 "dummy", 1..1000
ImageNet in an alternate order (``labels_wnid_index_name.txt``), 1001..1007 unused.

The files are looked up in ``<cache>/labels/`` (copied there by ``circuits weights import``
or ``fetch``), then in ``$CIRCUITS_DATA``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .spec import ModelSpec, get_spec
from .weights import cache_dir, data_dir

_FILES = {"synset_words": ("synset_words.txt", "synset_words.txt"),
          "lucid": ("labels_wnid_index_name.txt", "inceptionv1_lucid/labels_wnid_index_name.txt")}


def label_file(spec: ModelSpec | str) -> Path:
    """Path of the class-list file for ``spec``.

    Raises:
        FileNotFoundError: not in the cache nor in ``$CIRCUITS_DATA``; says how to provide it.
    """
    spec = get_spec(spec)
    name, rel = _FILES[spec.label_source]
    candidates = [cache_dir() / "labels" / name]
    if data_dir():
        candidates.append(data_dir() / rel)
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"class list for {spec.name} ({rel}) not found in {', '.join(map(str, candidates))}; run "
        f"`circuits weights import --from DATA/bvlc_googlenet` (copies it from DATA) or set CIRCUITS_DATA"
    )


@lru_cache(maxsize=8)
def _read(spec_name: str, path: str) -> tuple[tuple[str | None, ...], tuple[str, ...]]:
    spec = get_spec(spec_name)
    wnids: list[str | None] = [None] * spec.num_classes
    names = [""] * spec.num_classes
    for i, line in enumerate(Path(path).read_text().splitlines()):
        if not line.strip():
            continue
        if spec.label_source == "synset_words":
            wnid, name = line.split(" ", 1)
            idx = i
        else:
            wnid, idx_s, name = line.split(" ", 2)
            idx = int(idx_s)
        wnids[idx] = wnid
        names[idx] = name.strip()
    if spec.label_source == "lucid":
        names[0] = "dummy"
    return tuple(wnids), tuple(names)


def class_wnids(spec: ModelSpec | str) -> list[str | None]:
    """WordNet id of every output index (``None`` for Lucid's dummy/unused outputs)."""
    spec = get_spec(spec)
    return list(_read(spec.name, str(label_file(spec)))[0])


def class_names(spec: ModelSpec | str) -> list[str]:
    """Human-readable name of every output index."""
    spec = get_spec(spec)
    return list(_read(spec.name, str(label_file(spec)))[1])

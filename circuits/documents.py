"""Bounded reading of the YAML/JSON documents the tool takes from users (edit plans, family
catalogs, edited-model metadata, graph files): every document is limited **before** Python
objects are built from it (issue 13, kind 4).

Limits (module constants, stated in the README's "Security and limits"):

- :data:`MAX_DOCUMENT_BYTES` (16 MiB) of text, and the file must be a regular file (a FIFO or a
  device named ``plan.yaml`` would block or never end);
- YAML: at most :data:`MAX_YAML_ALIASES` (1,000) aliases and :data:`MAX_NODES` (1,000,000) nodes
  **after alias expansion** (a "billion laughs" bomb of ~480 bytes, 9 levels × 9 aliases, expands
  to 9⁹ ≈ 387 M nodes and is refused in milliseconds, before construction), nesting at most
  :data:`MAX_DEPTH` (200) levels; only ``yaml.SafeLoader`` tags;
- YAML and JSON: integers of at most :data:`MAX_INT_DIGITS` (100) digits (a 5,000-digit integer is refused
  by name instead of hitting CPython's 4,300-digit conversion limit), nesting at most
  :data:`MAX_DEPTH` levels.

Errors are :class:`DocumentError` (a ``ValueError``) naming the document and the limit.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_DOCUMENT_BYTES = 16 * 2**20  #: text size limit of a document (16 MiB)
MAX_YAML_ALIASES = 1000  #: aliases (``*name``) in one YAML document
MAX_NODES = 1_000_000  #: nodes of a YAML document after alias expansion
MAX_DEPTH = 200  #: nesting depth of lists/mappings
MAX_INT_DIGITS = 100  #: digits of a JSON integer


class DocumentError(ValueError):
    """A document over a limit, not a regular file, or not valid YAML/JSON."""


def read_text(path: str | Path, what: str = "file", max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` bytes.

    Raises:
        FileNotFoundError: no such file. DocumentError: not a regular file (FIFO, device,
        folder), over the size limit, or not UTF-8.
    """
    path = Path(path)
    st = os.stat(path)  # follows symlinks; FileNotFoundError names the path
    if not stat.S_ISREG(st.st_mode):
        raise DocumentError(f"{what} {path} is not a regular file")
    if st.st_size > max_bytes:
        raise DocumentError(f"{what} {path} is {st.st_size:,} bytes; the limit is {max_bytes:,}")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DocumentError(f"{what} {path} is over the limit of {max_bytes:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DocumentError(f"{what} {path} is not UTF-8 text: {e}") from None


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts aliases while composing (no objects built yet)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise DocumentError(f"more than {MAX_YAML_ALIASES} YAML aliases")
        return super().compose_node(parent, index)

    def construct_yaml_int(self, node):  # noqa: ANN001, ANN201 - PyYAML's signature
        """An integer of at most :data:`MAX_INT_DIGITS` digits (as JSON's), before Python converts it."""
        _check_digits(str(node.value).replace("_", "").replace(":", "").lstrip("+-").lower()
                      .removeprefix("0x").removeprefix("0o").removeprefix("0b"))
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes of the tree after alias expansion (shared nodes counted once per use), without
    expanding anything: sizes are memoised per node. Refuses recursion and deep nesting."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    active: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise DocumentError(f"nested deeper than {MAX_DEPTH} levels")
        children = _children(node)
        if done:
            active.discard(id(node))
            size[id(node)] = min(1 + sum(size[id(c)] for c in children), MAX_NODES + 1)
            continue
        if id(node) in size:
            continue
        if id(node) in active:
            raise DocumentError("a recursive YAML alias (a node that contains itself)")
        active.add(id(node))
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in size)
    return size[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for kv in node.value for x in kv]
    return []


def load_yaml(text: str, what: str = "document") -> Any:
    """Parse one YAML document with the safe loader within the limits above.

    Raises:
        DocumentError: over a limit, or not valid YAML (``python/*`` tags included).
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{what}: {len(text):,} characters; the limit is {MAX_DOCUMENT_BYTES:,}")
    loader = None
    try:
        loader = _BoundedLoader(text)  # the reader may refuse characters already
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_size(node)
        if n > MAX_NODES:
            raise DocumentError(f"more than {MAX_NODES:,} YAML nodes after alias expansion")
        return loader.construct_document(node)
    except DocumentError as e:
        raise DocumentError(f"{what}: {e} (limits of circuits.documents)") from None
    except (yaml.YAMLError, RecursionError) as e:
        raise DocumentError(f"{what}: not valid YAML (only plain YAML is read, no python/* tags): "
                            f"{_yaml_reason(e)}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_reason(e: BaseException) -> str:
    """One line: PyYAML's problem and where (its messages span several lines with carets)."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return _short(f"{problem} (line {mark.line + 1}, column {mark.column + 1})")
    return _short(str(e))


def _check_digits(digits: str) -> None:
    if len(digits) > MAX_INT_DIGITS:
        raise DocumentError(f"an integer of {len(digits):,} digits (the limit is {MAX_INT_DIGITS})")


def _int(s: str) -> int:
    _check_digits(s.lstrip("-"))
    return int(s)


def load_json(text: str, what: str = "document") -> Any:
    """Parse JSON within the limits above (size, integer digits, depth).

    Raises:
        DocumentError: over a limit, or not valid JSON.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{what}: {len(text):,} characters; the limit is {MAX_DOCUMENT_BYTES:,}")
    try:
        value = json.loads(text, parse_int=_int)
    except DocumentError as e:
        raise DocumentError(f"{what}: {e}") from None
    except (json.JSONDecodeError, RecursionError, TypeError, ValueError) as e:
        raise DocumentError(f"{what}: not valid JSON: {_short(str(e))}") from None
    _check_depth(value, what)
    return value


def _check_depth(value: Any, what: str) -> None:
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH:
            raise DocumentError(f"{what}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)


def _short(msg: str, limit: int = 500) -> str:
    """An error message on one line, cut to ``limit`` characters (a bad document must not
    produce a huge message)."""
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[:limit] + f"… ({len(msg) - limit:,} more characters)"

"""The import graph and the size limits of the code (issue 12), read with ``ast`` (nothing is
imported, so the test is fast and needs no data).

* Layers: ``circuits`` (what the network is) ← ``edits`` (what we change) ← ``studies`` (what we
  measure and show); imports only point downwards. Inside ``studies``: ``measure`` and
  ``report`` ← ``run`` ← the study modules (``studies/<name>.py``) ← ``cli``.
* No import cycle between modules, counting imports inside functions too (a lazy import
  hides a cycle, it does not remove it). The implicit import of a parent package is not an
  edge: ``from studies.cli.common import x`` depends on ``studies.cli.common`` only.
* Nothing in the repository (tests and bench included) imports the deprecated old module
  paths (the thin aliases of :mod:`studies._moved`).
* No module over :data:`MAX_MODULE_LINES` lines, no function over :data:`MAX_FUNCTION_LINES`
  lines, except the model's forward code and the short allow-lists below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("circuits", "edits", "studies")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

#: The model's forward code (functions of this module with "forward" in their name) may be
#: one long, linear sequence of stages.
FORWARD_MODULE = "circuits/model.py"

# Allow-lists: each entry is a debt of the restructure (issue 12), to shrink to empty.
#: Modules still over the limit, with why.
MODULE_ALLOW: dict[str, str] = {}

#: Functions still over the limit (``path:qualname``), with why.
FUNCTION_ALLOW: dict[str, str] = {}

#: Import cycles still present (sorted module names), with why.
CYCLE_ALLOW: dict[tuple[str, ...], str] = {}

#: Allowed import directions between layers: a module of the key may import these layers.
LAYERS = {
    "circuits": {"circuits"},
    "edits": {"circuits", "edits"},
    "studies.measure": {"circuits", "edits", "studies.measure"},
    "studies.report": {"circuits", "edits", "studies.report"},
    "studies.run": {"circuits", "edits", "studies.measure", "studies.run"},
    "studies": {"circuits", "edits", "studies.measure", "studies.report", "studies.run", "studies"},
    "studies.cli": {"circuits", "edits", "studies.measure", "studies.report", "studies.run", "studies", "studies.cli"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(*folders: str) -> dict[str, Path]:
    out = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            out[_module_name(path)] = path
    return out


MODULES = _sources(*PACKAGES)


def _is_deprecated_alias(path: Path) -> bool:
    return "from studies._moved import alias" in path.read_text()


DEPRECATED = {name for name, path in MODULES.items() if _is_deprecated_alias(path)}


def _imports(name: str, path: Path) -> set[str]:
    """Project modules imported anywhere in ``path`` (module ``name``)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for a in node.names:  # `from pkg import submodule` depends on the submodule
                sub = f"{base}.{a.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m.split(".")[0] in PACKAGES or m in MODULES}


def _known(module: str) -> str | None:
    """The project module (or package) ``module`` names, walking up to an existing one."""
    while module and module not in MODULES:
        module = module.rpartition(".")[0]
    return module or None


GRAPH = {name: {k for m in _imports(name, path) if (k := _known(m)) and k != name} for name, path in MODULES.items()}


def _layer(module: str) -> str:
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    raise AssertionError(f"{module} is in no layer")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_graph_sees_the_known_edges():
    """The parser finds real edges (so the checks below cannot pass vacuously)."""
    assert "circuits.cone" in GRAPH["studies.measure.tuning"]
    assert "studies.measure.images" in GRAPH["studies.measure.classify"]
    assert "studies.cli.sweep" in GRAPH["studies.cli.study"]
    assert "studies.measure.images" in GRAPH["studies.measure.dataset"]
    assert len(MODULES) > 50 and sum(map(len, GRAPH.values())) > 150


def test_imports_point_downwards():
    bad = []
    for name, deps in GRAPH.items():
        if name in DEPRECATED:
            continue
        allowed = LAYERS[_layer(name)]
        for dep in sorted(deps):
            if _layer(dep) not in allowed:
                bad.append(f"{name} imports {dep} ({_layer(name)} may import {', '.join(sorted(allowed))})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = {k: v - DEPRECATED for k, v in GRAPH.items() if k not in DEPRECATED}
    cycles = [c for c in _cycles(graph) if tuple(c) not in CYCLE_ALLOW]
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


def test_nothing_imports_the_deprecated_paths():
    assert {"studies.tuning", "studies.classify", "studies.sweep"} <= DEPRECATED
    users = []
    for name, path in {**MODULES, **_sources("tests", "bench")}.items():
        if name in DEPRECATED or name == "studies._moved":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            users += [f"{_rel(path)}:{node.lineno} imports {m}" for m in mods if m in DEPRECATED]
    assert not users, "\n".join(users)


def _functions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{prefix}{node.name}", node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")


@pytest.mark.parametrize("package", PACKAGES)
def test_module_and_function_sizes(package):
    long_modules, long_functions = [], []
    for name, path in MODULES.items():
        if name.split(".")[0] != package:
            continue
        rel = _rel(path)
        n = len(path.read_text().splitlines())
        if n > MAX_MODULE_LINES and rel not in MODULE_ALLOW:
            long_modules.append(f"{rel}: {n} lines")
        for qual, node in _functions(ast.parse(path.read_text())):
            if rel == FORWARD_MODULE and "forward" in qual.rpartition(".")[2]:
                continue
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and f"{rel}:{qual}" not in FUNCTION_ALLOW:
                long_functions.append(f"{rel}:{qual}: {length} lines")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long_modules)
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long_functions)


def test_allow_lists_name_real_debts():
    """Every allow-list entry still exists and is still over the limit (so the lists only shrink)."""
    stale = []
    for rel in MODULE_ALLOW:
        path = ROOT / rel
        if not path.is_file() or len(path.read_text().splitlines()) <= MAX_MODULE_LINES:
            stale.append(rel)
    for key in FUNCTION_ALLOW:
        rel, qual = key.split(":")
        path = ROOT / rel
        funcs = dict(_functions(ast.parse(path.read_text()))) if path.is_file() else {}
        node = funcs.get(qual)
        if node is None or node.end_lineno - node.lineno + 1 <= MAX_FUNCTION_LINES:
            stale.append(key)
    graph = {k: v - DEPRECATED for k, v in GRAPH.items() if k not in DEPRECATED}
    stale += [" ↔ ".join(c) for c in CYCLE_ALLOW if list(c) not in _cycles(graph)]
    assert not stale, "remove these allow-list entries (fixed or gone): " + ", ".join(stale)

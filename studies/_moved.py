"""Old module paths of the restructure (issue 12), kept one release as thin aliases.

Each old module (``studies/tuning.py``, ``studies/classify.py``, …) is three lines that call
:func:`alias`: importing it warns with a :class:`DeprecationWarning` naming the new path, and
every attribute is read from the new module. Nothing in the repository imports the old paths
(``tests/unit/test_architecture.py`` checks it); remove them in the next release.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def alias(old: str, new: str, *also: str) -> Callable[[str], Any]:
    """Warn that ``old`` moved to ``new``; returns the module ``__getattr__`` that reads each
    name from ``new``, else from the modules ``also`` that took a part of ``old``."""
    where = ", ".join((new, *also))
    warnings.warn(f"{old} moved to {where}; import it from there ({old} will be removed in the next release)",
                  DeprecationWarning, stacklevel=3)
    modules = [importlib.import_module(m) for m in (new, *also)]

    def __getattr__(name: str) -> Any:
        for module in modules:
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r} (moved to {where})")

    return __getattr__

"""Reports: the atomic report folder (:mod:`.folder`), the report page (:mod:`.html`,
``write_report``), provenance (:mod:`.provenance`), numeric unit order (:mod:`.order`), figures
(:mod:`.plots`, :mod:`.circuit_plots`, :mod:`.sweep_plots`).

Before issue 12 ``studies.report`` was the report-folder module; its names still resolve here
for one release, with a :class:`DeprecationWarning` (import them from
:mod:`studies.report.folder`).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    folder = importlib.import_module("studies.report.folder")
    if name.startswith("__") or not hasattr(folder, name):
        raise AttributeError(f"module 'studies.report' has no attribute {name!r}")
    warnings.warn(f"studies.report.{name} moved to studies.report.folder.{name} (the old name will be removed in "
                  "the next release)", DeprecationWarning, stacklevel=2)
    return getattr(folder, name)

"""Deprecated alias of :mod:`studies.run.sweep` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.sweep", "studies.run.sweep")

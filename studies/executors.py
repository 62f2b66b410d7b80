"""Deprecated alias of :mod:`studies.run.executors` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.executors", "studies.run.executors")

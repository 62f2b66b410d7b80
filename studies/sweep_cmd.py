"""Deprecated alias of :mod:`studies.sweep_study` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.sweep_cmd", "studies.sweep_study")

"""Deprecated alias of :mod:`studies.measure.reference` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.reference", "studies.measure.reference")

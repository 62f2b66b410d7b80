"""Deprecated alias of :mod:`studies.measure.classify` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.classify", "studies.measure.classify", "studies.measure.images")

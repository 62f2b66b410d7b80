"""Deprecated alias of :mod:`studies.measure.tuning` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.tuning", "studies.measure.tuning", "circuits.cone", "studies.tune", "studies.report.plots")

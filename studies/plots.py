"""Deprecated alias of :mod:`studies.report.plots` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.plots", "studies.report.plots")

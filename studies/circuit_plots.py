"""Deprecated alias of :mod:`studies.report.circuit_plots` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.circuit_plots", "studies.report.circuit_plots")

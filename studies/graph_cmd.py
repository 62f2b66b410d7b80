"""Deprecated alias of :mod:`studies.graph` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.graph_cmd", "studies.graph")

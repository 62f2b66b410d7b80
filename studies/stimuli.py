"""Deprecated alias of :mod:`studies.measure.stimuli` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.stimuli", "studies.measure.stimuli")

"""Deprecated alias of :mod:`studies.measure.dataset` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.dataset", "studies.measure.dataset", "studies.measure.images")
image_files = __getattr__("list_images")  # renamed

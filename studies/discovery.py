"""Deprecated alias of :mod:`studies.measure.discovery` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.discovery", "studies.measure.discovery", "studies.measure.images", "studies.measure.statistics",
                    "studies.measure.frozen")

if __name__ == "__main__":  # the packaged catalogs' regenerate/check command (python -m studies.discovery)
    import sys

    sys.exit(__getattr__("main")())

"""Deprecated alias of :mod:`studies.measure.tuning` (moved in issue 12; removed next release)."""
from studies._moved import alias

__getattr__ = alias("studies.tuning", "studies.measure.tuning", "circuits.cone", "studies.tune", "studies.report.plots")


def parse_targets(targets, model_or_spec):
    """Deprecated: :func:`circuits.units.resolve_targets` (takes a spec)."""
    from circuits.units import resolve_targets

    return resolve_targets(targets, getattr(model_or_spec, "spec", model_or_spec))

"""Build jobs: precompute the unit pages, feature visualizations and dataset examples of units
(``POST /api/build``, ``circuits explore --build LAYER``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from circuits.units import Unit

from . import pages
from .assets import WHAT, compute_dataset, dataset_key, render_featurevis
from .context import Explorer, UserError


# ---------------------------------------------------------------- build jobs
def check_what(what) -> list[str]:
    if isinstance(what, str):
        what = [what]
    if not isinstance(what, (list, tuple)) or not what or not all(isinstance(w, str) for w in what):
        raise UserError(f"what must be a non-empty list of {', '.join(WHAT)}")
    bad = [w for w in what if w not in WHAT]
    if bad:
        raise UserError(f"unknown build item {bad[0][:40]!r}; valid: {', '.join(WHAT)}")
    return list(dict.fromkeys(what))


def build(ex: Explorer, units: Sequence[Unit], what: Sequence[str], report: Callable) -> dict:
    """Compute what is missing of ``units``' pages (``pages``: tuning, joint map, neighbours;
    ``featurevis``; ``dataset`` — skipped without images). Returns counts."""
    parts = [w for w in what if w != "dataset" or ex.config.images is not None]
    out = {}
    for n, w in enumerate(parts):
        lo, hi = n / len(parts), (n + 1) / len(parts)
        if w == "pages":
            pages.unit_statics(ex, units, lambda p, m, lo=lo, hi=hi: report(lo + (hi - lo) * p, m))
        elif w == "featurevis":
            render_featurevis(ex, ex.model, units, report, lo=lo, hi=hi)
        else:
            todo = [u for u in units if ex.store.read_json(dataset_key(ex, u)) is None]
            if todo:
                compute_dataset(ex, todo, lambda p, m=None, lo=lo, hi=hi: report(lo + (hi - lo) * (p or 0), m))
        out[w] = len(units)
    return dict(units=len(units), built=out)


def submit_build(ex: Explorer, units: Sequence[Unit], what: Sequence[str]):
    """Queue :func:`build` as one job (deduplicated per units and items); marks the units pending."""
    what = check_what(what)
    key = "build:" + ",".join(what) + ":" + ",".join(map(str, units))
    job = ex.jobs.submit("build", lambda report: build(ex, units, what, report), key=key)
    for w in what:
        pend = ex.memo(("pending", w), dict)
        for u in units:
            pend[str(u)] = job
    return job

"""The combing edit used by the curve-extraction benchmark, built with the combing study's steps.

:mod:`studies.combing` (a)–(c): each curve unit's best plain curve (:func:`studies.tuning.best_stimulus`),
the attribution of (combed − plain) to the block input (:func:`studies.combing.attribute`), and the
``top_pathways`` sources with the largest positive attribution cut with
:class:`edits.PrunePathway` (exact: only that unit stops receiving those sources). Without the
study's re-measurements and report, so it costs a tuning sweep of the units (~1 min on 2 cores
for the 27 curve units of mixed3a + mixed3b at 10° steps).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from circuits.catalog import catalog
from circuits.geometry import measurement_window
from edits import EditPlan, PrunePathway
from studies.combing import BLOCK_INPUT, _select, attribute
from studies.measure import stimuli as S
from studies.measure.tuning import best_stimulus


def combing_plan(model, units: str | list[str] = "mixed3a/curves,mixed3b/curves", top_pathways: int = 8,
                 spacing_px: float = 8.0, length_px: float = 8.0, stroke_width: float = 2.0,
                 orientation_step: float = 10.0) -> EditPlan:
    """An :class:`~edits.EditPlan` pruning each curve unit's top combing pathways (module docstring).

    Args:
        model: the unedited model. units: catalog units/families of mixed3a or mixed3b.
        top_pathways: sources cut per unit. spacing_px, length_px, stroke_width: the comb (px),
            the combing study's defaults. orientation_step: tuning grid (deg).

    Raises:
        ValueError: a unit outside mixed3a/mixed3b, or nothing to prune.
    """
    us = catalog(model).resolve(units)
    bad = [str(u) for u in us if u.layer not in BLOCK_INPUT]
    if bad:
        raise ValueError(f"the combing edit handles mixed3a/mixed3b units only; got {bad}")
    best = best_stimulus(model, us, orientation_step=orientation_step, stroke_width=stroke_width).set_index("unit")
    edits = []
    for u in us:
        b = best.loc[str(u)]
        o = [0.0 if math.isnan(b["preferred_orientation"]) else float(b["preferred_orientation"])]
        r = [float(b["best_radius"])]
        st = S.curves(o, r, stroke_width=stroke_width) + S.combed_curves(o, r, "both", spacing_px, length_px,
                                                                          stroke_width)
        size, _, center = measurement_window(model.spec, u.layer)
        attr, _ = attribute(model, u.layer, u.index, st.at(size, center).render())
        g = pd.DataFrame(dict(source_index=range(attr.shape[1]), attr_diff=attr[1] - attr[0]))
        sel = _select(g, top_pathways, None)
        if sel:
            src = BLOCK_INPUT[u.layer][1]
            edits.append(PrunePathway(src=[f"{src}:{s}" for s in sel], dst=str(u)))
    if not edits:
        raise ValueError("no source has a positive attribution to combing; nothing to prune")
    return EditPlan(edits, name="prune-combing-pathways")


def load_or_build_plan(model, path: str | Path | None, top_pathways: int = 8) -> EditPlan:
    """The plan saved at ``path`` (e.g. a combing study's ``plan.json``), or :func:`combing_plan`."""
    if path is not None:
        return EditPlan.load(path)
    return combing_plan(model, top_pathways=top_pathways)

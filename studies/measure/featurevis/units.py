"""Visualise units and families: one batched optimisation per layer, one image per unit, for
one model or several variants (edit plans), plus each unit's preferred orientation.

Preferred orientations (degrees, the project's convention of :mod:`studies.stimuli`) come from
the catalog where it records them (discovered families), else from a radial-tuning
measurement (:func:`studies.tuning.joint_sweep` → :func:`~studies.tuning.radial_tuning` →
:func:`~studies.tuning.tuning_metrics` ``preferred_orientation``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from circuits.catalog import catalog
from circuits.model import InceptionV1
from circuits.units import Unit, group_by_layer

from .objectives import unit_objective
from .render import VisResult, VisSettings, render


@dataclass
class UnitVis:
    """One unit's visualization: ``image (3, size, size)`` RGB in [0, 1], ``history (steps,)``
    objective per step, ``final`` objective of the final image (no transforms)."""

    unit: Unit
    image: Tensor
    history: np.ndarray
    final: float
    result: VisResult


def resolve(model: InceptionV1, refs) -> list[Unit]:
    """Units named by ``refs`` (``"3b:379"``, ``"mixed3b/curves"``, lists), through the model's
    catalog; range-checked; order kept, duplicates dropped.

    Raises:
        KeyError / IndexError / ValueError: as :meth:`circuits.catalog.FamilyCatalog.resolve`."""
    return catalog(model).resolve(refs)


def visualize_units(
    model: InceptionV1,
    units,
    objective: str = "neuron",
    pre_relu: bool = True,
    settings: VisSettings = VisSettings(),
    cache: bool = True,
    plan: str = "",
    log: Callable[[str], None] | None = None,
) -> list[UnitVis]:
    """Visualise every unit: one :func:`~.render.render` per layer with a per-image objective
    (image ``i`` maximises unit ``i``). Returns one :class:`UnitVis` per unit, in input order.

    Raises:
        KeyError / IndexError / ValueError: bad units or settings (before any compute)."""
    us = resolve(model, units)
    if not us:
        raise ValueError(f"no units to visualise: {units!r}")
    settings.check()
    out: dict[Unit, UnitVis] = {}
    for layer, idx in group_by_layer(us).items():
        lu = [Unit(layer, i) for i in idx]
        obj = unit_objective(objective, lu if len(lu) > 1 else lu[0], pre_relu=pre_relu)
        if log:
            log(f"{layer}: {len(lu)} unit(s), {objective} objective, {settings.steps} steps")
        r = render(model, obj, batch=len(lu), settings=settings, cache=cache, plan=plan, log=log)
        for j, u in enumerate(lu):
            out[u] = UnitVis(u, r.images[j], r.history[:, j], float(r.final[j]), r)
    return [out[u] for u in us]


def visualize_variants(
    models: Mapping[str, InceptionV1],
    units,
    settings: VisSettings = VisSettings(),
    pre_relu: bool = True,
    cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[UnitVis]]:
    """:func:`visualize_units` for each model variant (``{"a_unedited": m, "b_...": edited}``),
    same units, settings and seed, so the pictures differ only by the edit."""
    return {name: visualize_units(m, units, pre_relu=pre_relu, settings=settings, cache=cache, plan=name, log=log)
            for name, m in models.items()}


def preferred_orientations(model: InceptionV1, units: list[Unit], step: float = 5.0) -> dict[Unit, float]:
    """Preferred orientation (deg) per unit: the catalog's value where recorded, else measured
    from the radial tuning (``tuning_metrics`` ``preferred_orientation``, ``step``-degree grid).
    Units of conv layers without a curve response get NaN."""
    cat = catalog(model)
    out: dict[Unit, float] = {}
    missing = []
    for u in units:
        o = cat.orientation_of(u)
        if o is None:
            missing.append(u)
        else:
            out[u] = o
    if missing:
        from studies.measure.tuning import joint_sweep, radial_tuning, tuning_metrics

        met = tuning_metrics(radial_tuning(joint_sweep(model, missing, orientation_step=step, lines=False)))
        pref = dict(zip(met["unit"], met["preferred_orientation"]))
        for u in missing:
            out[u] = float(pref.get(str(u), float("nan")))
    return out

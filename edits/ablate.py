"""Ablation: make units' activations constant (``zero``, ``mean``) or uninformative (``resample``).

:class:`Ablate` compiles ``zero`` and ``mean`` to weights (the producing convolution's output
row) and ``resample`` to an activation intervention (:mod:`edits.interventions`);
:func:`unit_means` measures the means of ``mean`` ablation on reference images.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import Tensor

from circuits.model import InceptionV1
from circuits.spec import ModelSpec
from circuits.units import Family, FamilyKey, Unit, group_by_layer, lookup_family, parse_refs

from .base import (
    _SPEC_ERRORS,
    Claim,
    Edit,
    WeightOp,
    _check_reference,
    _filler,
    _module_path,
    _reason,
    normalise_refs,
    producing_conv,
    register_edit,
)
from .interventions import ActivationFn, ResampleUnits, batch_coupled, group_batches, resample_groups

#: What an :class:`Ablate` can accept as ``units``.
UnitsLike = Union[str, Unit, Family, tuple, Iterable[Union[str, Unit, Family, tuple]]]

#: Ablation modes :class:`Ablate` supports.
#:
#: - ``"zero"`` — compiled to weights: the producing convolution's output channel gets zero
#:   weights and zero bias, so the unit is exactly 0 before and after its ReLU.
#: - ``"mean"`` — compiled to weights: zero weights and bias = the unit's mean post-ReLU
#:   activation over reference images (all positions), so ``relu(mean) = mean`` everywhere.
#:   The means are measured once at apply time (``EditPlan.apply(model, reference=images)``)
#:   and stored in the applied plan (field ``means``), or given in the plan.
#: - ``"resample"`` — an activation intervention (not expressible in weights): a forward hook
#:   on the unit's hook point replaces the unit's channel of each image by the same channel of
#:   another image of the batch (a fixed derangement drawn with ``seed``; see
#:   :func:`edits.interventions.resample_units`).
ABLATE_MODES: tuple[str, ...] = ("zero", "mean", "resample")


def _int_index(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{what} must be an integer, got {v!r}")
    if v < 0:
        raise ValueError(f"{what} must be ≥ 0, got {v}")
    return v


def _parse_families(value: Any) -> dict[str, tuple[int, ...]]:
    if value is None:
        return {}
    items = value.items() if isinstance(value, Mapping) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"must map family keys to unit indices, e.g. {{'mixed3b/curves': [379, 385]}}; got {value!r}")
    out: dict[str, tuple[int, ...]] = {}
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"must map family keys to unit indices; got the entry {item!r}")
        key, units = item
        if not isinstance(key, str):
            raise TypeError(f"family keys are strings such as 'mixed3b/curves'; got {key!r}")
        key = str(FamilyKey.parse(key))
        if isinstance(units, (str, bytes, Mapping)) or not isinstance(units, Iterable):
            raise TypeError(f"{key!r} must list unit indices, got {units!r}")
        idx = tuple(_int_index(u, f"a unit index of {key!r}") for u in units)
        if not idx:
            raise ValueError(f"{key!r} lists no unit")
        if key in out and out[key] != idx:
            raise ValueError(f"{key!r} is given twice with different units")
        out[key] = idx
    return out



@register_edit
@dataclass(frozen=True)
class Ablate(Edit):
    """Ablate units: make their activations constant (``zero``, ``mean``) or uninformative (``resample``).

    Args:
        units: anything :func:`circuits.units.resolve_units` accepts — ``"3b:379"``,
            ``"mixed3b:379,mixed3b:385"``, ``Unit("mixed3b", 379)``, a :class:`Family`, or a
            list of those; branch activations (``"mixed3b_5x5_bottleneck:3"``) too — and family
            keys (``"mixed3b/curves"``, ``"3b/curves"``). Stored normalised as a tuple of
            canonical strings, ``("mixed3b:379", …)``.
        mode: one of :data:`ABLATE_MODES` (``"zero"``, ``"mean"``, ``"resample"``).
        means: ``mode="mean"`` only: the units' mean activations, one per unit (finite, ≥ 0).
            Usually left out and measured by ``EditPlan.apply(model, reference=images)``, which
            stores them in the applied plan.
        seed: ``mode="resample"`` only: seed of the donor-image permutation (default 0).
        families: provenance, ``{family key: unit indices}``. Filled in for you.

    Families. A :class:`Family` object is resolved at once: its units go into ``units`` and
    ``families`` records ``{"mixed3b/curves": (…)}``. A family *key* string cannot be resolved
    without a checkpoint, so it stays in ``units`` until :meth:`EditPlan.validate` /
    :meth:`EditPlan.apply` look it up in the packaged catalog of the model's checkpoint
    (:func:`circuits.catalog.load_catalog`); the applied plan stores the resolved units plus the
    ``families`` entry, so it keeps its meaning even if the catalog is regenerated. A key whose
    units are given in ``families`` is expanded from there, never from the catalog.

    Construction. For each unit, the convolution that produces it (:func:`producing_conv`) —
    for a mixed layer the branch's last one (1x1, 3x3, 5x5 or pool_reduce) at the branch-local
    index — gets weight row ``weight[c] (C_in, kh, kw)`` set to 0 and ``bias[c]`` set to 0
    (``zero``) or to the unit's mean (``mean``); its pre- and post-ReLU activations are then
    that constant at every position, and every downstream unit sees it on that channel.
    ``resample`` changes no weight: it installs an intervention on the hook point named like the
    unit's layer (``"mixed3b"``); all units of one edit draw from the same donor image.

    Raises:
        EditError: ``units`` cannot be parsed or is empty (field ``units``); unknown ``mode``
            (field ``mode``, with the valid choices); ``means``/``seed`` given for another mode
            or malformed. Ranges and family names are checked by :meth:`validate`.
    """

    units: UnitsLike
    mode: str = "zero"
    means: Sequence[float] | None = None
    seed: int | None = None
    families: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in ABLATE_MODES:
            raise self.error(f"{self.mode!r} is not a supported ablation mode", field="mode", choices=ABLATE_MODES)
        try:
            fams = _parse_families(self.families)
        except (*_SPEC_ERRORS, RecursionError) as e:
            raise self.error(_reason(e), field="families") from None
        try:
            items = normalise_refs(self.units, unique=False, families=fams)
        except (*_SPEC_ERRORS, RecursionError) as e:
            raise self.error(_reason(e), field="units") from None
        listed = {str(r) for r in parse_refs(items) if isinstance(r, Unit)}
        for key, idx in fams.items():
            layer = FamilyKey.parse(key).layer
            missing = [i for i in idx if f"{layer}:{i}" not in listed]
            if missing:
                raise self.error(f"{key!r} lists {layer}:{missing[0]}, which is not among the units", field="families")
        object.__setattr__(self, "units", tuple(items))
        object.__setattr__(self, "families", tuple(fams.items()) or None)
        self._check_seed()
        self._check_means()

    def _check_seed(self) -> None:
        if self.seed is None:
            return
        if self.mode != "resample":
            raise self.error(f"a seed applies to mode 'resample' only, not {self.mode!r}", field="seed")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise self.error(f"must be an integer in [0, 2**63), got {self.seed!r}", field="seed")

    def _check_means(self) -> None:
        if self.means is None:
            return
        if self.mode != "mean":
            raise self.error(f"means apply to mode 'mean' only, not {self.mode!r}", field="means")
        if isinstance(self.means, (str, bytes, Mapping)) or not isinstance(self.means, Iterable):
            raise self.error(f"must be a list of numbers, one per unit; got {self.means!r}", field="means")
        if any(isinstance(r, FamilyKey) for r in parse_refs(self.units)):
            raise self.error("means need a resolved unit list (no family keys in 'units')", field="means")
        vals = list(self.means)
        if len(vals) != len(self.units):
            raise self.error(f"{len(vals)} values for {len(self.units)} units", field="means")
        out = []
        for u, v in zip(self.units, vals):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.error(f"the mean of {u} must be a number, got {v!r}", field="means")
            try:
                f = float(v)
            except OverflowError:
                f = math.inf
            if not math.isfinite(f) or f < 0 or f > torch.finfo(torch.float32).max:
                raise self.error(
                    f"the mean of {u} must be finite and ≥ 0 (a post-ReLU mean), got {v!r}", field="means"
                )
            out.append(f)
        object.__setattr__(self, "means", tuple(out))

    # -- resolution
    @property
    def family_map(self) -> dict[str, tuple[int, ...]]:
        """``{family key: unit indices}`` of the families this edit names (resolved ones)."""
        return dict(self.families or ())

    def _resolved_units(self, spec: ModelSpec | None) -> tuple[list[Unit], dict[str, tuple[int, ...]]]:
        units: list[Unit] = []
        fams = self.family_map
        for item in parse_refs(self.units):
            if isinstance(item, FamilyKey):
                if spec is None:
                    raise self.error(f"family {str(item)!r} is resolved against a checkpoint; validate first",
                                     field="units")
                try:
                    fam = lookup_family(item, spec)
                except (KeyError, ValueError) as e:
                    raise self.error(_reason(e), field="units") from None
                fams[fam.key] = fam.units  # the catalog's own key (an alias resolves to it)
                units.extend(fam)
            else:
                units.append(item)
        return units, fams

    def unit_list(self, spec: ModelSpec | None = None) -> list[Unit]:
        """The units as :class:`Unit` objects (family keys resolved through ``spec``'s catalog)."""
        return self._resolved_units(spec)[0]

    def validate(self, spec: ModelSpec) -> None:
        """Resolve family keys and range-check every unit against ``spec``.

        Raises:
            EditError: field ``units``; the message gives the layer's valid range
                (``mixed3b has units 0..479``), the valid layer names, or the valid families.
        """
        for u in self.unit_list(spec):
            try:
                u.validate(spec)
            except (KeyError, IndexError) as e:
                raise self.error(_reason(e), field="units") from None

    def claims(self, spec: ModelSpec) -> list[Claim]:
        return [(producing_conv(u, spec), str(u)) for u in self.unit_list(spec)]

    def needs_reference(self) -> str | None:
        return "means" if self.mode == "mean" and self.means is None else None

    def prepare(self, model: InceptionV1, reference: Tensor | None = None) -> Ablate:
        """Resolve family keys; for ``mean`` without ``means``, measure them on ``reference``.

        Raises:
            EditError: field ``means`` — mean mode, no stored means and no ``reference``.
        """
        units, fams = self._resolved_units(model.spec)
        means = self.means
        if self.mode == "mean" and means is None:
            if reference is None:
                raise self.error(
                    "mode 'mean' needs the units' mean activations: pass reference images "
                    "(EditPlan.apply(model, reference=images), CLI --reference DIR) or give 'means'",
                    field="means",
                )
            means = unit_means(model, units, reference)
        seed = (0 if self.seed is None else self.seed) if self.mode == "resample" else None
        return Ablate([str(u) for u in units], mode=self.mode, means=means, seed=seed, families=fams or None)

    def compile(self, model: InceptionV1) -> list[WeightOp]:
        if self.mode == "resample":
            return []
        units = self.unit_list(model.spec)
        if self.mode == "mean" and self.means is None:
            raise self.error("mean ablation needs its means; EditPlan.apply measures them", field="means")
        ops: list[WeightOp] = []
        for k, u in enumerate(units):
            conv_name, ch = producing_conv(u, model.spec)
            path = _module_path(model, model.conv_unit(conv_name).conv)
            where = f"{u} ({conv_name}[{ch}])"
            if self.mode == "zero":
                for p in ("weight", "bias"):
                    ops.append(WeightOp(f"{path}.{p}", (ch,), torch.zeros_like, f"zero {where}"))
            elif self.mode == "mean":
                m = float(self.means[k])  # type: ignore[index]
                ops.append(WeightOp(f"{path}.weight", (ch,), torch.zeros_like, f"mean-ablate {where}: weights 0"))
                ops.append(WeightOp(f"{path}.bias", (ch,), _filler(m), f"mean-ablate {where}: bias {m:g}"))
            else:  # pragma: no cover - guarded by __post_init__
                raise self.error(f"mode {self.mode!r} has no compiler", field="mode", choices=ABLATE_MODES)
        return ops

    def interventions(self, model: InceptionV1) -> list[tuple[str, ActivationFn, str]]:
        if self.mode != "resample":
            return []
        seed = 0 if self.seed is None else self.seed
        out = []
        for layer, idx in group_by_layer(self.unit_list(model.spec)).items():
            names = ", ".join(f"{layer}:{i}" for i in idx)
            out.append((layer, ResampleUnits(idx, seed), f"resample {names} (seed {seed})"))
        return out

    # -- serialisation: optional fields only when set
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type_name, "units": list(self.units), "mode": self.mode}
        if self.means is not None:
            out["means"] = list(self.means)
        if self.seed is not None:
            out["seed"] = self.seed
        if self.families:
            out["families"] = {k: list(v) for k, v in self.families}
        return out



def unit_means(
    model: InceptionV1, units: Iterable[Unit | str], reference: Tensor, batch_size: int = 32
) -> list[float]:
    """Mean post-ReLU activation of each unit over ``reference`` images and all positions.

    Args:
        model: the model to measure (interventions installed on it are active).
        units: the units (any layer, branch activations included).
        reference: ``(N, 3, H, W)`` RGB in [0, 1] (e.g. ``studies.measure.images.load_reference_images``).
        batch_size: images per forward pass.

    Returns:
        One float per unit, rounded to float32 (the value the bias will hold).

    Raises:
        EditError: field ``reference`` — not a float 4-D RGB tensor with at least one image.
    """
    with torch.no_grad():  # a block, not a decorator: mutmut mutates the body
        units = [Unit.parse(u) for u in units]
        _check_reference(reference)
        device = next(model.parameters()).device
        layers = group_by_layer(units)
        sums = {layer: torch.zeros(len(idx), dtype=torch.float64) for layer, idx in layers.items()}
        count = dict.fromkeys(layers, 0)
        coupled = batch_coupled(model)  # resampling from the batch: whole resample groups per pass
        spans = (group_batches(reference.shape[0], batch_size) if coupled else
                 [(s, min(s + batch_size, reference.shape[0]), None) for s in range(0, reference.shape[0], batch_size)])
        for start, stop, ids in spans:
            batch = reference[start:stop].to(device, torch.float32)
            with resample_groups(ids) if coupled else contextlib.nullcontext():
                acts = model.run(batch, list(layers))
            for layer, idx in layers.items():
                a = acts[layer][:, idx].double()
                sums[layer] += a.sum(dim=[d for d in range(a.dim()) if d != 1]).cpu()
                count[layer] += a.numel() // len(idx)
        per_unit = {layer: (sums[layer] / count[layer]).float().tolist() for layer in layers}
        pos = {layer: 0 for layer in layers}
        out = []
        for u in units:
            out.append(float(per_unit[u.layer][pos[u.layer]]))
            pos[u.layer] += 1
        return out




__all__ = ["ABLATE_MODES", "Ablate", "UnitsLike", "unit_means"]

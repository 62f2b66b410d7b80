"""Radial tuning of units before and after an edit, fast: the receptive-field cone with its trunk cached.

The cone of a unit set (:mod:`circuits.cone`: only the input window the units see, every stage
without padding) spends most of its time in the trunk — the stages before the units' layer
(conv2d0 … mixed3a for mixed3b). An edit of the units' own layer leaves the trunk unchanged, so
its output on the stimuli is computed once for the unedited model (:class:`TrunkCache`) and each
edited model only runs the layer itself. Which trunk stages an edit leaves unchanged is decided by
:func:`circuits.fingerprint.fingerprint` of each stage module (and of the preprocessing, folded
into conv2d0); an edit that changes the trunk, or a model the cone cannot compute
(:func:`circuits.cone.cone_problem`: hooks, interventions, linear surrogates), is measured by
:func:`studies.measure.tuning.measure` instead.

The values are bitwise those of :func:`studies.measure.tuning.measure` (its fast path): the same
cone plan (:func:`circuits.cone.plan_for_units`), the same stimuli rendered in the same batches
and the same chunks of :data:`circuits.cone.CPU_CONE_CHUNK` stimuli; the trunk and the layer are the
two halves of :class:`circuits.cone.Cone`'s forward. Radial tuning as in Curve Detectors
(:func:`studies.measure.tuning.radial_tuning`: mean over radii of max(pre-ReLU response, 0)).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from circuits.cone import (
    BRANCH_KERNEL,
    CPU_CONE_CHUNK,
    Cone,
    cone_plan,
    cone_problem,
    plan_for_units,
    relu_conv,
    threaded_map,
    trunk,
)
from circuits.fingerprint import FingerprintError, fingerprint
from circuits.model import InceptionV1
from circuits.names import BRANCH_CONVS, CONV_LAYERS, MIXED_LAYERS, hook_name
from circuits.units import group_by_layer, resolve_units
from edits.interventions import batch_coupled
from studies.measure import stimuli as S
from studies.measure import tuning as T

#: Stimuli per forward batch (as :func:`studies.measure.tuning.measure`'s default).
BATCH = 256


def tuning_stimuli(settings: dict) -> S.Stimuli:
    """The curves of :meth:`studies.explore.config.ExploreConfig.tuning_settings`: every orientation
    of the grid × every radius (what :func:`studies.measure.tuning.joint_sweep` renders without lines)."""
    return S.curves(S.orientation_grid(settings["orientation_step"]), settings["radii"],
                    stroke_width=settings["stroke_width"])


def _batches(n: int) -> list[slice]:
    """The batches of :func:`circuits.cone.run_cone` on CPU with ``torch.get_num_threads()`` workers."""
    workers = torch.get_num_threads()
    size = BATCH
    if workers > 1:
        size = max(CPU_CONE_CHUNK, min(BATCH, math.ceil(n / workers / CPU_CONE_CHUNK) * CPU_CONE_CHUNK))
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


@torch.no_grad()
def _head(cone: Cone, x: Tensor) -> Tensor:
    """The trunk half of ``Cone.__call__``: stages before the layer."""
    x = x.to(cone.w0.dtype).contiguous(memory_format=torch.channels_last)
    for name in cone.plan.stages:
        x = trunk(cone.model, name, x, cone.w0, cone.b0)
    return x


@torch.no_grad()
def _tail(cone: Cone, h: Tensor) -> Tensor:
    """The layer half of ``Cone.__call__``: pre-ReLU responses ``(N, n_units)`` from the trunk output."""
    m, plan = cone.model, cone.plan
    out = torch.empty(h.shape[0], cone.n, dtype=h.dtype, device=h.device)
    if plan.layer in CONV_LAYERS:
        _, sel, cols = cone.parts[0]
        conv = getattr(m, plan.layer).conv
        out[:, cols] = torch.nn.functional.conv2d(h, conv.weight[sel], conv.bias[sel]).flatten(1)
        return out
    block = m.block(plan.layer)
    kt = h.shape[-1]
    for b, sel, cols in cone.parts:
        mg = (kt - BRANCH_KERNEL[b]) // 2
        hb = h[..., mg:kt - mg, mg:kt - mg]
        if b == "pool_reduce":
            hb = torch.nn.functional.max_pool2d(hb, 3, 1)
        for conv in BRANCH_CONVS[b][:-1]:
            hb = relu_conv(hb, block.unit(conv))
        conv = block.unit(b).conv
        out[:, cols] = torch.nn.functional.conv2d(hb, conv.weight[sel], conv.bias[sel]).flatten(1)
    return out


class TrunkCache:
    """Trunk outputs of the unedited model on the tuning stimuli, per (model, plan, stimuli), in
    memory (least recently used dropped past ``size`` entries; a mixed3b entry is ≈ 17 MB)."""

    def __init__(self, size: int = 6):
        self.size = size
        self._d: OrderedDict = OrderedDict()
        self._fp: dict[tuple[int, str], str] = {}
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def stage_print(self, model: InceptionV1, stage: str, remember: bool = False) -> str | None:
        """Fingerprint of one stage module; ``remember`` keeps it (for the unedited model, which
        is never modified) by the model's ``id``."""
        k = (id(model), stage)
        if k in self._fp:
            return self._fp[k]
        try:
            fp = fingerprint(model.preprocess if stage == "preprocess" else getattr(model, stage))
        except FingerprintError:
            fp = None
        if remember:
            self._fp[k] = fp
        return fp


def shared_trunk(base: InceptionV1, model: InceptionV1, stages: Sequence[str], cache: TrunkCache) -> bool:
    """Whether ``model`` computes every stage of ``stages`` (and the preprocessing) exactly as ``base``."""
    if model is base:
        return True
    for st in ("preprocess", *stages):
        a = cache.stage_print(base, st, remember=True)
        if a is None or a != cache.stage_print(model, st):
            return False
    return True


@torch.no_grad()
def _tail_model(model: InceptionV1, plan, idx: list[int], h: Tensor) -> Tensor:
    """The layer computed by ``model``'s own forward pass from the trunk output ``h`` (a window of
    ``plan.k_target`` ≥ 5 positions: every branch and any linear path of the block sees all of its
    input at the centre), read at the centre, pre-ReLU: structural edits and hooks on the layer count."""
    name = hook_name(plan.layer, pre_relu=True)
    with model.capture([name]) as cap:
        model(h, start_at=plan.stages[-1], stop_at=plan.layer)
    c = (h.shape[-1] - 1) // 2
    return cap[name][:, idx, c, c].float()


def _model_tail_plan(model: InceptionV1, base: InceptionV1 | None, layer: str, plan):
    """The plan for :func:`_tail_model`, or ``None`` when ``model`` must be measured from the input
    (no unedited trunk to reuse, a trunk stage changed, a batch-coupled intervention, a conv layer)."""
    if base is None or layer not in MIXED_LAYERS or plan is None or batch_coupled(model):
        return None
    full = plan if plan.k_target == 5 else cone_plan(model.spec, layer)
    return full if full is not None and cone_problem(base, layer, [0], full) is None else None


def _responses(model: InceptionV1, base: InceptionV1 | None, base_fp: str, layer: str, idx: list[int],
               stim: S.Stimuli, stim_key: str, cache: TrunkCache) -> np.ndarray:
    """Pre-ReLU responses ``(n_stimuli, len(idx))`` of one layer's units."""
    dev = next(model.parameters()).device
    plan = plan_for_units(model.spec, layer, idx)
    tail_model = None
    if cone_problem(model, layer, idx, plan, dev) is not None or not plan.stages:
        plan = _model_tail_plan(model, base, layer, plan)
        if plan is None or not shared_trunk(base, model, plan.stages, cache):
            units = [f"{layer}:{i}" for i in idx]
            df = T.measure(model, units, stim)
            return df["response"].to_numpy().reshape(len(idx), len(stim)).T
        tail_model = model
    crops = stim.at(plan.crop, plan.center)
    batches = _batches(len(crops))
    cone = Cone(base if tail_model is not None else model, plan, idx)
    key = (base_fp, plan, stim_key)
    heads = None
    use_cache = base is not None and shared_trunk(base, model, plan.stages, cache)
    if use_cache:
        heads = cache.get(key)

    def head(sl: slice) -> list[Tensor]:
        with torch.no_grad():
            imgs = crops.render(sl).to(dev)
            return [_head(cone, imgs[s:s + CPU_CONE_CHUNK]) for s in range(0, len(imgs), CPU_CONE_CHUNK)]

    def tail(hs: list[Tensor]) -> Tensor:
        with torch.no_grad():
            if tail_model is not None:  # one forward per batch: the model's per-call overhead dominates
                return _tail_model(tail_model, plan, idx, torch.cat(hs)).cpu()
            return torch.cat([_tail(cone, h) for h in hs]).float().cpu()

    workers = torch.get_num_threads() if dev.type == "cpu" and tail_model is None else 1
    if heads is None:
        heads = list(threaded_map(head, batches, workers))
        if use_cache:
            cache.put(key, heads)
    out = list(threaded_map(tail, heads, workers))
    return torch.cat(out).numpy()


def radial(model: InceptionV1, units, settings: dict, base: InceptionV1 | None = None, base_fp: str = "",
           cache: TrunkCache | None = None) -> dict:
    """Radial tuning of ``units`` (one ``series`` entry per unit, in the given order).

    Args:
        model: the model measured (unedited or edited).
        units: units or families (:func:`circuits.units.resolve_units`).
        settings: :meth:`~studies.explore.config.ExploreConfig.tuning_settings`.
        base, base_fp, cache: the unedited model, its fingerprint and the trunk cache; with them the
            trunk outputs of ``base`` are reused by every ``model`` whose trunk is unchanged.

    Returns:
        ``{"orientation_deg": [...], "series": [{"id": "3b:379", "response": [...]}], "units": "activation"}``:
        the mean over radii of max(pre-ReLU response, 0), activation units of the layer.
    """
    us = resolve_units(units, model.spec)
    stim = tuning_stimuli(settings)
    cache = cache or TrunkCache()
    skey = repr(sorted(settings.items()))
    frames = []
    for layer, idx in group_by_layer(us).items():
        resp = _responses(model, base, base_fp, layer, idx, stim, skey, cache)
        for j, i in enumerate(idx):
            df = stim.meta.copy()
            df.insert(0, "index", i)
            df.insert(0, "layer", layer)
            df.insert(0, "unit", f"{layer}:{i}")
            df["response"] = resp[:, j]
            frames.append(df)
    return radial_payload(T.radial_tuning(pd.concat(frames, ignore_index=True)), us)


def radial_payload(rad: pd.DataFrame, units) -> dict:
    """``radial_tuning`` output → the JSON payload (series in ``units`` order, short unit ids)."""
    series, ors = [], None
    for u in units:
        g = rad[rad["unit"] == str(u)].sort_values("orientation")
        ors = g["orientation"].astype(float).tolist() if ors is None else ors
        series.append({"id": u.short, "response": [float(v) for v in g["response"]]})
    return {"orientation_deg": ors or [], "series": series, "units": "activation"}

"""Tuning curves: responses of units to synthetic stimuli, and the measures derived from them.

Measurement: each unit is read at the spatial position whose receptive field is centred on
the stimulus (:func:`circuits.geometry.measurement_window`), pre-ReLU by default. Two ways
give the same values (tested to rtol 1e-4 / atol 1e-3 against ``model.run`` on 224-px
images):

* **fast path** (default): the "cone" of one output position. Stimuli are rendered only
  over the input pixels that position depends on (the receptive field of the branches
  measured, e.g. 91x91 px for mixed3b 5x5, 59x59 px for mixed3b 1x1), and every stage up to
  the unit runs without padding on exactly the window the next stage needs (a
  valid-convolution pass: conv2d2 on 19x19 positions, mixed3a on 5x5, …). Only the branches
  of the measured units are computed, the last convolution only for their output channels,
  and the input preprocessing is folded into conv2d0. Used when the model is a plain
  :class:`~circuits.model.InceptionV1` (weights may be edited) without hooks; otherwise:
* **naive path**: render in the measurement window and ``model.run`` up to the layer (hooks
  and interventions are honoured).

On CPU the fast path spreads batches over ``torch.get_num_threads()`` Python threads that
each run torch single-threaded (its tensors are too small for OpenMP to share well). A full
720-orientation × 32-radius sweep of ten mixed3b units (23,040 stimuli) takes about 13 s on
two idle cores (26 CPU-s): about 10x less than the measurement-window path and 58x less than
224-px images through the whole network (``bench/bench_tuning.py``).

Measures (all tidy DataFrames): :func:`radial_tuning` (any resolution, e.g. 0.5°),
:func:`joint_tuning` (orientation × radius, in σ of the dataset activation),
:func:`tuning_metrics` (preferred orientation, tuning width, echo ratio),
:func:`curve_line_preference`, :func:`combing_index`, :func:`angle_vs_curve`;
:func:`tune_report` writes them all (``circuits tune``).

Orientation convention: see :mod:`studies.stimuli`. Measures return tidy DataFrames (one
row per unit × stimulus, or per unit), keyed by ``unit`` ("mixed3b:379"), ``layer``,
``index`` and, after :func:`compare`, ``variant``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from circuits.geometry import measurement_window
from circuits.model import (
    Conv0,
    ConvUnit,
    InceptionBlock,
    InceptionV1,
    LocalResponseNorm,
    Preprocess,
    StridedMaxPool,
    local_response_norm,
)
from circuits.spec import CONV_LAYERS, MIXED_LAYERS, ModelSpec
from circuits.units import Family, Unit, group_by_layer, resolve_units

from . import stimuli as S
from .stimuli import Stimuli

#: Stages of the network before the classifier, in forward order (the trunk of a cone).
TRUNK = (
    "conv2d0", "maxpool0", "localresponsenorm0", "conv2d1", "conv2d2", "localresponsenorm1", "maxpool1",
    "mixed3a", "mixed3b", "maxpool4", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "maxpool10",
    "mixed5a", "mixed5b",
)

#: Spatial kernel of each branch of an inception block, seen from the block's input.
BRANCH_KERNEL = {"1x1": 1, "3x3": 3, "5x5": 5, "pool_reduce": 3}


def _activation_name(layer: str, pre_relu: bool) -> str:
    return f"{layer}_pre_relu" if pre_relu else layer


# ============================================================================ cone geometry
def _same_pad_before(n: int, k: int, s: int) -> int:
    out = math.ceil(n / s)
    return max((out - 1) * s + k - n, 0) // 2


def _stage_op(spec: ModelSpec, name: str, n: int, k_target: int | None = None) -> tuple[int, int, int, int]:
    """``(kernel, stride, pad_before, n_out)`` of a stage for an input of ``n`` px."""
    caffe = spec.padding == "caffe"
    if name == "conv2d0":
        p = 3 if caffe else _same_pad_before(n, 7, 2)
        return 7, 2, p, ((n + 6 - 7) // 2 + 1) if caffe else math.ceil(n / 2)
    if name.startswith("maxpool"):
        p = 0 if caffe else _same_pad_before(n, 3, 2)
        return 3, 2, p, (math.ceil((n - 3) / 2) + 1) if caffe else math.ceil(n / 2)
    if name.startswith("localresponsenorm") or name == "conv2d1":
        return 1, 1, 0, n
    if name == "conv2d2":
        return 3, 1, 1, n
    k = 5 if k_target is None else k_target
    return k, 1, k // 2, n


@dataclass(frozen=True)
class ConePlan:
    """Where and how to compute one output position of a layer (or of some of its branches).

    Attributes:
        layer: canonical layer.
        branches: branches of a mixed layer that are computed (``()`` for conv layers).
        stages: trunk stages run before the layer.
        crop: side of the square input window (px) the position depends on.
        center: pixel coordinate (x = y) of the stimulus centre (the position's receptive-field
            centre) inside that window.
        position: the output position (row = column) in the measurement-window geometry.
        window: ``(size, position, center)`` of :func:`~circuits.geometry.measurement_window`.
    """

    layer: str
    branches: tuple[str, ...]
    stages: tuple[str, ...]
    crop: int
    center: float
    position: int
    window: tuple[int, int, float]

    @property
    def k_target(self) -> int:
        return max((BRANCH_KERNEL[b] for b in self.branches), default=1)


def cone_plan(spec: ModelSpec, layer: str, branches: Iterable[str] | None = None) -> ConePlan | None:
    """The :class:`ConePlan` of ``layer`` (only ``branches`` of a mixed layer; default all),
    or ``None`` when some stage would need padding at the measurement position (then the
    naive path must be used)."""
    if layer in MIXED_LAYERS:
        branches = tuple(b for b in BRANCH_KERNEL if branches is None or b in set(branches))
    elif layer in CONV_LAYERS:
        branches = ()
    else:
        return None
    size, pos, center = measurement_window(spec, layer)
    stages = TRUNK[:TRUNK.index(layer)]
    k_t = max((BRANCH_KERNEL[b] for b in branches), default=1) if branches else None
    ops, n = [], size
    for name in stages + (layer,):
        k, s, p, n_out = _stage_op(spec, name, n, k_t if name == layer else None)
        ops.append((k, s, p, n))
        n = n_out
    if not 0 <= pos < n:
        return None
    lo = hi = pos
    for k, s, p, n_in in reversed(ops):
        lo, hi = lo * s - p, hi * s - p + k - 1
        if lo < 0 or hi >= n_in:
            return None
    return ConePlan(layer, branches, stages, hi - lo + 1, center - lo, pos, (size, pos, center))


# ============================================================================ cone forward
def _only_plain_modules(model: nn.Module) -> str | None:
    from torch.nn.modules import module as _m

    if _m._global_forward_hooks or _m._global_forward_pre_hooks:
        return "global forward hooks are registered"
    for name, mod in model.named_modules():
        if mod._forward_hooks or mod._forward_pre_hooks:
            return f"module {name or '(model)'} has hooks"
    return None


def _plain_conv(conv, k: int, stride: int = 1) -> bool:
    return (type(conv) is nn.Conv2d and conv.kernel_size == (k, k) and conv.stride == (stride, stride)
            and conv.padding == (k // 2, k // 2) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.bias is not None and conv.padding_mode == "zeros")


def _relu_unit(mod) -> bool:
    return type(mod) is ConvUnit and getattr(mod, "relu", True) is True


def fast_path_problem(model: nn.Module, layer: str | None = None) -> str | None:
    """Why the fast (cone) path cannot be used for ``layer`` of ``model``, or ``None``.

    The fast path re-implements the forward pass from the model's own weights, so it needs
    the standard modules (edited weights are fine) and no hooks (interventions use hooks).
    """
    if not isinstance(model, InceptionV1):
        return f"not an InceptionV1 ({type(model).__name__})"
    if getattr(model, "linear_surrogate", False):
        return "a linearised model"
    why = _only_plain_modules(model)
    if why:
        return why
    stages = TRUNK if layer is None else TRUNK[:TRUNK.index(layer) + 1]
    if type(model.preprocess.fn) is not Preprocess:
        return "preprocess is not the standard module"
    for name in stages:
        mod = getattr(model, name)
        if name == "conv2d0":
            ok = _relu_unit(mod) and type(mod.conv) is Conv0 and mod.conv.groups == 1
        elif name in ("conv2d1", "conv2d2"):
            ok = _relu_unit(mod) and _plain_conv(mod.conv, 1 if name == "conv2d1" else 3)
        elif name.startswith("maxpool"):
            ok = type(mod.fn) is StridedMaxPool and not getattr(mod.fn, "linear", False)
        elif name.startswith("localresponsenorm"):
            ok = type(mod.fn) in (LocalResponseNorm, nn.LocalResponseNorm)  # same formula
        else:
            ok = (type(mod) is InceptionBlock and not getattr(mod, "pool_linear", False)
                  and not len(getattr(mod, "linear_paths", ())) and all(
                      _relu_unit(mod.unit(c)) and _plain_conv(mod.unit(c).conv, k)
                      for c, k in (("1x1", 1), ("3x3_bottleneck", 1), ("3x3", 3), ("5x5_bottleneck", 1),
                                   ("5x5", 5), ("pool_reduce", 1))))
        if ok:  # edits and surrogates the cone path does not reproduce
            units = [mod] if isinstance(mod, ConvUnit) else (
                [mod.unit(c) for c in ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce")]
                if isinstance(mod, InceptionBlock) else [])
            if any(not getattr(u, "relu", True) for u in units):
                ok = False
            if getattr(getattr(mod, "fn", None), "linear", False) or getattr(mod, "pool_linear", False):
                ok = False
            if isinstance(mod, InceptionBlock) and getattr(mod, "linear_paths", None):
                ok = False
        if not ok:
            return f"stage {name} is not the standard module (edited structure or linear surrogate)"
    return None


def _lrn(x: Tensor, mod: nn.LocalResponseNorm) -> Tensor:
    """The model's LRN stage (:func:`circuits.model.local_response_norm`, the formula of
    ``nn.LocalResponseNorm``) with ``mod``'s parameters."""
    return local_response_norm(x, mod.size, mod.alpha, mod.beta, mod.k)


def _fold_preprocess(model: InceptionV1) -> tuple[Tensor, Tensor]:
    """conv2d0's weight and bias acting on RGB in [0, 1] (preprocessing folded in; exact for
    a valid convolution, where no padding meets the mean subtraction)."""
    pre = model.preprocess.fn
    conv = model.conv2d0.conv
    w = conv.weight * pre.scale
    mean = pre.mean.view(-1).to(w)
    bias = conv.bias - (conv.weight.sum((2, 3)) * mean).sum(1)
    if pre.bgr:
        w = w.flip(1)
    return w.contiguous(), bias


def _relu_conv(x: Tensor, cu: ConvUnit) -> Tensor:
    return F.conv2d(x, cu.conv.weight, cu.conv.bias).relu_()


def _block_valid(block: InceptionBlock, x: Tensor) -> Tensor:
    """An inception block's post-ReLU output on the window 4 px narrower than ``x`` (no padding)."""
    n = x.shape[-1]
    c1, c2 = x[..., 2:n - 2, 2:n - 2], x[..., 1:n - 1, 1:n - 1]
    return torch.cat([
        _relu_conv(c1, block.b1x1),
        _relu_conv(_relu_conv(c2, block.b3x3_bottleneck), block.b3x3),
        _relu_conv(_relu_conv(x, block.b5x5_bottleneck), block.b5x5),
        _relu_conv(F.max_pool2d(c2, 3, 1), block.bpool_reduce),
    ], 1)


class _Cone:
    """The forward pass of one :class:`ConePlan` for given unit indices of its layer."""

    @torch.no_grad()
    def __init__(self, model: InceptionV1, plan: ConePlan, indices: Sequence[int]):
        self.model, self.plan = model, plan
        self.w0, self.b0 = _fold_preprocess(model)
        spec = model.spec
        self.parts: list[tuple[str, Tensor, list[int]]] = []  # (branch, local channels, output columns)
        if plan.layer in MIXED_LAYERS:
            offsets = spec.block(plan.layer).branch_offsets()
            for b, (lo, hi) in offsets.items():
                cols = [j for j, i in enumerate(indices) if lo <= i < hi]
                if cols:
                    self.parts.append((b, torch.tensor([indices[j] - lo for j in cols]), cols))
        else:
            self.parts.append(("", torch.tensor(list(indices)), list(range(len(indices)))))
        self.n = len(indices)

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        """``x``: ``(N, 3, crop, crop)`` RGB in [0, 1] → pre-ReLU ``(N, n_units)``."""
        m, plan = self.model, self.plan
        # channels-last: oneDNN convolutions and max-pools are faster on it (2-10x for pools)
        x = x.to(self.w0.dtype).contiguous(memory_format=torch.channels_last)
        if not plan.stages:  # conv2d0 itself
            _, sel, _ = self.parts[0]
            return F.conv2d(x, self.w0[sel], self.b0[sel], stride=2).flatten(1)
        h = x
        for name in plan.stages:
            if name == "conv2d0":
                h = F.conv2d(h, self.w0, self.b0, stride=2).relu_()
            elif name.startswith("maxpool"):
                h = F.max_pool2d(h, 3, 2)
            elif name.startswith("localresponsenorm"):
                h = _lrn(h, getattr(m, name).fn)
            elif name in ("conv2d1", "conv2d2"):
                h = _relu_conv(h, getattr(m, name))
            else:
                h = _block_valid(getattr(m, name), h)
        out = torch.empty(h.shape[0], self.n, dtype=h.dtype, device=h.device)
        if plan.layer in CONV_LAYERS:
            _, sel, cols = self.parts[0]
            conv = getattr(m, plan.layer).conv
            out[:, cols] = F.conv2d(h, conv.weight[sel], conv.bias[sel]).flatten(1)
            return out
        block = getattr(m, plan.layer)
        kt = h.shape[-1]
        for b, sel, cols in self.parts:
            mg = (kt - BRANCH_KERNEL[b]) // 2
            hb = h[..., mg:kt - mg, mg:kt - mg]
            if b == "3x3":
                hb = _relu_conv(hb, block.b3x3_bottleneck)
            elif b == "5x5":
                hb = _relu_conv(hb, block.b5x5_bottleneck)
            elif b == "pool_reduce":
                hb = F.max_pool2d(hb, 3, 1)
            conv = block.unit(b).conv
            out[:, cols] = F.conv2d(hb, conv.weight[sel], conv.bias[sel]).flatten(1)
        return out


_CHECKED: dict[tuple, bool] = {}


@torch.no_grad()
def _self_check(model: InceptionV1, plan: ConePlan, idx: Sequence[int], device) -> bool:
    """The cone against ``model.run`` on two fixed noise images in the measurement window: a
    guard against any model change the structural checks of :func:`fast_path_problem` miss.
    Cached per model, weight storage and version, and units."""
    params = list(model.parameters())
    key = (id(model), plan, tuple(idx), str(device), tuple((p.data_ptr(), p._version) for p in params))
    if key not in _CHECKED:
        size, pos, center = plan.window
        off = int(round(center - plan.center))
        x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        name = f"{plan.layer}_pre_relu"
        ref = model.run(x.to(device), [name])[name][:, list(idx), pos, pos].float().cpu()
        got = _Cone(model, plan, list(idx))(x[:, :, off:off + plan.crop, off:off + plan.crop].to(device)).float().cpu()
        if len(_CHECKED) > 256:
            _CHECKED.clear()
        _CHECKED[key] = bool(torch.allclose(got, ref, rtol=1e-3, atol=1e-2))
    return _CHECKED[key]


def _fast_problem(model, layer, idx, plan, device) -> str | None:
    why = fast_path_problem(model, layer) or (None if plan is not None else "the cone would need padding")
    if why is None and not _self_check(model, plan, idx, device):
        why = "its values differ from model.run (self-check)"
    return why


def cone_responses(model: InceptionV1, layer: str, indices: Sequence[int], crops: Tensor,
                   plan: ConePlan | None = None) -> Tensor:
    """Pre-ReLU responses of units ``indices`` of ``layer`` to input windows centred on their
    receptive field: ``crops`` is ``(N, 3, plan.crop, plan.crop)`` RGB in [0, 1] with the
    centre at ``plan.center`` (see :func:`cone_plan`) → ``(N, len(indices))``.

    Raises:
        ValueError: the fast path cannot be used for this model/layer (the reason is given).
    """
    if plan is None:
        branches = {model.spec.branch_of(layer, i) for i in indices} if layer in MIXED_LAYERS else None
        plan = cone_plan(model.spec, layer, branches)
    dev = next(model.parameters()).device
    why = _fast_problem(model, layer, list(indices), plan, dev)
    if why:
        raise ValueError(f"fast path unavailable for {layer}: {why}")
    if crops.shape[-1] != plan.crop or crops.shape[-2] != plan.crop:
        raise ValueError(f"crops must be {plan.crop}x{plan.crop} px for {layer}; got {tuple(crops.shape[-2:])}")
    return _run_cone(_Cone(model, plan, list(indices)), len(crops), lambda sl: crops[sl], dev)


# ============================================================================ measure
@torch.no_grad()
def measure(
    model: InceptionV1,
    units: str | Unit | Family | Iterable,
    stimuli: Stimuli,
    pre_relu: bool = True,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
    fast: bool | None = None,
) -> pd.DataFrame:
    """Response of each unit to each stimulus, at the receptive-field centre.

    Args:
        model: an :class:`~circuits.model.InceptionV1`.
        units: units or families (``"3b:379"``, ``Unit``, ``Family``, lists of those).
        stimuli: a :class:`~studies.stimuli.Stimuli` table (re-rendered per layer).
        pre_relu: report the pre-ReLU value (default; the articles' tuning plots use it);
            ``False`` gives post-ReLU.
        batch_size: stimuli per forward pass.
        device: defaults to the model's device.
        progress: show a progress bar (stderr).
        fast: ``None`` (default) uses the fast cone path when the model allows it (module
            docstring), ``True`` requires it (``ValueError`` otherwise), ``False`` never uses it.

    Returns:
        Tidy DataFrame, one row per (unit, stimulus): ``unit`` ("mixed3b:379"), ``layer``,
        ``index``, the stimulus columns (``orientation`` deg, ``radius`` px, …) and
        ``response`` (activation units of the layer).

    Raises:
        KeyError / IndexError: a unit not in the model (before any compute).
        ValueError: ``fast=True`` and the fast path is not possible.
    """
    units = resolve_units(units, model.spec)
    if not units:
        raise ValueError("no units to measure")
    if not isinstance(stimuli, Stimuli) or len(stimuli) == 0:
        raise ValueError("stimuli must be a non-empty studies.stimuli.Stimuli table")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1; got {batch_size}")
    device = device or next(model.parameters()).device
    frames = []
    for layer, idx in group_by_layer(units).items():
        resp = None
        if fast is not False:
            branches = {model.spec.branch_of(layer, i) for i in idx} if layer in MIXED_LAYERS else None
            plan = cone_plan(model.spec, layer, branches)
            why = _fast_problem(model, layer, idx, plan, device)
            if why is None:
                resp = _measure_fast(model, plan, idx, stimuli, pre_relu, batch_size, device, progress)
            elif fast:
                raise ValueError(f"fast path unavailable for {layer}: {why}")
        if resp is None:
            resp = _measure_naive(model, layer, idx, stimuli, pre_relu, batch_size, device, progress)
        for j, i in enumerate(idx):
            df = stimuli.meta.copy()
            df.insert(0, "index", i)
            df.insert(0, "layer", layer)
            df.insert(0, "unit", f"{layer}:{i}")
            df["response"] = resp[:, j]
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


#: Stimuli per cone forward on CPU: small chunks keep the intermediate maps in cache.
CPU_CONE_CHUNK = 16


def _imap(fn, items: list, workers: int):
    """``map(fn, items)`` in order, on ``workers`` threads that each run torch ops
    single-threaded (inter-op instead of intra-op parallelism: the cone's small tensors give
    OpenMP little to share, and on a busy machine its barriers waste several times the CPU
    time). The caller's thread count is restored afterwards."""
    if workers <= 1:
        yield from map(fn, items)
        return
    n_main = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(min(workers, len(items)) or 1, initializer=torch.set_num_threads,
                                initargs=(1,)) as ex:
            yield from ex.map(fn, items)
    finally:
        torch.set_num_threads(n_main)


def _run_cone(cone: _Cone, n: int, get, device, batch_size: int = 256, progress: bool = False,
              desc: str = "") -> Tensor:
    """Pre-ReLU responses ``(n, units)`` of ``cone`` to inputs ``get(slice) -> (b, 3, crop, crop)``
    (rendered or cut on demand), in batches spread over the CPU threads (:func:`_imap`)."""
    cpu = torch.device(device).type == "cpu"
    workers = torch.get_num_threads() if cpu else 1
    chunk = CPU_CONE_CHUNK if cpu else batch_size
    if cpu and workers > 1:  # enough batches to keep every thread busy
        batch_size = max(chunk, min(batch_size, math.ceil(n / workers / chunk) * chunk))

    def work(sl: slice) -> Tensor:
        with torch.no_grad():  # grad mode is per thread
            imgs = get(sl).to(device)
            return torch.cat([cone(imgs[s:s + chunk]) for s in range(0, len(imgs), chunk)]).float().cpu()

    batches = [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    out = list(tqdm(_imap(work, batches, workers), total=len(batches), disable=not progress, desc=desc,
                    unit="batch", leave=False))
    return torch.cat(out) if out else torch.empty(0, cone.n)


def _measure_fast(model, plan, idx, stimuli, pre_relu, batch_size, device, progress) -> np.ndarray:
    cone = _Cone(model, plan, idx)
    stim = stimuli.at(plan.crop, plan.center)
    r = _run_cone(cone, len(stim), stim.render, device, batch_size, progress, f"stimuli → {plan.layer}")
    return (r if pre_relu else r.relu()).numpy()


def _measure_naive(model, layer, idx, stimuli, pre_relu, batch_size, device, progress) -> np.ndarray:
    size, pos, center = measurement_window(model.spec, layer)
    stim = stimuli.at(size, center)
    name = _activation_name(layer, pre_relu)
    sel = torch.tensor(idx)
    chunks = []
    n_batches = -(-len(stim) // batch_size)
    for _, imgs in tqdm(stim.batches(batch_size), total=n_batches, disable=not progress,
                        desc=f"stimuli → {layer}", unit="batch", leave=False):
        act = model.run(imgs.to(device), [name])[name]
        chunks.append(act[:, sel, pos, pos].float().cpu())
    return torch.cat(chunks).numpy()


def compare(
    models: Mapping[str, InceptionV1],
    units,
    stimuli: Stimuli,
    **kwargs,
) -> pd.DataFrame:
    """:func:`measure` for several models (e.g. ``{"before": m, "after": edited}``), stacked
    with a ``variant`` column."""
    frames = []
    for name, m in models.items():
        df = measure(m, units, stimuli, **kwargs)
        df.insert(0, "variant", name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def joint_sweep(
    model: InceptionV1,
    units,
    orientation_step: float = 5.0,
    radii: Sequence[float] = S.DEFAULT_RADII,
    stroke_width: float = 2.0,
    lines: bool = True,
    **kwargs,
) -> pd.DataFrame:
    """:func:`measure` on the orientation × radius grid of curves (``orientation_step`` deg:
    0.5 gives the published 720 orientations), plus straight lines at the same orientations
    in [0, 180) when ``lines`` (for :func:`curve_line_preference`).

    Raises:
        StimulusError: a bad step, radius or stroke (before any compute); and as :func:`measure`.
    """
    units = resolve_units(units, model.spec)
    ors = S.orientation_grid(orientation_step)
    stim = S.curves(ors, radii, stroke_width=stroke_width)
    if lines:
        stim = stim + S.lines([o for o in ors if o < 180], stroke_width=stroke_width)
    return measure(model, units, stim, **kwargs)


# ============================================================================ measures
def _group_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in ("variant", "unit", "layer", "index") if c in df.columns]


def radial_tuning(df: pd.DataFrame, kind: str = "curve") -> pd.DataFrame:
    """Radial tuning curve: positive responses averaged over radius, per orientation.

    Source: Curve Detectors, "radial tuning curve" (positive activations averaged over
    curvature, per orientation; the published data has 720 bins of 0.5°). The resolution is
    that of the measured orientations (:func:`joint_sweep` ``orientation_step``).

    Args:
        df: output of :func:`measure`/:func:`compare` (rows of ``kind`` are used).

    Returns:
        One row per (variant, unit, orientation): ``orientation`` (deg), ``response``
        (mean of max(response, 0) over radii).
    """
    d = df[df["kind"] == kind].copy()
    d["positive"] = d["response"].clip(lower=0)
    keys = _group_cols(d) + ["orientation"]
    out = d.groupby(keys, sort=True)["positive"].mean().rename("response").reset_index()
    return out


def _circ_dist(a, b):
    return np.abs((np.asarray(a) - b + 180.0) % 360.0 - 180.0)


def tuning_metrics(radial: pd.DataFrame) -> pd.DataFrame:
    """Per-unit measures of a radial tuning curve.

    Columns: ``peak`` (max of the curve), ``preferred_orientation`` (deg, angle of the
    response-weighted vector sum), ``peak_orientation`` (deg, argmax), ``selectivity``
    (1 − circular variance, in [0, 1]; 1 = a single orientation), ``tuning_width`` (deg,
    full width of the orientations whose response is ≥ half the peak), ``echo_ratio`` (max
    within ±30° of peak orientation + 180°, over the peak; Curve Circuits).
    """
    rows = []
    for key, g in radial.groupby(_group_cols(radial), sort=True):
        o = g["orientation"].to_numpy(float)
        r = g["response"].to_numpy(float)
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(_group_cols(radial), key))
        peak = float(r.max()) if len(r) else 0.0
        total = r.sum()
        if total > 0:
            vec = (r * np.exp(1j * np.radians(o))).sum()
            pref = float(np.degrees(np.angle(vec)) % 360.0)
            sel = float(abs(vec) / total)
        else:
            pref, sel = float("nan"), 0.0
        pk_o = float(o[int(np.argmax(r))]) if peak > 0 else float("nan")
        if peak > 0:
            step = np.median(np.diff(np.sort(np.unique(o)))) if len(np.unique(o)) > 1 else 360.0
            width = float((r >= peak / 2).sum() * step)
            opp = _circ_dist(o, (pk_o + 180.0) % 360.0) <= 30.0
            echo = float(r[opp].max() / peak) if opp.any() else float("nan")
        else:
            width, echo = float("nan"), float("nan")
        row.update(peak=peak, preferred_orientation=pref, peak_orientation=pk_o, selectivity=sel,
                   tuning_width=width, echo_ratio=echo)
        rows.append(row)
    return pd.DataFrame(rows)


def _stats_for(stats, layer: str) -> pd.DataFrame:
    if isinstance(stats, Mapping):
        if layer not in stats:
            raise KeyError(f"no reference statistics for {layer}; have {', '.join(stats)}")
        return stats[layer]
    if isinstance(stats, pd.DataFrame) and "layer" in stats.columns:
        return stats[stats["layer"] == layer].set_index("index")
    return stats


def add_sigma(df: pd.DataFrame, stats) -> pd.DataFrame:
    """``df`` with ``mean``, ``std`` (the unit's reference statistics) and ``response_sigma``
    = (response − mean) / std.

    Args:
        stats: :func:`studies.discovery.reference_statistics` of the layer (indexed by unit
            index), a ``{layer: table}`` mapping, or a table with a ``layer`` column.

    Raises:
        KeyError: a unit without statistics.
    """
    out = []
    for layer, g in df.groupby("layer", sort=False):
        st = _stats_for(stats, layer)
        missing = sorted(set(g["index"]) - set(st.index))
        if missing:
            raise KeyError(f"no reference statistics for {layer} units {missing[:5]}")
        g = g.copy()
        g["mean"] = st.loc[g["index"], "mean"].to_numpy()
        g["std"] = st.loc[g["index"], "std"].to_numpy()
        g["response_sigma"] = (g["response"] - g["mean"]) / g["std"]
        out.append(g)
    return pd.concat(out).loc[df.index]


def reference_stats(model: InceptionV1, units, images, n_images: int = 100) -> dict[str, pd.DataFrame]:
    """Reference statistics (pre-ReLU, all spatial positions, ``n_images`` evenly spaced images
    of a folder or a tensor) of every layer of ``units``: ``{layer: table}`` from
    :func:`studies.discovery.reference_statistics`."""
    from .discovery import load_reference_images, reference_statistics

    units = resolve_units(units, model.spec)
    if not isinstance(images, torch.Tensor):
        images = load_reference_images(images, n_images)
    return {layer: reference_statistics(model, layer, images) for layer in group_by_layer(units)}


def joint_tuning(df: pd.DataFrame, stats=None, kind: str = "curve") -> pd.DataFrame:
    """Joint orientation × radius tuning (the heat map of Curve Detectors), in σ of the unit's
    activation over a reference image set.

    σ units: ``response_sigma = (response − mean) / std`` where ``mean`` and ``std`` are the
    unit's **pre-ReLU** activation statistics over reference images at **all spatial
    positions** (:func:`studies.discovery.reference_statistics`); ``df`` must hold pre-ReLU
    responses (:func:`measure`'s default). Curve Detectors reports ≈24σ for the best stimuli
    of Lucid's 3b:379.

    Args:
        df: :func:`measure` / :func:`joint_sweep` output.
        stats: reference statistics (see :func:`add_sigma`); ``None`` leaves responses in
            activation units (no ``response_sigma`` column).

    Returns:
        One row per (variant, unit, orientation, radius): ``orientation``, ``radius``,
        ``curvature``, ``response`` and, with ``stats``, ``mean``, ``std``, ``response_sigma``.
    """
    d = df[df["kind"] == kind]
    keys = _group_cols(d) + ["orientation", "radius"]
    cols = keys + [c for c in ("curvature",) if c in d.columns] + ["response"]
    out = d[cols].groupby(keys, sort=True, as_index=False).mean()
    if stats is not None:
        out = add_sigma(out, stats)
    return out.reset_index(drop=True)


def curve_line_preference(df: pd.DataFrame, stats=None) -> pd.DataFrame:
    """Best curve versus best straight line, per unit.

    Columns: ``best_curve`` (max pre-ReLU response over curves), ``best_curve_orientation``,
    ``best_curve_radius``, ``best_line``, ``best_line_orientation``, ``ratio`` =
    best_curve / best_line (NaN when the best line does not excite the unit, ≤ 0) and, with
    ``stats``, ``curve_sigma``, ``line_sigma`` (σ units as in :func:`joint_tuning`) and
    ``ratio_sigma`` = (best_curve − mean) / (best_line − mean) (how many times further above
    the unit's dataset mean the best curve drives it; denominator floored at 1e-9, as in
    :mod:`studies.discovery`).

    Raises:
        ValueError: ``df`` lacks curve or line rows.
    """
    if not {"curve", "line"} <= set(df["kind"]):
        raise ValueError("curve_line_preference needs curve and line responses (e.g. joint_sweep(..., lines=True))")
    rows = []
    for key, g in df.groupby(_group_cols(df), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(_group_cols(df), key))
        c = g[g["kind"] == "curve"]
        ln = g[g["kind"] == "line"]
        bc, bl = c.loc[c["response"].idxmax()], ln.loc[ln["response"].idxmax()]
        row.update(best_curve=float(bc["response"]), best_curve_orientation=float(bc["orientation"]),
                   best_curve_radius=float(bc["radius"]), best_line=float(bl["response"]),
                   best_line_orientation=float(bl["orientation"]))
        row["ratio"] = row["best_curve"] / row["best_line"] if row["best_line"] > 0 else float("nan")
        rows.append(row)
    out = pd.DataFrame(rows)
    if stats is not None:
        parts = []
        for layer, g in out.groupby("layer", sort=False):
            st = _stats_for(stats, layer)
            g = g.copy()
            mean, std = st.loc[g["index"], "mean"].to_numpy(), st.loc[g["index"], "std"].to_numpy()
            g["curve_sigma"] = (g["best_curve"] - mean) / std
            g["line_sigma"] = (g["best_line"] - mean) / std
            g["ratio_sigma"] = (g["best_curve"] - mean) / np.clip(g["best_line"] - mean, 1e-9, None)
            parts.append(g)
        out = pd.concat(parts).loc[out.index]
    return out.reset_index(drop=True)


def best_stimulus(
    model: InceptionV1,
    units,
    tuning: pd.DataFrame | None = None,
    orientation_step: float = 10.0,
    radii: Sequence[float] = S.DEFAULT_RADII,
    stroke_width: float = 2.0,
    **kwargs,
) -> pd.DataFrame:
    """Each unit's preferred orientation and best radius.

    The preferred orientation is the vector-sum angle of the radial tuning curve
    (:func:`tuning_metrics`, from ``tuning`` or a :func:`joint_sweep` at
    ``orientation_step``); the best radius is the radius (among ``radii``) whose curve at
    exactly that orientation drives the unit most (measured).

    Returns:
        One row per unit: ``unit``, ``layer``, ``index``, ``preferred_orientation``,
        ``best_radius``, ``best_response`` (pre-ReLU), ``selectivity``.
    """
    units = resolve_units(units, model.spec)
    if tuning is None:
        tuning = joint_sweep(model, units, orientation_step, radii, stroke_width, lines=False, **kwargs)
    met = tuning_metrics(radial_tuning(tuning)).set_index("unit")
    names = [str(u) for u in units]
    missing = [n for n in names if n not in met.index]
    if missing:
        raise ValueError(f"tuning lacks units {missing[:5]}")
    prefs = {n: float(met.loc[n, "preferred_orientation"]) for n in names}
    # units with no positive response at all get NaN; measure them at 0° so the row exists
    ors = sorted({0.0 if math.isnan(p) else p for p in prefs.values()})
    df = measure(model, units, S.curves(ors, radii, stroke_width=stroke_width), **kwargs)
    rows = []
    for u in units:
        n = str(u)
        p = prefs[n]
        g = df[(df["unit"] == n) & np.isclose(df["orientation"], 0.0 if math.isnan(p) else p)]
        b = g.loc[g["response"].idxmax()]
        rows.append(dict(unit=n, layer=u.layer, index=u.index, preferred_orientation=p,
                         best_radius=float(b["radius"]), best_response=float(b["response"]),
                         selectivity=float(met.loc[n, "selectivity"])))
    return pd.DataFrame(rows)


def _per_unit(model, units, best: pd.DataFrame, make, **kwargs) -> pd.DataFrame:
    """Measure each unit on its own stimuli ``make(row) -> Stimuli``; one table."""
    stims = []
    for _, b in best.iterrows():
        st = make(b)
        st.meta["for_unit"] = b["unit"]
        stims.append(st)
    allst = stims[0]
    for st in stims[1:]:
        allst = allst + st
    df = measure(model, units, allst, **kwargs)
    return df[df["unit"] == df["for_unit"]].drop(columns="for_unit").reset_index(drop=True)


def combing_index(
    model: InceptionV1,
    units,
    best: pd.DataFrame | None = None,
    sides: Sequence[str] = ("inward", "outward", "both"),
    spacing_px: float = 8.0,
    length_px: float = 8.0,
    stroke_width: float = 2.0,
    tuning: pd.DataFrame | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Combing: how much short lines perpendicular to a curve change a unit's response.

    For each unit, at its preferred orientation and best radius (:func:`best_stimulus`), the
    plain curve, the combed curve (:func:`studies.stimuli.combed_curves`, each of ``sides``)
    and the teeth alone (:func:`studies.stimuli.combing_lines`) are measured (pre-ReLU).
    ``combing_index`` = response(combed curve) / response(plain curve): > 1 means the
    combing excites the unit (Curve Detectors reports curve detectors excited by combing,
    inward and outward); ``teeth_index`` = response(teeth alone) / response(plain curve).
    Both are NaN when the plain curve does not excite the unit (≤ 0).

    Returns:
        One row per (unit, side): ``unit``, ``layer``, ``index``, ``side``, ``orientation``,
        ``radius``, ``plain``, ``combed``, ``teeth``, ``combing_index``, ``teeth_index``.

    Raises:
        StimulusError: bad side/spacing/length (before any compute).
    """
    units = resolve_units(units, model.spec)
    for s in sides:  # validate before compute
        S.combed_curves([0], [10], s, spacing_px, length_px, stroke_width)
    if best is None:
        best = best_stimulus(model, units, tuning=tuning, stroke_width=stroke_width, **kwargs)

    def make(b):
        o, r = [b["preferred_orientation"] if not math.isnan(b["preferred_orientation"]) else 0.0], [b["best_radius"]]
        return (S.curves(o, r, stroke_width=stroke_width)
                + S.combed_curves(o, r, list(sides), spacing_px, length_px, stroke_width)
                + S.combing_lines(o, r, list(sides), spacing_px, length_px, stroke_width))

    df = _per_unit(model, units, best, make, **kwargs)
    rows = []
    for (unit, layer, index), g in df.groupby(["unit", "layer", "index"], sort=False):
        plain = float(g[g["kind"] == "curve"]["response"].iloc[0])
        for s in sides:
            comb = float(g[(g["kind"] == "combed_curve") & (g["side"] == s)]["response"].iloc[0])
            teeth = float(g[(g["kind"] == "combing") & (g["side"] == s)]["response"].iloc[0])
            ok = plain > 0
            rows.append(dict(unit=unit, layer=layer, index=index, side=s,
                             orientation=float(g["orientation"].iloc[0]), radius=float(g["radius"].iloc[0]),
                             plain=plain, combed=comb, teeth=teeth,
                             combing_index=comb / plain if ok else float("nan"),
                             teeth_index=teeth / plain if ok else float("nan")))
    return pd.DataFrame(rows)


def angle_vs_curve(
    model: InceptionV1,
    units,
    best: pd.DataFrame | None = None,
    opening_degrees: Sequence[float] = (45.0, 90.0, 135.0),
    corner_radii: Sequence[float] = (0.0, 4.0, 8.0, 16.0, 32.0, 64.0),
    stroke_width: float = 2.0,
    tuning: pd.DataFrame | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Angles versus curves at each unit's preferred orientation (:func:`best_stimulus`).

    Measures (pre-ReLU) the stroked angles of every opening × corner radius (the angle →
    curve series: r = 0 is sharp, large r approaches the curve of radius r) and the curves
    of every non-zero corner radius plus the unit's best radius, all of the preferred
    orientation. ``ratio_to_best_curve`` = response / response to the curve of the best
    radius (NaN if that is ≤ 0).

    Returns:
        One row per (unit, stimulus): ``unit``, ``layer``, ``index``, ``kind`` (``angle`` or
        ``curve``), ``orientation``, ``opening_degrees`` (NaN for curves), ``radius`` (corner
        radius for angles), ``response``, ``ratio_to_best_curve``.
    """
    units = resolve_units(units, model.spec)
    S.angles([0], opening_degrees, corner_radii, stroke_width)  # validate before compute
    if best is None:
        best = best_stimulus(model, units, tuning=tuning, stroke_width=stroke_width, **kwargs)

    def make(b):
        o = [b["preferred_orientation"] if not math.isnan(b["preferred_orientation"]) else 0.0]
        radii = sorted({float(r) for r in corner_radii if r > 0} | {float(b["best_radius"])})
        return S.curves(o, radii, stroke_width=stroke_width) + S.angles(o, opening_degrees, corner_radii,
                                                                          stroke_width)

    df = _per_unit(model, units, best, make, **kwargs)
    cols = ["unit", "layer", "index", "kind", "orientation", "opening_degrees", "radius", "response"]
    out = df[cols].copy()
    ref = best.set_index("unit")["best_radius"]
    for unit, g in out.groupby("unit", sort=False):
        c = g[(g["kind"] == "curve") & np.isclose(g["radius"], ref[unit])]["response"].iloc[0]
        out.loc[g.index, "ratio_to_best_curve"] = g["response"] / c if c > 0 else float("nan")
    return out


def angle_curve_summary(av: pd.DataFrame) -> pd.DataFrame:
    """Per unit from :func:`angle_vs_curve`: ``best_angle`` (max response over angles),
    ``sharp_angle`` (max over sharp angles, r = 0), ``best_curve`` and their ratios
    ``angle_curve_ratio`` = best_angle / best_curve, ``sharp_curve_ratio``."""
    rows = []
    for (unit, layer, index), g in av.groupby(["unit", "layer", "index"], sort=False):
        a, c = g[g["kind"] == "angle"], g[g["kind"] == "curve"]
        bc = float(c["response"].max())
        ba = float(a["response"].max())
        sh = a[a["radius"] == 0]
        sa = float(sh["response"].max()) if len(sh) else float("nan")
        rows.append(dict(unit=unit, layer=layer, index=index, best_angle=ba, sharp_angle=sa, best_curve=bc,
                         angle_curve_ratio=ba / bc if bc > 0 else float("nan"),
                         sharp_curve_ratio=sa / bc if bc > 0 else float("nan")))
    return pd.DataFrame(rows)


def angular_difference(a: float, b: float) -> float:
    """Smallest absolute difference between two orientations in degrees (0–180)."""
    return float(_circ_dist(a, b))


def orientation_colour(deg: float):
    """A colour for an orientation (hue wheel), used in every radial plot."""
    import matplotlib.colors as mcolors

    h = (deg % 360.0) / 360.0 if not math.isnan(deg) else 0.0
    return mcolors.hsv_to_rgb((h, 0.75, 0.85))


# ============================================================================ report
def parse_targets(targets: Sequence[str], model_or_spec) -> tuple[list[Unit], list[str]]:
    """Units from command-line targets: ``"3b:358"``, ``"mixed3b:358,mixed3b:9"`` or a family
    key such as ``"mixed3b/curves"`` (:func:`circuits.catalog.catalog`). Returns
    ``(units, labels)``; every unit is range-checked.

    Raises:
        KeyError / IndexError / ValueError: an unknown family, layer or unit.
    """
    spec = getattr(model_or_spec, "spec", model_or_spec)
    units: list[Unit] = []
    labels: list[str] = []
    for t in targets:
        for part in [p.strip() for p in str(t).split(",") if p.strip()]:
            if "/" in part:
                from circuits.catalog import catalog

                fam = catalog(spec)[part]
                units.extend(fam)
                labels.append(fam.key)
            else:
                units.extend(resolve_units(part, spec))
                labels.append(part)
    if not units:
        raise ValueError("no units given (e.g. 3b:358 or mixed3b/curves)")
    units = list(dict.fromkeys(units))
    for u in units:
        u.validate(spec)
    return units, labels


def tune_report(
    model: InceptionV1,
    units,
    out,
    images=None,
    orientation_step: float = 5.0,
    radii: Sequence[float] = S.DEFAULT_RADII,
    stroke_width: float = 2.0,
    top_k: int = 8,
    limit: int | None = None,
    reference_images: int = 100,
    rotation_step: float = 10.0,
    overwrite: bool = False,
    log=print,
    labels: Sequence[str] | None = None,
    vis_steps: int = 0,
) -> dict:
    """Measure ``units`` and write a report folder ``out`` atomically
    (:func:`studies.report.report_folder`); the ``circuits tune`` command.

    Always: ``joint.csv`` (orientation × radius, pre-ReLU; with images also σ), ``radial.csv``,
    ``units.csv`` (per unit: preferred orientation, tuning width, echo ratio, selectivity,
    best curve vs best line, combing index, angle/curve ratio; with images σ values and the
    dataset statistics), ``lines.csv``, ``combing.csv``, ``angles.csv``, ``radial.png``,
    ``joint.png``, ``summary.json``. With ``images`` also ``dataset_summary.csv``,
    ``histogram.csv``, ``top_examples.csv``, ``rotation.csv``, ``rotation_examples.csv``,
    ``histogram.png``, ``top_examples.png``, ``rotation.png``. Without ``images`` the σ units
    and the dataset statistics are skipped (and ``summary.json`` says so). With ``vis_steps`` > 0
    also ``featurevis.png`` (feature visualizations, labelled with the measured preferred
    orientation) and ``vis/<layer>_<index>.png`` (:mod:`studies.measure.featurevis`).

    Stimulus parameters, the units and ``out`` are checked before any compute.

    Returns:
        The ``summary.json`` content.
    """
    import time

    from . import plots
    from .report import check_out_dir, report_folder, write_json

    t0 = time.perf_counter()
    units = resolve_units(units, model.spec)
    ors = S.orientation_grid(orientation_step)
    S.curves(ors[:1], radii, stroke_width=stroke_width)  # validates radii / stroke before compute
    if rotation_step is not None and not 0 < float(rotation_step) <= 360:
        raise ValueError(f"rotation_step must be in (0, 360] deg; got {rotation_step}")
    if isinstance(vis_steps, bool) or not isinstance(vis_steps, int) or vis_steps < 0:
        raise ValueError(f"vis_steps must be an integer ≥ 0 (0: no feature visualizations); got {vis_steps!r}")
    check_out_dir(out, overwrite)
    files = None
    if images is not None:
        from .dataset import image_files

        files = image_files(images)
    summary: dict = dict(model=model.spec.name, units=[str(u) for u in units], targets=list(labels or []),
                         orientation_step=float(orientation_step), n_orientations=len(ors),
                         radii=[float(r) for r in radii], stroke_width=float(stroke_width),
                         responses="pre-ReLU, at the receptive-field centre (studies.tuning.measure)")
    log(f"measuring {len(units)} unit(s) on {len(ors)} orientations × {len(radii)} radii + lines")
    sweep = joint_sweep(model, units, orientation_step, radii, stroke_width, lines=True)
    stats = None
    if files is not None:
        log(f"reference statistics: {reference_images} evenly spaced images of {images}")
        stats = reference_stats(model, units, images, reference_images)
        summary["sigma"] = (f"response_sigma = (response - mean) / std, mean and std of the unit's pre-ReLU "
                            f"activation over {reference_images} evenly spaced images of {images}, all spatial "
                            f"positions (studies.discovery.reference_statistics)")
    else:
        msg = "no --images: skipping σ units and dataset statistics"
        log(msg)
        summary["skipped"] = msg
    joint = joint_tuning(sweep, stats)
    radial = radial_tuning(sweep)
    met = tuning_metrics(radial)
    clp = curve_line_preference(sweep, stats)
    best = best_stimulus(model, units, tuning=sweep, radii=radii, stroke_width=stroke_width)
    log("combing and angles at each unit's preferred orientation")
    comb = combing_index(model, units, best=best, stroke_width=stroke_width)
    av = angle_vs_curve(model, units, best=best, stroke_width=stroke_width)
    key = ["unit", "layer", "index"]
    table = met.merge(best[key + ["best_radius", "best_response"]], on=key)
    table = table.merge(clp.drop(columns=[c for c in ("preferred_orientation",) if c in clp.columns]), on=key)
    ci = comb.pivot_table(index=key, columns="side", values="combing_index").add_prefix("combing_index_")
    table = table.merge(ci.reset_index(), on=key)
    table = table.merge(angle_curve_summary(av)[key + ["angle_curve_ratio", "sharp_curve_ratio"]], on=key)
    ds = rot = rot_ex = None
    if files is not None:
        from .dataset import rotation_tuning, unit_statistics

        n_files = min(len(files), limit) if limit else len(files)
        log(f"dataset statistics over {n_files} images (top {top_k} examples)")
        ds = unit_statistics(model, units, files, k=top_k, limit=limit)
        if rotation_step is not None:
            log(f"rotation tuning of the top examples ({rotation_step:g}° steps)")
            rot, rot_ex = rotation_tuning(model, ds, step=rotation_step)
        dcols = ["mean", "std", "frac_positive", "tail_rate", "tail_rate_sigma"]
        table = table.merge(ds.summary[key + dcols].rename(columns={c: f"dataset_{c}" for c in dcols}), on=key)
        summary["dataset"] = dict(images=str(images), n_images=ds.n_images, skipped=len(ds.skipped), top_k=top_k,
                                  interior_only=ds.interior_only)
    summary["per_unit"] = table.to_dict(orient="records")
    vis = None
    if vis_steps:
        from .measure.featurevis import VisSettings, visualize_units

        log(f"feature visualizations ({vis_steps} steps)")
        vis = visualize_units(model, units, settings=VisSettings(steps=int(vis_steps)))
        summary["featurevis"] = dict(steps=int(vis_steps), objective="neuron at the RF centre, pre-ReLU",
                                     final_objective={str(v.unit): v.final for v in vis})
    with report_folder(out, overwrite) as tmp:
        if vis is not None:
            from . import vis_plots

            (tmp / "vis").mkdir()
            for v in vis:
                vis_plots.save_png(v.image, tmp / "vis" / vis_plots.unit_file(v.unit))
            ors = {v.unit: float(dict(zip(met["unit"], met["preferred_orientation"])).get(str(v.unit), math.nan))
                   for v in vis}
            vis_plots.plot_family_grid([v.image for v in vis], [v.unit for v in vis], tmp / "featurevis.png", ors,
                                       [v.final for v in vis], title=f"feature visualizations ({vis_steps} steps), "
                                       "sorted by measured preferred orientation")
        joint.to_csv(tmp / "joint.csv", index=False)
        radial.to_csv(tmp / "radial.csv", index=False)
        table.to_csv(tmp / "units.csv", index=False)
        sweep[sweep["kind"] == "line"].to_csv(tmp / "lines.csv", index=False)
        comb.to_csv(tmp / "combing.csv", index=False)
        av.to_csv(tmp / "angles.csv", index=False)
        pref = dict(zip(met["unit"], met["preferred_orientation"]))
        plots.plot_radial(radial, tmp / "radial.png", preferred=pref,
                          title=f"{model.spec.name}: radial tuning ({orientation_step:g}° bins)")
        plots.plot_joint(joint, tmp / "joint.png", title=f"{model.spec.name}: joint orientation × radius tuning")
        if ds is not None:
            ds.summary.to_csv(tmp / "dataset_summary.csv", index=False)
            ds.histogram.to_csv(tmp / "histogram.csv", index=False)
            ds.top.to_csv(tmp / "top_examples.csv", index=False)
            plots.plot_histogram(ds.histogram, ds.summary, tmp / "histogram.png",
                                 title=f"pre-ReLU activations over {ds.n_images} images (all positions)")
            plots.plot_top_examples(ds.crops, ds.top, tmp / "top_examples.png")
            if rot is not None:
                rot.to_csv(tmp / "rotation.csv", index=False)
                rot_ex.to_csv(tmp / "rotation_examples.csv", index=False)
                plots.plot_rotation(rot, tmp / "rotation.png", title="joint tuning by rotation (top examples)")
        summary["wall_time_s"] = round(time.perf_counter() - t0, 1)
        summary["files"] = sorted(p.name for p in tmp.iterdir()) + ["summary.json"]
        write_json(tmp / "summary.json", summary)
    return summary

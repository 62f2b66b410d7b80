"""The receptive-field cone: one output position of a layer, computed from only the input it sees.

A unit read at one spatial position depends on a square window of input pixels (its
receptive field; :mod:`circuits.geometry`). The cone forward pass renders nothing outside
that window and runs every stage up to the unit without padding, on exactly the window the
next stage needs (a valid-convolution pass: conv2d2 on 19x19 positions, mixed3a on 5x5, …).
Only the branches of the requested units are computed, the last convolution only for their
output channels, and the input preprocessing is folded into conv2d0. The values equal
``model.run`` at the measurement position (:func:`circuits.geometry.measurement_window`) of
224-px images to float32 rounding (tested to rtol 1e-4 / atol 1e-3); about 10x less work than
the measurement window and 58x less than full 224-px images (``bench/bench_tuning.py``).

The cone re-implements the forward pass from the model's own (possibly edited) weights, so
it applies only to a plain :class:`~circuits.model.InceptionV1` that nobody observes
(:func:`circuits.model.observer`: hooks and interventions need the real forward pass), with
the standard modules (no linear surrogate, no structural edit): :func:`fast_path_problem`
says why not otherwise, and :func:`cone_problem` adds a numerical self-check against
``model.run``.

>>> plan = cone_plan(model.spec, "mixed3b", {"5x5"})     # 91x91 px window
>>> resp = cone_responses(model, "mixed3b", [379], crops)  # crops (N, 3, 91, 91) → (N, 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import measurement_window
from .model import (
    Conv0,
    ConvUnit,
    InceptionBlock,
    InceptionV1,
    LinearPath,
    LocalResponseNorm,
    Preprocess,
    StridedMaxPool,
    local_response_norm,
    observer,
)
from .names import BRANCH_CONVS, BRANCHES, CONV_KERNEL, CONV_LAYERS, INPUT_EXTENT, MIXED_LAYERS, hook_name, output_conv
from .spec import ModelSpec

#: Stages of the network before the classifier, in forward order (the trunk of a cone).
TRUNK = (
    "conv2d0", "maxpool0", "localresponsenorm0", "conv2d1", "conv2d2", "localresponsenorm1", "maxpool1",
    "mixed3a", "mixed3b", "maxpool4", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "maxpool10",
    "mixed5a", "mixed5b",
)

#: Spatial kernel of each branch of an inception block, seen from the block's input (the
#: pool branch: a 3x3 max-pool, then a 1x1 convolution): ``{"1x1": 1, "3x3": 3, "5x5": 5, "pool_reduce": 3}``.
BRANCH_KERNEL = {b: INPUT_EXTENT[output_conv(b)] for b in BRANCHES}

#: Stimuli per cone forward on CPU: small chunks keep the intermediate maps in cache.
CPU_CONE_CHUNK = 16


# ============================================================================ geometry
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
    full forward pass must be used), or for a layer the cone does not cover (``logits``)."""
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


def plan_for_units(spec: ModelSpec, layer: str, indices: Sequence[int]) -> ConePlan | None:
    """:func:`cone_plan` with only the branches that write ``indices`` of ``layer``."""
    branches = {spec.branch_of(layer, i) for i in indices} if layer in MIXED_LAYERS else None
    return cone_plan(spec, layer, branches)


# ============================================================================ applicability
def _plain_conv(conv: nn.Module, k: int, stride: int = 1) -> bool:
    return (type(conv) is nn.Conv2d and conv.kernel_size == (k, k) and conv.stride == (stride, stride)
            and conv.padding == (k // 2, k // 2) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.bias is not None and conv.padding_mode == "zeros")


def _relu_unit(mod: nn.Module) -> bool:
    return type(mod) is ConvUnit and mod.relu is True


def _standard_stage(model: InceptionV1, name: str, linear_paths: bool = False) -> bool:
    """Whether trunk stage ``name`` is the standard module the cone reproduces (any weights);
    with ``linear_paths`` an inception block may carry :class:`~circuits.model.LinearPath`
    modules (plain convolutions of its input, ``edits.Linearize``)."""
    mod = getattr(model, name)
    if name == "conv2d0":
        return _relu_unit(mod) and type(mod.conv) is Conv0 and mod.conv.groups == 1
    if name in CONV_LAYERS:
        return _relu_unit(mod) and _plain_conv(mod.conv, 1 if name == "conv2d1" else 3)
    if name.startswith("maxpool"):
        return type(mod.fn) is StridedMaxPool and not mod.fn.linear
    if name.startswith("localresponsenorm"):
        return type(mod.fn) in (LocalResponseNorm, nn.LocalResponseNorm)  # same formula
    paths_ok = (all(type(lp) is LinearPath and type(lp.conv) is nn.Conv2d for lp in mod.linear_paths.values())
                if linear_paths else not len(mod.linear_paths))
    return (type(mod) is InceptionBlock and not mod.pool_linear and paths_ok
            and all(_relu_unit(mod.unit(c)) and _plain_conv(mod.unit(c).conv, k) for c, k in CONV_KERNEL.items()))


def fast_path_problem(model: nn.Module, layer: str | None = None, linear_paths: bool = False) -> str | None:
    """Why the cone cannot compute ``layer`` (default: any layer) of ``model``, or ``None``.

    The cone re-implements the forward pass from the model's own weights, so it needs the
    standard modules (edited weights are fine) and nobody observing the model
    (:func:`circuits.model.observer`; interventions use hooks). With ``linear_paths`` the
    target ``layer``'s block may carry :class:`~circuits.model.LinearPath` modules (the echo
    study's ``Linearize`` edits), which the cone computes too.
    """
    if not isinstance(model, InceptionV1):
        return f"not an InceptionV1 ({type(model).__name__})"
    if model.provenance.linear_surrogate:
        return "a linearised model"
    why = observer(model)
    if why:
        return why
    if type(model.preprocess.fn) is not Preprocess:
        return "preprocess is not the standard module"
    stages = TRUNK if layer is None else TRUNK[:TRUNK.index(layer) + 1]
    for name in stages:
        if not _standard_stage(model, name, linear_paths and name == layer):
            return f"stage {name} is not the standard module (edited structure or linear surrogate)"
    return None


# ============================================================================ forward
def _fold_preprocess(model: InceptionV1) -> tuple[Tensor, Tensor]:
    """conv2d0's weight and bias acting on RGB in [0, 1] (preprocessing folded in; exact for
    a valid convolution, where no padding meets the mean subtraction). Detached from the model."""
    pre = model.preprocess.fn
    conv = model.conv2d0.conv
    weight, bias = conv.weight.detach(), conv.bias.detach()
    w = weight * pre.scale
    mean = pre.mean.view(-1).to(w)
    bias = bias - (weight.sum((2, 3)) * mean).sum(1)
    if pre.bgr:
        w = w.flip(1)
    return w.contiguous(), bias


def _conv(x: Tensor, conv: nn.Module, sel: Tensor | None = None) -> Tensor:
    """A valid (unpadded) convolution with the module's weights, detached (gradients reach the
    input only), on output channels ``sel`` (default all)."""
    w, b = conv.weight.detach(), conv.bias.detach()
    if sel is not None:
        w, b = w[sel], b[sel]
    return F.conv2d(x, w, b)


def relu_conv(x: Tensor, cu: ConvUnit) -> Tensor:
    """``relu(conv(x))`` of one unpadded (valid) branch convolution ``cu``: ``(B, C, H, W)`` → ``(B, C', H−k+1, W−k+1)``."""
    return _conv(x, cu.conv).relu_()


def _band(c: int, size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(c, c)`` 0/1 matrix summing channels ``j - size//2 … j + (size-1)//2`` into ``j``."""
    i = torch.arange(c, device=device)
    d = i[:, None] - i[None, :]  # source - target
    return ((d >= -(size // 2)) & (d <= (size - 1) // 2)).to(dtype)


def _lrn(x: Tensor, fn: nn.Module) -> Tensor:
    """The model's LRN (:func:`circuits.model.local_response_norm`, the formula of
    ``nn.LocalResponseNorm``). Under autograd the channel-window sum of squares is one matrix
    product with a band matrix over the channels (a GEMM on channels-last memory; 3-5x faster
    under autograd than torch's ``avg_pool3d`` formulation); without autograd the model's function."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return local_response_norm(x, fn.size, fn.alpha, fn.beta, fn.k)
    xl = x.permute(0, 2, 3, 1)  # (N, H, W, C): a view for channels-last memory
    acc = (xl * xl) @ _band(x.shape[1], fn.size, x.dtype, x.device)
    return (xl / (acc * (fn.alpha / fn.size) + fn.k).pow(fn.beta)).permute(0, 3, 1, 2)


def _block_valid(block: InceptionBlock, x: Tensor) -> Tensor:
    """An inception block's post-ReLU output on the window 4 px narrower than ``x`` (no padding)."""
    n = x.shape[-1]
    c1, c2 = x[..., 2:n - 2, 2:n - 2], x[..., 1:n - 1, 1:n - 1]
    return torch.cat([
        relu_conv(c1, block.unit("1x1")),
        relu_conv(relu_conv(c2, block.unit("3x3_bottleneck")), block.unit("3x3")),
        relu_conv(relu_conv(x, block.unit("5x5_bottleneck")), block.unit("5x5")),
        relu_conv(F.max_pool2d(c2, 3, 1), block.unit("pool_reduce")),
    ], 1)


def trunk(model: InceptionV1, stage: str, h: Tensor, w0: Tensor, b0: Tensor) -> Tensor:
    """One trunk stage ``stage`` of the cone (valid, unpadded) on ``h (B, C, H, W)``; ``w0``, ``b0`` are
    conv2d0's weights with the input preprocessing folded in (:func:`_fold_preprocess`)."""
    if stage == "conv2d0":
        return F.conv2d(h, w0, b0, stride=2).relu_()
    if stage.startswith("maxpool"):
        return F.max_pool2d(h, 3, 2)
    if stage.startswith("localresponsenorm"):
        return _lrn(h, getattr(model, stage).fn)
    if stage in CONV_LAYERS:
        return relu_conv(h, getattr(model, stage))
    return _block_valid(getattr(model, stage), h)


def _linear_path(lp: nn.Module, x: Tensor, sel: Tensor, y: Tensor) -> Tensor:
    """``y (N, len(sel))`` with the channels that the :class:`~circuits.model.LinearPath` ``lp``
    computes replaced by its valid convolution of the block input window ``x`` (plus the
    constant-one map, all ones inside the image: the cone never reaches padding)."""
    pos = {int(u): i for i, u in enumerate(lp.units.tolist())}
    here = [j for j, u in enumerate(sel.tolist()) if u in pos]
    if not here:
        return y
    rows = torch.tensor([pos[int(sel[j])] for j in here], device=x.device)
    ones = x.new_ones(x.shape[0], 1, x.shape[2], x.shape[3])
    z = _conv(torch.cat([x, ones], 1), lp.conv, rows).flatten(1)
    return y.index_copy(1, torch.tensor(here, device=x.device), z)


class Cone:
    """The forward pass of one :class:`ConePlan` for given unit indices of its layer.

    ``Cone(model, plan, indices)(x)``: ``x (N, 3, plan.crop, plan.crop)`` RGB in [0, 1] →
    pre-ReLU responses ``(N, len(indices))``. The caller checks applicability
    (:func:`cone_problem`); the weights are read (detached) when the cone is built. With
    ``grad=False`` (default) it runs without autograd; with ``grad=True`` gradients flow to
    ``x`` (feature visualization, :class:`GradCone`). Linear paths of the target block
    (``edits.Linearize``) are computed too (:func:`fast_path_problem` with ``linear_paths``).
    """

    def __init__(self, model: InceptionV1, plan: ConePlan, indices: Sequence[int], grad: bool = False):
        self.model, self.plan, self.grad = model, plan, grad
        self.indices = [int(i) for i in indices]
        self.w0, self.b0 = _fold_preprocess(model)
        self.parts: list[tuple[str, Tensor, list[int]]] = []  # (branch, local channels, output columns)
        if plan.layer in MIXED_LAYERS:
            for b, (lo, hi) in model.spec.block(plan.layer).branch_offsets().items():
                cols = [j for j, i in enumerate(indices) if lo <= i < hi]
                if cols:
                    self.parts.append((b, torch.tensor([indices[j] - lo for j in cols]), cols))
        else:
            self.parts.append(("", torch.tensor(list(indices)), list(range(len(indices)))))
        self.n = len(self.indices)

    def __call__(self, x: Tensor) -> Tensor:
        with torch.set_grad_enabled(self.grad and torch.is_grad_enabled()):
            return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        m, plan = self.model, self.plan
        # channels-last: oneDNN convolutions and max-pools are faster on it (2-10x for pools),
        # and the LRN's channel sums become plain matrix products
        x = x.to(self.w0.dtype).contiguous(memory_format=torch.channels_last)
        if not plan.stages:  # conv2d0 itself
            _, sel, _ = self.parts[0]
            return F.conv2d(x, self.w0[sel], self.b0[sel], stride=2).flatten(1)
        h = x
        for name in plan.stages:
            h = trunk(m, name, h, self.w0, self.b0)
        out = torch.empty(h.shape[0], self.n, dtype=h.dtype, device=h.device)
        if plan.layer in CONV_LAYERS:
            _, sel, cols = self.parts[0]
            out[:, cols] = _conv(h, getattr(m, plan.layer).conv, sel).flatten(1)
            return out
        block = m.block(plan.layer)
        kt = h.shape[-1]
        for b, sel, cols in self.parts:
            mg = (kt - BRANCH_KERNEL[b]) // 2
            hb = h[..., mg:kt - mg, mg:kt - mg]
            if b == "pool_reduce":
                hb = F.max_pool2d(hb, 3, 1)
            for conv in BRANCH_CONVS[b][:-1]:  # the bottleneck, if any
                hb = relu_conv(hb, block.unit(conv))
            y = _conv(hb, block.unit(b).conv, sel.to(h.device)).flatten(1)
            if b in block.linear_paths:  # units computed from the block input (edits.Linearize)
                y = _linear_path(block.linear_paths[b], h[..., mg:kt - mg, mg:kt - mg], sel, y)
            out[:, cols] = y
        return out

    @torch.no_grad()
    def max_error(self, seed: int = 0) -> float:
        """Largest absolute difference between the cone and ``model.run`` (pre-ReLU, at the
        measurement position) on two noise images of the measurement window, seeded by ``seed``."""
        got, ref = _versus_model(self, seed)
        return float((got - ref).abs().max())


def _versus_model(cone: Cone, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(cone, model.run)`` pre-ReLU values ``(2, n)`` on two noise images (float32, CPU)."""
    model, plan = cone.model, cone.plan
    size, pos, center = plan.window
    off = int(round(center - plan.center))
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    dev = next(model.parameters()).device
    name = hook_name(plan.layer, pre_relu=True)
    with torch.no_grad():
        ref = model.run(x.to(dev), [name])[name][:, cone.indices, pos, pos].float().cpu()
        got = cone(x[:, :, off:off + plan.crop, off:off + plan.crop].to(dev)).float().cpu()
    return got, ref


#: Back-compatible name of :class:`Cone` (``studies.tuning`` used it before the move).
_Cone = Cone

_CHECKED: dict[tuple, bool] = {}


@torch.no_grad()
def _self_check(model: InceptionV1, plan: ConePlan, idx: Sequence[int], device) -> bool:
    """The cone against ``model.run`` on two fixed noise images in the measurement window: a
    guard against any model change the structural checks of :func:`fast_path_problem` miss.
    Cached per model, weight storage and version, and units."""
    params = list(model.parameters())
    key = (id(model), plan, tuple(idx), str(device), tuple((p.data_ptr(), p._version) for p in params))
    if key not in _CHECKED:
        got, ref = _versus_model(Cone(model, plan, list(idx)))
        if len(_CHECKED) > 256:
            _CHECKED.clear()
        _CHECKED[key] = bool(torch.allclose(got, ref, rtol=1e-3, atol=1e-2))
    return _CHECKED[key]


def cone_problem(model: nn.Module, layer: str, indices: Sequence[int], plan: ConePlan | None,
                 device: str | torch.device | None = None) -> str | None:
    """Why the cone ``plan`` cannot compute units ``indices`` of ``layer``, or ``None``:
    :func:`fast_path_problem`, no plan (the cone would need padding), or a numerical
    self-check against ``model.run`` that failed (cached per model, weights and units)."""
    why = fast_path_problem(model, layer) or (None if plan is not None else "the cone would need padding")
    if why is None:
        dev = device if device is not None else next(model.parameters()).device
        if not _self_check(model, plan, list(indices), dev):
            why = "its values differ from model.run (self-check)"
    return why


#: Back-compatible name of :func:`cone_problem`.
_fast_problem = cone_problem


class GradCone(Cone):
    """A :class:`Cone` with autograd (weights detached: gradients flow to the input only), built
    from a layer and unit indices: the feature visualizations' forward pass
    (:mod:`studies.measure.featurevis.render`). Only the branches of the requested units run,
    and the last convolution only for their channels (for BVLC mixed3b: a 91x91 input, conv2d2
    on 19x19, mixed3a on 5x5 positions); the target block may carry linear paths.

    Args:
        model: a plain :class:`~circuits.model.InceptionV1` (weights may be edited).
        layer: canonical layer (``mixed3b``, ``conv2d2``, …).
        indices: unit indices (into the concatenated layer), in any order.

    Call with ``x``: ``(N, 3, crop, crop)`` RGB in [0, 1], the window centred on
    :attr:`center` → ``(N, len(indices))``. Checked against ``model.run`` (equal to float32
    rounding) in ``tests/real/test_featurevis_real.py`` and, for blocks with linear paths,
    before every render (:meth:`Cone.max_error`: max |difference| ≈ 2e-4 for activations of order 100).

    Raises:
        ValueError: the model or layer does not allow the cone (the reason is given).
    """

    def __init__(self, model: InceptionV1, layer: str, indices: Sequence[int]):
        idx = [int(i) for i in indices]
        plan = plan_for_units(model.spec, layer, idx)
        why = fast_path_problem(model, layer, linear_paths=True) or (
            None if plan is not None else "the cone would need padding")
        if why:
            raise ValueError(f"no cone for {layer}: {why}")
        super().__init__(model, plan, idx, grad=True)

    @property
    def crop(self) -> int:
        """Side of the input window, px."""
        return self.plan.crop

    @property
    def center(self) -> float:
        """Pixel index of the window's centre (the unit's receptive-field centre)."""
        return self.plan.center

    def self_check(self, seed: int = 0) -> float:
        """:meth:`Cone.max_error` (the name the feature visualizations use)."""
        return self.max_error(seed)


# ============================================================================ batches
def threaded_map(fn: Callable, items: list, workers: int) -> Iterator:
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


def run_cone(cone: Cone, n: int, get: Callable[[slice], Tensor], device: str | torch.device,
             batch_size: int = 256, progress: bool = False, desc: str = "") -> Tensor:
    """Pre-ReLU responses ``(n, len(indices))`` (float32, CPU) of ``cone`` to ``n`` inputs
    given by ``get(slice) -> (b, 3, crop, crop)`` (rendered or cut on demand), in batches of
    ``batch_size``; on CPU spread over ``torch.get_num_threads()`` Python threads, each
    running chunks of :data:`CPU_CONE_CHUNK` single-threaded. ``progress`` shows a bar."""
    from tqdm.auto import tqdm

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
    out = list(tqdm(threaded_map(work, batches, workers), total=len(batches), disable=None if progress else True, desc=desc,
                    unit="batch", leave=False))
    return torch.cat(out) if out else torch.empty(0, cone.n)


#: Back-compatible name of :func:`run_cone`.
_run_cone = run_cone


def cone_responses(model: InceptionV1, layer: str, indices: Sequence[int], crops: Tensor,
                   plan: ConePlan | None = None) -> Tensor:
    """Pre-ReLU responses of units ``indices`` of ``layer`` to input windows centred on their
    receptive field: ``crops`` is ``(N, 3, plan.crop, plan.crop)`` RGB in [0, 1] with the
    centre at ``plan.center`` (see :func:`cone_plan`; default: :func:`plan_for_units`) →
    ``(N, len(indices))`` float32 on the CPU.

    Raises:
        ValueError: the cone cannot be used for this model/layer (the reason is given), or
            ``crops`` has the wrong size.
    """
    if plan is None:
        plan = plan_for_units(model.spec, layer, indices)
    dev = next(model.parameters()).device
    why = cone_problem(model, layer, list(indices), plan, dev)
    if why:
        raise ValueError(f"fast path unavailable for {layer}: {why}")
    if crops.shape[-1] != plan.crop or crops.shape[-2] != plan.crop:
        raise ValueError(f"crops must be {plan.crop}x{plan.crop} px for {layer}; got {tuple(crops.shape[-2:])}")
    return run_cone(Cone(model, plan, list(indices)), len(crops), lambda sl: crops[sl], dev)


__all__ = [
    "BRANCH_KERNEL", "CPU_CONE_CHUNK", "Cone", "ConePlan", "GradCone", "TRUNK", "cone_plan", "cone_problem", "cone_responses",
    "fast_path_problem", "plan_for_units", "run_cone",
]

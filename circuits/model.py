"""One InceptionV1 ``nn.Module`` for both checkpoints, with named activations.

Every activation has a stable name (a :class:`HookPoint`): ``conv2d0_pre_relu``,
``conv2d0``, ``maxpool0``, ``localresponsenorm0``, …, for each inception block
``mixed3b_1x1``, ``mixed3b_3x3_bottleneck``, ``mixed3b_3x3``, ``mixed3b_5x5_bottleneck``,
``mixed3b_5x5``, ``mixed3b_pool`` (the 3x3 max-pool), ``mixed3b_pool_reduce`` (each
convolution's output also as ``<name>_pre_relu``), ``mixed3b_pre_relu`` (the concatenated
pre-ReLU branches) and ``mixed3b`` (the block output, post-ReLU), then ``avgpool0`` and
``logits``. Names follow Lucid's graph (Olah et al., Distill 2020).

The forward pass can stop at any stage (:meth:`InceptionV1.forward` ``stop_at``); nothing
past it is computed.

Speed on CPU (same values as a plain NCHW computation to float32 rounding; tested in
``tests/test_model_speed.py``, measured by ``bench/bench_forward.py``): activations are
channels-last (:attr:`InceptionV1.channels_last`), convolutions call oneDNN directly with the
live weights — no cached copy, so every edit shows at once (:meth:`ConvUnit.conv_forward`), ReLU works in place where no hook sees
the pre-ReLU tensor, LRN sums shifted slices in cache-sized chunks
(:func:`local_response_norm`), and a batch that no hook observes runs in chunks of
:attr:`InceptionV1.batch_chunk` images on one Python thread per torch thread. The state dict
(keys, shapes, values, layout) is that of the plain modules.
"""


from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fingerprint import own_copy
from .layers import (  # noqa: F401  (the building blocks, importable from circuits.model)
    Conv0,
    ConvUnit,
    HookPoint,
    InceptionBlock,
    LinearPath,
    Preprocess,
    StridedMaxPool,
    WideConv2d,
    _avg_pool,
    _conv,
    _mkldnn_ok,
    _same_pad,
    _through,
    observer,
)
from .names import (
    BOTTLENECK_BRANCHES,
    BRANCHES,
    CONV_KERNEL,
    CONV_LAYERS,
    MIXED_LAYERS,
    hook_name,
    linear_path_path,
    module_path,
    output_conv,
    pool_name,
    split_conv_activation,
    split_hook_name,
    split_linear_path_path,
    split_module_path,
)
from .provenance import Provenance
from .spec import ModelSpec, get_spec

#: elements per chunk of :func:`local_response_norm`: single-threaded, 256 KiB of float32 (the
#: chunk and its temporaries stay in L2 cache); with several torch threads, 4 MiB (fewer ops,
#: each with an OpenMP fork/join, matter more there)
_LRN_CHUNK = 1 << 16
_LRN_CHUNK_THREADED = 1 << 20


def _lrn_chunk(x: Tensor, out: Tensor, size: int, alpha: float, beta: float, k: float) -> None:
    """LRN of ``x (A, C, B)`` across dim 1 into ``out`` (same shape); no autograd."""
    c = x.shape[1]
    sq = x * x
    acc = sq.clone()
    for sh in range(1, size // 2 + 1):  # the channels below
        acc[:, sh:] += sq[:, :c - sh]
    for sh in range(1, (size - 1) // 2 + 1):  # the channels above
        acc[:, :c - sh] += sq[:, sh:]
    acc.mul_(alpha / size).add_(k)
    if beta == 0.75:  # a^0.75 = √a·√√a: two square roots cost far less than pow's exp/log
        acc.sqrt_()
        acc.mul_(acc.sqrt())
    elif beta == 0.5:
        acc.sqrt_()
    else:
        acc.pow_(beta)
    torch.div(x, acc, out=out)


def local_response_norm(x: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """Local response normalisation across channels, as :class:`torch.nn.LocalResponseNorm`.

    ``y[:, c] = x[:, c] / (k + alpha / size * sum(x[:, j]**2))**beta`` over the ``size``
    channels ``j`` from ``c - size // 2`` to ``c + (size - 1) // 2`` (zero outside), the
    formula of :func:`torch.nn.functional.local_response_norm` (Krizhevsky et al. 2012,
    section 3.3; Caffe's ``ACROSS_CHANNELS`` LRN). It sums shifted slices instead of
    torch's ``avg_pool3d`` and, without autograd, works through cache-sized chunks: 3-5x
    faster on CPU; equal to the module to float32 rounding (the sum's order differs,
    relative difference ~1e-7).

    Args:
        x: ``(N, C, ...)`` float tensor, any memory format (the output keeps it).
        size, alpha, beta, k: the module's parameters.

    Returns:
        ``(N, C, ...)`` tensor, same dtype, device and memory format as ``x``.
    """
    if x.dim() < 3 or not x.is_floating_point() or x.numel() == 0:
        return F.local_response_norm(x, size, alpha, beta, k)  # torch's own result or error
    c = x.shape[1]
    if torch.is_grad_enabled() and x.requires_grad:  # out of place, for autograd
        sq = x * x
        acc = sq.clone()
        for sh in range(1, size // 2 + 1):
            acc[:, sh:] = acc[:, sh:] + sq[:, :c - sh]
        for sh in range(1, (size - 1) // 2 + 1):
            acc[:, :c - sh] = acc[:, :c - sh] + sq[:, sh:]
        return x / (acc * (alpha / size) + k).pow(beta)
    cl = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if not cl:
        x = x.contiguous()
    out = torch.empty_like(x)
    if cl:  # (N, H, W, C) in memory: rows of C channels
        x3, o3 = x.permute(0, 2, 3, 1).reshape(-1, c, 1), out.permute(0, 2, 3, 1).reshape(-1, c, 1)
    else:
        x3, o3 = x.view(x.shape[0], c, -1), out.view(x.shape[0], c, -1)
    limit = _LRN_CHUNK if torch.get_num_threads() == 1 else _LRN_CHUNK_THREADED
    step = max(1, limit // max(1, x3[0].numel()))
    for s in range(0, x3.shape[0], step):
        _lrn_chunk(x3[s:s + step], o3[s:s + step], size, alpha, beta, k)
    return out


class LocalResponseNorm(nn.LocalResponseNorm):
    """:class:`torch.nn.LocalResponseNorm` (same parameters, no state) computed by
    :func:`local_response_norm`: ``(N, C, H, W)`` → ``(N, C, H, W)``."""

    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)



_POOLS: dict[int, ThreadPoolExecutor] = {}


def _chunk_pool(workers: int) -> ThreadPoolExecutor:
    """A persistent pool of ``workers`` threads for chunked forward passes (the same threads
    every call: no thread start-up, and the allocator's per-thread arenas are reused)."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="inceptionv1-chunk")
    return pool



class _Stage(nn.Module):
    def __init__(self, fn: nn.Module, hook: HookPoint):
        super().__init__()
        self.fn = fn
        self.hook = hook

    def forward(self, x: Tensor) -> Tensor:
        return _through(self.hook, self.fn(x))


class InceptionV1(nn.Module):
    """InceptionV1 (GoogLeNet) built from a :class:`~circuits.spec.ModelSpec`.

    Input: RGB in [0, 1], float tensor of shape ``(N, 3, H, W)`` (224x224 for the
    classifier; any size ≥ 32 for the convolutional layers). The model applies its
    checkpoint's own preprocessing. Output of :meth:`forward`: logits ``(N, num_classes)``
    or, with ``stop_at``, the named activation.

    Stages, in order: ``conv2d0 maxpool0 localresponsenorm0 conv2d1 conv2d2
    localresponsenorm1 maxpool1 mixed3a mixed3b maxpool4 mixed4a … mixed4e maxpool10
    mixed5a mixed5b avgpool0 logits``.
    """

    def __init__(self, spec: ModelSpec | str):
        super().__init__()
        spec = get_spec(spec)
        self.spec = spec
        pad = spec.padding
        self.preprocess = _Stage(Preprocess(spec), HookPoint("input"))
        self.conv2d0 = ConvUnit("conv2d0", Conv0(pad))
        self.maxpool0 = _Stage(StridedMaxPool(pad), HookPoint("maxpool0"))
        self.localresponsenorm0 = _Stage(LocalResponseNorm(*spec.lrn), HookPoint("localresponsenorm0"))
        self.conv2d1 = ConvUnit("conv2d1", _conv(64, spec.conv_widths[1], 1))
        self.conv2d2 = ConvUnit("conv2d2", _conv(spec.conv_widths[1], spec.conv_widths[2], 3))
        self.localresponsenorm1 = _Stage(LocalResponseNorm(*spec.lrn), HookPoint("localresponsenorm1"))
        self.maxpool1 = _Stage(StridedMaxPool(pad), HookPoint("maxpool1"))
        cin = spec.conv_widths[2]
        for bs in spec.blocks:
            setattr(self, bs.name, InceptionBlock(bs, cin))
            cin = bs.out_channels
            if bs.name == "mixed3b":
                self.maxpool4 = _Stage(StridedMaxPool(pad), HookPoint("maxpool4"))
            if bs.name == "mixed4e":
                self.maxpool10 = _Stage(StridedMaxPool(pad), HookPoint("maxpool10"))
        self.avgpool0 = HookPoint("avgpool0")
        self.classifier = nn.Linear(cin, spec.num_classes)
        self.logits = HookPoint("logits")
        self.stage_names: tuple[str, ...] = (
            "input", "conv2d0", "maxpool0", "localresponsenorm0", "conv2d1", "conv2d2",
            "localresponsenorm1", "maxpool1", "mixed3a", "mixed3b", "maxpool4", "mixed4a",
            "mixed4b", "mixed4c", "mixed4d", "mixed4e", "maxpool10", "mixed5a", "mixed5b",
            "avgpool0", "logits",
        )
        self.hook_points: dict[str, HookPoint] = {
            m.name: m for m in self.modules() if isinstance(m, HookPoint)
        }
        self._stage_of = {name: self._find_stage(name) for name in self.hook_points}
        #: memory format of the activations: ``True`` channels-last (NHWC in memory; oneDNN
        #: convolutions and max-pools are 1.5-10x faster on it on CPU), ``False`` the input's
        #: own, ``None`` (default) channels-last on CPU only. Values and shapes are the same
        #: either way; not part of the state dict.
        self.channels_last: bool | None = None
        #: images per chunk of a CPU forward pass that nobody observes (no hooks): a larger
        #: batch is cut into chunks that run on ``torch.get_num_threads()`` Python threads,
        #: each with single-threaded torch ops, so every chunk's activations stay in its
        #: core's cache and no op waits at an OpenMP barrier (see :meth:`forward`); ``0``
        #: disables. Not part of the state dict.
        self.batch_chunk: int = 8
        #: refuse images outside RGB [0, 1] (:meth:`check_input_range`); set ``False`` to feed
        #: out-of-range input on purpose. Does not change any output; not part of the state dict.
        self.input_range_check: bool = True
        #: where the weights come from and what was done to them (:class:`~circuits.provenance.Provenance`);
        #: set by the loader, :func:`linearized` and the edits. Not part of the state dict.
        self.provenance: Provenance = Provenance()
        self.eval()

    # ------------------------------------------------------------------ provenance (read-only views)
    def _provenance_field(self, name: str, unset: object) -> object:
        value = getattr(self.provenance, name)
        if value == unset:  # as before provenance was declared: the attribute did not exist
            raise AttributeError(f"{type(self).__name__} has no {name} (see .provenance)")
        return value

    @property
    def edit_plan(self) -> dict:
        """``provenance.edit_plan``; ``AttributeError`` for an unedited model. Prefer :attr:`provenance`."""
        return self._provenance_field("edit_plan", None)

    @property
    def edit_history(self) -> list:
        """``list(provenance.edit_history)``; ``AttributeError`` for an unedited model. Prefer :attr:`provenance`."""
        return list(self._provenance_field("edit_history", ()))

    @property
    def weights_source(self) -> str:
        """``provenance.weights_source``; ``AttributeError`` when unknown. Prefer :attr:`provenance`."""
        return self._provenance_field("weights_source", None)

    @property
    def linear_surrogate(self) -> bool:
        """``provenance.linear_surrogate`` (``False`` for an ordinary model)."""
        return self.provenance.linear_surrogate

    # ------------------------------------------------------------------ structure
    def _find_stage(self, name: str) -> str:
        if name in self.stage_names:
            return name
        parts = split_hook_name(name)
        if parts is not None:
            return parts[0]
        for layer in MIXED_LAYERS:
            if name == pool_name(layer):
                return layer
        raise KeyError(name)

    def stage_of(self, name: str) -> str:
        """The stage (forward step) that computes the activation ``name``.

        Raises:
            KeyError: unknown activation name; the message lists valid names.
        """
        try:
            return self._stage_of[name]
        except KeyError:
            raise KeyError(
                f"unknown activation {name!r} for {self.spec.name}; valid names: "
                f"{', '.join(self.hook_points)}"
            ) from None

    def block(self, layer: str) -> InceptionBlock:
        """The :class:`InceptionBlock` of a mixed layer (``mixed3a`` … ``mixed5b``)."""
        if layer not in MIXED_LAYERS:
            raise KeyError(f"{layer!r} is not an inception block; valid: {', '.join(MIXED_LAYERS)}")
        return getattr(self, layer)

    def conv_unit(self, name: str) -> ConvUnit:
        """The :class:`ConvUnit` that computes activation ``name`` (``conv2d2``, ``mixed3b_5x5``, …)."""
        if name in CONV_LAYERS:
            return getattr(self, name)
        bc = split_conv_activation(name) if isinstance(name, str) else None
        if bc is not None:
            return self.block(bc[0]).unit(bc[1])
        raise KeyError(f"{name!r} is not a convolution of {self.spec.name}")

    # ------------------------------------------------------------------ structural edits
    def structure(self) -> dict[str, list[int]]:
        """Shapes that structural edits changed: ``{module path: weight shape}``.

        Lists every block convolution whose weight shape differs from the unedited
        architecture (``"mixed3b.b5x5_bottleneck.conv": [64, 256, 1, 1]``) and every
        :class:`LinearPath` (``"mixed3b.linear_paths.5x5.conv": [3, 257, 5, 5]``). Empty for
        an unedited model. :meth:`restructure` rebuilds the architecture from it.
        """
        out: dict[str, list[int]] = {}
        for layer in MIXED_LAYERS:
            blk = getattr(self, layer, None)
            if blk is None:
                continue
            for conv in CONV_KERNEL:
                c = blk.unit(conv).conv
                if (c.in_channels, c.out_channels) != blk.base_width(conv):
                    out[module_path(layer, conv)] = list(c.weight.shape)
            for branch, lp in blk.linear_paths.items():
                out[linear_path_path(layer, branch)] = list(lp.conv.weight.shape)
        return out

    def restructure(self, structure: dict[str, Sequence[int]]) -> InceptionV1:
        """Resize convolutions and add linear paths as listed by :meth:`structure` (in place).

        The new channels and rows hold zeros (and linear-path ``units`` placeholders
        ``0..n-1``) until a state dict is loaded. Returns ``self``.

        Raises:
            ValueError: an entry that names no block convolution or linear path, or whose
                shape does not fit the block.
        """
        for path, shape in structure.items():
            parts = path.split(".")
            shape = [int(s) for s in shape]
            try:
                blk = self.block(parts[0])
            except KeyError:
                raise ValueError(f"structure entry {path!r}: no block {parts[0]!r}") from None
            conv_path = split_module_path(path)
            if conv_path is not None:
                conv = conv_path[1]
                k = CONV_KERNEL[conv]
                if len(shape) != 4 or shape[2:] != [k, k]:
                    raise ValueError(f"structure entry {path!r}: shape {shape} is not (out, in, {k}, {k})")
                blk.resize_conv(conv, in_channels=shape[1], out_channels=shape[0])
            elif split_linear_path_path(path) is not None:
                branch = split_linear_path_path(path)[1]
                k = CONV_KERNEL.get(branch)
                if branch not in BOTTLENECK_BRANCHES or len(shape) != 4 or shape[1] != blk.in_channels + 1 or shape[2:] != [k, k]:
                    raise ValueError(
                        f"structure entry {path!r}: expected a 3x3/5x5 linear path of shape (n, {blk.in_channels + 1}, k, k); got {shape}"
                    )
                blk.set_linear_path(branch, range(shape[0]))
            else:
                raise ValueError(f"structure entry {path!r} names no block convolution or linear path")
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, stop_at: str | None = None, start_at: str | None = None) -> Tensor:
        """Run the network on RGB images in [0, 1] (or from an intermediate stage).

        Args:
            x: ``(N, 3, H, W)`` float tensor, RGB in [0, 1]; with ``start_at``, the output of
                that stage instead (e.g. a ``mixed3a`` activation ``(N, 256, h, w)``).
            stop_at: a stage name (see the class docstring); the pass returns that
                stage's output and computes nothing after it. ``None`` → logits.
            start_at: a stage name; ``x`` is taken as that stage's output and only the
                stages after it run (e.g. to share an unedited prefix between variants).

        Returns:
            ``(N, num_classes)`` logits, or the ``stop_at`` activation ``(N, C, h, w)``
            (channels-last in memory on CPU: see :attr:`channels_last`; call
            ``.contiguous()`` before ``.view``).

        Raises:
            ValueError: ``x`` is not a float 4-D tensor with the right channels, or
                ``stop_at``/``start_at`` is not a stage name, or ``start_at`` is not before
                ``stop_at``; or (images, no ``start_at``) values clearly outside [0, 1]
                (:meth:`check_input_range`; opt out with ``model.input_range_check = False``).
        """
        for arg, val in (("stop_at", stop_at), ("start_at", start_at)):
            if val is not None and val not in self.stage_names:
                raise ValueError(f"{arg}={val!r} is not a stage; valid: {', '.join(self.stage_names)}")
        first = 0 if start_at is None else self.stage_names.index(start_at) + 1
        if stop_at is not None and self.stage_names.index(stop_at) < first:
            raise ValueError(f"stop_at={stop_at!r} comes before start_at={start_at!r}")
        want = 3 if start_at is None else self._stage_channels(start_at)
        if not (isinstance(x, Tensor) and x.dim() == 4 and x.shape[1] == want and x.is_floating_point()):
            desc = f"shape {tuple(x.shape)} dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            what = "RGB in [0, 1]" if start_at is None else f"the output of stage {start_at}"
            raise ValueError(f"InceptionV1 expects a float tensor (N, {want}, H, W) of {what}; got {desc}")
        if start_at is None:
            self.check_input_range(x)
        cl = getattr(self, "channels_last", None)  # getattr: models pickled before these existed
        if cl or (cl is None and x.device.type == "cpu"):
            x = x.contiguous(memory_format=torch.channels_last)
        c = getattr(self, "batch_chunk", 0)
        if 0 < c < x.shape[0] and x.device.type == "cpu" and not self._observed():
            return self._forward_chunks(x, stop_at, first, c)
        return self._forward(x, stop_at, first)

    #: Slack around [0, 1] allowed by :meth:`check_input_range` (interpolation overshoot of
    #: resampled images); far smaller than the errors it catches (0..255: max ≫ 1; torchvision's
    #: ImageNet normalisation: about −2.1..2.6).
    INPUT_RANGE_SLACK = 0.05

    def check_input_range(self, x: Tensor) -> None:
        """Refuse images clearly outside the documented input convention, RGB in [0, 1] (issue 13,
        kind 5): float 0..255 (``x * 255``) or already-normalised input (torchvision's
        ``Normalize(mean, std)``, −2..2) would run and give wrong predictions. Costs one
        ``aminmax`` per batch. Skipped when ``self.input_range_check`` is False (the opt-out
        for deliberate out-of-range probes), for empty batches, and for ``start_at`` passes.

        Raises:
            ValueError: naming the expected range, the observed min/max and the likely cause.
        """
        if not getattr(self, "input_range_check", True) or x.numel() == 0:
            return
        lo, hi = (float(v) for v in torch.aminmax(x.detach()))
        s = self.INPUT_RANGE_SLACK
        if lo >= -s and hi <= 1 + s:
            return
        if lo != lo or hi != hi:  # NaN
            raise ValueError("InceptionV1 input contains NaN; expected RGB images in [0, 1]")
        if hi > 1 + s and lo >= -s:
            cause = "it looks like 0..255 pixel values: divide by 255"
        elif lo < -s:
            cause = ("it looks normalised (mean/std); pass un-normalised RGB in [0, 1]: the model applies its "
                     "checkpoint's own preprocessing")
        else:
            cause = "scale the images to [0, 1]"
        raise ValueError(f"InceptionV1 expects RGB images in [0, 1]; got values in [{lo:.4g}, {hi:.4g}] ({cause}). "
                         "Set model.input_range_check = False to run out-of-range input on purpose")

    def _forward_chunks(self, x: Tensor, stop_at: str | None, first: int, c: int) -> Tensor:
        """:meth:`_forward` on chunks of ``c`` images, spread over the torch threads as Python
        threads running torch single-threaded (grad and inference mode carried over), then
        concatenated. Only used when no hook can see the chunks."""
        chunks = list(x.split(c))
        workers = min(torch.get_num_threads(), len(chunks))
        if workers <= 1:
            return torch.cat([self._forward(h, stop_at, first) for h in chunks])
        grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

        def work(h: Tensor) -> Tensor:
            torch.set_num_threads(1)
            with torch.inference_mode() if inference else contextlib.nullcontext(), torch.set_grad_enabled(grad):
                return self._forward(h, stop_at, first)

        n_main = torch.get_num_threads()
        try:
            outs = list(_chunk_pool(workers).map(work, chunks))
        finally:
            torch.set_num_threads(n_main)
        return torch.cat(outs)

    def _observed(self) -> bool:
        """Whether any hook (global, or on any submodule) may see an activation or its gradient (:func:`observer`)."""
        return observer(self) is not None

    def _forward(self, x: Tensor, stop_at: str | None, first: int) -> Tensor:
        for name in self.stage_names[first:]:
            if name == "avgpool0":
                x = _through(self.avgpool0, x.mean((2, 3)))
            elif name == "logits":
                x = _through(self.logits, self.classifier(x))
            else:
                x = getattr(self, "preprocess" if name == "input" else name)(x)
            if name == stop_at:
                return x
        return x

    def _stage_channels(self, stage: str) -> int:
        if stage == "input":
            return 3
        if stage in ("conv2d0", "maxpool0", "localresponsenorm0"):
            return self.conv2d0.conv.out_channels
        if stage == "conv2d1":
            return self.conv2d1.conv.out_channels
        if stage in ("conv2d2", "localresponsenorm1", "maxpool1"):
            return self.conv2d2.conv.out_channels
        if stage in MIXED_LAYERS:
            return self.block(stage).out_channels
        if stage == "maxpool4":
            return self.block("mixed3b").out_channels
        if stage == "maxpool10":
            return self.block("mixed4e").out_channels
        if stage == "avgpool0":
            return self.classifier.in_features
        raise ValueError(f"cannot start after stage {stage!r}")

    @torch.no_grad()
    def run(
        self,
        x: Tensor,
        names: Sequence[str] | str,
        stop: bool = True,
    ) -> dict[str, Tensor]:
        """Return the named activations (pre- or post-ReLU, branches, pools …) for ``x``.

        Args:
            x: ``(N, 3, H, W)`` RGB in [0, 1].
            names: activation names, e.g. ``["mixed3b_pre_relu", "mixed3a"]``.
            stop: stop the forward pass after the last stage needed (default).

        Returns:
            ``{name: tensor (N, C, h, w)}`` (``(N, C)`` for ``avgpool0``/``logits``).

        Raises:
            KeyError: an unknown name, listing the valid ones.
        """
        if isinstance(names, str):
            names = [names]
        names = list(dict.fromkeys(names))
        stages = [self.stage_of(n) for n in names]
        last = max(stages, key=self.stage_names.index)
        out: dict[str, Tensor] = {}
        with self.capture(names) as cap:
            self.forward(x, stop_at=last if stop else None)
            out.update(cap)
        return out

    @contextmanager
    def capture(self, names: Iterable[str]):
        """Context manager collecting named activations into a dict during forward passes.

        The hooks are removed on exit, also when the body raises.
        """
        store: dict[str, Tensor] = {}
        handles = []
        try:
            for n in names:
                self.stage_of(n)  # validate

                def hook(mod, inp, out, n=n):
                    store[n] = out

                handles.append(self.hook_points[n].register_forward_hook(hook))
            yield store
        finally:
            for h in handles:
                h.remove()


def linearized(model: InceptionV1, biases: bool = True) -> InceptionV1:
    """A copy of ``model`` with every nonlinearity replaced by its linear surrogate.

    ReLU → identity; 3x3 max-pool (strided and in the pool branch) → 3x3 average pool with
    the same stride and zero padding; local response normalisation → identity. This is the
    network whose Jacobian the expanded weights equal (Visualizing Weights, Distill 2020:
    "expanded weights" with nonlinearities removed or replaced by their closest linear op).
    With ``biases=False`` every bias is zeroed, making the copy exactly linear. Hooks others
    attached to ``model`` are not copied (:func:`circuits.fingerprint.own_copy`).
    """
    m = own_copy(model)
    for mod in m.modules():
        if isinstance(mod, ConvUnit):
            mod.relu = False
        elif isinstance(mod, StridedMaxPool):
            mod.linear = True
        elif isinstance(mod, InceptionBlock):
            mod.pool_linear = True
    m.localresponsenorm0.fn = nn.Identity()
    m.localresponsenorm1.fn = nn.Identity()
    if not biases:
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
    m.provenance = m.provenance.replace(linear_surrogate=True)
    return m


def branch_names(layer: str) -> list[str]:
    """Activation names of the four branches of a mixed layer (concatenation order)."""
    return [hook_name(layer, output_conv(b)) for b in BRANCHES]

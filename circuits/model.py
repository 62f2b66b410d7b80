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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .spec import BRANCHES, CONV_KERNEL, MIXED_LAYERS, BlockSpec, ModelSpec, get_spec


class HookPoint(nn.Identity):
    """An identity module marking a named activation; forward hooks on it read or replace it."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    @property
    def active(self) -> bool:
        return bool(self._forward_hooks) or bool(self._forward_pre_hooks)

    def extra_repr(self) -> str:
        return self.name


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one spatial dimension."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Preprocess(nn.Module):
    """RGB in [0, 1] → the checkpoint's own input space (scale, channel order, mean)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.scale = spec.input_scale
        self.bgr = spec.bgr
        self.register_buffer("mean", torch.tensor(spec.input_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.bgr:
            x = x.flip(1)
        return x * self.scale - self.mean


class StridedMaxPool(nn.Module):
    """3x3/2 max-pool: Caffe ceil mode, or TF 'SAME' with -inf padding."""

    def __init__(self, padding: str):
        super().__init__()
        self.padding = padding
        #: linear surrogate (see :func:`linearized`): 3x3/2 average pool, zero padding
        self.linear = False

    def forward(self, x: Tensor) -> Tensor:
        pool = _avg_pool if self.linear else F.max_pool2d
        if self.padding == "caffe":
            return pool(x, 3, 2, 0, ceil_mode=True)
        ph, pw = _same_pad(x.shape[-2], 3, 2), _same_pad(x.shape[-1], 3, 2)
        if any(ph + pw):
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]), value=0.0 if self.linear else float("-inf"))
        return pool(x, 3, 2)


def _avg_pool(x: Tensor, k: int, s: int, p: int = 0, ceil_mode: bool = False) -> Tensor:
    return F.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode, count_include_pad=True, divisor_override=k * k)


class Conv0(nn.Conv2d):
    """conv2d0: 7x7/2; Caffe pads 3 on every side, TF 'SAME' pads from the input size."""

    def __init__(self, padding: str):
        super().__init__(3, 64, 7, 2, padding=3 if padding == "caffe" else 0)
        self.same = padding != "caffe"

    def forward(self, x: Tensor) -> Tensor:
        if self.same:
            ph, pw = _same_pad(x.shape[-2], 7, 2), _same_pad(x.shape[-1], 7, 2)
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return super().forward(x)


class ConvUnit(nn.Module):
    """A convolution followed by ReLU, with hook points ``<name>_pre_relu`` and ``<name>``."""

    def __init__(self, name: str, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.pre = HookPoint(name + "_pre_relu")
        self.post = HookPoint(name)
        #: ``False`` in a :func:`linearized` copy (ReLU → identity)
        self.relu = True

    def act(self, x: Tensor) -> Tensor:
        return F.relu(x) if self.relu else x

    def forward(self, x: Tensor) -> Tensor:
        return self.post(self.act(self.pre(self.conv(x))))


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, 1, padding=k // 2)


class InceptionBlock(nn.Module):
    """One inception block: branches 1x1, 3x3 (after a 1x1 bottleneck), 5x5 (after a 1x1
    bottleneck) and pool_reduce (3x3/1 max-pool then 1x1), concatenated in that order."""

    def __init__(self, bs: BlockSpec, cin: int):
        super().__init__()
        self.name = n = bs.name
        self.in_channels = cin
        self.b1x1 = ConvUnit(f"{n}_1x1", _conv(cin, bs.c1x1, 1))
        self.b3x3_bottleneck = ConvUnit(f"{n}_3x3_bottleneck", _conv(cin, bs.c3x3_bottleneck, 1))
        self.b3x3 = ConvUnit(f"{n}_3x3", _conv(bs.c3x3_bottleneck, bs.c3x3, 3))
        self.b5x5_bottleneck = ConvUnit(f"{n}_5x5_bottleneck", _conv(cin, bs.c5x5_bottleneck, 1))
        self.b5x5 = ConvUnit(f"{n}_5x5", _conv(bs.c5x5_bottleneck, bs.c5x5, 5))
        self.pool = HookPoint(f"{n}_pool")
        self.bpool_reduce = ConvUnit(f"{n}_pool_reduce", _conv(cin, bs.pool_reduce, 1))
        self.pre = HookPoint(f"{n}_pre_relu")
        self.post = HookPoint(n)
        #: ``True`` in a :func:`linearized` copy (3x3 max-pool → 3x3 average pool)
        self.pool_linear = False

    @property
    def out_channels(self) -> int:
        return sum(u.conv.out_channels for u in (self.b1x1, self.b3x3, self.b5x5, self.bpool_reduce))

    def _pool(self, x: Tensor) -> Tensor:
        if self.pool_linear:
            return _avg_pool(x, 3, 1, 1)
        return F.max_pool2d(x, 3, 1, 1)

    def unit(self, conv: str) -> ConvUnit:
        """The :class:`ConvUnit` of a convolution suffix (``1x1``, ``3x3_bottleneck``, …)."""
        return getattr(self, "b" + conv)

    def forward(self, x: Tensor) -> Tensor:
        if self.pre.active:
            # Someone wants the concatenated pre-ReLU tensor: compute branches pre-ReLU.
            parts = [
                self.b1x1.pre(self.b1x1.conv(x)),
                self.b3x3.pre(self.b3x3.conv(self.b3x3_bottleneck(x))),
                self.b5x5.pre(self.b5x5.conv(self.b5x5_bottleneck(x))),
                self.bpool_reduce.pre(self.bpool_reduce.conv(self.pool(self._pool(x)))),
            ]
            pre = self.pre(torch.cat(parts, 1))
            # Post-ReLU branch hook points still see their own slices.
            out, start = [], 0
            for unit, p in zip((self.b1x1, self.b3x3, self.b5x5, self.bpool_reduce), parts):
                w = p.shape[1]
                out.append(unit.post(unit.act(pre[:, start:start + w])))
                start += w
            return self.post(torch.cat(out, 1))
        y = torch.cat([
            self.b1x1(x),
            self.b3x3(self.b3x3_bottleneck(x)),
            self.b5x5(self.b5x5_bottleneck(x)),
            self.bpool_reduce(self.pool(self._pool(x))),
        ], 1)
        return self.post(y)


class _Stage(nn.Module):
    def __init__(self, fn: nn.Module, hook: HookPoint):
        super().__init__()
        self.fn = fn
        self.hook = hook

    def forward(self, x: Tensor) -> Tensor:
        return self.hook(self.fn(x))


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
        self.localresponsenorm0 = _Stage(nn.LocalResponseNorm(*spec.lrn), HookPoint("localresponsenorm0"))
        self.conv2d1 = ConvUnit("conv2d1", _conv(64, spec.conv_widths[1], 1))
        self.conv2d2 = ConvUnit("conv2d2", _conv(spec.conv_widths[1], spec.conv_widths[2], 3))
        self.localresponsenorm1 = _Stage(nn.LocalResponseNorm(*spec.lrn), HookPoint("localresponsenorm1"))
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
        self.eval()

    # ------------------------------------------------------------------ structure
    def _find_stage(self, name: str) -> str:
        if name in self.stage_names:
            return name
        for layer in MIXED_LAYERS:
            if name.startswith(layer + "_"):
                return layer
        if name.startswith(("conv2d0", "conv2d1", "conv2d2")):
            return name[:7]
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
        if name in ("conv2d0", "conv2d1", "conv2d2"):
            return getattr(self, name)
        for layer in MIXED_LAYERS:
            if name.startswith(layer + "_") and name[len(layer) + 1:] in CONV_KERNEL:
                return self.block(layer).unit(name[len(layer) + 1:])
        raise KeyError(f"{name!r} is not a convolution of {self.spec.name}")

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
            ``(N, num_classes)`` logits, or the ``stop_at`` activation ``(N, C, h, w)``.

        Raises:
            ValueError: ``x`` is not a float 4-D tensor with the right channels, or
                ``stop_at``/``start_at`` is not a stage name, or ``start_at`` is not before
                ``stop_at``.
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
        for name in self.stage_names[first:]:
            if name == "avgpool0":
                x = self.avgpool0(x.mean((2, 3)))
            elif name == "logits":
                x = self.logits(self.classifier(x))
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
    With ``biases=False`` every bias is zeroed, making the copy exactly linear.
    """
    import copy

    m = copy.deepcopy(model)
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
    m.linear_surrogate = True
    return m


def branch_names(layer: str) -> list[str]:
    """Activation names of the four branches of a mixed layer (concatenation order)."""
    return [f"{layer}_{b}" for b in BRANCHES]

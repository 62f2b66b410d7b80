"""The building blocks of :class:`circuits.model.InceptionV1`: hook points, convolution units, pools, inception blocks.

A :class:`HookPoint` names an activation (``mixed3b_5x5_pre_relu`` …; names from
:mod:`circuits.names`); :func:`observer` is the one "is anything observing this module?"
check (hooks of any kind, global or on a module), which every shortcut of the fast forward
pass (skipping identity hook points, in-place ReLU, chunked batches, the cone of
:mod:`circuits.cone`) consults. :class:`ConvUnit` is a convolution plus ReLU with its two hook
points; :class:`InceptionBlock` holds the six convolutions of a block, and the structural
edits' :class:`WideConv2d` and :class:`LinearPath`. Import them from :mod:`circuits.model`
as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as _torch_module

from .names import (
    BOTTLENECK_BRANCHES,
    BRANCH_CONVS,
    BRANCHES,
    CONVS,
    conv_name,
    hook_name,
    pool_name,
    pre_relu_name,
)
from .spec import BlockSpec, ModelSpec


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


def _global_hooks() -> bool:
    """Whether any global module hook (forward, forward-pre, backward, backward-pre) is registered."""
    m = _torch_module
    return bool(m._global_forward_hooks or m._global_forward_pre_hooks or m._global_backward_hooks
                or m._global_backward_pre_hooks)


def _own_hooks(mod: nn.Module) -> bool:
    return bool(mod._forward_hooks or mod._forward_pre_hooks or mod._backward_hooks or mod._backward_pre_hooks)


def observer(module: nn.Module, recurse: bool = True) -> str | None:
    """Who may observe ``module``'s activations or their gradients, or ``None`` if nobody.

    The one "is anything observing this module?" check of the package: a hook of any kind
    (forward, forward-pre, backward, backward-pre) registered globally
    (``torch.nn.modules.module.register_module_forward_hook`` …) or on ``module`` (with
    ``recurse``, on any of its submodules). Code that computes a module's function another
    way (skipping identity hook points, in-place ReLU, chunked batches, the receptive-field
    cone of :mod:`circuits.cone`) may do so only when this returns ``None``.

    Returns:
        ``None``, or a short description: ``"global hooks are registered"`` or
        ``"module <path> has hooks"`` (``(model)`` for ``module`` itself).
    """
    if _global_hooks():
        return "global hooks are registered"
    if _own_hooks(module):
        return "module (model) has hooks"
    if recurse and any(_own_hooks(m) for m in module.modules()):  # names only once one is found
        for name, mod in module.named_modules():
            if name and _own_hooks(mod):
                return f"module {name} has hooks"
    return None


def _through(h: nn.Module, x: Tensor) -> Tensor:
    """``h(x)`` for a hook point ``h``; skips the module call (an identity) when nobody
    (:func:`observer`) could see it."""
    if _own_hooks(h) or _global_hooks():
        return h(x)
    return x


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
        # (x * scale) - mean, as written, on one new tensor (the in-place steps change no value)
        y = x.flip(1).mul_(self.scale) if self.bgr else x * self.scale
        return y.sub_(self.mean)


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
        self.pre = HookPoint(pre_relu_name(name))
        self.post = HookPoint(name)
        #: ``False`` in a :func:`linearized` copy (ReLU → identity)
        self.relu = True

    def act(self, x: Tensor, inplace: bool = False) -> Tensor:
        """ReLU (identity in a :func:`linearized` copy); ``inplace`` overwrites ``x``."""
        if not self.relu:
            return x
        return F.relu_(x) if inplace else F.relu(x)

    def private(self) -> bool:
        """Whether nobody else can see this unit's pre-ReLU tensor (no hooks on it or on the
        convolution), so the ReLU may overwrite it in place."""
        return observer(self.pre, recurse=False) is None and observer(self.conv, recurse=False) is None

    def conv_forward(self, x: Tensor) -> Tensor:
        """``self.conv(x)``; on CPU, for a channels-last ``x`` and without autograd or hooks on
        the convolution, through oneDNN directly (torch's heuristic sends small batch-1 3x3
        convolutions — mixed4a, mixed5a/b 3x3 — to its slower im2col path). The weight is read
        as it is at every call (no cached copy), so any edit, even through ``weight.data``,
        takes effect at once."""
        conv = self.conv
        w = conv.weight
        if (type(conv) not in (nn.Conv2d, Conv0) or conv._forward_hooks or conv._forward_pre_hooks
                or conv.padding_mode != "zeros" or x.device.type != "cpu"
                or (torch.is_grad_enabled() and (w.requires_grad or x.requires_grad))
                or x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last)):
            return conv(x)
        if type(conv) is Conv0 and conv.same:
            ph, pw = _same_pad(x.shape[-2], 7, 2), _same_pad(x.shape[-1], 7, 2)
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        if x.dtype == torch.float32 and _mkldnn_ok():
            return torch.mkldnn_convolution(x, w, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups)
        return F.conv2d(x, w, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    def forward(self, x: Tensor) -> Tensor:
        return _through(self.post, self.act(_through(self.pre, self.conv_forward(x)), inplace=self.private()))



def _mkldnn_ok() -> bool:
    return torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, 1, padding=k // 2)


class WideConv2d(nn.Conv2d):
    """A block convolution that structural edits widened beyond its unedited width.

    Its parameters are those of a plain ``nn.Conv2d`` (``weight (out, in, k, k)``, ``bias
    (out,)``, stride 1, zero padding ``k // 2``) and it computes the same function.
    ``base_in`` / ``base_out`` are the widths of the unedited convolution (from the spec);
    channels past them were added by an edit (e.g. bottleneck units duplicated by
    :class:`edits.PrunePathway`). The forward pass computes the original block
    ``weight[:base_out, :base_in]`` with exactly the call the unedited convolution makes,
    then adds the extra input channels' contribution — to the rows that have non-zero
    weights on them, from the channels those rows read — and appends the extra output
    channels, with separate calls. So every output that an edit left alone (zero weights on
    the extra inputs) is bitwise the unedited value, whatever reduction order a backend
    would choose for one wider convolution, and rows that do read added channels cost only
    what they read.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, base_in: int, base_out: int,
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, 1, padding=kernel_size // 2, device=device, dtype=dtype)
        if in_channels < base_in or out_channels < base_out:
            raise ValueError(f"WideConv2d ({in_channels}→{out_channels}) is narrower than its base ({base_in}→{base_out})")
        self.base_in = base_in
        self.base_out = base_out

    def forward(self, x: Tensor) -> Tensor:
        bi, bo = self.base_in, self.base_out
        w, b = self.weight, self.bias
        base_x = x if x.shape[1] == bi else x[:, :bi]
        y = F.conv2d(base_x, w[:bo, :bi], b[:bo], self.stride, self.padding)
        if self.in_channels > bi:
            # only the rows that read added channels, from the added channels they read
            extra = w[:bo, bi:]
            rows = extra.flatten(1).any(1).nonzero()[:, 0]
            if rows.numel():
                sub = extra[rows]
                cols = sub.transpose(0, 1).flatten(1).any(1).nonzero()[:, 0]
                part = F.conv2d(x[:, bi:][:, cols], sub[:, cols], None, self.stride, self.padding)
                y = y.index_add(1, rows, part)
        if self.out_channels > bo:
            y = torch.cat([y, F.conv2d(x, w[bo:], b[bo:], self.stride, self.padding)], 1)
        return y

    def extra_repr(self) -> str:
        return super().extra_repr() + f", base=({self.base_in}→{self.base_out})"


class LinearPath(nn.Module):
    """Some output channels of a bottleneck branch computed as one convolution of the block input.

    Installed by :class:`edits.Linearize` (and by ``SetWeights(..., reads="input")``). The
    block's forward pass overwrites channels ``units`` (branch-local indices) of the branch's
    pre-ReLU output with this module's output, before the branch's ``_pre_relu`` hook point.

    ``conv`` has ``in_channels + 1`` inputs: the block input, then a constant-one map. The
    constant map is zero-padded like the block input, so a kernel on it reproduces exactly a
    bias that the original branch adds *before* its zero-padded spatial convolution (the
    bottleneck bias, which is absent at border taps). Shapes: ``conv.weight (n, in_channels
    + 1, k, k)``, ``conv.bias (n,)``, ``units (n,)`` (int64 buffer, saved with the weights).
    """

    def __init__(self, in_channels: int, units: Sequence[int], k: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels + 1, len(units), k, 1, padding=k // 2)
        self.register_buffer("units", torch.as_tensor(list(units), dtype=torch.long))

    @property
    def in_channels(self) -> int:
        return self.conv.in_channels - 1

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W)`` block input → ``(N, n, H, W)`` pre-activations."""
        ones = x.new_ones(x.shape[0], 1, x.shape[2], x.shape[3])
        return self.conv(torch.cat([x, ones], 1))

    def overwrite(self, y: Tensor, x: Tensor) -> Tensor:
        """``y`` (the branch's pre-ReLU output) with channels ``units`` replaced (out of place)."""
        return y.index_copy(1, self.units.to(y.device), self.forward(x).to(y.dtype))


class InceptionBlock(nn.Module):
    """One inception block: branches 1x1, 3x3 (after a 1x1 bottleneck), 5x5 (after a 1x1
    bottleneck) and pool_reduce (3x3/1 max-pool then 1x1), concatenated in that order."""

    def __init__(self, bs: BlockSpec, cin: int):
        super().__init__()
        self.name = n = bs.name
        self.in_channels = cin
        self.block_spec = bs
        for c in CONVS.values():  # b1x1, b3x3_bottleneck, …, bpool_reduce (state-dict order)
            if c.suffix == "pool_reduce":
                self.pool = HookPoint(pool_name(n))
            cin_c, cout = self.base_width(c.suffix)
            setattr(self, c.attr, ConvUnit(hook_name(n, c.suffix), _conv(cin_c, cout, c.kernel)))
        self.pre = HookPoint(hook_name(n, pre_relu=True))
        self.post = HookPoint(n)
        #: ``True`` in a :func:`linearized` copy (3x3 max-pool → 3x3 average pool)
        self.pool_linear = False
        #: structural edits: ``{branch: LinearPath}`` overriding some channels of a branch
        #: (empty in an unedited model; see :class:`LinearPath`)
        self.linear_paths = nn.ModuleDict()

    @property
    def out_channels(self) -> int:
        return sum(u.conv.out_channels for u in (self.b1x1, self.b3x3, self.b5x5, self.bpool_reduce))

    def _pool(self, x: Tensor) -> Tensor:
        if self.pool_linear:
            return _avg_pool(x, 3, 1, 1)
        return F.max_pool2d(x, 3, 1, 1)

    def unit(self, conv: str) -> ConvUnit:
        """The :class:`ConvUnit` of a convolution suffix (``1x1``, ``3x3_bottleneck``, …)."""
        return getattr(self, conv_name(conv).attr)

    # ------------------------------------------------------------------ structural edits
    def base_width(self, conv: str) -> tuple[int, int]:
        """``(in, out)`` channels of convolution ``conv`` in the unedited architecture."""
        bs = self.block_spec
        branch = conv_name(conv).branch
        first = BRANCH_CONVS[branch][0]
        cin = self.in_channels if conv == first else bs.conv_width(first)
        return cin, bs.conv_width(conv)

    def resize_conv(self, conv: str, in_channels: int | None = None, out_channels: int | None = None) -> nn.Conv2d:
        """Replace convolution ``conv`` (``"5x5_bottleneck"``, ``"5x5"``, …) by one of another width.

        Weights and biases are copied on the overlapping channels; new channels get zeros,
        dropped channels are discarded. Back at the unedited width the module is a plain
        ``nn.Conv2d`` again, otherwise a :class:`WideConv2d`. Device, dtype, ``requires_grad``
        and train/eval mode are kept.

        Returns:
            The new convolution module (already installed).

        Raises:
            ValueError: a width below the unedited width.
        """
        unit = self.unit(conv)
        old = unit.conv
        cin = old.in_channels if in_channels is None else int(in_channels)
        cout = old.out_channels if out_channels is None else int(out_channels)
        base_in, base_out = self.base_width(conv)
        if cin < base_in or cout < base_out:
            raise ValueError(f"{hook_name(self.name, conv)}: cannot shrink below the unedited width {base_in}→{base_out}")
        k = old.kernel_size[0]
        if (cin, cout) == (base_in, base_out):
            new = nn.Conv2d(cin, cout, k, 1, padding=k // 2, device="meta")  # meta: no wasted init
        else:
            new = WideConv2d(cin, cout, k, base_in, base_out, device="meta")
        with torch.no_grad():
            w = old.weight.new_zeros(cout, cin, k, k)
            b = old.bias.new_zeros(cout)
            o, i = min(cout, old.out_channels), min(cin, old.in_channels)
            w[:o, :i] = old.weight[:o, :i]
            b[:o] = old.bias[:o]
        new.weight = nn.Parameter(w, requires_grad=old.weight.requires_grad)
        new.bias = nn.Parameter(b, requires_grad=old.bias.requires_grad)
        new.train(old.training)
        unit.conv = new
        return new

    def set_linear_path(self, branch: str, units: Sequence[int]) -> LinearPath | None:
        """Install a :class:`LinearPath` for ``branch`` (``"3x3"``/``"5x5"``) over ``units``.

        Rows of units the current path already has keep their weights; new rows are zero.
        An empty ``units`` removes the path.

        Returns:
            The new path, or ``None`` when removed.
        """
        if branch not in BOTTLENECK_BRANCHES:
            raise ValueError(f"linear paths exist for the bottleneck branches 3x3 and 5x5, not {branch!r}")
        units = [int(u) for u in units]
        old = self.linear_paths[branch] if branch in self.linear_paths else None
        if not units:
            if old is not None:
                del self.linear_paths[branch]
            return None
        width = self.unit(branch).conv.out_channels
        if len(set(units)) != len(units) or not all(0 <= u < width for u in units):
            raise ValueError(f"{hook_name(self.name, branch)}: linear-path units must be distinct and in 0..{width - 1}; got {units}")
        ref = old.conv.weight if old is not None else self.unit(branch).conv.weight
        new = LinearPath(self.in_channels, units, self.unit(branch).conv.kernel_size[0])
        new = new.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            new.conv.weight.zero_()
            new.conv.bias.zero_()
            if old is not None:
                pos = {int(u): i for i, u in enumerate(old.units.tolist())}
                for r, u in enumerate(units):
                    if u in pos:
                        new.conv.weight[r] = old.conv.weight[pos[u]]
                        new.conv.bias[r] = old.conv.bias[pos[u]]
        new.requires_grad_(ref.requires_grad)
        new.train(self.training)
        self.linear_paths[branch] = new
        return new

    def linear_units(self, branch: str) -> list[int]:
        """Branch-local channels of ``branch`` that a :class:`LinearPath` computes (``[]`` if none)."""
        return self.linear_paths[branch].units.tolist() if branch in self.linear_paths else []

    # ------------------------------------------------------------------ forward
    def _branch_pre(self, x: Tensor, branch: str) -> Tensor:
        """Pre-ReLU output of one branch (linear paths applied), through its ``_pre_relu`` hook point."""
        if branch == "1x1":
            unit, y = self.b1x1, self.b1x1.conv_forward(x)
        elif branch == "3x3":
            unit, y = self.b3x3, self.b3x3.conv_forward(self.b3x3_bottleneck(x))
        elif branch == "5x5":
            unit, y = self.b5x5, self.b5x5.conv_forward(self.b5x5_bottleneck(x))
        else:
            unit, y = self.bpool_reduce, self.bpool_reduce.conv_forward(_through(self.pool, self._pool(x)))
        paths = self.linear_paths
        if paths and branch in paths:
            y = paths[branch].overwrite(y, x)
        return _through(unit.pre, y)

    def forward(self, x: Tensor) -> Tensor:
        units = (self.b1x1, self.b3x3, self.b5x5, self.bpool_reduce)
        if self.pre.active:
            # Someone wants the concatenated pre-ReLU tensor: compute branches pre-ReLU.
            parts = [self._branch_pre(x, b) for b in BRANCHES]
            pre = self.pre(torch.cat(parts, 1))
            # Post-ReLU branch hook points still see their own slices.
            out, start = [], 0
            for unit, p in zip(units, parts):
                w = p.shape[1]
                out.append(unit.post(unit.act(pre[:, start:start + w])))
                start += w
            return self.post(torch.cat(out, 1))
        y = torch.cat([_through(u.post, u.act(self._branch_pre(x, b), inplace=u.private()))
                       for u, b in zip(units, BRANCHES)], 1)
        return _through(self.post, y)

"""Differentiable "cone" forward pass: the pre-ReLU value of some units of one layer at one
spatial position, computed from exactly the input window that position sees.

The geometry (:func:`studies.tuning.cone_plan`) and the eligibility rules
(:func:`studies.tuning.fast_path_problem`: a plain :class:`~circuits.model.InceptionV1`, edited
weights allowed, no structural edits, no hooks) are those of the tuning measurements' fast
path, except that the target block may carry :class:`~circuits.model.LinearPath` modules
(``edits.Linearize``, the echo study's variants); this module re-runs that valid-convolution pass *with autograd* (the tuning path is
inference-only and works in place). Every stage runs without padding on the window the next
stage needs (for BVLC mixed3b: a 91x91 input, conv2d2 on 19x19, mixed3a on 5x5 positions);
only the branches of the requested units run, and the last convolution only for their
channels. Model weights are detached: gradients flow to the input only.

Checked against ``model.run`` (equal to float32 rounding) in ``tests/real/test_featurevis_real.py``
and, for blocks with linear paths, before every render (:meth:`GradCone.self_check`, two noise
images; max |difference| ≈ 2e-4 for activations of order 100).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from circuits.cone import BRANCH_KERNEL, TRUNK, ConePlan, cone_plan, fast_path_problem
from circuits.model import InceptionV1, local_response_norm
from circuits.spec import CONV_LAYERS, MIXED_LAYERS


def _conv(x: Tensor, conv, sel: Tensor | None = None) -> Tensor:
    w, b = conv.weight.detach(), conv.bias.detach()
    if sel is not None:
        w, b = w[sel], b[sel]
    return F.conv2d(x, w, b, conv.stride if conv.stride != (1, 1) else 1)


def _rc(x: Tensor, cu) -> Tensor:
    """A 1-stride ConvUnit without padding, then ReLU."""
    return F.relu(F.conv2d(x, cu.conv.weight.detach(), cu.conv.bias.detach()))


def _band(c: int, size: int, dtype, device) -> Tensor:
    """``(c, c)`` 0/1 matrix summing channels ``j - size//2 … j + (size-1)//2`` into ``j``."""
    i = torch.arange(c, device=device)
    d = i[:, None] - i[None, :]  # source - target
    return ((d >= -(size // 2)) & (d <= (size - 1) // 2)).to(dtype)


def _lrn(x: Tensor, fn) -> Tensor:
    """The model's LRN formula (:func:`circuits.model.local_response_norm`, that of
    ``nn.LocalResponseNorm``), differentiable: the channel-window sum of squares is one matrix
    product with a band matrix over the channels (a GEMM on channels-last memory; 3-5x faster
    under autograd than torch's ``avg_pool3d`` formulation)."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return local_response_norm(x, fn.size, fn.alpha, fn.beta, fn.k)
    c = x.shape[1]
    xl = x.permute(0, 2, 3, 1)  # (N, H, W, C): a view for channels-last memory
    acc = (xl * xl) @ _band(c, fn.size, x.dtype, x.device)
    return (xl / (acc * (fn.alpha / fn.size) + fn.k).pow(fn.beta)).permute(0, 3, 1, 2)


class GradCone:
    """Pre-ReLU values of ``indices`` of ``layer`` at the cone's position, with autograd.

    Args:
        model: a plain :class:`~circuits.model.InceptionV1` (weights may be edited).
        layer: canonical layer (``mixed3b``, ``conv2d2``, …).
        indices: unit indices (into the concatenated layer), in any order.

    Call with ``x``: ``(N, 3, crop, crop)`` RGB in [0, 1], the window centred on
    :attr:`plan` ``.center`` → ``(N, len(indices))``.

    Raises:
        ValueError: the model or layer does not allow the cone (the reason is given).
    """

    def __init__(self, model: InceptionV1, layer: str, indices: Sequence[int]):
        spec = model.spec
        idx = [int(i) for i in indices]
        branches = {spec.branch_of(layer, i) for i in idx} if layer in MIXED_LAYERS else None
        plan = cone_plan(spec, layer, branches)
        why = _problem(model, layer) or (None if plan is not None else "the cone would need padding")
        if why:
            raise ValueError(f"no cone for {layer}: {why}")
        self.model, self.plan, self.indices = model, plan, idx
        pre = model.preprocess.fn
        conv = model.conv2d0.conv
        w = conv.weight.detach() * pre.scale
        mean = pre.mean.view(-1).to(w)
        self.b0 = conv.bias.detach() - (conv.weight.detach().sum((2, 3)) * mean).sum(1)
        self.w0 = (w.flip(1) if pre.bgr else w).contiguous()
        self.parts: list[tuple[str, Tensor, list[int]]] = []
        if layer in MIXED_LAYERS:
            for b, (lo, hi) in spec.block(layer).branch_offsets().items():
                cols = [j for j, i in enumerate(idx) if lo <= i < hi]
                if cols:
                    self.parts.append((b, torch.tensor([idx[j] - lo for j in cols]), cols))
        else:
            self.parts.append(("", torch.tensor(idx), list(range(len(idx)))))

    @property
    def crop(self) -> int:
        return self.plan.crop

    @property
    def center(self) -> float:
        return self.plan.center

    def __call__(self, x: Tensor) -> Tensor:
        m, plan = self.model, self.plan
        # channels-last: oneDNN's convolutions and pools are faster on it, and the LRN's channel
        # sums become plain matrix products
        h = x.contiguous(memory_format=torch.channels_last)
        if not plan.stages:
            _, sel, _ = self.parts[0]
            return F.conv2d(h, self.w0[sel], self.b0[sel], stride=2).flatten(1)
        for name in plan.stages:
            if name == "conv2d0":
                h = F.relu(F.conv2d(h, self.w0, self.b0, stride=2))
            elif name.startswith("maxpool"):
                h = F.max_pool2d(h, 3, 2)
            elif name.startswith("localresponsenorm"):
                fn = getattr(m, name).fn
                h = _lrn(h, fn)
            elif name in ("conv2d1", "conv2d2"):
                h = _rc(h, getattr(m, name))
            else:
                h = self._block(getattr(m, name), h)
        if plan.layer in CONV_LAYERS:
            _, sel, _ = self.parts[0]
            return _conv(h, getattr(m, plan.layer).conv, sel).flatten(1)
        block = getattr(m, plan.layer)
        kt = h.shape[-1]
        outs, cols = [], []
        for b, sel, c in self.parts:
            mg = (kt - BRANCH_KERNEL[b]) // 2
            hb = h[..., mg:kt - mg, mg:kt - mg]
            if b == "3x3":
                hb = _rc(hb, block.b3x3_bottleneck)
            elif b == "5x5":
                hb = _rc(hb, block.b5x5_bottleneck)
            elif b == "pool_reduce":
                hb = F.max_pool2d(hb, 3, 1)
            y = _conv(hb, block.unit(b).conv, sel.to(h.device)).flatten(1)
            if b in block.linear_paths:  # units computed from the block input (edits.Linearize)
                y = self._linear(block.linear_paths[b], h[..., mg:kt - mg, mg:kt - mg], sel, y)
            outs.append(y)
            cols.extend(c)
        out = torch.cat(outs, 1)
        order = torch.tensor(sorted(range(len(cols)), key=cols.__getitem__), device=out.device)
        return out.index_select(1, order)

    @staticmethod
    def _linear(lp, x: Tensor, sel: Tensor, y: Tensor) -> Tensor:
        """``y (N, len(sel))`` with the channels that the :class:`~circuits.model.LinearPath` ``lp``
        computes replaced by its valid convolution of the block input window ``x`` (plus the
        constant-one map, all ones inside the image: the cone never reaches padding)."""
        pos = {int(u): i for i, u in enumerate(lp.units.tolist())}
        here = [j for j, u in enumerate(sel.tolist()) if u in pos]
        if not here:
            return y
        rows = torch.tensor([pos[int(sel[j])] for j in here], device=x.device)
        ones = x.new_ones(x.shape[0], 1, x.shape[2], x.shape[3])
        z = F.conv2d(torch.cat([x, ones], 1), lp.conv.weight.detach()[rows], lp.conv.bias.detach()[rows]).flatten(1)
        return y.index_copy(1, torch.tensor(here, device=x.device), z)

    @staticmethod
    def _block(block, x: Tensor) -> Tensor:
        n = x.shape[-1]
        c1, c2 = x[..., 2:n - 2, 2:n - 2], x[..., 1:n - 1, 1:n - 1]
        return torch.cat([_rc(c1, block.b1x1), _rc(_rc(c2, block.b3x3_bottleneck), block.b3x3),
                          _rc(_rc(x, block.b5x5_bottleneck), block.b5x5),
                          _rc(F.max_pool2d(c2, 3, 1), block.bpool_reduce)], 1)

    @torch.no_grad()
    def self_check(self, seed: int = 0) -> float:
        """Largest absolute difference between the cone and ``model.run`` on two noise images in
        the measurement window (a guard against model changes the structural checks miss)."""
        size, pos, center = self.plan.window
        off = int(round(center - self.plan.center))
        x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
        dev = next(self.model.parameters()).device
        name = f"{self.plan.layer}_pre_relu"
        ref = self.model.run(x.to(dev), [name])[name][:, self.indices, pos, pos].float().cpu()
        got = self(x[:, :, off:off + self.crop, off:off + self.crop].to(dev)).float().cpu()
        return float((got - ref).abs().max())


def _problem(model: InceptionV1, layer: str) -> str | None:
    """Why the cone cannot compute ``layer`` of ``model`` (``None`` if it can): the tuning fast
    path's rules (:func:`studies.tuning.fast_path_problem`), except that the target block may
    carry :class:`~circuits.model.LinearPath` modules (the echo study's ``Linearize`` edits),
    which the cone computes too."""
    why = fast_path_problem(model, layer)
    if why is None or layer not in MIXED_LAYERS or not len(getattr(model.block(layer), "linear_paths", ())):
        return why
    from torch import nn

    from circuits.model import InceptionBlock, LinearPath

    trunk = TRUNK[TRUNK.index(layer) - 1]
    why = fast_path_problem(model, trunk)
    if why:
        return why
    blk = model.block(layer)
    convs = [blk.unit(c) for c in ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce")]
    ok = (type(blk) is InceptionBlock and not blk.pool_linear
          and all(type(u.conv) is nn.Conv2d and u.relu is True for u in convs)
          and all(type(lp) is LinearPath and type(lp.conv) is nn.Conv2d for lp in blk.linear_paths.values()))
    return None if ok else f"stage {layer} is not the standard module (edited structure or linear surrogate)"


def plan_for(model: InceptionV1, layer: str, indices: Sequence[int]) -> ConePlan | None:
    """The cone plan for ``indices`` of ``layer``, or None."""
    spec = model.spec
    branches = {spec.branch_of(layer, i) for i in indices} if layer in MIXED_LAYERS else None
    return cone_plan(spec, layer, branches)

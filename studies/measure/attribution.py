"""Linear attribution of a unit to an earlier layer on an image (Curve Detectors, Cammarata
et al., Distill 2020, fig. 8 and the conv2d2 → 3a → 3b family figure).

A unit's pre-activation at position p is linear in the previous layer's activations when
its convolution reads that layer directly (a mixed-layer 1x1 unit, conv2d1/conv2d2):
``pre[p] − bias = Σ_{c,q} W[c, q − p] · a[c, q]``, so ``a[c, q] · Σ_p M(p) W[c, q − p]``
(activations ⊙ the unit's weights, over the positions M attributed) is an exact split of
``Σ_p M(p)·(pre[p] − bias)`` over the previous layer's channels and positions (science.md §4).

Through anything else (a bottleneck's ReLU, the pool branch's max-pool, the strided
max-pools and LRN between blocks, whole blocks for non-adjacent layers) this module's
default method, ``"gated"``, is exact too: every nonlinearity is frozen at what it did on
this image — a ReLU as its 0/1 mask, a max-pool as the routing to its arg-max input, LRN as
its per-element gain ``y/x`` — which makes the map from the source activations to the
unit's pre-activation affine: ``pre = J·a + c``. Attribution is ``a ⊙ Jᵀ M`` (computed by
autograd through the frozen pass); it sums to ``Σ M·(pre − bias)`` minus
``bias_terms = Σ M·(c − bias)``, the upstream biases (e.g. the bottleneck's) carried through
the gates. For a direct (1x1, conv2d1/2) unit ``bias_terms`` is 0 and the sum is exactly
``Σ M·(pre − bias)``. This is gradient × input of a piecewise-linear network with the LRN
gain held fixed; it is *not* the expanded-weights map.

Method ``"expanded"``: ``a ⊙`` the expanded weights (:func:`circuits.expanded.expand`: ReLU →
identity, max-pool → average pool, LRN → identity; Visualizing Weights, Distill 2020). It
is what the articles draw, but an approximation of this image's computation: its sum is
the linear surrogate's pre-activation, and ``residual`` = ``Σ M·(pre − bias)`` − that sum
measures how far off it is (0 only for direct units).

The attribution vector (spatial sum per source channel, :func:`attribution_vector`) is
the direction objective the article visualises (fig. 8); feature visualisation itself lives
in the feature-visualisation engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from circuits.expanded import expand
from circuits.model import ConvUnit, InceptionBlock, InceptionV1
from circuits.spec import MIXED_LAYERS
from circuits.units import Family, Unit, resolve_units

#: layers attribution can start at (their post-ReLU activation) or end at, in forward order
ATTRIBUTABLE = ("conv2d0", "conv2d1", "conv2d2") + MIXED_LAYERS
METHODS = ("gated", "expanded")
_BRANCHES = ("1x1", "3x3", "5x5", "pool_reduce")


def previous_layer(layer: str) -> str:
    """The layer before ``layer`` in :data:`ATTRIBUTABLE` (``mixed3b`` → ``mixed3a``,
    ``mixed3a`` → ``conv2d2``). Raises ValueError for conv2d0."""
    i = ATTRIBUTABLE.index(layer)
    if i == 0:
        raise ValueError("conv2d0 reads the image; no earlier layer to attribute to")
    return ATTRIBUTABLE[i - 1]


# ============================================================================ gated pass
class _Gates:
    """Nonlinearities recorded on the real pass (``record``) and replayed frozen."""

    def __init__(self):
        self.g: dict[str, Tensor] = {}
        self.record = True

    def relu(self, name: str, x: Tensor, on: bool = True) -> Tensor:
        if not on:
            return x
        if self.record:
            self.g[name] = (x.detach() > 0).to(x.dtype)
        return x * self.g[name]

    def maxpool(self, name: str, x: Tensor, k: int, s: int, p: int, ceil: bool = False, pad4=None) -> Tensor:
        if pad4 is not None and any(pad4):
            x = F.pad(x, pad4, value=float("-inf") if self.record else 0.0)
        if self.record:
            self.g[name] = F.max_pool2d(x.detach(), k, s, p, ceil_mode=ceil, return_indices=True)[1]
        idx = self.g[name]
        n, c = idx.shape[:2]
        return x.reshape(n, c, -1).gather(2, idx.reshape(n, c, -1)).reshape(idx.shape)

    def gain(self, name: str, x: Tensor, fn) -> Tensor:
        if self.record:
            xd = x.detach()
            with torch.no_grad():
                y = fn(xd.contiguous())
            self.g[name] = torch.where(xd != 0, y / torch.where(xd != 0, xd, 1.0), 0.0)
        return x * self.g[name]


def _strided_pool(model: InceptionV1, name: str, x: Tensor, gates: _Gates) -> Tensor:
    fn = getattr(model, name).fn
    if getattr(fn, "linear", False):
        return fn(x)
    if fn.padding == "caffe":
        return gates.maxpool(name, x, 3, 2, 0, ceil=True)
    from circuits.layers import _same_pad

    ph, pw = _same_pad(x.shape[-2], 3, 2), _same_pad(x.shape[-1], 3, 2)
    return gates.maxpool(name, x, 3, 2, 0, pad4=(pw[0], pw[1], ph[0], ph[1]))


def _branch_pre(blk: InceptionBlock, x: Tensor, branch: str, gates: _Gates, rows: Tensor | None) -> Tensor:
    """Pre-ReLU output (rows ``rows`` or all) of one branch, nonlinearities gated."""
    def conv(c, h, pad=0):
        w, b = (c.weight, c.bias) if rows is None else (c.weight[rows], c.bias[rows])
        return F.conv2d(h, w, b, padding=pad)

    if branch == "1x1":
        return conv(blk.b1x1.conv, x)
    if branch == "pool_reduce":
        p = F.avg_pool2d(x, 3, 1, 1, count_include_pad=True, divisor_override=9) if blk.pool_linear else \
            gates.maxpool(f"{blk.name}_pool", x, 3, 1, 1)
        return conv(blk.bpool_reduce.conv, p)
    bu = blk.unit(branch + "_bottleneck")
    h = gates.relu(f"{blk.name}_{branch}_bottleneck", F.conv2d(x, bu.conv.weight, bu.conv.bias), bu.relu)
    c = blk.unit(branch).conv
    return conv(c, h, c.kernel_size[0] // 2)


def _block(blk: InceptionBlock, x: Tensor, gates: _Gates) -> Tensor:
    """Post-ReLU output of a whole block, gated."""
    return torch.cat([gates.relu(f"{blk.name}_{b}", _branch_pre(blk, x, b, gates, None), blk.unit(b).relu)
                      for b in _BRANCHES], 1)


def _unit_pre(model: InceptionV1, unit: Unit, x: Tensor, gates: _Gates) -> tuple[Tensor, float]:
    """``(pre (N, H, W), bias)`` of ``unit`` from its layer's input ``x``."""
    if unit.layer in MIXED_LAYERS:
        blk = model.block(unit.layer)
        start = 0
        for b in _BRANCHES:
            w = blk.unit(b).conv.out_channels
            if unit.index < start + w:
                rows = torch.tensor([unit.index - start], device=x.device)
                return _branch_pre(blk, x, b, gates, rows)[:, 0], float(blk.unit(b).conv.bias[rows].item())
            start += w
    c = model.conv_unit(unit.layer).conv
    return c(x)[:, unit.index] if unit.layer == "conv2d0" else \
        F.conv2d(x, c.weight[unit.index:unit.index + 1], c.bias[unit.index:unit.index + 1],
                 padding=c.padding)[:, 0], float(c.bias[unit.index].item())


def _gated_forward(model: InceptionV1, src: str, unit: Unit, a: Tensor, gates: _Gates) -> tuple[Tensor, float]:
    """The unit's pre-activation from ``src``'s post-ReLU activation ``a`` through the stages between."""
    names = model.stage_names
    x = a
    for name in names[names.index(src) + 1:names.index(unit.layer)]:
        mod = getattr(model, name)
        if name.startswith("maxpool"):
            x = _strided_pool(model, name, x, gates)
        elif name.startswith("localresponsenorm"):
            x = gates.gain(name, x, mod.fn) if not isinstance(mod.fn, torch.nn.Identity) else x
        elif isinstance(mod, ConvUnit):
            x = gates.relu(name, mod.conv(x), mod.relu)
        else:
            x = _block(mod, x, gates)
    return _unit_pre(model, unit, x, gates)


# ============================================================================ attribution
@dataclass
class Attribution:
    """What :func:`attribute` returns (N images).

    Attributes:
        unit: the attributed unit; src: the layer attributed to (post-ReLU activations).
        values: ``(N, C_src, Hs, Ws)`` attribution (pre-activation units of ``unit``).
        activations: ``(N, C_src, Hs, Ws)`` the source activations.
        pre: ``(N, H, W)`` the unit's pre-activation map; mask: ``(N, H, W)`` positions
            attributed (0/1); bias: the unit's own bias.
        bias_terms: ``(N,)`` gated: upstream biases through the frozen gates (0 for a direct
            unit); expanded: the residual ``target − values.sum()`` of the approximation.
        method: ``"gated"`` or ``"expanded"``.
    """

    unit: Unit
    src: str
    values: Tensor
    activations: Tensor
    pre: Tensor
    mask: Tensor
    bias: float
    bias_terms: Tensor
    method: str

    @property
    def target(self) -> Tensor:
        """``(N,)`` Σ mask·(pre − bias): what the attribution (plus ``bias_terms``) sums to."""
        return (self.mask * (self.pre - self.bias)).flatten(1).sum(1)

    def vector(self, channels: Sequence[int] | None = None) -> Tensor:
        """``(N, C)`` attribution summed over positions (all source channels, or ``channels``)."""
        v = self.values.sum((2, 3))
        return v if channels is None else v[:, list(channels)]

    def channel_map(self, channels: Sequence[int] | None = None) -> Tensor:
        """``(N, Hs, Ws)`` attribution summed over ``channels`` (all when None)."""
        v = self.values if channels is None else self.values[:, list(channels)]
        return v.sum(1)


def _mask(positions, pre: Tensor) -> Tensor:
    """``(N, H, W)`` 0/1 mask from ``"active"`` (pre > 0), ``"all"``, ``"max"`` (each image's
    arg-max), a ``(row, col)`` pair, or a tensor of that shape."""
    n, h, w = pre.shape
    if isinstance(positions, Tensor):
        if positions.shape != pre.shape:
            raise ValueError(f"positions mask must have shape {tuple(pre.shape)}; got {tuple(positions.shape)}")
        return positions.to(device=pre.device, dtype=pre.dtype)
    if positions == "active":
        return (pre > 0).to(pre.dtype)
    if positions == "all":
        return torch.ones_like(pre)
    if positions == "max":
        m = torch.zeros(n, h * w, dtype=pre.dtype, device=pre.device)
        m[torch.arange(n, device=pre.device), pre.flatten(1).argmax(1)] = 1
        return m.view(n, h, w)
    if isinstance(positions, (tuple, list)) and len(positions) == 2:
        r, c = int(positions[0]), int(positions[1])
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"position ({r}, {c}) is outside the {h}x{w} map")
        m = torch.zeros_like(pre)
        m[:, r, c] = 1
        return m
    raise ValueError(f"positions must be 'active', 'all', 'max', (row, col) or a mask; got {positions!r}")


def _check(model: InceptionV1, unit, src: str | None, method: str) -> tuple[Unit, str]:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    u = resolve_units(unit, model.spec)
    if len(u) != 1:
        raise ValueError(f"attribute one unit at a time; got {len(u)}")
    u = u[0]
    if u.layer not in ATTRIBUTABLE:
        raise ValueError(f"cannot attribute {u}: layer must be one of {', '.join(ATTRIBUTABLE)}")
    src = previous_layer(u.layer) if src is None else src
    from circuits.units import canonical_layer

    src = canonical_layer(src)
    if src not in ATTRIBUTABLE or ATTRIBUTABLE.index(src) >= ATTRIBUTABLE.index(u.layer):
        before = ", ".join(ATTRIBUTABLE[:ATTRIBUTABLE.index(u.layer)])
        raise ValueError(f"src {src!r} must be a layer before {u.layer}: one of {before}")
    stages = model.stage_names[model.stage_names.index(src) + 1:model.stage_names.index(u.layer) + 1]
    for s in stages:
        mod = getattr(model, s)
        if isinstance(mod, InceptionBlock) and len(mod.linear_paths):
            raise ValueError(f"{s} has linear paths (edits.Linearize); attribution supports unedited structure only")
    return u, src


def attribute(model: InceptionV1, unit, images: Tensor, src: str | None = None, positions="active",
              method: str = "gated") -> Attribution:
    """Attribution of ``unit`` (summed over ``positions``) to the activations of ``src``.

    Args:
        model: the network (any checkpoint, weight edits included; no linear paths).
        unit: ``"3b:358"`` or a :class:`~circuits.units.Unit`.
        images: ``(N, 3, H, W)`` or ``(3, H, W)`` RGB in [0, 1].
        src: an earlier layer of :data:`ATTRIBUTABLE` (default the previous one).
        positions: which positions of the unit's map to attribute: ``"active"`` (pre > 0;
            default), ``"all"``, ``"max"``, ``(row, col)``, or a ``(N, H, W)`` mask.
        method: ``"gated"`` (exact; default) or ``"expanded"`` (approximation); module docstring.

    Returns:
        :class:`Attribution`.

    Raises:
        KeyError / IndexError: unknown unit or layer. ValueError: bad ``src``, ``method``,
        ``positions``, an edited structure, or images not (N, 3, H, W).
    """
    u, src = _check(model, unit, src, method)
    x = images.unsqueeze(0) if images.dim() == 3 else images
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) or (3, H, W); got {tuple(images.shape)}")
    dev = next(model.parameters()).device
    with torch.no_grad():
        a = model(x.to(dev), stop_at=src).float().contiguous()
    gates = _Gates()
    a_in = a.clone().requires_grad_(True)
    with torch.enable_grad():
        pre, bias = _gated_forward(model, src, u, a_in, gates)
        mask = _mask(positions, pre.detach())
        coef = torch.autograd.grad((pre * mask).sum(), a_in)[0] if method == "gated" else None
    pre = pre.detach()
    if method == "gated":
        gates.record = False
        with torch.no_grad():
            c0, _ = _gated_forward(model, src, u, torch.zeros_like(a), gates)
        bias_terms = (mask * (c0 - bias)).flatten(1).sum(1)
    else:
        coef = _expanded_coef(model, src, u, mask, a.shape[-2:])
    values = (a * coef).detach()
    if method == "expanded":  # the residual of the approximation
        bias_terms = (mask * (pre - bias)).flatten(1).sum(1) - values.flatten(1).sum(1)
    return Attribution(u, src, values, a, pre, mask, bias, bias_terms, method)


def _expanded_coef(model: InceptionV1, src: str, u: Unit, mask: Tensor, size) -> Tensor:
    """``(N, C_src, Hs, Ws)`` Σ_p M(p)·E[c, q − stride·p + pad] from the expanded weights E."""
    e = expand(model, src, u.layer, dst_units=[u.index])
    w = e.weight.to(mask.device)  # (1, C, k, k)
    full = F.conv_transpose2d(mask.unsqueeze(1), w, stride=e.stride)  # index stride·p + tap
    hs, ws = size
    full = F.pad(full, (0, max(0, e.padding + ws - full.shape[-1]), 0, max(0, e.padding + hs - full.shape[-2])))
    return full[..., e.padding:e.padding + hs, e.padding:e.padding + ws]


def attribution_vector(model: InceptionV1, unit, image: Tensor, src: str | None = None, positions="active",
                       family: Family | None = None, method: str = "gated") -> Tensor:
    """The attribution vector of fig. 8: ``(units,)`` attribution of ``unit`` on one ``image``
    ``(3, H, W)`` summed over positions, per channel of ``src`` (or of ``family``, a family of
    that layer, in its order). A direction objective for feature visualisation."""
    if family is not None:
        src = family.layer
    att = attribute(model, unit, image, src, positions, method)
    return att.vector(None if family is None else family.units)[0]


def family_flow(model: InceptionV1, unit, image: Tensor, families: Sequence[Family], positions="active") -> list[dict]:
    """Per family, early → late: the family's summed post-ReLU activation map and the unit's
    summed attribution map on one ``image`` (fig. 8's conv2d2 → 3a → 3b figure).

    For a family of the unit's own layer, the "attribution" is the unit's own
    ``mask·(pre − bias)`` map (what the earlier maps split). Returns one dict per family,
    sorted by layer: ``family`` (key), ``layer``, ``activation`` and ``attribution``
    (``(H, W)`` tensors), ``total`` (attribution sum), ``share`` (of the unit's
    ``Σ mask·(pre − bias)``).
    """
    u = resolve_units(unit, model.spec)[0]
    fams = sorted(families, key=lambda f: ATTRIBUTABLE.index(f.layer))
    x = image.unsqueeze(0) if image.dim() == 3 else image
    layers = sorted({f.layer for f in fams} | {u.layer}, key=ATTRIBUTABLE.index)
    with torch.no_grad():
        acts = model.run(x.to(next(model.parameters()).device), layers)
    out = []
    own = None
    for f in fams:
        if ATTRIBUTABLE.index(f.layer) > ATTRIBUTABLE.index(u.layer):
            raise ValueError(f"family {f.key} is after {u}'s layer")
        act = acts[f.layer][0, list(f.units)].float().sum(0).cpu()
        if f.layer == u.layer:
            if own is None:
                own = attribute(model, u, x, previous_layer(u.layer), positions)
            amap, total, target = (own.mask * (own.pre - own.bias))[0].cpu(), float(own.target[0]), float(own.target[0])
        else:
            att = attribute(model, u, x, f.layer, positions)
            amap = att.channel_map(f.units)[0].cpu()
            total, target = float(amap.sum()), float(att.target[0])
        out.append(dict(family=f.key, layer=f.layer, activation=act, attribution=amap, total=total,
                        share=total / target if target else float("nan")))
    return out


def pixel_maps(model: InceptionV1, unit, images: Tensor, rows: Sequence[int], cols: Sequence[int],
               src: str | None = None) -> Tensor:
    """Attribution of ``unit`` at one position per image (``rows[i]``, ``cols[i]`` of its
    map) to ``src`` (default the previous layer), summed over channels and drawn in pixels:
    ``(N, H, W)``, each pixel taking the value of the ``src`` position whose receptive-field
    centre is nearest (for overlays on receptive-field crops)."""
    from circuits.geometry import receptive_field

    u, src = _check(model, unit, src, "gated")
    n, _, h, w = images.shape
    dev = next(model.parameters()).device
    with torch.no_grad():
        hh, ww = model(images[:1].to(dev), stop_at=u.layer).shape[-2:]
    mask = torch.zeros(n, hh, ww)
    mask[torch.arange(n), torch.as_tensor(list(rows)), torch.as_tensor(list(cols))] = 1
    m = attribute(model, u, images, src, mask).channel_map().cpu()  # (N, Hs, Ws)
    rf = receptive_field(model.spec, src, h)
    iy = ((torch.arange(h) - rf.center(0)) / rf.stride).round().long().clamp(0, m.shape[-2] - 1)
    ix = ((torch.arange(w) - rf.center(0)) / rf.stride).round().long().clamp(0, m.shape[-1] - 1)
    return m[:, iy][:, :, ix]

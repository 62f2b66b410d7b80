"""Reading a visualization: the radius of the curve it draws.

Definition (ours; the articles only say to read orientation, contrast and combing, not the
exact shape): the picture's luminance is blurred (Gaussian, σ 2 px) and differentiated (Sobel). A curve
of orientation θ (the project's convention, :mod:`studies.stimuli`: the circle's centre lies
at distance r from the picture centre in direction θ, y up) and radius r is scored by the mean
contrast across the arc — |gradient · the arc's normal|, sampled bilinearly along the arc — inside a disc of radius ``window`` px around
the picture centre. The arc may pass up to ``shift`` px off the centre (along θ) and θ may
deviate by ``slack`` degrees (the optimisation jitters the picture ±6 px and rotates it ±10°).
The estimated radius is the r of the best-scoring arc over a geometric grid of radii.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: Rec. 601 luma weights
LUMA = (0.299, 0.587, 0.114)


def gradients(image: Tensor, sigma: float = 2.0) -> Tensor:
    """``(3, H, W)`` RGB in [0, 1] → ``(2, H, W)`` Sobel gradient (d/dx, d/dy with y down) of
    the luminance after a Gaussian blur of ``sigma`` px (suppresses the fine texture that
    visualizations carry around the curve)."""
    y = torch.einsum("c,chw->hw", torch.tensor(LUMA, dtype=image.dtype), image.detach().cpu().float())[None, None]
    if sigma > 0:
        r = int(math.ceil(3 * sigma))
        g = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma**2))
        g = g / g.sum()
        y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
        y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    gx = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), k[None, None])
    gy = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), k.T[None, None])
    return torch.cat([gx, gy], 1)[0]


def arc_scores(grads: Tensor, orientations: Tensor, radii: Tensor, shifts: Tensor, window: float,
               samples: int = 256) -> Tensor:
    """Mean |luminance gradient · arc normal| along the arcs of curves (module docstring) inside
    the window — the contrast *across* each curve. ``orientations`` (deg), ``radii`` (px) and
    ``shifts`` (px) are 1-D tensors of the same length K → ``(K,)`` scores (0 for an arc with
    fewer than 8 samples in the window)."""
    h, w = grads.shape[-2:]
    cx, cy = (w - 1) / 2, (h - 1) / 2  # picture centre (x right, y down in pixels)
    o, r, d = (v.double()[:, None] for v in (orientations, radii, shifts))
    t = torch.deg2rad(o)
    ux, uy = torch.cos(t), -torch.sin(t)  # direction θ in pixel coordinates (y down)
    px, py = cx + d * ux, cy + d * uy  # where the arc crosses the centre line
    ox, oy = px + r * ux, py + r * uy  # circle centre
    half = 2 * torch.asin((window / (2 * r)).clamp(max=1.0)) + 1e-6  # arc within `window` of the centre
    phi0 = torch.atan2(py - oy, px - ox)
    phi = phi0 + half * torch.linspace(-1, 1, samples, dtype=torch.float64)[None]
    x, y = ox + r * torch.cos(phi), oy + r * torch.sin(phi)  # (K, samples)
    keep = ((x - cx) ** 2 + (y - cy) ** 2 <= window ** 2) & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    grid = torch.stack([x / (w - 1) * 2 - 1, y / (h - 1) * 2 - 1], -1).float()[None]  # (1, K, S, 2)
    g = F.grid_sample(grads[None].float(), grid, mode="bilinear", align_corners=True)[0]  # (2, K, S)
    contrast = (g[0] * torch.cos(phi).float() + g[1] * torch.sin(phi).float()).abs() * keep
    n = keep.sum(1)
    return torch.where(n >= 8, contrast.sum(1) / n.clamp(min=1), torch.zeros(()))


def estimate_radius(image: Tensor, orientation: float, radii: Sequence[float] | None = None, window: float = 40.0,
                    shift: float = 6.0, slack: float = 15.0) -> tuple[float, float]:
    """The radius (px) of the best-scoring arc (module docstring) and its orientation (deg).

    Args:
        image: ``(3, H, W)`` RGB in [0, 1].
        orientation: the unit's preferred orientation (deg).
        radii: candidate radii (px); default 31 values from 8 to 256 px, geometric.
        window: radius (px) of the disc around the centre where arcs are scored.
        shift, slack: the arc may pass ±``shift`` px off the centre (2-px steps) and its
            orientation may deviate by ±``slack`` degrees (5° steps).
    """
    rr = torch.tensor(list(radii) if radii is not None else list(np.geomspace(8, 256, 31)), dtype=torch.float64)
    dts = torch.arange(-slack, slack + 1e-9, 5.0, dtype=torch.float64)
    ds = torch.arange(-shift, shift + 1e-9, 2.0, dtype=torch.float64)
    o, d, r = torch.meshgrid(orientation + dts, ds, rr, indexing="ij")
    scores = arc_scores(gradients(image), o.flatten(), r.flatten(), d.flatten(), window)
    k = int(scores.argmax())
    return float(r.flatten()[k]), float(o.flatten()[k])

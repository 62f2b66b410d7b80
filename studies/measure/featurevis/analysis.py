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


def arc_score(grads: Tensor, orientation: float, radius: float, window: float, shift: float = 0.0,
              samples: int = 256) -> float:
    """Mean |luminance gradient · arc normal| along the arc of a curve (module docstring)
    inside the window: the contrast *across* the curve."""
    h, w = grads.shape[-2:]
    cx, cy = (w - 1) / 2, (h - 1) / 2  # picture centre (x right, y down in pixels)
    t = math.radians(orientation)
    ux, uy = math.cos(t), -math.sin(t)  # direction θ in pixel coordinates (y down)
    px, py = cx + shift * ux, cy + shift * uy  # where the arc crosses the centre line
    ox, oy = px + radius * ux, py + radius * uy  # circle centre
    # arc points within `window` of the picture centre: angle around the circle's centre
    half = min(math.pi, 2 * math.asin(min(1.0, window / (2 * radius))) + 1e-6)
    phi0 = math.atan2(py - oy, px - ox)
    phi = torch.linspace(phi0 - half, phi0 + half, samples, dtype=torch.float64)
    x, y = ox + radius * torch.cos(phi), oy + radius * torch.sin(phi)
    keep = ((x - cx) ** 2 + (y - cy) ** 2 <= window ** 2) & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    if keep.sum() < 8:
        return 0.0
    grid = torch.stack([x[keep] / (w - 1) * 2 - 1, y[keep] / (h - 1) * 2 - 1], -1).float()[None, None]
    g = F.grid_sample(grads[None].float(), grid, mode="bilinear", align_corners=True)[0, :, 0]  # (2, K)
    nx, ny = torch.cos(phi[keep]).float(), torch.sin(phi[keep]).float()  # radial normal
    return float((g[0] * nx + g[1] * ny).abs().mean())


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
    radii = list(radii) if radii is not None else list(np.geomspace(8, 256, 31))
    edges = gradients(image)
    best = (-1.0, float("nan"), float("nan"))
    for dt in np.arange(-slack, slack + 1e-9, 5.0):
        for d in np.arange(-shift, shift + 1e-9, 2.0):
            for r in radii:
                s = arc_score(edges, orientation + dt, r, window, d)
                if s > best[0]:
                    best = (s, float(r), float(orientation + dt))
    return best[1], best[2]

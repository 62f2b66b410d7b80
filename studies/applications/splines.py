"""Cubic Bézier strokes: a differentiable anti-aliased batched renderer and a curve tracer.

The article's applications section ("spline parameterization", Curve Circuits, Distill 2021)
traces curves by back-propagating from attribution to the control points of splines. Here:

- :func:`bezier` evaluates cubic Béziers ``B(t) = (1−t)³P0 + 3(1−t)²t P1 + 3(1−t)t² P2 + t³P3``;
- :func:`render` draws them as strokes: each pixel's ink is the coverage estimated from its
  distance ``d`` to the curve (approximated by a polyline of ``samples`` points), with the
  same 1-px linear ramp as the stimulus renderer (:mod:`studies.stimuli`):
  ``ink = clamp(width/2 + 0.5 − d, 0, 1)``; differentiable in the control points almost
  everywhere, batched over strokes;
- :func:`trace` fits several splines to a map ``M`` (e.g. :func:`~.extraction.curve_map`, or a
  factor's attribution) by gradient ascent on, per spline,

      J = ∫ (M̂(B(s)) − τ) ds  −  κ · Σ |P_{i−1} − 2P_i + P_{i+1}|²  −  μ ∫ avoid(B(s)) ds

  where ``M̂`` is the map divided by its 99.5th percentile and blurred (coarse to fine),
  ``s`` arc length (px), ``τ`` the level below which extending the curve costs more than it
  gains (so splines grow along ridges of the map and bridge short gaps such as occluders),
  ``κ`` a bending penalty on the control polygon, and ``avoid`` an optional mask in [0, 1]
  (a texture or object group's map: the article's penalty where the spline crosses it).
  Seeds are the map's strongest peaks (non-maximum suppressed), each tried as a short segment
  and as short left- and right-turning arcs along the local ridge direction (structure tensor;
  the best-fitting hypothesis wins); splines are fitted in rounds, each round seeded on what the
  splines already kept leave unexplained; a spline is kept when it adds a new stretch of ridge
  (several splines may share one curve), so duplicates are dropped;
- :func:`trace_image` traces an image with the network in the loop, *explaining away*: after
  each map's splines are fitted, their strokes are painted over with the local background and the
  curve map is recomputed (later maps held to the first map's scale), so curves the strongest one
  outshone get their own attribution (the map's 4th-power objective gives a curve half as active
  an eighth of the attribution).

Coordinates: pixel coordinates (x right, y down), pixel centres at integers, as
:func:`~.scenes.arc_points`.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .extraction import gaussian_blur


def bezier(ctrl: Tensor, n: int = 64) -> Tensor:
    """Points of cubic Béziers. ``ctrl (B, 4, 2)`` → ``(B, n, 2)`` at ``t = 0 … 1`` (uniform).

    Raises:
        ValueError: ``ctrl`` not ``(B, 4, 2)`` or ``n`` < 2.
    """
    if ctrl.dim() != 3 or ctrl.shape[1:] != (4, 2):
        raise ValueError(f"control points must be (B, 4, 2); got {tuple(ctrl.shape)}")
    if n < 2:
        raise ValueError(f"n must be ≥ 2 samples; got {n}")
    t = torch.linspace(0, 1, n, dtype=ctrl.dtype, device=ctrl.device).view(1, -1, 1)
    u = 1 - t
    p0, p1, p2, p3 = (ctrl[:, i:i + 1] for i in range(4))
    return u ** 3 * p0 + 3 * u * u * t * p1 + 3 * u * t * t * p2 + t ** 3 * p3


def _seg_distance(pts: Tensor, xy: Tensor) -> Tensor:
    """Distance from points ``xy (P, 2)`` to polylines ``pts (B, n, 2)`` → ``(B, P)``."""
    a, b = pts[:, :-1], pts[:, 1:]  # (B, S, 2)
    ab = b - a
    ap = xy.view(1, 1, -1, 2) - a.unsqueeze(2)  # (B, S, P, 2)
    L2 = (ab * ab).sum(-1).clamp(min=1e-9).unsqueeze(2)
    t = ((ap * ab.unsqueeze(2)).sum(-1) / L2).clamp(0, 1)
    d = ap - t.unsqueeze(-1) * ab.unsqueeze(2)
    return (d * d).sum(-1).add(1e-12).sqrt().amin(1)


def render(ctrl: Tensor, size: tuple[int, int] | int, width: float = 2.0, samples: int = 64) -> Tensor:
    """Anti-aliased strokes of cubic Béziers, differentiable in ``ctrl``.

    Args:
        ctrl: ``(B, 4, 2)`` control points (px; x right, y down; pixel centres at integers).
        size: ``(H, W)`` or a side (px). width: stroke width (px, > 0). samples: polyline
            points per curve (the chord error of a curve of radius r with segments of length
            ℓ is ℓ²/(8r) px).

    Returns:
        ``(B, H, W)`` ink coverage in [0, 1] (one image per stroke; combine with ``amax(0)``).

    Raises:
        ValueError: bad shapes, size or width.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1:
        raise ValueError(f"size must be ≥ 1 px; got {(h, w)}")
    if not width > 0:
        raise ValueError(f"width must be > 0 px; got {width}")
    pts = bezier(ctrl, samples)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=ctrl.dtype), torch.arange(w, dtype=ctrl.dtype), indexing="ij")
    xy = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    out = []
    for s in range(0, xy.shape[0], 8192):  # bounded memory: (B, segments, 8192)
        out.append(_seg_distance(pts, xy[s:s + 8192]))
    d = torch.cat(out, 1).view(-1, h, w)
    return (width / 2 + 0.5 - d).clamp(0, 1)


def _sample(m: Tensor, pts: Tensor) -> Tensor:
    """Bilinear values of a map ``m (H, W)`` at points ``pts (B, n, 2)`` (px) → ``(B, n)``; 0 outside."""
    h, w = m.shape
    g = torch.stack([pts[..., 0] / max(w - 1, 1) * 2 - 1, pts[..., 1] / max(h - 1, 1) * 2 - 1], -1)
    return F.grid_sample(m.view(1, 1, h, w).expand(pts.shape[0], 1, h, w), g.unsqueeze(1),
                         align_corners=True, padding_mode="zeros")[:, 0, 0]


def _peaks(m: np.ndarray, k: int, min_dist: float, floor: float) -> list[tuple[int, int]]:
    """Up to ``k`` strongest local maxima (y, x) ≥ ``floor``, at least ``min_dist`` px apart."""
    order = np.argsort(m, axis=None)[::-1]
    out: list[tuple[int, int]] = []
    for flat in order:
        y, x = divmod(int(flat), m.shape[1])
        if m[y, x] < floor or len(out) >= k:
            break
        if all((y - a) ** 2 + (x - b) ** 2 >= min_dist ** 2 for a, b in out):
            out.append((y, x))
    return out


def _ridge_direction(m: np.ndarray, y: int, x: int, r: int = 4) -> np.ndarray:
    """Unit vector (x, y) along the ridge of ``m`` at (y, x): the structure tensor's minor axis."""
    gy, gx = np.gradient(m)
    sl = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
    a, b, c = (gx[sl] ** 2).sum(), (gx[sl] * gy[sl]).sum(), (gy[sl] ** 2).sum()
    w, v = np.linalg.eigh(np.array([[a, b], [b, c]]))
    d = v[:, 0]  # smallest eigenvalue: along the ridge
    return d / (np.linalg.norm(d) + 1e-12)


@dataclass
class TraceResult:
    """Fitted splines of one map.

    Attributes:
        ctrl: ``(K, 4, 2)`` control points (px; x right, y down), best first.
        score: ``(K,)`` mean normalised map value along each spline.
        length: ``(K,)`` arc length (px). seconds: wall time of the fit.
        map_index: ``(K,)`` int, which of :func:`trace_image`'s maps found each spline (0: the
            image's own curve map; ``None`` from :func:`trace`).
    """

    ctrl: np.ndarray
    score: np.ndarray
    length: np.ndarray
    seconds: float
    map_index: np.ndarray | None = None

    def svg_paths(self) -> list[str]:
        """One SVG path ``d`` attribute (``M x y C x y, x y, x y``) per spline."""
        return [f"M {c[0, 0]:.2f} {c[0, 1]:.2f} C {c[1, 0]:.2f} {c[1, 1]:.2f}, {c[2, 0]:.2f} {c[2, 1]:.2f}, "
                f"{c[3, 0]:.2f} {c[3, 1]:.2f}" for c in self.ctrl]


def _objective(ctrl: Tensor, m: Tensor, tau: float, kappa: float, avoid: Tensor | None, mu: float) -> Tensor:
    pts = bezier(ctrl, 48)
    seg = (pts[:, 1:] - pts[:, :-1]).norm(dim=-1)  # (B, 47)
    v = _sample(m, pts)
    mid = (v[:, 1:] + v[:, :-1]) / 2
    j = ((mid - tau) * seg).sum(1)
    bend = (ctrl[:, :-2] - 2 * ctrl[:, 1:-1] + ctrl[:, 2:]).pow(2).sum((1, 2))
    j = j - kappa * bend
    if avoid is not None:
        a = _sample(avoid, pts)
        j = j - mu * (((a[:, 1:] + a[:, :-1]) / 2) * seg).sum(1)
    return j


def _fit(init: np.ndarray, coarse: Tensor, fine: Tensor, tau: float, kappa: float, steps: int, lr: float,
         avoid: Tensor | None, mu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam on control points ``init (B, 4, 2)``: half the steps on ``coarse``, half on ``fine``.
    → ``(ctrl, mean map value along each, length)``."""
    ctrl = torch.tensor(init, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([ctrl], lr=lr)
    for step in range(steps):
        target = coarse if step < steps // 2 else fine
        loss = -_objective(ctrl, target, tau, kappa, avoid, mu).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pts = bezier(ctrl, 48)
        score = _sample(fine, pts).mean(1).numpy()
        length = (pts[:, 1:] - pts[:, :-1]).norm(dim=-1).sum(1).numpy()
    return ctrl.detach().numpy().astype(np.float64), score, length


def _fit_hypotheses(init: np.ndarray, coarse: Tensor, fine: Tensor, tau: float, kappa: float, steps: int, lr: float,
                    avoid: Tensor | None, mu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_fit` of seeds ``init (peaks, hypotheses, 4, 2)`` → per peak the fitted hypothesis with the best
    objective on the fine map: ``(ctrl (peaks, 4, 2), score, length)``."""
    c, score, length = _fit(init.reshape(-1, 4, 2), coarse, fine, tau, kappa, steps, lr, avoid, mu)
    with torch.no_grad():
        j = _objective(torch.as_tensor(c, dtype=torch.float32), fine, tau, kappa, avoid, mu).numpy()
    best = j.reshape(init.shape[0], -1).argmax(1) + np.arange(init.shape[0]) * init.shape[1]
    return c[best], score[best], length[best]


def _arc_ctrl(centre: np.ndarray, tangent: np.ndarray, length: float, curvature: float) -> np.ndarray:
    """Control points ``(4, 2)`` of a circular arc (or a segment when ``curvature`` = 0) of ``length`` px,
    centred on ``centre`` with unit ``tangent`` there; ``curvature`` in 1/px, positive turning left."""
    if abs(curvature) < 1e-9:
        d = tangent * length / 2
        p0, p3 = centre - d, centre + d
        return np.array([p0, p0 + (p3 - p0) / 3, p0 + 2 * (p3 - p0) / 3, p3])
    r, th = 1 / abs(curvature), length * abs(curvature)  # radius, turning angle
    normal = np.array([-tangent[1], tangent[0]]) * np.sign(curvature)
    c = centre + normal * r
    phi = np.arctan2(*(centre - c)[::-1]) + np.array([-th / 2, th / 2]) * np.sign(curvature)
    p0, p3 = c + r * np.stack([np.cos(phi), np.sin(phi)], 1)
    k = 4 / 3 * np.tan(th / 4) * r  # the standard cubic approximation of a circular arc
    t0 = np.array([-np.sin(phi[0]), np.cos(phi[0])]) * np.sign(curvature)
    t3 = np.array([-np.sin(phi[1]), np.cos(phi[1])]) * np.sign(curvature)
    return np.array([p0, p0 + k * t0, p3 - k * t3, p3])


def _seeds(cn: np.ndarray, k: int, min_sep: float, floor: float, seed_length: float,
           curvatures: tuple[float, ...]) -> np.ndarray:
    """Seeds on the ``k`` strongest peaks: one per curvature hypothesis → ``(peaks, len(curvatures), 4, 2)``."""
    init = []
    for y, x in _peaks(cn, k, min_sep, floor=floor):
        t = _ridge_direction(cn, y, x)
        init.append([_arc_ctrl(np.array([x, y], float), t, seed_length, c) for c in curvatures])
    return np.array(init, dtype=np.float64).reshape(-1, len(curvatures), 4, 2)


#: the tracer's numeric settings (names as in :func:`trace`): (what a valid value is, its test)
_SETTINGS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "tau": ("finite", math.isfinite), "mu": ("finite", math.isfinite),
    "kappa": ("finite and ≥ 0", lambda x: math.isfinite(x) and x >= 0),
    "lr": ("finite and > 0", lambda x: math.isfinite(x) and x > 0),
    "scale": ("finite and > 0", lambda x: math.isfinite(x) and x > 0),
    "seed_length": ("finite and > 0 px", lambda x: math.isfinite(x) and x > 0),
    "min_sep": ("finite and > 0 px", lambda x: math.isfinite(x) and x > 0),
    "min_length": ("finite and ≥ 0 px", lambda x: 0 <= x < math.inf), "novelty": ("in [0, 1]", lambda x: 0 <= x <= 1),
    "steps": ("an integer ≥ 1", lambda x: x >= 1 and x == int(x))}


def _check_settings(**v) -> None:
    """The tracer's numeric settings (:data:`_SETTINGS`) → ValueError naming the first bad one."""
    for k, x in v.items():
        ok = isinstance(x, numbers.Real) and not isinstance(x, bool)  # numpy scalars too
        if not ok or not _SETTINGS[k][1](float(x)):
            raise ValueError(f"{k} must be {_SETTINGS[k][0]}; got {x!r}")


def _check_counts(n_splines, rounds, seeds, curvatures) -> None:
    """:func:`trace`'s counts (integers ≥ 1, not bool) and curvatures (finite numbers, at least one) → ValueError."""
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in (n_splines, rounds, seeds)):
        raise ValueError(f"n_splines, seeds and rounds must be integers ≥ 1; got {n_splines!r}, {seeds!r}, {rounds!r}")
    try:
        c = np.asarray(curvatures, dtype=np.float64)
    except (TypeError, ValueError):
        c = np.zeros(0)
    if isinstance(curvatures, str) or c.ndim != 1 or not len(c) or not np.isfinite(c).all():
        raise ValueError(f"curvatures must be a non-empty sequence of finite numbers (1/px); got {curvatures!r}")


def _novelty(poly: np.ndarray, kept: list[np.ndarray], radius: float) -> float:
    """Share of the points of ``poly (n, 2)`` farther than ``radius`` px from every polyline in ``kept``."""
    if not kept:
        return 1.0
    d = _seg_distance(torch.as_tensor(np.stack(kept)), torch.as_tensor(poly)).amin(0)
    return float((d > radius).double().mean())


def _map_and_mask(cmap, avoid) -> tuple[Tensor, Tensor | None]:
    """:func:`trace`'s map and optional avoid mask as float32 tensors, checked (its Raises)."""
    if cmap.is_complex() if isinstance(cmap, Tensor) else np.iscomplexobj(cmap):
        raise ValueError("cmap has complex values")
    m = torch.as_tensor(np.asarray(cmap.detach().cpu() if isinstance(cmap, Tensor) else cmap, dtype=np.float32))
    if m.dim() != 2 or min(m.shape) < 2:
        raise ValueError(f"cmap must be (H, W), at least 2 x 2; got {tuple(m.shape)}")
    if not torch.isfinite(m).all():
        raise ValueError("cmap has NaN or infinite values")
    av = None
    if avoid is not None:
        av = torch.as_tensor(np.asarray(avoid.detach().cpu() if isinstance(avoid, Tensor) else avoid, dtype=np.float32))
        if av.shape != m.shape:
            raise ValueError(f"avoid mask {tuple(av.shape)} must have the map's shape {tuple(m.shape)}")
        if not torch.isfinite(av).all():
            raise ValueError("avoid mask has NaN or infinite values")
    return m, av


def trace(cmap: Tensor | np.ndarray, n_splines: int = 24, tau: float = 0.15, kappa: float = 0.02,
          steps: int = 200, lr: float = 0.6, seed_length: float = 12.0, avoid: Tensor | np.ndarray | None = None,
          mu: float = 1.0, min_sep: float = 8.0, rounds: int = 3, seeds: int = 12,
          curvatures: Sequence[float] = (0.0, 0.05, -0.05, 0.1, -0.1), novelty: float = 0.5,
          min_length: float = 2.0, scale: float | None = None) -> TraceResult:
    """Fit cubic Béziers to the ridges of ``cmap`` (module docstring).

    The splines are fitted in ``rounds``. Each round seeds the ``seeds`` strongest peaks (≥ ``tau``,
    ``min_sep`` px apart) of what the splines kept so far do not explain yet (the map with a band
    of ``min_sep`` px around each kept spline removed); each peak gets one seed per curvature
    hypothesis (a segment, and arcs of ``seed_length`` px along the local ridge turning either way
    with radii 20 and 10 px — curvature in 1/px — the small end of the curves' radii, where a
    straight seed fits worst), all fitted together (batched), and the
    hypothesis with the best objective is the peak's spline. A fitted spline is kept, best
    (score × length) first, when its mean map value is ≥ ``tau``, its length ≥ ``min_length`` px
    and at least a share ``novelty`` of its points lie farther than ``min_sep / 3`` px from the
    splines already kept: several splines may share a curve when each adds a new stretch of it.

    The defaults were chosen on the benchmark's tracing tuning split (:mod:`.bench_curves`,
    scenes 30000–30047 with two occluders, 75 curves; never the test split): 12 seeds × 3
    rounds, 8-px spacing and κ = 0.02 put a spline within 2 px of 83 % of the curves with seeds
    of curvature 0, ±0.08 and 84 % with 0, ±0.05, ±0.1 (16 seeds per round: 83 %; trimming weak
    tails: 83 % with less coverage; on the first 32 scenes, 51 curves: κ = 0.005 78 % vs 80 %, τ = 0.25
    77 %, 100 steps 78 %), against 76 % for the former 2 × 4 straight 16-px seeds (κ = 0.005, 12-px
    spacing). On the test split, measured once with these defaults: 67 %, as the former tracer.

    Args:
        cmap: ``(H, W)`` map ≥ 0 (curve map, attribution …). n_splines: most splines kept (≥ 1).
        tau: level (fraction of the map's 99.5th percentile) below which the spline shrinks; also
            the seeds' floor and the kept splines' least mean value. kappa: bending penalty (per
            px²). steps: Adam steps per round (half at blur σ 2 px, half at 1 px). lr: Adam step (px).
            seed_length (px), min_sep (seed spacing, px), rounds, seeds (peaks per round), curvatures
            (1/px; positive turns left), novelty, min_length: above. avoid, mu: penalty mask ``(H, W)``
            in [0, 1] and its weight. scale: what the map is divided by before ``tau`` applies
            (> 0, in the map's units); ``None``: its own 99.5th percentile (:func:`trace_image`
            passes the first map's, so residue of a later map is not raised to full scale).

    Returns:
        :class:`TraceResult` (possibly fewer splines than seeds), best (score × length) first.

    Raises:
        ValueError: ``cmap`` not 2-D (≥ 2 x 2), complex or not finite, ``avoid`` of another shape or not
            finite, ``n_splines``, ``seeds``, ``rounds`` or ``steps`` not an integer ≥ 1, no curvature or
            one not finite, a setting out of range (``tau``, ``kappa``, ``mu`` finite; ``kappa``,
            ``min_length`` ≥ 0; ``lr``, ``seed_length``, ``min_sep`` > 0; ``novelty`` in [0, 1];
            ``scale`` finite and > 0, and not so small that the map overflows float32).
    """
    t0 = time.perf_counter()
    _check_settings(tau=tau, kappa=kappa, mu=mu, lr=lr, seed_length=seed_length, min_sep=min_sep,
                    novelty=novelty, steps=steps, min_length=min_length, **({} if scale is None else {"scale": scale}))
    _check_counts(n_splines, rounds, seeds, curvatures)
    m, av = _map_and_mask(cmap, avoid)
    m = m.clamp(min=0)
    m = m / (m.flatten().quantile(0.995).clamp(min=1e-12) if scale is None else float(scale))
    if not torch.isfinite(m).all():
        raise ValueError(f"scale {scale!r} is too small for this map: its values overflow float32")
    coarse, fine = gaussian_blur(m[None], 2.0)[0], gaussian_blur(m[None], 1.0)[0]
    residual = coarse.numpy().copy()
    keep_c, keep_p, keep_s, keep_l = [], [], [], []  # kept control points, polylines, scores, lengths
    for _ in range(rounds):
        init = _seeds(residual, seeds, min_sep, tau, seed_length, tuple(curvatures))
        if not len(init) or len(keep_c) >= n_splines:
            break
        c, score, length = _fit_hypotheses(init, coarse, fine, tau, kappa, steps, lr, av, mu)
        for i in np.argsort(-score * length):
            poly = bezier_np(c[i], 64)
            if (length[i] >= min_length and score[i] >= tau and len(keep_c) < n_splines
                    and _novelty(poly, keep_p, min_sep / 3) >= novelty):
                keep_c.append(c[i])
                keep_p.append(poly)
                keep_s.append(float(score[i]))
                keep_l.append(float(length[i]))
        if keep_c:
            residual = coarse.numpy() * (1 - band(np.array(keep_c), tuple(m.shape), width=min_sep))
    order = np.argsort(-np.array(keep_s) * np.array(keep_l)) if keep_c else np.zeros(0, int)
    return TraceResult(np.array(keep_c).reshape(-1, 4, 2)[order], np.array(keep_s)[order], np.array(keep_l)[order],
                       time.perf_counter() - t0)


#: how :func:`trace_image` paints over traced strokes
FILLS: tuple[str, ...] = ("local", "mean")
#: :func:`trace_image`'s default ``floor``: later maps are held to ≥ this share of the first map's scale.
#: Chosen on the tracing tuning split (:mod:`.bench_curves`; first 48 scenes 30000–30047, 75 curves; never the test
#: split). Curves with a spline within 2 px / share of spline points within 2 px of a true curve / splines per
#: scene (local fill at σ 2 px, the default, or 4 px where marked ⁴): one map 84 % / 33 % / 8.4; 4 maps with the
#: mean colour, own scales (the former default) 89 % / 16 % / 23.8; local fill, own scales 93 % / 17 % / 21.8 ⁴;
#: floor 0.5: 89 % / 26 % / 14.4 ⁴; **floor 0.75 (default): 89 % / 30 % / 11.3** (mean colour: 87 % / 27 % / 13.8);
#: floor 1: 87 % / 33 % / 10.0; 6 maps at floor 1: 87 % / 31 % / 10.9 ⁴. Earlier, on all 96 scenes with the mean
#: colour and own scales: one map 81 %, 3 × 1 maps × rounds 89 %, 4 × 1 90 %, 4 × 2 95 %; 10-px mask (3 × 1) 85 %.
FLOOR = 0.75


def _check_trace_image(image, explain_rounds, mask_px, n_splines, rounds, options, fill, floor) -> None:
    """:func:`trace_image`'s arguments (its Raises), before any compute."""
    if not isinstance(fill, str) or fill not in FILLS:
        raise ValueError(f"fill must be one of {list(FILLS)}; got {fill!r}")
    if isinstance(floor, bool) or not isinstance(floor, numbers.Real) or not 0 <= floor < float("inf"):
        raise ValueError(f"floor must be a finite number ≥ 0; got {floor!r}")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in (explain_rounds, n_splines, rounds)):
        raise ValueError(f"explain_rounds, n_splines and rounds must be integers; got {explain_rounds!r}, "
                         f"{n_splines!r}, {rounds!r}")
    if explain_rounds < 1 or n_splines < 1 or rounds < 1:
        raise ValueError(f"explain_rounds, n_splines and rounds must be ≥ 1; got {explain_rounds}, {n_splines}, "
                         f"{rounds}")
    if isinstance(mask_px, bool) or not (isinstance(mask_px, numbers.Real) and 0 < mask_px <= MAX_PX):
        raise ValueError(f"mask_px must be > 0 and ≤ {MAX_PX:g} px; got {mask_px}")
    unknown = set(options) - _TRACE_OPTIONS
    if unknown:
        raise TypeError(f"unknown trace option(s) {sorted(unknown)}; valid: {sorted(_TRACE_OPTIONS)}")
    _check_settings(**{k: v for k, v in options.items() if k in _SETTINGS})
    _check_counts(n_splines, rounds, options.get("seeds", 12), options.get("curvatures", (0.0,)))
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W) RGB in [0, 1]; got "
                         f"{tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__}")
    if not image.is_floating_point() or min(image.shape[1:]) < 32:
        raise ValueError(f"image must be a float (3, H, W) RGB in [0, 1], at least 32 x 32 px; got {image.dtype} "
                         f"{tuple(image.shape)}")
    if not bool(((image >= 0) & (image <= 1)).all()):  # also NaN: 0–255 values or a bad pixel, not a colour
        raise ValueError(f"image values must lie in [0, 1] (finite); got {_value_range(image)}")
    if options.get("avoid") is not None and tuple(np.shape(options["avoid"])) != tuple(image.shape[1:]):
        raise ValueError(f"avoid mask {tuple(np.shape(options['avoid']))} must have the image's shape "
                         f"{tuple(image.shape[1:])}")
    if options.get("avoid") is not None:
        _map_and_mask(np.zeros(image.shape[1:], np.float32), options["avoid"])  # avoid finite (trace's message)


def _value_range(image: Tensor) -> str:
    """``min …, max …[, n NaN]`` of an image's values (for error messages)."""
    x = image.detach().flatten()
    v, nan = x[~x.isnan()], int(x.isnan().sum())
    return (f"min {float(v.min()):g}, max {float(v.max()):g}" if len(v) else "no number") + (f", {nan} NaN" if nan else "")


def local_fill(image: Tensor, mask: np.ndarray, sigma: float, fallback: Tensor) -> Tensor:
    """The colour each pixel would have without the strokes of ``mask``: normalised convolution
    (Knutsson & Westin 1993) of the pixels farther than 1 px from the mask, ``G_σ * (x·w) / G_σ * w``
    with ``w`` = 1 there and 0 on and next to the strokes (their anti-aliased edges), so a stroke on
    a flat background is filled with exactly that background. Pixels with no such pixel within ≈ 3σ
    take ``fallback``.

    Args:
        image: ``(3, H, W)`` RGB. mask: ``(H, W)`` in [0, 1] (> 0 on the strokes). sigma: σ (px, > 0,
            ≤ :data:`MAX_PX`).
        fallback: ``(3, 1, 1)`` colour.

    Returns:
        ``(3, H, W)`` float32 on ``image``'s device.

    Raises:
        ValueError: ``image`` not ``(3, H, W)``, ``mask`` not ``(H, W)``, ``fallback`` not 3 values, ``sigma`` not
            in (0, :data:`MAX_PX`] (all before any compute).
    """
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    if image.dim() != 3 or image.shape[0] != 3 or np.shape(mask) != tuple(image.shape[1:]) or fallback.numel() != 3:
        raise ValueError(f"local_fill needs image (3, H, W), mask (H, W) and a fallback of 3 values; got "
                         f"{tuple(image.shape)}, {np.shape(mask)}, {tuple(fallback.shape)}")
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma <= MAX_PX:
        raise ValueError(f"sigma must be > 0 and ≤ {MAX_PX:g} px; got {sigma!r}")
    w = (distance_transform_edt(np.asarray(mask) <= 0) > 1.0).astype(np.float64)
    a = image.detach().cpu().double().numpy()
    den = gaussian_filter(w, sigma, mode="mirror", truncate=3.0)
    num = np.stack([gaussian_filter(a[c] * w, sigma, mode="mirror", truncate=3.0) for c in range(3)])
    ok = den > 1e-3
    fill = np.where(ok, num / np.where(ok, den, 1.0), fallback.detach().cpu().double().numpy().reshape(3, 1, 1))
    return torch.from_numpy(fill).float().to(image.device)


def trace_image(model, image: Tensor, families: str | Sequence[str] | None = None, power: float = 4.0,
                explain_rounds: int = 4, mask_px: float = 6.0, n_splines: int = 24, rounds: int = 2,
                fill: str = "local", floor: float = FLOOR, **options) -> tuple[TraceResult, np.ndarray]:
    """Trace the curves of an image, explaining away what is already traced.

    The curve map's objective raises the families' activations to the 4th power, so its gradient
    at a curve grows with the cube of the curve's activation: the strongest curve takes most of the
    attribution and a curve half as strong gets about an eighth, below the tracer's level τ (a
    fraction of the map's 99.5th percentile). So the image is traced in ``explain_rounds``: each
    round computes the curve map (:func:`~.extraction.curve_map`, baseline: the image's mean colour),
    fits splines to it (:func:`trace` with ``rounds``), and then paints the pixels within
    ``mask_px / 2`` px of every spline kept so far with the local background (``fill="local"``:
    :func:`local_fill`, σ = ``mask_px / 3``) before the next map is computed. A spline is kept when
    at least a share ``novelty`` (default 0.5) of its points lie farther than ``min_sep / 3`` px
    (``min_sep`` as in :func:`trace`, default 8) from every spline kept so far (this round's
    included).

    Two choices keep later maps from inventing curves ("ghost" splines). The fill: painting with the
    image's mean colour (``fill="mean"``, the former tracer) leaves the painted band's edges against
    the background, which later maps trace as arcs parallel to the curves. The scale: a later map is
    divided by ``max(its own 99.5th percentile, floor × the first map's)`` before τ applies; with each
    map on its own scale (``floor=0``) whatever faint residue is left is raised to full scale — a dark
    4-px ring on grey then gives 24 splines, 16 off the ring (the defaults: 6, all on it).

    The defaults and what they were chosen against: :data:`FLOOR`.

    Args:
        model: :class:`~circuits.model.InceptionV1` (any checkpoint, edited models too).
        image: ``(3, H, W)`` RGB in [0, 1], ≥ 32 px. families, power: of the curve map.
        explain_rounds: maps computed (≥ 1; 1: :func:`trace` with ``rounds`` on the image's own curve map).
        mask_px: width (px, > 0, ≤ :data:`MAX_PX`) of the band painted over each kept spline.
        fill: ``"local"`` (the local background, default) or ``"mean"`` (the image's mean colour).
        floor: later maps are scaled by at least ``floor`` × the first map's 99.5th percentile
            (finite, ≥ 0; 0: each map on its own scale; default :data:`FLOOR` = 0.75).
        n_splines: most splines kept in all (≥ 1). rounds: :func:`trace`'s residual rounds per map.
        options: further keyword arguments of :func:`trace` (``tau``, ``kappa``, ``steps``, ``lr``,
            ``seeds``, ``min_sep``, ``novelty``, ``avoid``, ``mu`` …).

    Returns:
        ``(result, first_map)``: the kept splines (:class:`TraceResult`; ``score`` is the mean
        normalised value along each spline on the map of the round that found it; round order,
        best first within a round; ``seconds`` includes the maps) and the first round's
        ``(H, W)`` curve map (what a figure shows).

    Raises:
        ValueError: bad image (not float, under 32 px, a value outside [0, 1]), power, rounds, ``mask_px``
            (> 0, ≤ :data:`MAX_PX`), ``fill``, ``floor`` or ``n_splines``, a bad :func:`trace` setting or ``avoid`` shape
            (all before any compute); TypeError: an unknown option; KeyError: unknown family. A flat image (:data:`FLAT`) gives none.
    """
    from .extraction import curve_families, curve_map

    t0 = time.perf_counter()
    _check_trace_image(image, explain_rounds, mask_px, n_splines, rounds, options, fill, floor)
    curve_families(model, families)  # unknown family: KeyError before any compute
    radius = options.get("min_sep", 8.0) / 3
    # contiguous: the network's float32 sums depend on the layout; the fit amplified that by 0.35 px
    img = image.detach().float().clone(memory_format=torch.contiguous_format)
    base = img.mean((1, 2), keepdim=True)
    if float((img - base).abs().max()) < FLAT:  # no contrast, no curve: the map would be rounding noise
        return TraceResult(np.zeros((0, 4, 2)), np.zeros(0), np.zeros(0), 0.0, np.zeros(0, int)), np.zeros(img.shape[1:])
    kept, polys = [], []  # kept: (control points, score, length, map index)
    for r in range(explain_rounds):
        m = curve_map(model, img, families, power, baseline=base.view(3))[0].cpu().numpy()
        q = max(float(np.quantile(m, 0.995)), 1e-12)
        if r == 0:
            first, q0 = m, q  # the image's own map: what the figure shows, and the scale later maps are held to
        res = trace(m, n_splines=n_splines, rounds=rounds, scale=q if r == 0 else max(q, floor * q0), **options)
        new = 0
        for c, sc, ln in zip(res.ctrl, res.score, res.length):
            poly = bezier_np(c, 64)
            if len(kept) < n_splines and _novelty(poly, polys, radius) >= options.get("novelty", 0.5):
                kept.append((c, float(sc), float(ln), r))
                polys.append(poly)
                new += 1
        if not new or len(kept) >= n_splines:
            break
        img = _paint(img, np.array([k[0] for k in kept]), mask_px, fill, base)
    ctrl, score, length, found_by = (list(x) for x in zip(*kept)) if kept else ([], [], [], [])
    return TraceResult(np.array(ctrl).reshape(-1, 4, 2), np.array(score), np.array(length), time.perf_counter() - t0,
                       np.array(found_by, dtype=int)), first


def _paint(img: Tensor, ctrl: np.ndarray, mask_px: float, fill: str, base: Tensor) -> Tensor:
    """``img (3, H, W)`` with the ``mask_px``-wide strokes of splines ``ctrl (K, 4, 2)`` painted over
    with ``base (3, 1, 1)`` (``fill="mean"``) or the local background (:func:`local_fill`, σ = mask_px / 3)."""
    mask = band(ctrl, tuple(img.shape[1:]), mask_px)
    paint = base if fill == "mean" else local_fill(img, mask, mask_px / 3, base)
    mask = torch.from_numpy(mask).to(img.device)
    return img * (1 - mask) + paint * mask


#: an image whose pixels all lie within this of its mean colour (half an 8-bit grey level) is flat:
#: :func:`trace_image` returns no splines instead of tracing the map's rounding noise
FLAT = 0.5 / 255

#: the widest ``mask_px`` and ``sigma`` (px) of :func:`trace_image` and :func:`local_fill`, as the CLI's pixel
#: options: a Gaussian of σ = 10⁶ px took minutes, of 10⁹ px all the memory (its kernel has 6σ + 1 taps)
MAX_PX = 1000.0

#: the keyword arguments :func:`trace_image` passes on to :func:`trace`
_TRACE_OPTIONS = frozenset({"tau", "kappa", "steps", "lr", "seed_length", "avoid", "mu", "min_sep", "seeds",
                            "curvatures", "novelty", "min_length"})


def band(ctrl: np.ndarray, size: tuple[int, int], width: float) -> np.ndarray:
    """Union of the strokes of splines ``ctrl (K, 4, 2)`` (px) as a ``(H, W)`` float mask in [0, 1]:
    ``clamp(width/2 + 0.5 − d, 0, 1)`` as :func:`render`, with ``d`` the Euclidean distance
    transform (:func:`scipy.ndimage.distance_transform_edt`) to the pixels the curves pass through
    (each sampled every ≤ 0.25 px and rounded), so ``d`` is within 0.71 px of the exact distance.
    Not differentiable; ~50× faster than :func:`render` for the suppression bands of :func:`trace`
    and the masks of :func:`trace_image`. No splines → zeros.
    """
    from scipy.ndimage import distance_transform_edt

    h, w = size
    free = np.ones((h, w), bool)
    for c in np.asarray(ctrl, dtype=np.float64).reshape(-1, 4, 2):
        chord = float(np.linalg.norm(np.diff(c, axis=0), axis=1).sum())  # ≥ the arc length
        xy = np.round(bezier_np(c, max(2, int(np.ceil(4 * chord)) + 1))).astype(int)
        ok = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        free[xy[ok, 1], xy[ok, 0]] = False
    if free.all():
        return np.zeros((h, w), np.float32)
    return np.clip(width / 2 + 0.5 - distance_transform_edt(free), 0, 1).astype(np.float32)


def bezier_np(ctrl: np.ndarray, n: int = 128) -> np.ndarray:
    """:func:`bezier` of one ``(4, 2)`` array → ``(n, 2)`` float64."""
    return bezier(torch.as_tensor(ctrl, dtype=torch.float64)[None], n)[0].numpy()


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over the points of polyline ``a (K, 2)`` of their distance to polyline ``b (L, 2)`` (px)."""
    d = _seg_distance(torch.as_tensor(b, dtype=torch.float64)[None], torch.as_tensor(a, dtype=torch.float64))
    return float(d.mean())

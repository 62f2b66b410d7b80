"""Synthetic scenes with ground truth for the curve-extraction and spline-tracing benchmark.

Every scene is composed from the project's stimulus renderer (:mod:`studies.stimuli`, exact
anti-aliased distances; its orientation convention): circular arcs (curves) of radius 10–60
px and arc 90–200°, straight segments (lines) of 40–110 px, sharp angles (opening 50–130°),
on a plain, textured (Gaussian-filtered noise) or noisy (i.i.d. pixel noise) background,
with 0–2 occluders (filled rectangles of a random grey) drawn on top. Strokes are dark (grey
0–0.3) on a lighter background, 2 px wide. All random choices come from one seeded
:class:`numpy.random.Generator` per scene (``seed``, ``index``), so scene ``i`` is the same
whatever the set's length.

Ground truth (bool ``(H, W)``): ``curve`` / ``line`` / ``angle`` pixels are those whose stroke
coverage is ≥ 0.5 and that no occluder covers (coverage < 0.5). Each curve's full analytic arc
(also where occluded) is kept as a polyline in pixel coordinates (x right, y down) for the
spline-tracing distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from studies.measure import stimuli as S

BACKGROUNDS = ("plain", "texture", "noise")


@dataclass
class Scene:
    """One synthetic image and its ground truth.

    Attributes:
        image: ``(3, H, W)`` float32 RGB in [0, 1].
        curve, line, angle, occluder: bool ``(H, W)`` masks (visible stroke pixels; occluders).
        arcs: one ``(K, 2)`` float array per curve: points (x, y) in px (x right, y down, pixel
            centres at integers) every ~0.5 px along the arc inside the image, occluded parts
            included.
        background: ``"plain"``, ``"texture"`` or ``"noise"``.
        index: position in the set; meta: the drawing parameters.
    """

    image: Tensor
    curve: np.ndarray
    line: np.ndarray
    angle: np.ndarray
    occluder: np.ndarray
    arcs: list[np.ndarray]
    background: str
    index: int
    meta: list[dict] = field(default_factory=list)


def arc_points(orientation: float, radius: float, arc_degrees: float, dx: float, dy: float, size: int,
               step_px: float = 0.5, clip: bool = True) -> np.ndarray:
    """Points along a :func:`studies.stimuli.curves` arc, in pixel coordinates (x right, y down).

    The arc passes through the stimulus centre (render centre + (dx, dy), dy up); its circle's
    centre lies at ``radius`` in direction ``orientation`` (deg, counter-clockwise, y up).
    With ``clip`` only the points inside the image are kept. → ``(K, 2)`` float64.
    """
    th = math.radians(orientation)
    c = (size - 1) / 2
    ccx, ccy = dx + radius * math.cos(th), dy + radius * math.sin(th)  # y-up, relative to centre
    half = math.radians(arc_degrees) / 2
    n = max(2, int(math.ceil(radius * 2 * half / step_px)) + 1)
    phi = th + math.pi + np.linspace(-half, half, n)
    x = ccx + radius * np.cos(phi)
    y = ccy + radius * np.sin(phi)
    pts = np.stack([c + x, c - y], 1)
    if clip:
        pts = pts[((pts >= -0.5) & (pts <= size - 0.5)).all(1)]
    return pts


def _background(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    level = rng.uniform(0.65, 0.95)
    if kind == "plain":
        return np.full((size, size), level)
    if kind == "noise":
        return np.clip(level + rng.normal(0, 0.06, (size, size)), 0, 1)
    from scipy.ndimage import gaussian_filter

    n = gaussian_filter(rng.normal(0, 1, (size, size)), rng.uniform(1.5, 3.0))
    return np.clip(level + 0.12 * n / (n.std() + 1e-9), 0, 1)


def _ink(stim: S.Stimuli) -> np.ndarray:
    return stim.ink()[0].numpy().astype(np.float64)


def _inside(rng, size: int, margin: float) -> tuple[float, float]:
    h = (size - 1) / 2 - margin
    return float(rng.uniform(-h, h)), float(rng.uniform(-h, h))


def make_scene(index: int, size: int = 128, seed: int = 0, occluders: int | None = None,
               background: str | None = None) -> Scene:
    """Scene ``index`` of the seeded set (module docstring).

    Args:
        index: scene number (≥ 0). size: image side, px (≥ 64). seed: set seed.
        occluders: number of occluders (default random 0–2). background: one of
            :data:`BACKGROUNDS` (default: by ``index`` modulo 3).

    Raises:
        ValueError: bad size / background / occluders.
    """
    if size < 64:
        raise ValueError(f"scene size must be ≥ 64 px; got {size}")
    background = BACKGROUNDS[index % 3] if background is None else background
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}; got {background!r}")
    rng = np.random.default_rng([seed, index])
    img = _background(rng, background, size)
    curve = np.zeros((size, size))
    line = np.zeros((size, size))
    angle = np.zeros((size, size))
    arcs, meta = [], []
    n_curves, n_lines, n_angles = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
    kinds = ["curve"] * n_curves + ["line"] * n_lines + ["angle"] * n_angles
    for kind in rng.permutation(kinds):
        fg = float(rng.uniform(0.0, 0.3))
        o = float(rng.uniform(0, 360))
        pos = _inside(rng, size, 0.22 * size)
        if kind == "curve":
            r = float(np.exp(rng.uniform(math.log(10), math.log(60))))
            a = float(rng.uniform(90, 200))
            ink = _ink(S.curves([o], [r], arc_degrees=a, positions=[pos], size=size))
            arcs.append(arc_points(o, r, a, pos[0], pos[1], size))
            curve = np.maximum(curve, ink)
            meta.append(dict(kind="curve", orientation=o, radius=r, arc_degrees=a, dx=pos[0], dy=pos[1], fg=fg))
        elif kind == "line":
            ln = float(rng.uniform(40, 110))
            ink = _ink(S.lines([o], length=ln, positions=[pos], size=size))
            line = np.maximum(line, ink)
            meta.append(dict(kind="line", orientation=o, length=ln, dx=pos[0], dy=pos[1], fg=fg))
        else:
            op = float(rng.uniform(50, 130))
            ink = _ink(S.angles([o], opening_degrees=op, positions=[pos], size=size))
            # a finite angle: arms cut at 30 px from the corner
            yy, xx = np.mgrid[0:size, 0:size]
            c = (size - 1) / 2
            ink *= np.hypot(xx - c - pos[0], yy - c + pos[1]) <= 30
            angle = np.maximum(angle, ink)
            meta.append(dict(kind="angle", orientation=o, opening_degrees=op, dx=pos[0], dy=pos[1], fg=fg))
        img = img * (1 - ink) + fg * ink
    n_occ = int(rng.integers(0, 3)) if occluders is None else int(occluders)
    if n_occ < 0:
        raise ValueError(f"occluders must be ≥ 0; got {occluders}")
    occ = np.zeros((size, size))
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(n_occ):
        w, h = rng.uniform(0.1, 0.25, 2) * size
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        o = ((np.abs(xx - cx) <= w / 2) & (np.abs(yy - cy) <= h / 2)).astype(float)
        g = float(rng.uniform(0.35, 0.6))
        img = img * (1 - o) + g * o
        occ = np.maximum(occ, o)
        meta.append(dict(kind="occluder", x=float(cx), y=float(cy), w=float(w), h=float(h), grey=g))
    vis = occ < 0.5
    image = torch.from_numpy(np.repeat(img[None], 3, 0).astype(np.float32))
    return Scene(image, (curve >= 0.5) & vis, (line >= 0.5) & vis, (angle >= 0.5) & vis, occ >= 0.5, arcs,
                 background, index, meta)


def make_scenes(n: int, size: int = 128, seed: int = 0, start: int = 0, occluders: int | None = None) -> list[Scene]:
    """Scenes ``start … start + n − 1`` of the seeded set (:func:`make_scene`)."""
    if n < 1:
        raise ValueError(f"n must be ≥ 1; got {n}")
    return [make_scene(start + i, size, seed, occluders) for i in range(n)]

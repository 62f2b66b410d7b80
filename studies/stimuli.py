"""Synthetic stimuli of the Curve Detectors article, rendered anti-aliased and deterministically.

Orientation convention (used everywhere in this project)
--------------------------------------------------------
Angles are in degrees, counter-clockwise from the image's +x axis (rightwards) with +y
pointing *up* the image. A curve of orientation θ is an arc of a circle whose centre lies
at distance ``radius`` from the stimulus centre in direction θ, so the arc passes through
the stimulus centre and *opens towards* θ: θ = 90° is a "∪" (centre above), θ = 270° a
"∩", θ = 0° a "⊂"-shaped curve opening rightwards. A straight line is the infinite-radius
limit: the line through the centre perpendicular to θ (θ and θ + 180° give the same line).
Source: Cammarata et al., "Curve Detectors", Distill 2020 (stimuli pass through the
centre; the circle's centre lies in the orientation direction; the border clips them).

Rendering: dark strokes on a light background; each pixel's ink is the stroke coverage
estimated from the exact distance of the pixel centre to the arc (a 1-px linear ramp at the
edge), so strokes are anti-aliased and sub-pixel positioned; no randomness.

Stroke width, radius range and image size are not published; they are parameters here
(defaults: 2 px strokes, radii 8–200 px).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

#: Default radii (px), geometric from high curvature to nearly straight, for a 91-px RF.
DEFAULT_RADII = (8.0, 12.0, 18.0, 27.0, 40.0, 60.0, 90.0, 135.0, 200.0)


class StimulusError(ValueError):
    """A stimulus parameter is out of range."""


def _check_finite(name: str, values, lo=None, hi=None, allow_inf=False) -> list[float]:
    vals = [float(v) for v in np.atleast_1d(np.asarray(values, dtype=float))]
    if not vals:
        raise StimulusError(f"{name} is empty")
    for v in vals:
        if math.isnan(v) or (math.isinf(v) and not allow_inf):
            raise StimulusError(f"{name} must be finite numbers; got {v}")
        if lo is not None and v < lo:
            raise StimulusError(f"{name} must be ≥ {lo}; got {v}")
        if hi is not None and v > hi:
            raise StimulusError(f"{name} must be ≤ {hi}; got {v}")
    return vals


def _colour(name: str, c) -> tuple[float, float, float]:
    if isinstance(c, (int, float)):
        c = (c, c, c)
    c = tuple(float(v) for v in c)
    if len(c) != 3 or any(math.isnan(v) or not 0 <= v <= 1 for v in c):
        raise StimulusError(f"{name} must be a grey level or an RGB triple in [0, 1]; got {c}")
    return c


@dataclass
class Stimuli:
    """A parameter table of stimuli, rendered on demand at any size and centre.

    ``meta`` has one row per stimulus (columns ``kind``, ``orientation`` (deg), ``radius``
    (px; ``inf`` for lines), ``stroke_width`` (px), ``arc_degrees``, ``fg``, ``bg`` …).
    Rendering happens in :meth:`render` / :meth:`batches`, so a sweep of thousands of
    stimuli never holds them all in memory.
    """

    meta: pd.DataFrame
    size: int = 224
    center: tuple[float, float] | None = None
    _params: list[dict] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.meta)

    def at(self, size: int, center: tuple[float, float] | float | None = None) -> "Stimuli":
        """The same stimuli rendered in a ``size``-px square with the stimulus centre at
        ``center`` (pixel coordinates (x, y); a single number means (c, c))."""
        if isinstance(center, (int, float)):
            center = (float(center), float(center))
        _check_finite("size", size, lo=1)
        return Stimuli(self.meta, int(size), center, self._params)

    def _center(self) -> tuple[float, float]:
        return self.center if self.center is not None else ((self.size - 1) / 2, (self.size - 1) / 2)

    def render(self, rows: Sequence[int] | slice | None = None) -> Tensor:
        """Render stimuli ``rows`` (default all) → float32 ``(n, 3, size, size)`` RGB in [0, 1].

        Vectorised over stimuli of the same kind (one broadcast distance computation per kind).
        """
        idx = list(range(len(self))[rows] if isinstance(rows, slice) else (range(len(self)) if rows is None else rows))
        cx, cy = self._center()
        ax = torch.arange(self.size, dtype=torch.float32)
        x = (ax - cx).view(1, 1, -1)      # x right
        y = (cy - ax).view(1, -1, 1)      # y up
        out = torch.empty(len(idx), 3, self.size, self.size, dtype=torch.float32)
        by_kind: dict[str, list[int]] = {}
        for n, i in enumerate(idx):
            by_kind.setdefault(self._params[i]["kind"], []).append(n)
        for kind, ns in by_kind.items():
            ps = [self._params[idx[n]] for n in ns]
            ink = _RENDERERS[kind](x, y, ps)  # (k, size, size)
            fg = torch.tensor([p["fg"] for p in ps], dtype=torch.float32).view(-1, 3, 1, 1)
            bg = torch.tensor([p["bg"] for p in ps], dtype=torch.float32).view(-1, 3, 1, 1)
            ink = ink.unsqueeze(1)
            out[ns] = bg + (fg - bg) * ink
        return out

    def batches(self, batch_size: int = 128) -> Iterator[tuple[pd.DataFrame, Tensor]]:
        """Yield ``(meta rows, images (b, 3, size, size))`` in order."""
        for s in range(0, len(self), batch_size):
            sl = slice(s, min(s + batch_size, len(self)))
            yield self.meta.iloc[sl], self.render(sl)

    def __add__(self, other: "Stimuli") -> "Stimuli":
        meta = pd.concat([self.meta, other.meta], ignore_index=True)
        return Stimuli(meta, self.size, self.center, self._params + other._params)


def _col(ps: list[dict], key: str, default=None) -> Tensor:
    return torch.tensor([p.get(key, default) for p in ps], dtype=torch.float32).view(-1, 1, 1)


def _coverage(dist: Tensor, width: Tensor) -> Tensor:
    """Anti-aliased ink from the distance of each pixel centre to the stroke's centre line
    (a 1-px linear ramp centred on the stroke edge)."""
    return (width / 2 - dist + 0.5).clamp(0, 1)


def _arc_distance(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    """Exact distance from each pixel centre to each arc, ``(k, H, W)``."""
    th = torch.deg2rad(_col(ps, "orientation"))
    r = _col(ps, "radius")
    half = torch.deg2rad(_col(ps, "arc_degrees")) / 2
    ccx, ccy = r * torch.cos(th), r * torch.sin(th)  # circle centres
    dx, dy = x - ccx, y - ccy
    d = (torch.sqrt(dx * dx + dy * dy) - r).abs()
    if bool((half >= math.pi).all()):
        return d
    # angle of each pixel around the circle centre relative to the arc's midpoint (the
    # stimulus centre, in direction θ + 180° seen from the circle centre)
    phi = torch.atan2(dy, dx) - (th + math.pi)
    phi = torch.remainder(phi + math.pi, 2 * math.pi) - math.pi
    ends = []
    for sgn in (-1.0, 1.0):
        a = th + math.pi + sgn * half
        ex, ey = ccx + r * torch.cos(a), ccy + r * torch.sin(a)
        ends.append(torch.sqrt((x - ex) ** 2 + (y - ey) ** 2))
    inside = (phi.abs() <= half) | (half >= math.pi)
    return torch.where(inside, d, torch.minimum(*ends))


def _render_curve(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    return _coverage(_arc_distance(x, y, ps), _col(ps, "stroke_width"))


def _render_line(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    th = torch.deg2rad(_col(ps, "orientation"))
    nx, ny = torch.cos(th), torch.sin(th)
    d = (x * nx + y * ny).abs()
    length = _col(ps, "length", math.inf)
    t = (-x * ny + y * nx).abs() - length / 2
    d = torch.where(t > 0, torch.sqrt(d * d + t.clamp(min=0) ** 2), d)
    return _coverage(d, _col(ps, "stroke_width"))


_RENDERERS = {"curve": _render_curve, "line": _render_line}


def _build(rows: list[dict], size: int) -> Stimuli:
    meta = pd.DataFrame(rows)
    meta.insert(0, "stimulus", range(len(meta)))
    return Stimuli(meta, size, None, rows)


def curves(
    orientations: Sequence[float] = tuple(range(0, 360, 5)),
    radii: Sequence[float] = DEFAULT_RADII,
    stroke_width: float = 2.0,
    arc_degrees: float = 360.0,
    fg=0.0,
    bg=1.0,
    size: int = 224,
) -> Stimuli:
    """Circular arcs through the stimulus centre: orientation × radius grid.

    Args:
        orientations: degrees, any real values (the project's convention, module docstring).
        radii: px, > 0; ``inf`` gives a straight line.
        stroke_width: px, > 0.
        arc_degrees: angular extent of the arc around its circle, centred on the stimulus
            centre, in (0, 360]; 360 draws the whole circle (clipped by the border).
        fg, bg: stroke and background colour (grey level or RGB in [0, 1]).
        size: default render size in px (tuning re-renders at the receptive-field size).

    Returns:
        :class:`Stimuli`, rows ordered orientation-major.

    Raises:
        StimulusError: NaN/negative/zero radius, NaN orientation, non-positive stroke or size,
            colours outside [0, 1] — before any rendering.
    """
    ors = _check_finite("orientations", orientations)
    rad = _check_finite("radii", radii, allow_inf=True)
    if any(r <= 0 for r in rad):
        raise StimulusError(f"radii must be > 0 px; got {[r for r in rad if r <= 0]}")
    sw = _check_finite("stroke_width", stroke_width)[0]
    if sw <= 0:
        raise StimulusError(f"stroke_width must be > 0 px; got {sw}")
    arc = _check_finite("arc_degrees", arc_degrees)[0]
    if not 0 < arc <= 360:
        raise StimulusError(f"arc_degrees must be in (0, 360]; got {arc}")
    if int(size) < 1:
        raise StimulusError(f"size must be ≥ 1 px; got {size}")
    fg, bg = _colour("fg", fg), _colour("bg", bg)
    rows = []
    for o in ors:
        for r in rad:
            kind = "line" if math.isinf(r) else "curve"
            rows.append(dict(kind=kind, orientation=o, radius=r, curvature=0.0 if math.isinf(r) else 1.0 / r,
                             stroke_width=sw, arc_degrees=arc, fg=fg, bg=bg))
    return _build(rows, int(size))


def lines(
    orientations: Sequence[float] = tuple(range(0, 360, 5)),
    stroke_width: float = 2.0,
    length: float = math.inf,
    fg=0.0,
    bg=1.0,
    size: int = 224,
) -> Stimuli:
    """Straight lines through the stimulus centre, perpendicular to each orientation (deg).

    ``length`` (px) limits the segment, centred on the stimulus centre; ``inf`` spans the image.

    Raises:
        StimulusError: as :func:`curves`.
    """
    ors = _check_finite("orientations", orientations)
    sw = _check_finite("stroke_width", stroke_width)[0]
    if sw <= 0:
        raise StimulusError(f"stroke_width must be > 0 px; got {sw}")
    ln = _check_finite("length", length, allow_inf=True)[0]
    if ln <= 0:
        raise StimulusError(f"length must be > 0 px; got {ln}")
    fg, bg = _colour("fg", fg), _colour("bg", bg)
    rows = [dict(kind="line", orientation=o, radius=math.inf, curvature=0.0, stroke_width=sw, arc_degrees=0.0,
                 length=ln, fg=fg, bg=bg) for o in ors]
    return _build(rows, int(size))

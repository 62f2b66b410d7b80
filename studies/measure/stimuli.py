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

Every other family follows the same convention, so stimuli of the same orientation bulge
the same way: an angle of orientation θ has its corner at the stimulus centre and its two
arms opening towards θ (a rounded angle of corner radius r is a curve of radius r between
its arms); a filled curve fills the disc side (towards θ); the teeth of a combed curve
point "inward" towards θ (the circle's centre) or "outward" away from it.

Positions: ``dx``, ``dy`` (px) move a stimulus's centre away from the render centre, ``dx``
rightwards and ``dy`` *up* (the same y-up axes as the orientations).

Rendering: dark strokes on a light background by default (``fg``/``bg``: grey levels or RGB
triples in [0, 1], for every family); each pixel's ink is the stroke coverage estimated from
the exact distance of the pixel centre to the shape (a 1-px linear ramp at the edge; filled
shapes use the signed distance to their border), so strokes are anti-aliased and sub-pixel
positioned; no randomness. The rasterisers (:mod:`studies.measure.render`) are vectorised
over the stimuli of one kind (one broadcast distance computation per kind and batch).

Stroke width, radius range and image size are not published; they are parameters here
(defaults: 2 px strokes, radii 8–200 px). Every parameter is validated when a family is built,
before anything is rendered: a bad value raises :class:`StimulusError` naming it and its range.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from studies.measure.render import RENDERERS, column

#: Default radii (px), geometric from high curvature to nearly straight, for a 91-px RF.
DEFAULT_RADII = (8.0, 12.0, 18.0, 27.0, 40.0, 60.0, 90.0, 135.0, 200.0)

#: Combing sides: teeth extent along the curve's outward normal, in ``length_px`` (inward = towards θ).
COMB_SIDES = {"inward": (-1.0, 0.0), "outward": (0.0, 1.0), "both": (-1.0, 1.0)}


class StimulusError(ValueError):
    """A stimulus parameter is out of range."""


# ----------------------------------------------------------------------------- validation
def _check_finite(name: str, values, lo=None, hi=None, allow_inf=False) -> list[float]:
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        raise StimulusError(f"{name} must be numbers; got {values!r}") from None
    vals = [float(v) for v in arr.ravel()]
    rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
    if not vals:
        raise StimulusError(f"{name} is empty; give at least one value in {rng}")
    for v in vals:
        if math.isnan(v) or (math.isinf(v) and not allow_inf):
            raise StimulusError(f"{name} must be finite numbers in {rng}; got {v}")
        if lo is not None and v < lo:
            raise StimulusError(f"{name} must be ≥ {lo} (valid range {rng}); got {v}")
        if hi is not None and v > hi:
            raise StimulusError(f"{name} must be ≤ {hi} (valid range {rng}); got {v}")
    return vals


def _positive(name: str, values, allow_inf: bool = False, unit: str = "px") -> list[float]:
    """Values > 0 (``inf`` allowed only if ``allow_inf``)."""
    rng = f"(0, inf]{' (inf = straight)' if allow_inf else ''}" if allow_inf else "(0, inf)"
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        raise StimulusError(f"{name} must be numbers in {rng} {unit}; got {values!r}") from None
    vals = [float(v) for v in arr.ravel()]
    if not vals:
        raise StimulusError(f"{name} is empty; give at least one value in {rng} {unit}")
    bad = [v for v in vals if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf)]
    if bad:
        raise StimulusError(f"{name} must be > 0 {unit}{'' if allow_inf else ' and finite'} (valid range {rng}); "
                            f"got {bad if len(bad) > 1 else bad[0]}")
    return vals


def _scalar(name: str, value, lo: float, hi: float, lo_open: bool = True, hi_open: bool = False,
            unit: str = "") -> float:
    rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}{' ' + unit if unit else ''}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise StimulusError(f"{name} must be a number in {rng}; got {value!r}") from None
    if math.isnan(v) or (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
        raise StimulusError(f"{name} must be in {rng}; got {v}")
    return v


def _size(size) -> int:
    try:
        s = float(size)
    except (TypeError, ValueError):
        raise StimulusError(f"size must be an integer ≥ 1 px; got {size!r}") from None
    if math.isnan(s) or s < 1 or s != int(s):
        raise StimulusError(f"size must be an integer ≥ 1 px (valid range [1, inf)); got {size}")
    return int(s)


def _colour(name: str, c) -> tuple[float, float, float]:
    if isinstance(c, (int, float)):
        c = (c, c, c)
    try:
        c = tuple(float(v) for v in c)
    except (TypeError, ValueError):
        raise StimulusError(f"{name} must be a grey level or an RGB triple in [0, 1]; got {c!r}") from None
    if len(c) != 3 or any(math.isnan(v) or not 0 <= v <= 1 for v in c):
        raise StimulusError(f"{name} must be a grey level or an RGB triple in [0, 1]; got {c}")
    return c


def _positions(positions) -> list[tuple[float, float]]:
    try:
        arr = np.asarray(positions, dtype=float)
    except (TypeError, ValueError):
        raise StimulusError(f"positions must be (dx, dy) pairs in px; got {positions!r}") from None
    if arr.ndim == 1 and arr.shape == (2,):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0:
        raise StimulusError(f"positions must be a non-empty sequence of (dx, dy) pairs in px; got {positions!r}")
    if not np.isfinite(arr).all():
        raise StimulusError(f"positions must be finite (dx, dy) pairs in px (valid range (-inf, inf)); got {arr.tolist()}")
    return [(float(a), float(b)) for a, b in arr]


def _common(stroke_width, fg, bg, size) -> tuple[float, tuple, tuple, int]:
    sw = _positive("stroke_width", stroke_width)
    if len(sw) != 1:
        raise StimulusError(f"stroke_width must be one number > 0 px; got {stroke_width!r}")
    return sw[0], _colour("fg", fg), _colour("bg", bg), _size(size)


def _arc(arc_degrees) -> float:
    return _scalar("arc_degrees", arc_degrees, 0.0, 360.0, unit="deg")


def orientation_grid(step: float = 5.0, start: float = 0.0) -> list[float]:
    """Orientations ``start, start + step, …`` covering [start, start + 360) (deg).

    ``step=0.5`` gives the 720 bins of the published radial tuning data.

    Raises:
        StimulusError: ``step`` not in (0, 360].
    """
    step = _scalar("orientation_step", step, 0.0, 360.0, unit="deg")
    start = _check_finite("start", start)[0]
    n = int(math.floor(360.0 / step + 1e-9))
    return [start + i * step for i in range(n)]


def radius_grid(n: int = 32, lo: float = 8.0, hi: float = 200.0) -> list[float]:
    """``n`` radii (px) geometrically spaced from ``lo`` to ``hi`` (high to low curvature).

    Raises:
        StimulusError: ``n`` < 1, ``lo``/``hi`` not > 0, or ``lo`` > ``hi``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise StimulusError(f"n must be an integer ≥ 1; got {n!r}")
    lo, hi = _positive("lo", lo)[0], _positive("hi", hi)[0]
    if lo > hi:
        raise StimulusError(f"lo must be ≤ hi; got lo={lo}, hi={hi}")
    if n == 1:
        return [lo]
    return [float(v) for v in np.geomspace(lo, hi, n)]


# ----------------------------------------------------------------------------- the table
@dataclass
class Stimuli:
    """A parameter table of stimuli, rendered on demand at any size and centre.

    ``meta`` has one row per stimulus (columns ``stimulus``, ``kind``, ``orientation`` (deg),
    ``radius`` (px; ``inf`` for lines), ``curvature`` (1/px), ``stroke_width`` (px), ``fg``,
    ``bg``, ``dx``, ``dy`` (px) and the family's own parameters). Rendering happens in
    :meth:`render` / :meth:`batches`, so a sweep of thousands of stimuli never holds them
    all in memory.
    """

    meta: pd.DataFrame
    size: int = 224
    center: tuple[float, float] | None = None
    _params: list[dict] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.meta)

    def at(self, size: int, center: tuple[float, float] | float | None = None) -> Stimuli:
        """The same stimuli rendered in a ``size``-px square with the stimulus centre at
        ``center`` (pixel coordinates (x, y) of pixel centres; a single number means (c, c);
        default the middle of the image)."""
        size = _size(size)
        if isinstance(center, (int, float)):
            center = (float(center), float(center))
        if center is not None:
            c = _check_finite("center", center)
            if len(c) != 2:
                raise StimulusError(f"center must be a number or an (x, y) pair; got {center!r}")
            center = (c[0], c[1])
        return Stimuli(self.meta, size, center, self._params)

    def subset(self, rows: Sequence[int]) -> Stimuli:
        """The stimuli ``rows`` (positions in this table), renumbered from 0."""
        rows = list(rows)
        meta = self.meta.iloc[rows].reset_index(drop=True)
        meta["stimulus"] = range(len(meta))
        return Stimuli(meta, self.size, self.center, [self._params[i] for i in rows])

    def _center(self) -> tuple[float, float]:
        return self.center if self.center is not None else ((self.size - 1) / 2, (self.size - 1) / 2)

    def ink(self, rows: Sequence[int] | slice | None = None) -> Tensor:
        """Ink coverage in [0, 1] of stimuli ``rows`` → float32 ``(n, size, size)``."""
        idx = self._rows(rows)
        out = torch.empty(len(idx), self.size, self.size, dtype=torch.float32)
        for ns, ink, _, _ in self._render_kinds(idx):
            out[ns] = ink
        return out

    def _rows(self, rows) -> list[int]:
        if rows is None:
            return list(range(len(self)))
        if isinstance(rows, slice):
            return list(range(len(self))[rows])
        return list(rows)

    def _render_kinds(self, idx: list[int]):
        cx, cy = self._center()
        ax = torch.arange(self.size, dtype=torch.float32)
        x = (ax - cx).view(1, 1, -1)  # x right
        y = (cy - ax).view(1, -1, 1)  # y up
        by_kind: dict[str, list[int]] = {}
        for n, i in enumerate(idx):
            by_kind.setdefault(self._params[i]["kind"], []).append(n)
        for kind, ns in by_kind.items():
            ps = [self._params[idx[n]] for n in ns]
            xs, ys = x, y
            if any(p.get("dx", 0.0) or p.get("dy", 0.0) for p in ps):
                xs, ys = x - column(ps, "dx", 0.0), y - column(ps, "dy", 0.0)
            ink = RENDERERS[kind](xs, ys, ps)  # (k, size, size)
            yield ns, ink, ps, len(ns) == len(idx)

    def render(self, rows: Sequence[int] | slice | None = None) -> Tensor:
        """Render stimuli ``rows`` (default all) → float32 ``(n, 3, size, size)`` RGB in [0, 1].

        Vectorised over stimuli of the same kind (one broadcast distance computation per kind).
        """
        idx = self._rows(rows)
        out = None
        for ns, ink, ps, whole in self._render_kinds(idx):
            fg = torch.tensor([p["fg"] for p in ps], dtype=torch.float32).view(-1, 3, 1, 1)
            bg = torch.tensor([p["bg"] for p in ps], dtype=torch.float32).view(-1, 3, 1, 1)
            img = torch.addcmul(bg, fg - bg, ink.unsqueeze(1))
            if whole:
                return img
            if out is None:
                out = torch.empty(len(idx), 3, self.size, self.size, dtype=torch.float32)
            out[ns] = img
        if out is None:
            out = torch.empty(0, 3, self.size, self.size, dtype=torch.float32)
        return out

    def batches(self, batch_size: int = 128) -> Iterator[tuple[pd.DataFrame, Tensor]]:
        """Yield ``(meta rows, images (b, 3, size, size))`` in order."""
        for s in range(0, len(self), batch_size):
            sl = slice(s, min(s + batch_size, len(self)))
            yield self.meta.iloc[sl], self.render(sl)

    def __add__(self, other: Stimuli) -> Stimuli:
        meta = pd.concat([self.meta, other.meta], ignore_index=True)
        meta["stimulus"] = range(len(meta))
        return Stimuli(meta, self.size, self.center, self._params + other._params)


def _build(rows: list[dict], size: int) -> Stimuli:
    meta = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    meta.insert(0, "stimulus", range(len(meta)))
    return Stimuli(meta, size, None, rows)


def _base(kind: str, o: float, r: float, sw: float, fg, bg, pos=(0.0, 0.0), **extra) -> dict:
    d = dict(kind=kind, orientation=o, radius=r, curvature=0.0 if math.isinf(r) else (1.0 / r if r > 0 else math.inf),
             stroke_width=sw)
    d.update(extra)
    d.update(fg=fg, bg=bg, dx=pos[0], dy=pos[1])
    return d


# ----------------------------------------------------------------------------- families
def curves(
    orientations: Sequence[float] = tuple(range(0, 360, 5)),
    radii: Sequence[float] = DEFAULT_RADII,
    stroke_width: float = 2.0,
    arc_degrees: float = 360.0,
    fg=0.0,
    bg=1.0,
    size: int = 224,
    positions: Sequence[tuple[float, float]] = ((0.0, 0.0),),
) -> Stimuli:
    """Circular arcs through the stimulus centre: orientation × radius (× position) grid.

    Args:
        orientations: degrees, any real values (the project's convention, module docstring).
        radii: px, > 0; ``inf`` gives a straight line (kind ``line``).
        stroke_width: px, > 0.
        arc_degrees: angular extent of the arc around its circle, centred on the stimulus
            centre, in (0, 360]; 360 draws the whole circle (clipped by the border). The arc
            length is ``radius · arc_degrees · π/180``.
        fg, bg: stroke and background colour (grey level or RGB in [0, 1]).
        size: default render size in px (tuning re-renders at the receptive-field size).
        positions: ``(dx, dy)`` offsets (px, dx right, dy up) of the stimulus centre from
            the render centre; every orientation × radius is drawn at each.

    Returns:
        :class:`Stimuli`, rows ordered orientation-major, then radius, then position.

    Raises:
        StimulusError: NaN/negative/zero radius, NaN orientation, non-positive stroke or size,
            colours outside [0, 1] — before any rendering.
    """
    ors = _check_finite("orientations", orientations)
    rad = _positive("radii", radii, allow_inf=True)
    sw, fg, bg, size = _common(stroke_width, fg, bg, size)
    arc = _arc(arc_degrees)
    pos = _positions(positions)
    rows = []
    for o in ors:
        for r in rad:
            for p in pos:
                kind = "line" if math.isinf(r) else "curve"
                rows.append(_base(kind, o, r, sw, fg, bg, p, arc_degrees=arc))
    return _build(rows, size)


def lines(
    orientations: Sequence[float] = tuple(range(0, 360, 5)),
    stroke_width: float = 2.0,
    length: float = math.inf,
    fg=0.0,
    bg=1.0,
    size: int = 224,
    positions: Sequence[tuple[float, float]] = ((0.0, 0.0),),
) -> Stimuli:
    """Straight lines through the stimulus centre, perpendicular to each orientation (deg).

    ``length`` (px) limits the segment, centred on the stimulus centre; ``inf`` spans the image.

    Raises:
        StimulusError: as :func:`curves`.
    """
    ors = _check_finite("orientations", orientations)
    sw, fg, bg, size = _common(stroke_width, fg, bg, size)
    ln = _positive("length", length, allow_inf=True)[0]
    pos = _positions(positions)
    rows = [_base("line", o, math.inf, sw, fg, bg, p, arc_degrees=0.0, length=ln) for o in ors for p in pos]
    return _build(rows, size)


def filled_curves(
    orientations: Sequence[float] = tuple(range(0, 360, 5)),
    radii: Sequence[float] = DEFAULT_RADII,
    arc_degrees: float = 360.0,
    fg=0.0,
    bg=1.0,
    size: int = 224,
    positions: Sequence[tuple[float, float]] = ((0.0, 0.0),),
) -> Stimuli:
    """Curves with their disc side filled: the inside of the circle (centre at ``radius`` in
    direction θ), clipped by the border; with ``arc_degrees`` < 360 the circular segment
    between the arc and its chord. The filled region's edge passes through the stimulus
    centre exactly where the curve of the same orientation and radius does.

    ``stroke_width`` is recorded as 0 (no stroke; the edge is anti-aliased over 1 px).

    Raises:
        StimulusError: as :func:`curves` (radii must be finite here).
    """
    ors = _check_finite("orientations", orientations)
    rad = _positive("radii", radii)
    _, fg, bg, size = _common(1.0, fg, bg, size)
    arc = _arc(arc_degrees)
    pos = _positions(positions)
    rows = [_base("filled_curve", o, r, 0.0, fg, bg, p, arc_degrees=arc) for o in ors for r in rad for p in pos]
    return _build(rows, size)


def angles(
    orientations: Sequence[float] = tuple(range(0, 360, 5)),
    opening_degrees: float | Sequence[float] = 90.0,
    corner_radius: float | Sequence[float] = 0.0,
    stroke_width: float = 2.0,
    filled: bool = False,
    fg=0.0,
    bg=1.0,
    size: int = 224,
    positions: Sequence[tuple[float, float]] = ((0.0, 0.0),),
) -> Stimuli:
    """Angles: the boundary of two half-planes meeting at a corner rounded with radius r.

    Drawn as a stroke (two rays joined by the circular arc of radius ``corner_radius``
    tangent to both; ``corner_radius=0`` is a sharp angle), or filled (``filled=True``: the
    inside of the angle). The midpoint of the corner lies on the stimulus centre and the
    angle opens towards the orientation θ, the bisector pointing along θ: a curve and an
    angle of the same orientation bulge the same way, and the rounded part of an angle of
    corner radius r is the curve of radius r (same circle centre, r·(cos θ, sin θ)).

    Args:
        orientations: deg, direction the angle opens toward.
        opening_degrees: angle between the two arms, in (0, 180) deg (one value or several).
        corner_radius: px, ≥ 0 (one value or several).
        stroke_width: px, > 0.
        filled: fill the inside instead of stroking the boundary.

    Returns:
        :class:`Stimuli` (kind ``angle`` or ``filled_angle``), rows orientation × opening ×
        corner radius × position; ``radius`` = ``corner_radius``, ``arc_degrees`` = the
        extent of the rounded corner (180 − opening).

    Raises:
        StimulusError: opening outside (0, 180), negative/NaN corner radius, … — before rendering.
    """
    ors = _check_finite("orientations", orientations)
    opens = _check_finite("opening_degrees", opening_degrees)
    bad = [v for v in opens if not 0 < v < 180]
    if bad:
        raise StimulusError(f"opening_degrees must be in (0, 180) deg; got {bad if len(bad) > 1 else bad[0]}")
    crs = _check_finite("corner_radius", corner_radius, lo=0.0)
    sw, fg, bg, size = _common(stroke_width, fg, bg, size)
    pos = _positions(positions)
    kind = "filled_angle" if filled else "angle"
    rows = []
    for o in ors:
        for a in opens:
            for r in crs:
                for p in pos:
                    d = _base(kind, o, r, 0.0 if filled else sw, fg, bg, p, arc_degrees=180.0 - a,
                              opening_degrees=a, corner_radius=r)
                    rows.append(d)
    return _build(rows, size)


def angle_to_curve_series(
    orientation: float,
    corner_radii: Sequence[float] = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0),
    opening_degrees: float = 90.0,
    stroke_width: float = 2.0,
    fg=0.0,
    bg=1.0,
    size: int = 224,
) -> Stimuli:
    """The same angle with a growing corner radius, from sharp (r = 0) to a curve: once the
    rounded corner is larger than the receptive field, the unit sees the curve of radius r.

    Returns:
        :class:`Stimuli` of kind ``angle`` with a ``step`` column (0 = sharpest), in the
        order of ``corner_radii`` sorted increasingly.

    Raises:
        StimulusError: as :func:`angles`.
    """
    o = _check_finite("orientation", orientation)
    if len(o) != 1:
        raise StimulusError(f"orientation must be one number (deg); got {orientation!r}")
    crs = sorted(_check_finite("corner_radii", corner_radii, lo=0.0))
    st = angles(o, opening_degrees, crs, stroke_width=stroke_width, fg=fg, bg=bg, size=size)
    st.meta["step"] = range(len(st))
    return st


def _comb_rows(kind, ors, rad, side, spacing_px, length_px, sw, fg, bg, arc, pos) -> list[dict]:
    sides = [side] if isinstance(side, str) else list(side)
    for s in sides:
        if s not in COMB_SIDES:
            raise StimulusError(f"side must be one of {', '.join(COMB_SIDES)}; got {s!r}")
    sp = _positive("spacing_px", spacing_px)[0]
    ln = _positive("length_px", length_px)[0]
    rows = []
    for o in ors:
        for r in rad:
            for s in sides:
                for p in pos:
                    lo, hi = COMB_SIDES[s]
                    rows.append(_base(kind, o, r, sw, fg, bg, p, arc_degrees=arc, side=s, spacing_px=sp,
                                      length_px=ln, _lo=lo, _hi=hi))
    return rows


def _combs(kind: str, ors, radii, side, spacing, length, sw, arc, fg, bg, size, positions) -> Stimuli:
    """The checks and rows shared by :func:`combed_curves` and :func:`combing_lines` (``kind``)."""
    ors, rad = _check_finite("orientations", ors), _positive("radii", radii, allow_inf=True)
    sw, fg, bg, size = _common(sw, fg, bg, size)  # checked in this order: the first bad value is reported
    return _build(_comb_rows(kind, ors, rad, side, spacing, length, sw, fg, bg, _arc(arc), _positions(positions)), size)


def combed_curves(
    orientations: Sequence[float] = tuple(range(0, 360, 5)),
    radii: Sequence[float] = DEFAULT_RADII,
    side: str | Sequence[str] = "both",
    spacing_px: float = 8.0,
    length_px: float = 8.0,
    stroke_width: float = 2.0,
    arc_degrees: float = 360.0,
    fg=0.0,
    bg=1.0,
    size: int = 224,
    positions: Sequence[tuple[float, float]] = ((0.0, 0.0),),
) -> Stimuli:
    """Curves with "combing": short segments perpendicular to the curve (radial), at regular
    arc-length spacing, one of them at the stimulus centre.

    Args:
        side: ``"inward"`` (each tooth runs ``length_px`` from the curve towards the circle's
            centre, i.e. towards θ), ``"outward"`` (away from it) or ``"both"`` (``length_px``
            on each side, crossing the curve); a list of sides makes one row per side.
        spacing_px: arc length between teeth, > 0 px.
        length_px: tooth length on each side it extends to, > 0 px.
        radii: px, > 0; ``inf`` combs a straight line.

    Returns:
        :class:`Stimuli` of kind ``combed_curve``, rows orientation × radius × side × position.

    Raises:
        StimulusError: as :func:`curves`; unknown side; non-positive spacing or length.
    """
    return _combs("combed_curve", orientations, radii, side, spacing_px, length_px, stroke_width, arc_degrees, fg, bg,
                  size, positions)


def combing_lines(
    orientations: Sequence[float] = tuple(range(0, 360, 5)),
    radii: Sequence[float] = DEFAULT_RADII,
    side: str | Sequence[str] = "both",
    spacing_px: float = 8.0,
    length_px: float = 8.0,
    stroke_width: float = 2.0,
    arc_degrees: float = 360.0,
    fg=0.0,
    bg=1.0,
    size: int = 224,
    positions: Sequence[tuple[float, float]] = ((0.0, 0.0),),
) -> Stimuli:
    """The teeth of :func:`combed_curves` without the curve (kind ``combing``); same arguments."""
    return _combs("combing", orientations, radii, side, spacing_px, length_px, stroke_width, arc_degrees, fg, bg,
                  size, positions)


def concentric_curves(
    orientations: Sequence[float] = tuple(range(0, 360, 5)),
    radii: Sequence[float] = DEFAULT_RADII,
    n: int = 3,
    gap_px: float = 6.0,
    stroke_width: float = 2.0,
    arc_degrees: float = 360.0,
    fg=0.0,
    bg=1.0,
    size: int = 224,
    positions: Sequence[tuple[float, float]] = ((0.0, 0.0),),
) -> Stimuli:
    """Several concentric arcs: ``n`` arcs sharing the circle centre of the curve of
    orientation θ and radius r, with radii ``r + (j − (n−1)/2)·gap_px`` (j = 0 … n−1), i.e.
    centred on the curve through the stimulus centre (for odd ``n`` the middle arc is that
    curve). ``radius`` ``inf`` gives ``n`` parallel lines.

    Raises:
        StimulusError: ``n`` not an integer ≥ 1, ``gap_px`` ≤ 0, or an innermost radius
            ``r − (n−1)/2·gap_px`` ≤ 0; and as :func:`curves`.
    """
    ors = _check_finite("orientations", orientations)
    rad = _positive("radii", radii, allow_inf=True)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise StimulusError(f"n must be an integer ≥ 1 (number of arcs); got {n!r}")
    gap = _positive("gap_px", gap_px)[0]
    inner = [r for r in rad if not math.isinf(r) and r - (n - 1) / 2 * gap <= 0]
    if inner:
        raise StimulusError(f"radii must be > (n−1)/2·gap_px = {(n - 1) / 2 * gap:g} px so that the innermost arc "
                            f"has a positive radius; got {inner}")
    sw, fg, bg, size = _common(stroke_width, fg, bg, size)
    arc = _arc(arc_degrees)
    pos = _positions(positions)
    rows = [_base("concentric_curves", o, r, sw, fg, bg, p, arc_degrees=arc, n=int(n), gap_px=gap)
            for o in ors for r in rad for p in pos]
    return _build(rows, size)

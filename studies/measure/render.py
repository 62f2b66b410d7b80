"""Rasterisers of the synthetic stimuli (:mod:`studies.measure.stimuli`): for each kind, the
anti-aliased ink coverage in [0, 1] of a batch of parameter rows on a pixel grid.

Coordinates: ``x`` (right) and ``y`` (up) of the pixel centres relative to the stimulus
centre, in px, broadcast as ``(1, 1, W)`` and ``(1, H, 1)``; every renderer returns
``(k, H, W)`` for ``k`` parameter rows. Strokes are anti-aliased with a 1-px linear ramp at
the stroke edge (:func:`_coverage`). Orientation convention: :mod:`studies.measure.stimuli`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def column(ps: list[dict], key: str, default=None) -> Tensor:
    return torch.tensor([p.get(key, default) for p in ps], dtype=torch.float32).view(-1, 1, 1)


def _coverage(dist: Tensor, width: Tensor) -> Tensor:
    """Anti-aliased ink from the distance of each pixel centre to the stroke's centre line
    (a 1-px linear ramp centred on the stroke edge). Overwrites ``dist``."""
    return dist.neg_().add_(width / 2 + 0.5).clamp_(0, 1)


def _fill(signed: Tensor) -> Tensor:
    """Anti-aliased ink of a filled shape from the signed distance to its border (< 0
    inside). Overwrites ``signed``."""
    return signed.neg_().add_(0.5).clamp_(0, 1)


def _wrap(a: Tensor) -> Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def _ring_distance(x: Tensor, y: Tensor, ccx: Tensor, ccy: Tensor, r: Tensor, mid: Tensor, half: Tensor,
                   full: bool) -> Tensor:
    """Distance from each pixel to an arc of the circle (centre ``ccx, ccy``, radius ``r``)
    spanning ``±half`` (rad) around direction ``mid`` (rad) seen from the centre, ``(k, H, W)``."""
    dx, dy = x - ccx, y - ccy
    d = dx * dx + dy * dy
    d = d.sqrt_().sub_(r).abs_()
    if full:
        return d
    phi = _wrap(torch.atan2(dy, dx) - mid)
    ends = []
    for sgn in (-1.0, 1.0):
        a = mid + sgn * half
        ex, ey = ccx + r * torch.cos(a), ccy + r * torch.sin(a)
        ends.append(torch.sqrt((x - ex) ** 2 + (y - ey) ** 2))
    inside = (phi.abs() <= half) | (half >= math.pi)
    return torch.where(inside, d, torch.minimum(*ends))


def _arc_geometry(ps: list[dict]):
    th = torch.deg2rad(column(ps, "orientation"))
    r = column(ps, "radius")
    half = torch.deg2rad(column(ps, "arc_degrees")) / 2
    full = all(p["arc_degrees"] >= 360 for p in ps)
    return th, r, half, full


def _arc_distance(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    """Exact distance from each pixel centre to each arc (through the stimulus centre), ``(k, H, W)``."""
    th, r, half, full = _arc_geometry(ps)
    return _ring_distance(x, y, r * torch.cos(th), r * torch.sin(th), r, th + math.pi, half, full)


def _line_distance(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    th = torch.deg2rad(column(ps, "orientation"))
    nx, ny = torch.cos(th), torch.sin(th)
    d = (x * nx + y * ny).abs()  # (k, H, W)
    length = column(ps, "length", math.inf)
    if bool(torch.isinf(length).all()):
        return d
    t = (-x * ny + y * nx).abs() - length / 2
    return torch.where(t > 0, torch.sqrt(d * d + t.clamp(min=0) ** 2), d)


def _render_curve(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    return _coverage(_arc_distance(x, y, ps), column(ps, "stroke_width"))


def _render_line(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    return _coverage(_line_distance(x, y, ps), column(ps, "stroke_width"))


def _render_filled_curve(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    """Disc side of the arc filled: the disc (full arc) or the circular segment cut by the
    chord between the arc's ends; signed distance = max(disc, half-plane)."""
    th, r, half, full = _arc_geometry(ps)
    ux, uy = torch.cos(th), torch.sin(th)
    dx, dy = x - r * ux, y - r * uy
    sd = (dx * dx + dy * dy).sqrt_().sub_(r)
    if not full:
        # towards the stimulus centre (-u) from the circle's centre; the chord sits at r·cos(half)
        proj = -(dx * ux + dy * uy)
        sd = torch.maximum(sd, r * torch.cos(half) - proj)
    return _fill(sd)


def _angle_signed_distance(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    """Signed distance to the rounded angle (a wedge of half-opening β whose corner is rounded
    with radius r, the corner's midpoint at the stimulus centre, opening towards θ).

    The rounded wedge is the r-dilation of the wedge W' with the same opening whose apex is
    the circle centre C = r·u, so sd = sd_{W'} − r (exact; r = 0 is the sharp angle).
    """
    th = torch.deg2rad(column(ps, "orientation"))
    r = column(ps, "corner_radius")
    beta = torch.deg2rad(column(ps, "opening_degrees")) / 2
    ux, uy = torch.cos(th), torch.sin(th)
    qx, qy = x - r * ux, y - r * uy
    par = qx * ux + qy * uy
    perp = (qy * ux - qx * uy).abs()
    sb, cb = torch.sin(beta), torch.cos(beta)
    s = perp * cb - par * sb  # signed distance to the arm's line (> 0 outside)
    t = par * cb + perp * sb  # position along the arm (< 0: behind the apex)
    apex = (par * par + perp * perp).sqrt_()
    return torch.where(t >= 0, s, apex).sub_(r)


def _render_angle(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    return _coverage(_angle_signed_distance(x, y, ps).abs_(), column(ps, "stroke_width"))


def _render_filled_angle(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    return _fill(_angle_signed_distance(x, y, ps))


def _teeth_distance(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    """Distance to the comb's teeth: radial segments at regular arc-length spacing along the
    arc (one at the stimulus centre), spanning ``[lo, hi]·length`` along the outward normal."""
    out = torch.empty(len(ps), y.shape[-2], x.shape[-1])
    straight = [i for i, p in enumerate(ps) if math.isinf(p["radius"])]
    curved = [i for i, p in enumerate(ps) if not math.isinf(p["radius"])]
    for sel, fn in ((straight, _teeth_straight), (curved, _teeth_curved)):
        if sel:
            sub = [ps[i] for i in sel]
            xs = x[sel] if x.shape[0] > 1 else x
            ys = y[sel] if y.shape[0] > 1 else y
            out[sel] = fn(xs, ys, sub)
    return out


def _teeth_bounds(ps: list[dict]) -> tuple[Tensor, Tensor]:
    length = column(ps, "length_px")
    return column(ps, "_lo") * length, column(ps, "_hi") * length


def _teeth_straight(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    th = torch.deg2rad(column(ps, "orientation"))
    ux, uy = torch.cos(th), torch.sin(th)
    sp = column(ps, "spacing_px")
    lo, hi = _teeth_bounds(ps)
    along = y * ux - x * uy
    out_n = -(x * ux + y * uy)  # along the outward normal (away from θ)
    ds = along - torch.round(along / sp) * sp
    dn = out_n - torch.maximum(torch.minimum(out_n, hi), lo)
    return torch.sqrt(ds * ds + dn * dn)


def _teeth_curved(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    th, r, half, _ = _arc_geometry(ps)
    sp = column(ps, "spacing_px")
    lo, hi = _teeth_bounds(ps)
    rho_lo, rho_hi = (r + lo).clamp(min=0), r + hi
    ccx, ccy = r * torch.cos(th), r * torch.sin(th)
    dx, dy = x - ccx, y - ccy
    rho = torch.sqrt(dx * dx + dy * dy)
    phi = _wrap(torch.atan2(dy, dx) - (th + math.pi))  # 0 at the stimulus centre
    step = sp / r  # rad between teeth
    kmax = torch.floor(half / step + 1e-6)
    k0 = torch.floor(phi / step)
    best = None
    for k in (k0, k0 + 1, -kmax, kmax):
        k = torch.maximum(torch.minimum(k, kmax), -kmax)
        delta = _wrap(phi - k * step)
        proj = rho * torch.cos(delta)
        perp = rho * torch.sin(delta).abs()
        dr = proj - torch.maximum(torch.minimum(proj, rho_hi), rho_lo)
        d = torch.sqrt(dr * dr + perp * perp)
        best = d if best is None else torch.minimum(best, d)
    return best


def _curve_or_line_distance(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    out = torch.empty(len(ps), y.shape[-2], x.shape[-1])
    straight = [i for i, p in enumerate(ps) if math.isinf(p["radius"])]
    curved = [i for i, p in enumerate(ps) if not math.isinf(p["radius"])]
    for sel, fn in ((straight, _line_distance), (curved, _arc_distance)):
        if sel:
            sub = [ps[i] for i in sel]
            xs = x[sel] if x.shape[0] > 1 else x
            ys = y[sel] if y.shape[0] > 1 else y
            out[sel] = fn(xs, ys, sub).expand(len(sel), y.shape[-2], x.shape[-1])
    return out


def _render_combed_curve(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    d = torch.minimum(_curve_or_line_distance(x, y, ps), _teeth_distance(x, y, ps))
    return _coverage(d, column(ps, "stroke_width"))


def _render_combing(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    return _coverage(_teeth_distance(x, y, ps), column(ps, "stroke_width"))


def _render_concentric(x: Tensor, y: Tensor, ps: list[dict]) -> Tensor:
    """``n`` arcs sharing the circle centre C = r·u, radii r + (j − (n−1)/2)·gap, so the
    middle one (odd n) passes through the stimulus centre; straight: parallel lines."""
    th, r, half, full = _arc_geometry(ps)
    n = column(ps, "n")
    gap = column(ps, "gap_px")
    straight = torch.isinf(r)
    rr = torch.where(straight, torch.zeros_like(r), r)
    ccx, ccy = rr * torch.cos(th), rr * torch.sin(th)
    ux, uy = torch.cos(th), torch.sin(th)
    best = None
    for j in range(int(max(p["n"] for p in ps))):
        off = (j - (n - 1) / 2) * gap
        if bool(straight.all()):
            d = (x * ux + y * uy + off).abs()
        else:
            d = _ring_distance(x, y, ccx, ccy, rr + off, th + math.pi, half, full)
            if bool(straight.any()):
                d = torch.where(straight, (x * ux + y * uy + off).abs(), d)
        d = torch.where(j < n, d, torch.full_like(d, math.inf))
        best = d if best is None else torch.minimum(best, d)
    best = best.expand(len(ps), y.shape[-2], x.shape[-1]).clone()
    return _coverage(best, column(ps, "stroke_width"))


#: kind → renderer ``(x, y, params) -> ink (k, size, size)``
RENDERERS = {
    "curve": _render_curve,
    "line": _render_line,
    "filled_curve": _render_filled_curve,
    "angle": _render_angle,
    "filled_angle": _render_filled_angle,
    "combed_curve": _render_combed_curve,
    "combing": _render_combing,
    "concentric_curves": _render_concentric,
}

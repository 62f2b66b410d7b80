"""Hand-written families: a family's incoming weights written from one template rotated to N orientations.

Source: Cammarata et al., "Curve Circuits" (Distill 2021), sections "Equivariance" and
"Artificial Artificial Neural Network": the mixed3b curve detectors are, to a good
approximation, rotated copies of one another — and so are their expanded weights from the
mixed3a early curves — so setting the family's weights from one rotated template
re-implements curve detectors.

Rotation of a weight pattern. A *pattern* is the expanded weight tensor of one destination
unit restricted to a source family, ``W (S, k, k)`` (``S`` source units at orientations
``φ_s``, degrees, the catalog convention: counter-clockwise from +x with +y up, a curve opens
towards θ). Rotating it by ``Δ`` degrees (:func:`rotate_pattern`) does two things, which
commute because they act on different axes:

1. **space** — every ``k x k`` kernel is rotated counter-clockwise (y up) by ``Δ`` about its
   centre tap (:func:`rotate_spatial`): ``torch.nn.functional.grid_sample``, **bilinear**,
   ``align_corners=True`` (the corner taps sit at ±1), zeros outside the kernel. Multiples of
   90° use :func:`torch.rot90` instead (exact: no interpolation at all);
2. **source orientation** — the new pattern's row for source ``s`` is the old pattern
   evaluated at source orientation ``φ_s − Δ``. Sources sit at irregular orientations, so
   the pattern is a function of source orientation by **circular linear interpolation**
   (:func:`source_shift_matrix`): sort the sources by orientation around the circle; a query
   orientation ``φ`` between consecutive sources ``a`` and ``b`` (going counter-clockwise,
   wrapping from the last to the first) gets ``(1 − t)·W[a] + t·W[b]`` with
   ``t = (φ − φ_a) / (φ_b − φ_a)`` measured counter-clockwise in degrees. A query that hits
   a source's orientation returns that source's row exactly (a permutation when ``Δ`` maps
   sources onto sources).

:class:`HandwrittenFamily` writes, for each destination unit ``d`` of orientation ``θ_d``,
the template rotated by ``θ_d − θ_template`` (learned template) or the analytic template
evaluated at ``θ_d`` (:func:`analytic_pattern`) as its incoming weights from the source
family; see the class docstring for exactly which tensors change.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from circuits.model import InceptionV1
from circuits.spec import MIXED_LAYERS, ModelSpec
from circuits.units import Family, Unit, canonical_layer

from .base import Edit, producing_conv, register_edit

# The one place this module imports edit machinery (on main: Edit/register_edit/EditError/
# producing_conv → edits.base, ReplaceUnits → edits.unit_weights).
from .blocks import input_layer
from .unit_weights import ReplaceUnits

#: Template kinds :class:`HandwrittenFamily` accepts.
TEMPLATES: tuple[str, ...] = ("learned", "analytic")
#: What happens to a destination unit's incoming weights from channels outside the source family.
RESTS: tuple[str, ...] = ("zero", "keep")
#: Kernel size of patterns (expanded weights between adjacent mixed layers are 5x5).
PATTERN_SIZE = 5


# ============================================================================ rotation
def rotate_spatial(kernels: Tensor, degrees: float) -> Tensor:
    """Rotate square kernels ``(..., k, k)`` counter-clockwise (y up) by ``degrees`` about the centre tap.

    Bilinear interpolation (``grid_sample``, ``align_corners=True``, zeros outside); exact
    :func:`torch.rot90` for multiples of 90°. Same shape and dtype.

    Raises:
        ValueError: kernels that are not square with an odd size.
    """
    k = kernels.shape[-1]
    if kernels.dim() < 2 or kernels.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"expected square kernels of odd size (..., k, k), got {tuple(kernels.shape)}")
    q = float(degrees) % 360.0
    quarter = q / 90.0
    if abs(quarter - round(quarter)) < 1e-9:
        return torch.rot90(kernels, int(round(quarter)) % 4, dims=(-2, -1))
    lead = kernels.shape[:-2]
    x = kernels.reshape(1, -1, k, k)
    c, s = math.cos(math.radians(q)), math.sin(math.radians(q))
    # output (x, y_down) samples the input at R(-Δ) in y-up coordinates: x_s = c·x − s·y_d, y_s = s·x + c·y_d
    theta = torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]], dtype=x.dtype if x.is_floating_point() else torch.float32)
    grid = F.affine_grid(theta, [1, x.shape[1], k, k], align_corners=True)
    out = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(*lead, k, k)


def source_shift_matrix(src_orientations: Sequence[float], degrees: float, dtype=torch.float64) -> Tensor:
    """``M (S, S)``: ``(M @ W)[s] = W`` evaluated at source orientation ``φ_s − degrees``.

    Circular linear interpolation between the two sources adjacent (counter-clockwise) to the
    query orientation; see the module docstring. One source: ``M = [[1]]``.

    Raises:
        ValueError: no sources, or two sources at the same orientation.
    """
    phi = [float(p) % 360.0 for p in src_orientations]
    n = len(phi)
    if n == 0:
        raise ValueError("no source orientations")
    order = sorted(range(n), key=lambda i: phi[i])
    srt = [phi[i] for i in order]
    if any(abs(b - a) < 1e-9 for a, b in zip(srt, srt[1:])) or (n > 1 and abs(srt[0] + 360 - srt[-1]) < 1e-9):
        raise ValueError(f"two sources share an orientation: {sorted(phi)}")
    m = torch.zeros(n, n, dtype=dtype)
    for s in range(n):
        if n == 1:
            m[s, s] = 1.0
            continue
        q = (phi[s] - float(degrees)) % 360.0
        # last sorted source at or before q (circularly)
        j = max((r for r in range(n) if srt[r] <= q + 1e-9), default=n - 1)
        a, b = order[j], order[(j + 1) % n]
        gap = (phi[b] - phi[a]) % 360.0 or 360.0
        t = ((q - phi[a]) % 360.0) / gap
        if t < 1e-9 or t > 1 - 1e-12:
            t = 0.0 if t < 1e-9 else 1.0
        m[s, a] += 1.0 - t
        m[s, b] += t
    return m


def rotate_pattern(pattern: Tensor, degrees: float, src_orientations: Sequence[float]) -> Tensor:
    """A weight pattern ``(..., S, k, k)`` rotated by ``degrees``: space (:func:`rotate_spatial`) and
    source orientation (:func:`source_shift_matrix`). Same shape and dtype (leading dimensions: a batch)."""
    if pattern.dim() < 3 or pattern.shape[-3] != len(src_orientations):
        raise ValueError(f"expected a pattern (..., S={len(src_orientations)}, k, k), got {tuple(pattern.shape)}")
    m = source_shift_matrix(src_orientations, degrees, dtype=pattern.dtype)
    return torch.einsum("st,...thw->...shw", m, rotate_spatial(pattern, degrees))


def analytic_pattern(orientation: float, src_orientations: Sequence[float], radius: float = 2.0,
                     sigma: float = 0.75, arc_degrees: float = 180.0, size: int = PATTERN_SIZE) -> Tensor:
    """The analytic curve template at ``orientation`` (degrees), ``(S, size, size)`` float64, unit L2 norm.

    Construction (tap offsets ``p`` from the centre tap, in positions of the source layer, y up):
    the preferred arc is a circle of ``radius`` taps through the centre tap, opening towards
    ``orientation`` — its centre ``m = radius·(cos θ, sin θ)`` — restricted to the ``arc_degrees``
    of it around the centre tap. Each tap gets the envelope ``A(p) = exp(−d²/2σ²)``, ``d`` its
    distance to the circle, when the tap's angle around ``m`` is within ``arc_degrees/2`` of the
    centre tap's (else 0). The local curve at the nearest arc point opens towards ``m``, at
    orientation ``φ_loc(p)``; source ``s`` (a curve detector at orientation ``φ_s``) gets
    ``A(p)·cos(φ_s − φ_loc(p))``: positive from same-orientation source curves along the arc,
    negative from opposite ones (180° away), zero from perpendicular ones. Normalised to unit L2
    norm (:class:`HandwrittenFamily` rescales it). Rotating ``orientation`` rotates the pattern
    exactly (it is evaluated, not interpolated).
    """
    c = size // 2
    th = math.radians(float(orientation))
    mx, my = radius * math.cos(th), radius * math.sin(th)
    out = torch.zeros(len(src_orientations), size, size, dtype=torch.float64)
    centre_angle = math.atan2(-my, -mx)
    phis = torch.tensor([math.radians(float(p)) for p in src_orientations], dtype=torch.float64)
    for i in range(size):
        for j in range(size):
            x, y = j - c, c - i
            vx, vy = x - mx, y - my
            r = math.hypot(vx, vy)
            if r < 1e-12:
                continue
            psi = math.atan2(vy, vx)
            if abs((math.degrees(psi - centre_angle) + 180.0) % 360.0 - 180.0) > arc_degrees / 2 + 1e-9:
                continue
            amp = math.exp(-((r - radius) ** 2) / (2 * sigma ** 2))
            out[:, i, j] = amp * torch.cos(phis - (psi + math.pi))
    n = float(out.norm())
    return out / n if n > 0 else out


# ============================================================================ the edit
def _units(value: Any) -> tuple[str, ...]:
    """Spec-free normalisation: canonical ``"layer:index"`` strings, or one family key ``"layer/name"``."""
    if isinstance(value, Family):
        return tuple(str(u) for u in value)
    items = [r for r in value.split(",") if r.strip()] if isinstance(value, str) else list(value)
    out = []
    for r in items:
        if isinstance(r, str) and "/" in r:
            layer, _, name = r.strip().partition("/")
            if not name:
                raise ValueError(f"cannot parse family {r!r}; expected 'layer/name' such as 'mixed3b/curves'")
            out.append(f"{canonical_layer(layer)}/{name.strip()}")
        else:
            out.append(str(Unit.parse(r)))
    out = list(dict.fromkeys(out))
    if not out:
        raise ValueError("names no unit")
    if len(out) > 1 and any("/" in r for r in out):
        raise ValueError("give one family key ('mixed3b/curves') or a list of units, not both")
    return tuple(out)


def _floats(value: Any, field: str, edit: Edit) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise edit.error(f"expected a list of numbers (degrees), got {value!r}", field=field) from None
    if not all(math.isfinite(v) for v in out):
        raise edit.error("contains NaN or infinite values", field=field)
    return tuple(v % 360.0 for v in out)


@register_edit
@dataclass(frozen=True)
class HandwrittenFamily(Edit):
    """Write a family's incoming weights from one template rotated to each unit's orientation.

    Args:
        dst: the family whose weights are written — a family key (``"mixed3b/curves"``, looked
            up in the checkpoint's packaged catalog) or units of one inception block.
        src: the source family in the block's input layer (``"mixed3a/curves"`` for mixed3b).
        template: ``"learned"`` — the expanded weights (:func:`circuits.expanded.expand`, input
            layer → block) of ``template_unit`` restricted to ``src``, ``(S, 5, 5)``, rotated by
            ``θ_d − θ_template`` (:func:`rotate_pattern`) for each destination ``d``; or
            ``"analytic"`` — :func:`analytic_pattern` at ``θ_d`` (``radius``, ``sigma`` in taps of
            the input layer), scaled to ``scale`` (L2 norm; default: the mean L2 norm of the
            destination units' learned patterns, measured when the edit is prepared).
        template_unit: a ``dst`` unit (``"mixed3b:413"``); required for ``"learned"``.
        orientations / src_orientations: degrees per ``dst`` / ``src`` unit (same order);
            default: the catalog's.
        rest: incoming weights from channels *outside* ``src``: ``"zero"`` (the unit reads only
            the source family: a pure hand-written unit) or ``"keep"`` (they stay as learned).
        radius, sigma: analytic template geometry (taps); ignored for ``"learned"``.
        kernel, scale, template_orientation: resolved by :meth:`prepare` (the learned template
            ``(S, 5, 5)`` as nested tuples and its orientation; the analytic scale) and stored
            in the applied plan, so re-applying needs no catalog and gives the same weights.

    What is written — exactly, through :class:`edits.ReplaceUnits` (``reads="input"``):

    - a **3x3/5x5-branch** unit is given a row of its block's :class:`~circuits.model.LinearPath`
      (state keys ``<block>.linear_paths.<branch>.conv.weight``/``.bias``): one ``k x k``
      convolution of the block input ``(C_in + 1, k, k)`` that replaces bottleneck → ReLU →
      spatial conv for that unit. Its source-family columns hold the central ``k x k`` taps of
      the unit's rotated 5x5 pattern (a 3x3 unit cannot hold the outer ring: it is dropped);
      ``rest="keep"``: every other column, and the ones-map column carrying the bottleneck
      bias, is the unit's exact linearised kernel (:func:`edits.pathways.linear_kernel`: the
      learned expanded weights, bottleneck ReLU removed); ``rest="zero"``: zeros. Bias: the
      unit's own. The raw branch convolutions are not modified (other units read them).
    - a **1x1-branch** unit has no spatial kernel: its row of ``<block>.b1x1.conv.weight``
      ``(C_in, 1, 1)`` gets the **centre tap** of its pattern in the source-family columns
      (the rest as for ``rest``); bias unchanged.

    The :class:`~edits.plan.EditRecord` lists the tensors that changed (``record.changed``),
    the linear-path rows added (``record.structure``) and backs up every slice, so
    ``record.undo`` restores the model bitwise.

    Raises:
        EditError: malformed fields (at construction); at validation: dst units not in one
            inception block, src units not channels of its input layer, orientation lists of
            the wrong length, a missing/foreign ``template_unit``, a kernel of the wrong shape,
            or no orientations in the catalog.
    """

    dst: Any
    src: Any
    template: str = "learned"
    template_unit: str | None = None
    orientations: Any = None
    src_orientations: Any = None
    rest: str = "zero"
    radius: float = 2.0
    sigma: float = 0.75
    kernel: Any = None
    scale: float | None = None
    template_orientation: float | None = None

    def __post_init__(self) -> None:
        for f in ("dst", "src"):
            try:
                object.__setattr__(self, f, _units(getattr(self, f)))
            except (KeyError, ValueError, TypeError) as e:
                raise self.error(str(e.args[0]) if e.args else str(e), field=f) from None
        if self.template not in TEMPLATES:
            raise self.error(f"{self.template!r} is not a valid choice", field="template", choices=TEMPLATES)
        if self.rest not in RESTS:
            raise self.error(f"{self.rest!r} is not a valid choice", field="rest", choices=RESTS)
        if self.template_unit is not None:
            try:
                object.__setattr__(self, "template_unit", str(Unit.parse(self.template_unit)))
            except (KeyError, ValueError, TypeError) as e:
                raise self.error(str(e), field="template_unit") from None
        elif self.template == "learned":
            raise self.error("a learned template needs template_unit (a unit of dst, e.g. 'mixed3b:413')",
                             field="template_unit")
        object.__setattr__(self, "orientations", _floats(self.orientations, "orientations", self))
        object.__setattr__(self, "src_orientations", _floats(self.src_orientations, "src_orientations", self))
        for f in ("radius", "sigma"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < float(v) < 100):
                raise self.error(f"must be a number in (0, 100) taps, got {v!r}", field=f)
            object.__setattr__(self, f, float(v))
        if self.scale is not None and (isinstance(self.scale, bool) or not isinstance(self.scale, (int, float))
                                       or not math.isfinite(self.scale) or self.scale < 0):
            raise self.error(f"scale must be a finite number ≥ 0, got {self.scale!r}", field="scale")
        if self.template_orientation is not None:
            object.__setattr__(self, "template_orientation", float(self.template_orientation) % 360.0)
        if self.kernel is not None:
            t = self._kernel_tensor()
            object.__setattr__(self, "kernel", tuple(tuple(tuple(float(v) for v in r) for r in m) for m in t.tolist()))

    # -- helpers
    def _kernel_tensor(self) -> Tensor:
        try:
            t = torch.as_tensor(self.kernel, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as e:
            raise self.error(f"not a numeric array ({e})", field="kernel") from None
        if t.dim() != 3 or t.shape[-1] != PATTERN_SIZE or t.shape[-2] != PATTERN_SIZE or not bool(t.isfinite().all()):
            raise self.error(f"expected a finite kernel (S, {PATTERN_SIZE}, {PATTERN_SIZE}), got shape "
                             f"{tuple(t.shape)}", field="kernel")
        return t

    def _family(self, refs: tuple[str, ...], spec: ModelSpec, field: str) -> tuple[list[Unit], tuple | None]:
        if len(refs) == 1 and "/" in refs[0]:
            from circuits.catalog import load_catalog

            try:
                fam = load_catalog(spec)[refs[0]]
            except (KeyError, FileNotFoundError) as e:
                raise self.error(str(e.args[0]) if e.args else str(e), field=field) from None
            return list(fam), fam.orientations
        try:
            return [Unit.parse(r).validate(spec) for r in refs], None
        except (KeyError, ValueError, IndexError) as e:
            raise self.error(str(e.args[0]) if e.args else str(e), field=field) from None

    def resolved(self, spec: ModelSpec) -> tuple[str, list[Unit], list[float], list[int], list[float]]:
        """``(block, dst units, dst orientations, src channels, src orientations)``, checked against ``spec``.

        Raises:
            EditError: see the class docstring.
        """
        dst, dst_or = self._family(self.dst, spec, "dst")
        src, src_or = self._family(self.src, spec, "src")
        blocks = {u.layer for u in dst}
        if len(blocks) != 1 or next(iter(blocks)) not in MIXED_LAYERS:
            raise self.error(f"dst units must be units of one inception block ({', '.join(MIXED_LAYERS)}); got "
                             f"layers {sorted(blocks)}", field="dst")
        block = next(iter(blocks))
        src_layer = input_layer(block)
        bad = [str(u) for u in src if u.layer != src_layer]
        if bad:
            raise self.error(f"src units must be channels of {src_layer} (the input of {block}); got {bad[:3]}",
                             field="src")
        ors = list(self.orientations) if self.orientations is not None else (list(dst_or) if dst_or else None)
        sors = list(self.src_orientations) if self.src_orientations is not None else (
            list(src_or) if src_or else None)
        for name, o, units in (("orientations", ors, dst), ("src_orientations", sors, src)):
            if o is None:
                raise self.error("no orientations given and none in the catalog", field=name)
            if len(o) != len(units):
                raise self.error(f"{len(o)} orientation(s) for {len(units)} unit(s)", field=name)
        if self.template_unit is not None and Unit.parse(self.template_unit) not in dst:
            raise self.error(f"{self.template_unit} is not one of the dst units", field="template_unit",
                             choices=[str(u) for u in dst])
        if self.kernel is not None and self._kernel_tensor().shape[0] != len(src):
            raise self.error(f"kernel has {self._kernel_tensor().shape[0]} source rows for {len(src)} src units",
                             field="kernel")
        return block, dst, [float(o) % 360.0 for o in ors], [u.index for u in src], [float(o) % 360.0 for o in sors]

    def validate(self, spec: ModelSpec) -> None:
        self.resolved(spec)

    def claims(self, spec: ModelSpec) -> list:
        _, dst, _, _, _ = self.resolved(spec)
        return [(producing_conv(u, spec), str(u), "dst") for u in dst]

    def prepare(self, model: InceptionV1, reference: Tensor | None = None) -> Edit:
        """Resolve families, orientations and the template (see the class docstring)."""
        block, dst, ors, src, sors = self.resolved(model.spec)
        kw: dict[str, Any] = dict(dst=tuple(str(u) for u in dst), src=tuple(f"{input_layer(block)}:{i}" for i in src),
                                  orientations=tuple(ors), src_orientations=tuple(sors))
        if self.template == "learned":
            if self.kernel is None:
                kw["kernel"] = learned_patterns(model, block, [Unit.parse(self.template_unit).index], src)[0]
            if self.template_orientation is None:
                kw["template_orientation"] = ors[dst.index(Unit.parse(self.template_unit))]
        elif self.scale is None:
            pats = learned_patterns(model, block, [u.index for u in dst], src)
            kw["scale"] = float(pats.flatten(1).norm(dim=1).mean())
        return dataclasses.replace(self, **kw)

    def patterns(self, spec: ModelSpec) -> tuple[list[Unit], Tensor]:
        """The hand-written patterns ``(D, S, 5, 5)`` float64 of a prepared edit, one per dst unit."""
        _, dst, ors, _, sors = self.resolved(spec)
        if self.template == "learned":
            if self.kernel is None or self.template_orientation is None:
                raise self.error("not prepared: the learned template is resolved by EditPlan.apply", field="kernel")
            k = self._kernel_tensor()
            return dst, torch.stack([rotate_pattern(k, o - self.template_orientation, sors) for o in ors])
        if self.scale is None:
            raise self.error("not prepared: the analytic scale is resolved by EditPlan.apply", field="scale")
        return dst, torch.stack([analytic_pattern(o, sors, self.radius, self.sigma) * self.scale for o in ors])

    def replacement(self, model: InceptionV1) -> ReplaceUnits:
        """The :class:`~edits.ReplaceUnits` (``reads="input"``) that realises this (prepared) edit on ``model``."""
        block, _, _, src, _ = self.resolved(model.spec)
        dst, pats = self.patterns(model.spec)
        base = ReplaceUnits.from_model(model, [str(u) for u in dst], reads="input")
        cols = torch.as_tensor(src, dtype=torch.long)
        weights = []
        for kernel, pat in zip(base.weights, pats):
            w = torch.tensor(kernel, dtype=torch.float64)
            if self.rest == "zero":
                w = torch.zeros_like(w)
            k = w.shape[-1]
            o = (PATTERN_SIZE - k) // 2
            w[cols] = pat[:, o:o + k, o:o + k]
            weights.append(w)
        return ReplaceUnits(base.units, weights, base.biases, reads="input")

    def compile(self, model: InceptionV1) -> list:
        return self.replacement(model).compile(model)


@torch.no_grad()
def learned_patterns(model: InceptionV1, block: str, dst: Sequence[int], src: Sequence[int]) -> Tensor:
    """Expanded weights ``(len(dst), len(src), 5, 5)`` float64 from ``src`` channels of ``block``'s
    input layer to ``dst`` units of ``block`` (:func:`circuits.expanded.expand`)."""
    from circuits.expanded import expand

    e = expand(model, input_layer(block), block, dst_units=list(dst), dtype=torch.float64)
    return e.weight[:, torch.as_tensor(list(src), dtype=torch.long)]


__all__ = ["HandwrittenFamily", "RESTS", "TEMPLATES", "analytic_pattern", "learned_patterns", "rotate_pattern",
           "rotate_spatial", "source_shift_matrix"]

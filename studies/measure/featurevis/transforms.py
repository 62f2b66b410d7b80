"""Transformation robustness for feature visualization: random pad / jitter / scale / rotate,
differentiable, written on plain torch (``F.pad``, ``F.interpolate``, ``F.affine_grid`` /
``F.grid_sample``), on any device.

Lucid's standard sequence (``optvis/transform.py`` ``standard_transforms``; Olah et al.,
"Feature Visualization", Distill 2017, "transformation robustness"; shared/docs/science.md §5):

1. pad 12 px on every side with the constant 0.5 (grey);
2. jitter 8 px: a random crop 8 px smaller in each dimension (offsets uniform in 0..8);
3. random scale by a factor drawn from ``{1 + (i - 5) / 50 : i = 0..10}`` (0.90 … 1.10),
   bilinear resize of the side to ``round(side * factor)``;
4. random rotation by an angle drawn from ``{-10, …, 10}`` degrees with 0 listed 6 times
   (``list(range(-10, 11)) + 5 * [0]``), bilinear, about the image centre, zeros outside;
5. jitter 4 px.

One random draw per step for the whole batch (as Lucid). Random numbers come from a
:class:`torch.Generator` on the CPU that the caller seeds, so runs are reproducible and the
device only does the differentiable image work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

STANDARD_PAD = 12
STANDARD_PAD_VALUE = 0.5
STANDARD_JITTER = (8, 4)
STANDARD_SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
STANDARD_ANGLES = tuple(range(-10, 11)) + (0,) * 5


def _choice(gen: torch.Generator, n: int) -> int:
    return int(torch.randint(n, (1,), generator=gen))


class Pad:
    """Pad every side by ``width`` px with ``value``: ``(N, C, H, W)`` → ``(N, C, H + 2w, W + 2w)``."""

    def __init__(self, width: int, value: float = STANDARD_PAD_VALUE):
        if width < 0:
            raise ValueError(f"pad width must be ≥ 0 px; got {width}")
        self.width, self.value = int(width), float(value)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        w = self.width
        return F.pad(x, (w, w, w, w), value=self.value) if w else x

    def __repr__(self) -> str:
        return f"pad({self.width}, {self.value:g})"


class Jitter:
    """Random crop ``d`` px smaller in each dimension, offsets uniform in ``0..d``:
    ``(N, C, H, W)`` → ``(N, C, H - d, W - d)``."""

    def __init__(self, d: int):
        if d < 0:
            raise ValueError(f"jitter must be ≥ 0 px; got {d}")
        self.d = int(d)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        d = self.d
        if not d:
            return x
        h, w = x.shape[-2:]
        if min(h, w) <= d:
            raise ValueError(f"jitter {d} px needs images larger than {d} px; got {h}x{w}")
        oy, ox = _choice(gen, d + 1), _choice(gen, d + 1)
        return x[..., oy:oy + h - d, ox:ox + w - d]

    def __repr__(self) -> str:
        return f"jitter({self.d})"


class RandomScale:
    """Bilinear resize by a factor drawn from ``scales``: side → ``round(side * factor)``."""

    def __init__(self, scales: Sequence[float] = STANDARD_SCALES):
        if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
            raise ValueError(f"scales must be positive finite numbers; got {list(scales)}")
        self.scales = tuple(float(s) for s in scales)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        s = self.scales[_choice(gen, len(self.scales))]
        h, w = x.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        if size == (h, w):
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def __repr__(self) -> str:
        return f"scale({min(self.scales):.2f}..{max(self.scales):.2f}, {len(self.scales)} values)"


def rotate(x: Tensor, degrees: float) -> Tensor:
    """Rotate ``(N, C, H, W)`` images counter-clockwise (as displayed) by ``degrees`` about
    their centre; bilinear, zeros outside; same size. Differentiable in ``x``."""
    if degrees == 0:
        return x
    n, _, h, w = x.shape
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    # output (x right, y down, normalised) → input; a CCW display rotation maps output points
    # back by the inverse rotation; H/W factors keep pixels square for non-square images.
    theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class RandomRotate:
    """Rotation by an angle (degrees) drawn from ``angles`` (see :func:`rotate`)."""

    def __init__(self, angles: Sequence[float] = STANDARD_ANGLES):
        if not angles:
            raise ValueError("angles must not be empty")
        self.angles = tuple(float(a) for a in angles)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        return rotate(x, self.angles[_choice(gen, len(self.angles))])

    def __repr__(self) -> str:
        return f"rotate({min(self.angles):g}..{max(self.angles):g}°, {len(self.angles)} values)"


class Compose:
    """Apply transforms in order: ``Compose([...])(x, gen)``."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        for t in self.transforms:
            x = t(x, gen)
        return x

    def __repr__(self) -> str:
        return "[" + ", ".join(map(repr, self.transforms)) + "]"


def standard_transforms() -> Compose:
    """Lucid's standard sequence (module docstring): pad 12 (0.5), jitter 8, scale, rotate, jitter 4."""
    return Compose([Pad(STANDARD_PAD, STANDARD_PAD_VALUE), Jitter(STANDARD_JITTER[0]), RandomScale(STANDARD_SCALES),
                    RandomRotate(STANDARD_ANGLES), Jitter(STANDARD_JITTER[1])])


TRANSFORMS = {"standard": standard_transforms, "none": lambda: Compose([])}


def get_transforms(name: str) -> Compose:
    """``"standard"`` (Lucid's sequence) or ``"none"``.

    Raises:
        ValueError: unknown name (lists the valid ones).
    """
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transforms {name!r}; valid: {', '.join(TRANSFORMS)}")
    return TRANSFORMS[name]()

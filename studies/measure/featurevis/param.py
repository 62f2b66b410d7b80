"""Image parameterizations for feature visualization: pixel or Fourier, colour-decorrelated,
squashed to [0, 1] by a sigmoid; a batch of independent images; seeded and deterministic.

Sources (public facts, restated; no code copied): Olah, Mordvintsev, Schubert, "Feature
Visualization", Distill 2017 ("preconditioning and parameterization"), and Lucid's
``optvis/param/spatial.py`` (``fft_image``, ``rfft2d_freqs``) and ``optvis/param/color.py``
(``color_correlation_svd_sqrt``, ``_linear_decorrelate_color``, ``to_valid_rgb``), as summarised
in ``shared/docs/science.md`` §5:

- Fourier: image = inverse real 2-D FFT of learnable complex coefficients, each scaled by
  ``1 / max(f, 1/size)**decay_power`` (``f`` the spatial frequency in cycles per pixel, ``size``
  the larger image side, ``decay_power`` 1), times ``sqrt(h * w)`` with an unnormalised inverse
  FFT — equivalently an orthonormal inverse FFT (``norm="ortho"``) — then divided by 4;
  coefficients drawn from a normal distribution with standard deviation 0.01.
- Colour decorrelation: the 3 channels are multiplied by the square root of ImageNet's colour
  correlation matrix (:data:`COLOR_CORRELATION_SQRT`), normalised by its largest column norm;
  then a sigmoid maps every value into (0, 1).
- Pixel: the same, with the pre-sigmoid image itself as the parameter (std 0.01).

Randomness comes only from a :class:`torch.Generator` seeded by the caller, on the CPU, so the
same seed gives bitwise the same initial parameters on any device (and, on CPU with the same
thread count, bitwise the same optimised image).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Square root of ImageNet's colour correlation (rows: R, G, B output; columns: the three
#: decorrelated components). Lucid ``optvis/param/color.py`` ``color_correlation_svd_sqrt``;
#: shared/docs/science.md §5.
COLOR_CORRELATION_SQRT = ((0.26, 0.09, 0.02),
                          (0.27, 0.00, -0.05),
                          (0.27, -0.09, 0.03))

#: Lucid's defaults: initial standard deviation of the parameters and Fourier decay power.
INIT_STD = 0.01
DECAY_POWER = 1.0
#: Lucid ``fft_image`` divides the inverse FFT by 4 (keeps the initial image near grey).
FFT_OUTPUT_SCALE = 0.25

PARAMETERIZATIONS = ("fft", "pixel")

def color_matrix(device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(3, 3)`` colour-decorrelation matrix: :data:`COLOR_CORRELATION_SQRT` divided by its
    largest column L2 norm (Lucid ``color.py`` ``max_norm_svd_sqrt``). ``rgb = M @ decorrelated``
    for each pixel."""
    m = torch.tensor(COLOR_CORRELATION_SQRT, dtype=torch.float64)
    m = m / m.norm(dim=0).max()
    return m.to(device=device, dtype=dtype)

def rfft2d_freqs(h: int, w: int) -> Tensor:
    """``(h, w // 2 + 1)`` spatial frequencies (cycles per pixel, ``sqrt(fy² + fx²)``) of the
    coefficients of a real 2-D FFT of an ``h × w`` image (``torch.fft.rfft2`` layout)."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]
    return (fx * fx + fy * fy).sqrt()

def fft_scale(h: int, w: int, decay_power: float = DECAY_POWER) -> Tensor:
    """``(h, w // 2 + 1)`` float32 scale of each Fourier coefficient: ``1 / max(f, 1 / max(h, w))
    ** decay_power`` (Lucid ``fft_image``). The constant term (f = 0) gets ``max(h, w)``."""
    f = rfft2d_freqs(h, w).clamp(min=1.0 / max(h, w))
    return (1.0 / f.pow(decay_power)).float()

def _check(batch: int, h: int, w: int) -> None:
    for name, v in (("batch", batch), ("height", h), ("width", w)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"image {name} must be a positive integer; got {v!r}")
    if min(h, w) < 8:
        raise ValueError(f"images must be at least 8x8 px; got {h}x{w}")

class ImageParam(nn.Module):
    """A batch of independent images ``(batch, 3, h, w)`` in [0, 1], parameterized for
    optimisation.

    Args:
        batch, h, w: number of images and their size (px).
        kind: ``"fft"`` (default, Fourier with 1/f scaling) or ``"pixel"``.
        decorrelate: multiply the channels by :func:`color_matrix` before the sigmoid (default).
        seed: seeds the initial parameters (normal, std :data:`INIT_STD`), drawn on the CPU.
        decay_power: Fourier decay power (1, Lucid's default).
        std: initial standard deviation (0.01).

    Calling the module returns the images, ``(batch, 3, h, w)`` float32 in (0, 1).

    Raises:
        ValueError: an unknown ``kind`` (lists the valid ones) or a bad size.
    """

    def __init__(self, batch: int, h: int, w: int | None = None, kind: str = "fft", decorrelate: bool = True,
                 seed: int = 0, decay_power: float = DECAY_POWER, std: float = INIT_STD):
        super().__init__()
        w = h if w is None else w
        _check(batch, h, w)
        if kind not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {kind!r}; valid: {', '.join(PARAMETERIZATIONS)}")
        self.kind, self.h, self.w, self.decorrelate = kind, h, w, bool(decorrelate)
        g = torch.Generator().manual_seed(int(seed))
        if kind == "fft":
            shape = (batch, 3, h, w // 2 + 1, 2)  # real and imaginary parts
            self.register_buffer("scale", fft_scale(h, w, decay_power), persistent=False)
        else:
            shape = (batch, 3, h, w)
        self.param = nn.Parameter(torch.randn(shape, generator=g) * std)
        self.register_buffer("color", color_matrix(), persistent=False)

    @property
    def batch(self) -> int:
        return self.param.shape[0]

    def raw(self, rows: slice | None = None) -> Tensor:
        """The pre-colour, pre-sigmoid images ``(batch, 3, h, w)`` (only ``rows`` if given)."""
        p = self.param if rows is None else self.param[rows]
        if self.kind == "pixel":
            return p
        spec = torch.view_as_complex(p) * self.scale
        return torch.fft.irfft2(spec, s=(self.h, self.w), norm="ortho") * FFT_OUTPUT_SCALE

    def forward(self, rows: slice | None = None) -> Tensor:
        """Images ``(batch, 3, h, w)`` in (0, 1); only the images ``rows`` if given (each image
        depends only on its own parameters)."""
        x = self.raw(rows)
        if self.decorrelate:
            x = torch.einsum("ij,njhw->nihw", self.color, x)
        return torch.sigmoid(x)

def image_param(batch: int, size: int, kind: str = "fft", decorrelate: bool = True, seed: int = 0) -> ImageParam:
    """Square images: ``ImageParam(batch, size, size, kind, decorrelate, seed)``."""
    return ImageParam(batch, size, size, kind=kind, decorrelate=decorrelate, seed=seed)


"""Curve extraction: a per-pixel curve map from the curve families' attribution.

The article's "curve extraction" (Cammarata et al., "Curve Circuits"/"Curve Detectors",
Distill 2020/2021, section "Curve extraction" of the applications) visualises the curve
families' attribution on the pixels and compares it with Canny edge detection. We choose
**gradient × input** of the summed family activations (the issue's first option):

    objective(x) = Σ_F  1 / (|F| · h_F w_F) · Σ_{u ∈ F} Σ_{p} (a_u(p) / s_F)^power
    map(x)[i, j] = max(0, Σ_c ∂objective/∂x[c, i, j] · (x[c, i, j] − b_c))

with ``a_u(p)`` the post-ReLU activation of unit ``u`` at position ``p`` of family ``F``'s layer
(``h_F × w_F`` positions), ``s_F`` the mean of that layer's activations on the image (held
constant in the gradient, so every family weighs the same whatever its layer's scale), ``b``
the image's mean colour (the baseline of :func:`studies.combing.grad_x_input` for real
images), and the positive part kept (pixels whose deviation from the baseline raises the
curve families' activity). ``power > 1`` weighs strong responses — a curve in a unit's
preferred orientation — more than the weak, broad responses that straight lines and texture
evoke; ``1`` is the plain sum. The default ``power = 4`` was chosen on the benchmark's tuning
scenes (0–11, never the test split; :mod:`.bench_curves`): the mean map on curve pixels / on
line pixels was 2.2 at power 2, 4.7 at 4 and 5.7 at 8, while the (normalised) map on curve
pixels fell from 0.77 to 0.69 between 4 and 8. Why not the chained linear attribution: it
ignores the ReLUs and max-pools that make curve units quiet on lines, which is exactly the
selectivity this map needs.

The network is fully convolutional up to mixed5b, so images of any size ≥ ~32 px are used
at their native size (``model.run``-style forward that stops at the deepest layer needed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from circuits.catalog import catalog

#: Default families: the curve families of mixed3a and mixed3b (Curve Detectors: the "early
#: curves" of mixed3a and the curve detectors of mixed3b).
DEFAULT_FAMILIES = ("mixed3a/curves", "mixed3b/curves")


def curve_families(model, families: str | Sequence[str] | None = None) -> list:
    """The catalog families to use.

    Args:
        model: an :class:`~circuits.model.InceptionV1` (or its :class:`~circuits.spec.ModelSpec`: the
            families can be checked before the model is loaded).
        families: ``None`` → :data:`DEFAULT_FAMILIES` present in the model's catalog;
            ``"all"`` → every family of the catalog named ``curves`` (or with a ``curves``
            alias); a key (``"mixed3b/curves"``, ``"3b/curves"``) or a list / comma-separated
            string of keys.

    Returns:
        list of :class:`~circuits.units.Family`.

    Raises:
        KeyError: an unknown family (the message lists the valid ones).
        ValueError: no curve family in the catalog.
    """
    spec = getattr(model, "spec", model)
    cat = catalog(spec)
    if families is None:
        keys = [k for k in DEFAULT_FAMILIES if k in cat]
    elif families == "all":
        keys = [k for k, f in cat.items() if f.name == "curves" or "curves" in (f.meta.get("aliases") or ())]
    else:
        keys = [s.strip() for s in families.split(",")] if isinstance(families, str) else list(families)
        keys = [k for k in keys if k]
    fams = [cat[k] for k in keys]
    if not fams:
        raise ValueError(f"no curve family selected for {spec.name}; valid families: {', '.join(cat)}")
    return fams


def _check_images(images: Tensor) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"images must be (3, H, W) or (N, 3, H, W) RGB in [0, 1]; got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    if min(images.shape[-2:]) < 32:
        raise ValueError(f"images must be at least 32 x 32 px; got {tuple(images.shape[-2:])}")
    return images.unsqueeze(0) if images.dim() == 3 else images


def curve_map(model, images: Tensor, families: str | Sequence[str] | None = None, power: float = 4.0,
              smooth_px: float = 0.0, baseline: Tensor | None = None) -> Tensor:
    """Per-pixel curve map (module docstring) of each image.

    Args:
        model: :class:`~circuits.model.InceptionV1` (any checkpoint, edited models too).
        images: ``(N, 3, H, W)`` or ``(3, H, W)`` RGB in [0, 1], any size ≥ 32 px.
        families: see :func:`curve_families`.
        power: exponent of the activations in the objective (> 0; default 4, 1 = plain sum).
        smooth_px: σ (px) of a Gaussian blur applied to the map (0: none).
        baseline: the colour ``b`` the input is compared with, ``(3,)`` or ``(N, 3)`` in [0, 1];
            ``None`` (default): each image's mean colour. Pixels equal to the baseline get 0.

    Returns:
        ``(N, H, W)`` float32, ≥ 0, in units of objective per unit of input (comparable across
        images of the same model and settings, so one threshold serves a whole set).

    Raises:
        ValueError: bad images, power or baseline; KeyError: unknown family.
    """
    if not power > 0:
        raise ValueError(f"power must be > 0; got {power}")
    x0 = _check_images(images).float()
    if baseline is not None:
        baseline = torch.as_tensor(baseline).to(device=x0.device, dtype=torch.float32)
        if baseline.shape not in ((3,), (x0.shape[0], 3)):
            raise ValueError(f"baseline must be (3,) or ({x0.shape[0]}, 3) colours; got {tuple(baseline.shape)}")
        if not bool(((baseline >= 0) & (baseline <= 1)).all()):
            raise ValueError("baseline colours must lie in [0, 1] (finite)")
        baseline = baseline.expand(x0.shape[0], 3).reshape(-1, 3, 1, 1)
    fams = curve_families(model, families)
    names = list(dict.fromkeys(f.layer for f in fams))
    out = []
    for i, img in enumerate(x0.split(8)):
        x = img.clone().requires_grad_(True)
        with torch.enable_grad(), model.capture(names) as cap:
            model.forward(x, stop_at=max((model.stage_of(n) for n in names), key=model.stage_names.index))
            obj = x.new_zeros(x.shape[0])
            for f in fams:
                a = cap[f.layer]
                scale = a.detach().mean((1, 2, 3)).clamp(min=1e-6)  # per image
                sel = a[:, list(f.units)] / scale.view(-1, 1, 1, 1)
                obj = obj + sel.clamp(min=0).pow(power).sum((1, 2, 3)) / (len(f.units) * sel[0, 0].numel())
            (g,) = torch.autograd.grad(obj.sum(), x)
        base = img.mean((2, 3), keepdim=True) if baseline is None else baseline[8 * i:8 * i + len(img)]
        m = (g * (img - base)).sum(1).clamp(min=0)
        out.append(m.detach())
    m = torch.cat(out)
    if smooth_px > 0:
        m = gaussian_blur(m, smooth_px)
    return m.float()


def gaussian_blur(m: Tensor, sigma: float) -> Tensor:
    """Blur ``(N, H, W)`` maps with a Gaussian of σ ``sigma`` px (mirror padding, truncated at 3σ;
    :func:`scipy.ndimage.gaussian_filter`). Not differentiable."""
    from scipy.ndimage import gaussian_filter

    a = m.detach().cpu().numpy()
    return torch.from_numpy(gaussian_filter(a, (0, sigma, sigma), mode="mirror", truncate=3.0)).to(m.dtype)


def binarize(m: np.ndarray, threshold: float, thin: bool = True) -> np.ndarray:
    """Marked pixels of a map: ``m ≥ threshold``, thinned to 1-px-wide ridges when ``thin``
    (:func:`skimage.morphology.skeletonize`). ``(H, W)`` → bool ``(H, W)``."""
    from skimage.morphology import skeletonize

    b = np.asarray(m) >= threshold
    return skeletonize(b) if thin else b


def canny(image: Tensor | np.ndarray, sigma: float = 2.0, low: float = 0.05, high: float = 0.15) -> np.ndarray:
    """Canny edges (:func:`skimage.feature.canny`) of an RGB ``(3, H, W)`` image in [0, 1]
    converted to grey (ITU-R 601 luma); thresholds on the gradient magnitude of the [0, 1]
    image. → bool ``(H, W)``."""
    from skimage.feature import canny as _canny

    a = image.numpy() if isinstance(image, Tensor) else np.asarray(image)
    grey = 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]
    return _canny(grey.astype(np.float64), sigma=sigma, low_threshold=low, high_threshold=high)

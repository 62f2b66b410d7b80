"""Reference activation statistics: per-unit mean, std and fraction positive of pre-ReLU
activations over reference images at all spatial positions — the σ units of Curve Detectors'
joint tuning (used by :mod:`studies.measure.tuning` and :mod:`studies.measure.discovery`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from circuits.model import InceptionV1
from circuits.names import hook_name
from circuits.units import canonical_layer
from studies.measure.images import ReferenceImages, load_reference_set


def as_reference(images: Tensor | ReferenceImages | str | Path, n_images: int = 100) -> ReferenceImages:
    """Reference images from a folder (``n_images`` evenly spaced files), a tensor
    ``(N, 3, H, W)`` in [0, 1], or :class:`~studies.measure.images.ReferenceImages`."""
    if isinstance(images, ReferenceImages):
        return images
    if isinstance(images, torch.Tensor):
        return ReferenceImages(images, f"{len(images)} images (tensor), all positions, pre-ReLU")
    return load_reference_set(images, n_images)


#: below this many reference images σ units are unreliable: a loud warning
MIN_REFERENCE_IMAGES = 20


class SmallSampleWarning(UserWarning):
    """A statistic or figure rests on few images (the message gives n)."""


def check_reference_size(n: int, asked: int, description: str = "") -> None:
    """Warn loudly (:class:`SmallSampleWarning`, on stderr) below :data:`MIN_REFERENCE_IMAGES`
    reference images or when fewer images were usable than asked for (the message states n)."""
    if n < MIN_REFERENCE_IMAGES or n < asked:
        warnings.warn(f"σ statistics from only {n} reference image(s) (asked for {asked}; {description}): "
                      f"σ units and discovered families are unreliable below {MIN_REFERENCE_IMAGES}",
                      SmallSampleWarning, stacklevel=3)


def reference_statistics_by_layer(
    model: InceptionV1,
    layers: Sequence[str],
    images: Tensor | ReferenceImages | str | Path,
    n_images: int = 100,
    batch_size: int = 25,
) -> dict[str, pd.DataFrame]:
    """:func:`reference_statistics` of several layers from one forward pass per batch.

    Returns:
        ``{canonical layer: DataFrame}`` (same tables as :func:`reference_statistics`).
    """
    with torch.no_grad():  # a block, not a decorator: mutmut mutates the body
        layers = list(dict.fromkeys(canonical_layer(layer) for layer in layers))
        asked = n_images if isinstance(images, (str, Path)) else None
        ref = as_reference(images, n_images)
        images = ref.images
        check_reference_size(len(images), asked or len(images), ref.description)
        names = [hook_name(layer, pre_relu=True) for layer in layers]
        dev = next(model.parameters()).device
        acc: dict[str, list] = {n: [None, None, None] for n in names}
        count = dict.fromkeys(names, 0)
        for i in range(0, len(images), batch_size):
            acts = model.run(images[i:i + batch_size].to(dev), names)
            for n in names:
                a = acts[n].double()
                a = a.transpose(0, 1).reshape(a.shape[1], -1)
                s = acc[n]
                for k, v in enumerate((a.sum(1), (a * a).sum(1), (a > 0).sum(1))):
                    s[k] = v if s[k] is None else s[k] + v
                count[n] += a.shape[1]
        out = {}
        for layer, n in zip(layers, names):
            s1, s2, pos = acc[n]
            c = count[n]
            mean = s1 / c
            std = torch.sqrt((s2 / c - mean * mean).clamp(min=0) * c / max(c - 1, 1))
            df = pd.DataFrame({"mean": mean.cpu().numpy(), "std": std.cpu().numpy(),
                               "frac_positive": (pos.double() / c).cpu().numpy()})
            df.index.name = "index"
            df.attrs["reference"] = ref.description
            out[layer] = df
        return out


def reference_statistics(
    model: InceptionV1,
    layer: str,
    images: Tensor | ReferenceImages | str | Path,
    n_images: int = 100,
    batch_size: int = 25,
) -> pd.DataFrame:
    """Per-unit pre-ReLU statistics of ``layer`` over reference images, all spatial positions.

    Args:
        images: ``(N, 3, H, W)`` RGB in [0, 1], :class:`~studies.measure.images.ReferenceImages`,
            or an image folder (``n_images`` evenly spaced files are used).

    Returns:
        DataFrame indexed by unit index: ``mean``, ``std``, ``frac_positive`` (pre-ReLU > 0).
    """
    layer = canonical_layer(layer)
    return reference_statistics_by_layer(model, [layer], images, n_images, batch_size)[layer]

"""Non-negative matrix factorisation of a layer's activations (groups of units, e.g. a butterfly group).

Following "The Building Blocks of Interpretability" (Olah et al., Distill 2018, "neuron
groups": NMF of a layer's activations) and the Curve Circuits applications (a factor's
attribution traced by splines): the post-ReLU activations of ``layer`` over one image or a set
are arranged as a non-negative matrix ``A`` (positions of all images × units) and factorised
with :class:`sklearn.decomposition.NMF` as ``A ≈ W H`` (``W``: positions × k, each factor's
spatial map; ``H``: k × units, each factor's unit loadings; init ``nndsvda``, seeded).

The worked example is the sample's six butterfly classes (:data:`BUTTERFLY_WNIDS`). A factor's
attribution to the pixels (gradient × (input − mean colour) of ``Σ_p (a(p) · H_j)``, the same
attribution as :func:`~.extraction.curve_map`) is what :func:`~.splines.trace` fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: ImageNet wnids of the butterfly classes (admiral, ringlet, monarch, cabbage butterfly,
#: sulphur butterfly, lycaenid); the sample's file names are ``<wnid>_<name>.JPEG``.
BUTTERFLY_WNIDS = ("n02276258", "n02277742", "n02279972", "n02280649", "n02281406", "n02281787")


def butterfly_images(folder: str | Path) -> list[Path]:
    """The sample's butterfly images (one per wnid of :data:`BUTTERFLY_WNIDS`), in wnid order.

    Raises:
        FileNotFoundError: the folder or a wnid's image is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} not found")
    out = []
    for w in BUTTERFLY_WNIDS:
        hits = sorted(folder.glob(f"{w}_*"))
        if not hits:
            raise FileNotFoundError(f"no image of wnid {w} in {folder}")
        out.append(hits[0])
    return out


@dataclass
class Factors:
    """An NMF of activations.

    Attributes:
        layer: the layer. maps: ``(N, k, h, w)`` float32 spatial maps (W, reshaped).
        loadings: ``(k, C)`` float32 unit loadings (H). error: Frobenius reconstruction error.
        explained: ``1 − ‖A − WH‖² / ‖A‖²``.
    """

    layer: str
    maps: np.ndarray
    loadings: np.ndarray
    error: float
    explained: float

    def top_units(self, n: int = 8) -> list[list[tuple[int, float]]]:
        """Per factor, the ``n`` units with the largest loadings, ``(unit index, loading)``."""
        return [[(int(u), float(h[u])) for u in np.argsort(-h)[:n]] for h in self.loadings]

    def upsampled(self, size: tuple[int, int]) -> np.ndarray:
        """``maps`` bilinearly resized to ``size`` (H, W) → ``(N, k, H, W)``."""
        t = F.interpolate(torch.from_numpy(self.maps), size=size, mode="bilinear", align_corners=False)
        return t.clamp(min=0).numpy()


def activations(model, images: Tensor, layer: str) -> Tensor:
    """Post-ReLU activations of ``layer`` (Lucid name: ``mixed4d``, ``mixed3b`` …) → ``(N, C, h, w)``.

    Raises:
        KeyError/ValueError: unknown layer (the model's message lists the valid names).
    """
    with torch.no_grad():
        return model.run(images, [layer])[layer].float().contiguous()


def factorize(acts: Tensor, k: int, layer: str = "", seed: int = 0, max_iter: int = 400) -> Factors:
    """NMF of ``acts (N, C, h, w)`` ≥ 0 (module docstring) into ``k`` factors.

    Raises:
        ValueError: ``k`` < 1 or > C, negative activations, or all-zero activations.
    """
    from sklearn.decomposition import NMF

    n, c, h, w = acts.shape
    if not 1 <= k <= c:
        raise ValueError(f"k must be in [1, {c}] (the layer's units); got {k}")
    a = acts.permute(0, 2, 3, 1).reshape(-1, c).double().numpy()
    if (a < 0).any():
        raise ValueError("NMF needs non-negative activations (use a post-ReLU layer)")
    if not a.any():
        raise ValueError("the activations are all zero; nothing to factorise")
    nmf = NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=max_iter)
    wm = nmf.fit_transform(a)
    hm = nmf.components_
    err = float(np.linalg.norm(a - wm @ hm))
    expl = 1.0 - err ** 2 / float((a ** 2).sum())
    maps = wm.reshape(n, h, w, k).transpose(0, 3, 1, 2).astype(np.float32)
    return Factors(layer, maps, hm.astype(np.float32), err, expl)


def consistent_factor(f: Factors) -> int:
    """The factor present most evenly across the images: the largest minimum over images of
    (the image's peak of the factor map / the factor's peak over all images). With a set of
    images of one kind of object, the object's factor (ties → lower index)."""
    peaks = f.maps.max((2, 3))  # (N, k)
    rel = peaks / np.maximum(peaks.max(0, keepdims=True), 1e-12)
    return int(np.argmax(rel.min(0)))


def class_factor(model, images: Tensor, f: Factors, wnids: Sequence[str]) -> tuple[int, np.ndarray]:
    """The factor that drives the classes ``wnids`` most: per factor ``j``, the first-order
    contribution of its reconstruction to the summed logits of those classes,
    ``Σ_images Σ_p W_j(p) · (H_j · ∂logits/∂a(p))`` (gradient × activation of the factor's part
    of the layer; Building Blocks, "attribution to groups").

    Returns:
        ``(factor index, contributions (k,))``.

    Raises:
        ValueError: a wnid the checkpoint does not output.
    """
    from circuits.labels import class_wnids

    table = class_wnids(model.spec)
    idx = []
    for w in wnids:
        if w not in table:
            raise ValueError(f"{model.spec.name} has no output class {w!r}")
        idx.append(table.index(w))
    stage = model.stage_of(f.layer)
    grads = []
    for img in images.split(4):
        if stage == f.layer:  # a stage output: run the rest of the network from it
            with torch.no_grad():
                a = model.forward(img, stop_at=stage).detach().clone()
            a.requires_grad_(True)
            with torch.enable_grad():
                logits = model.forward(a, start_at=stage)
                (g,) = torch.autograd.grad(logits[:, idx].sum(), a)
        else:
            with torch.enable_grad(), model.capture([f.layer]) as cap:
                x = img.clone().requires_grad_(True)
                logits = model.forward(x)
                (g,) = torch.autograd.grad(logits[:, idx].sum(), cap[f.layer])
        grads.append(g.detach().float())
    g = torch.cat(grads).numpy()  # (N, C, h, w)
    dh = np.einsum("kc,nchw->nkhw", f.loadings, g)
    contrib = (f.maps * dh).sum((0, 2, 3))
    return int(np.argmax(contrib)), contrib


def factor_attribution(model, images: Tensor, layer: str, loading: np.ndarray) -> Tensor:
    """Gradient × (input − mean colour), positive part, of ``Σ_p a(p) · loading`` → ``(N, H, W)``."""
    w = torch.as_tensor(loading, dtype=torch.float32).view(1, -1, 1, 1)
    out = []
    for img in images.split(4):
        x = img.clone().requires_grad_(True)
        with torch.enable_grad(), model.capture([layer]) as cap:
            model.forward(x, stop_at=model.stage_of(layer))
            obj = (cap[layer] * w).sum()
            (g,) = torch.autograd.grad(obj, x)
        out.append((g * (img - img.mean((2, 3), keepdim=True))).sum(1).clamp(min=0).detach())
    return torch.cat(out)


def load_images(paths: Sequence[str | Path], size: int = 224) -> Tensor:
    """Images through the evaluation preprocessing (short side 256, centre crop ``size``) → ``(N, 3, size, size)``."""
    from studies.measure.images import load_image

    if not paths:
        raise ValueError("no images given")
    return torch.stack([load_image(p, size=size, resize=max(size, 256)) for p in paths])

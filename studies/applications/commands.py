"""What ``circuits curves``, ``circuits trace`` and ``circuits factor`` do (the argparse side is
:mod:`studies.cli.applications`). Each writes a report folder atomically
(:func:`studies.report.report_folder`)."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from studies.report.html import write_report
from studies.report.provenance import run_provenance

from .extraction import binarize, canny, curve_families, curve_map
from .splines import FLOOR, TraceResult, trace, trace_image

_WNID = "n" + "[0-9]" * 8


def load_native(path: str | Path, max_side: int = 512) -> Tensor:
    """An image at its own size (RGB in [0, 1], ``(3, H, W)``), shrunk (antialiased) so its
    longer side is at most ``max_side`` px; the network is fully convolutional up to mixed5b,
    so no crop is needed.

    Raises:
        FileNotFoundError: no such file. ValueError: not a decodable image, over the image loader's limits
            (:data:`~studies.measure.images.MAX_IMAGE_BYTES`, :data:`~studies.measure.images.MAX_IMAGE_PIXELS`,
            checked before decoding), or smaller than 32 px.
    """
    import torchvision.transforms.v2.functional as TF
    from torchvision.io import ImageReadMode, decode_image

    from studies.measure.images import check_pixels, read_image_file

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image {p} not found")
    try:  # the size and pixel limits of the image loader (a small PNG can declare 40000 x 40000 px)
        data = read_image_file(p)
        check_pixels(data)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    try:
        img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"{p}: cannot decode the image ({e})") from None
    if img.dtype != torch.uint8:  # a 16-bit PNG: to 8 bits as studies.measure.images.load_image, not 0–257
        img = TF.to_dtype(img, torch.uint8, scale=True)
    h, w = img.shape[-2:]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        img = TF.resize(img, [max(1, round(h * s)), max(1, round(w * s))], antialias=True)
    if min(img.shape[-2:]) < 32:
        shrunk = f" after shrinking its longer side to {max_side} px (raise max_side, --max-side)" if max(h, w) > max_side else ""
        raise ValueError(f"{p}: image is {tuple(img.shape[-2:])} px{shrunk}; curve maps need at least 32 x 32")
    return img.float() / 255


def run_curves(model, paths: Sequence[str | Path], out: str | Path, families: str | None = None, power: float = 4.0,
               quantile: float = 0.92, smooth_px: float = 1.0, canny_sigma: float = 2.0, max_side: int = 512,
               overwrite: bool = False) -> dict:
    """Curve map + Canny for each image → ``out/curves.png``, ``out/maps.npz`` (one float32 map per
    image, key = file stem), ``out/summary.csv``.

    Marked pixels: the map (blurred ``smooth_px``) above its own ``quantile``, thinned. Canny:
    σ ``canny_sigma`` px, skimage's default thresholds.
    """
    from studies.report.folder import check_out_dir, report_folder

    from .figures import plot_curves

    check_out_dir(out, overwrite)
    if not 0 < quantile < 1:
        raise ValueError(f"--quantile must be in (0, 1); got {quantile}")
    fams = curve_families(model, families)
    images = [load_native(p, max_side) for p in paths]
    t = time.perf_counter()
    maps = [curve_map(model, im, [f.key for f in fams], power, smooth_px)[0].numpy()
            for im in images]
    sec = (time.perf_counter() - t) / len(images)
    marks = [binarize(m, float(np.quantile(m, quantile))) for m in maps]
    edges = [canny(im, sigma=canny_sigma, low=0.1, high=0.2) for im in images]
    names = [Path(p).stem for p in paths]
    label = ", ".join(f.key for f in fams)
    rows = [dict(image=n, height=m.shape[0], width=m.shape[1], map_max=float(m.max()),
                 marked_fraction=float(k.mean()), canny_fraction=float(e.mean()))
            for n, m, k, e in zip(names, maps, marks, edges)]
    with report_folder(out, overwrite) as tmp:
        plot_curves(images, names, maps, marks, edges, tmp / "curves.png", label)
        np.savez_compressed(tmp / "maps.npz", **{n: m.astype(np.float32) for n, m in zip(names, maps)})
        pd.DataFrame(rows).to_csv(tmp / "summary.csv", index=False)
        write_report(tmp, "Curve map vs Canny")
    return dict(images=len(images), seconds_per_image=sec, families=label)


def svg_document(image: Tensor, result: TraceResult, colour: str = "#ff2020") -> str:
    """An SVG of the image (embedded PNG) with the fitted splines as ``<path>`` elements."""
    from PIL import Image

    h, w = image.shape[-2:]
    buf = io.BytesIO()
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    paths = "\n".join(f'  <path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>'
                      for d in result.svg_paths())
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="-0.5 -0.5 {w} {h}">\n'
            f'  <image x="-0.5" y="-0.5" width="{w}" height="{h}" href="data:image/png;base64,{b64}"/>\n'
            f"{paths}\n</svg>\n")


def run_trace(model, path: str | Path, out: str | Path, families: str | None = None, n_splines: int = 24,
              steps: int = 200, tau: float = 0.15, max_side: int = 512, overwrite: bool = False,
              rounds: int = 2, explain_rounds: int = 4, fill: str = "local", floor: float = FLOOR) -> dict:
    """Fit splines to an image's curve maps (:func:`~.splines.trace_image`) → ``out/trace.png``,
    ``out/splines.svg`` (image + paths), ``out/splines.csv`` (control points, px, x right / y down; score; length)."""
    from studies.report.folder import check_out_dir, report_folder

    from .figures import plot_trace

    check_out_dir(out, overwrite)
    if n_splines < 1 or steps < 1 or rounds < 1 or explain_rounds < 1:
        raise ValueError(f"--splines, --steps, --rounds and --explain-rounds must be ≥ 1; got {n_splines}, {steps}, "
                         f"{rounds}, {explain_rounds}")
    image = load_native(path, max_side)
    res, m = trace_image(model, image, families, n_splines=n_splines, steps=steps, tau=tau,
                         explain_rounds=explain_rounds, rounds=rounds, fill=fill, floor=floor)
    rows = [dict(spline=i, **{f"{a}{k}": float(c[k, j]) for k in range(4) for j, a in enumerate("xy")},
                 score=float(s), length_px=float(ln), map=int(r) + 1, svg=d)
            for i, (c, s, ln, r, d) in enumerate(zip(res.ctrl, res.score, res.length, res.map_index,
                                                     res.svg_paths()))]
    with report_folder(out, overwrite) as tmp:
        plot_trace(image, m, res.ctrl, tmp / "trace.png",
                   f"{Path(path).stem} ({m.shape[1]} × {m.shape[0]} px): {len(res.ctrl)} splines "
                   f"(most {n_splines}), found on {len(set(res.map_index.tolist()))} of ≤ {explain_rounds} maps",
                   res.map_index)
        (tmp / "splines.svg").write_text(svg_document(image, res))
        pd.DataFrame(rows, columns=["spline", "x0", "y0", "x1", "y1", "x2", "y2", "x3", "y3", "score", "length_px",
                                    "map", "svg"]).to_csv(tmp / "splines.csv", index=False)
        write_report(tmp, "Spline tracing")
    return dict(splines=len(res.ctrl), seconds=res.seconds)


def _wnids(paths: Sequence[str | Path]) -> list[str]:
    import fnmatch

    out = []
    for p in paths:
        head = Path(p).name.split("_", 1)[0]
        if fnmatch.fnmatch(head, _WNID):
            out.append(head)
    return list(dict.fromkeys(out))


def run_factor(model, paths: Sequence[str | Path], layer: str, k: int, out: str | Path, size: int = 224,
               splines: int = 3, seed: int = 0, overwrite: bool = False) -> dict:
    """NMF of ``layer`` over the images → ``out/factors.png`` (spatial maps, top units, and the
    class factor traced by splines), ``out/loadings.csv``, ``out/maps.npz``, ``out/summary.json``.

    The traced factor is the one that drives the images' own classes most
    (:func:`~.factors.class_factor`, wnids read from ``<wnid>_<name>`` file names); without
    such names, the factor present most evenly across the images (:func:`~.factors.consistent_factor`).
    """
    from studies.report.folder import check_out_dir, report_folder, write_json

    from .factors import activations, class_factor, consistent_factor, factor_attribution, factorize, load_images
    from .figures import plot_factors

    check_out_dir(out, overwrite)
    if k < 1:
        raise ValueError(f"--k must be ≥ 1; got {k}")
    model.stage_of(layer)  # unknown layer → KeyError listing the valid names
    images = load_images(paths, size)
    f = factorize(activations(model, images, layer), k, layer, seed)
    wnids = _wnids(paths)
    if wnids:
        j, contrib = class_factor(model, images, f, wnids)
        how = f"largest contribution to the logits of {', '.join(wnids)}"
    else:
        j, contrib = consistent_factor(f), None
        how = "present most evenly across the images"
    att = factor_attribution(model, images, layer, f.loadings[j]).numpy()
    fits = {(i, j): trace(att[i], n_splines=splines).ctrl for i in range(len(paths))}
    names = [Path(p).stem for p in paths]
    up = f.upsampled(tuple(images.shape[-2:]))
    load_df = pd.DataFrame([dict(factor=a, unit=f"{layer}:{u}", loading=float(f.loadings[a, u]))
                            for a in range(k) for u in np.argsort(-f.loadings[a])[:20]])
    summ = dict(layer=layer, k=k, images=names, explained=round(f.explained, 4), traced_factor=j, chosen_by=how,
                logit_contributions=None if contrib is None else [round(float(c), 3) for c in contrib],
                top_units={a: [f"{layer}:{u}" for u, _ in t] for a, t in enumerate(f.top_units(8))})
    with report_folder(out, overwrite) as tmp:
        plot_factors(images, names, up, f.top_units(8), layer, tmp / "factors.png", fits)
        load_df.to_csv(tmp / "loadings.csv", index=False)
        np.savez_compressed(tmp / "maps.npz", maps=f.maps, loadings=f.loadings)
        summ["provenance"] = run_provenance(model, seed=seed)  # the NMF initialisation's seed
        write_json(tmp / "summary.json", summ)
        write_report(tmp, "NMF factors")
    return summ

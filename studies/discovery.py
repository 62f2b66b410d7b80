"""Family discovery from synthetic stimuli: which units of a layer are curve detectors.

A unit is put in the curve family when, measured at its receptive-field centre
(:func:`studies.tuning.measure`, pre-ReLU):

1. **strong** — its best curve response is at least ``min_sigma`` standard deviations
   above its mean activation over a reference image set (Curve Detectors reports tuning in
   σ of the dataset activation; the best curves reach ≈24σ for Lucid's 3b:379);
2. **prefers curves to lines** — the best curve drives it at least ``min_curve_line``
   times as far above its dataset mean as the best straight line does;
3. **orientation-selective** — its radial tuning curve (positive responses averaged over
   radius) has selectivity (1 − circular variance) ≥ ``min_selectivity``.

The preferred orientation is the angle of the response-weighted vector sum of the radial
tuning curve (convention in :mod:`studies.stimuli`). Defaults: ``min_sigma=5``,
``min_curve_line=3``, ``min_selectivity=0.8``; stimuli: 36 orientations (10° steps) ×
9 radii (8–200 px), 2-px strokes, plus 18 lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from circuits.model import InceptionV1
from circuits.units import Family, canonical_layer

from . import stimuli as S
from .tuning import measure, radial_tuning, tuning_metrics

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder (flat or ``<wnid>/`` subfolders), sorted.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no images (.JPEG/.jpg/.png) in {folder}")
    return files


def load_reference_images(folder: str | Path, n_images: int = 100, size: int = 224) -> torch.Tensor:
    """``n_images`` evenly spaced images of a folder (deterministic), resized (short side
    256, bilinear) and centre-cropped to ``size`` → ``(n, 3, size, size)`` in [0, 1].
    Unreadable files are skipped."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    files = list_images(folder)
    step = max(1, len(files) // n_images)
    out = []
    for p in files[::step][:n_images]:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                out.append(TF.to_tensor(TF.center_crop(TF.resize(im, 256, antialias=True), size)))
        except Exception:  # noqa: BLE001 - unreadable files are skipped, as in classification
            continue
    if not out:
        raise ValueError(f"no readable images in {folder}")
    return torch.stack(out)


@torch.no_grad()
def reference_statistics(
    model: InceptionV1,
    layer: str,
    images: torch.Tensor | str | Path,
    n_images: int = 100,
    batch_size: int = 25,
) -> pd.DataFrame:
    """Per-unit pre-ReLU statistics of ``layer`` over reference images, all spatial positions.

    Args:
        images: ``(N, 3, H, W)`` RGB in [0, 1], or an image folder (``n_images`` evenly
            spaced files are used).

    Returns:
        DataFrame indexed by unit index: ``mean``, ``std``, ``frac_positive`` (pre-ReLU > 0).
    """
    layer = canonical_layer(layer)
    if not isinstance(images, torch.Tensor):
        images = load_reference_images(images, n_images)
    name = f"{layer}_pre_relu"
    dev = next(model.parameters()).device
    s1 = s2 = pos = None
    count = 0
    for i in range(0, len(images), batch_size):
        a = model.run(images[i:i + batch_size].to(dev), [name])[name].double()
        a = a.transpose(0, 1).reshape(a.shape[1], -1)
        s1 = a.sum(1) if s1 is None else s1 + a.sum(1)
        s2 = (a * a).sum(1) if s2 is None else s2 + (a * a).sum(1)
        pos = (a > 0).sum(1) if pos is None else pos + (a > 0).sum(1)
        count += a.shape[1]
    mean = s1 / count
    std = torch.sqrt((s2 / count - mean * mean).clamp(min=0) * count / max(count - 1, 1))
    return pd.DataFrame({"mean": mean.cpu().numpy(), "std": std.cpu().numpy(),
                         "frac_positive": (pos.double() / count).cpu().numpy()})


@dataclass
class Discovery:
    """Result of :func:`discover_curves`: the family and the per-unit table it came from."""

    family: Family
    table: pd.DataFrame
    criteria: dict = field(default_factory=dict)


def discover_curves(
    model: InceptionV1,
    layer: str = "mixed3b",
    reference: torch.Tensor | str | Path | pd.DataFrame | None = None,
    orientations: Sequence[float] = tuple(range(0, 360, 10)),
    radii: Sequence[float] = S.DEFAULT_RADII,
    stroke_width: float = 2.0,
    min_sigma: float = 5.0,
    min_curve_line: float = 3.0,
    min_selectivity: float = 0.8,
    responses: pd.DataFrame | None = None,
) -> Discovery:
    """Find the curve detectors of ``layer`` (criteria in the module docstring).

    Args:
        model: the network.
        layer: canonical or short layer name.
        reference: images (tensor or folder) for the dataset statistics, or a table from
            :func:`reference_statistics`. Required.
        responses: optional precomputed :func:`~studies.tuning.measure` output for all units
            of the layer on the same curves + lines (saves a sweep).

    Returns:
        :class:`Discovery` with ``family`` (units ordered by preferred orientation, each
        unit's preferred orientation in ``family.orientations``) and ``table`` (one row per
        unit of the layer: ``curve_peak``, ``line_peak``, ``mean``, ``std``,
        ``curve_sigma``, ``line_sigma``, ``curve_line``, ``selectivity``,
        ``preferred_orientation``, ``echo_ratio``, ``tuning_width``, ``branch``,
        ``is_curve``).

    Raises:
        ValueError: no reference given.
    """
    layer = canonical_layer(layer)
    if reference is None:
        raise ValueError("discover_curves needs reference images (a folder or tensor) for the dataset σ")
    stats = reference if isinstance(reference, pd.DataFrame) else reference_statistics(model, layer, reference)
    width = model.spec.layer_width(layer)
    if responses is None:
        stim = S.curves(orientations, radii, stroke_width=stroke_width) + S.lines(
            [o for o in orientations if o < 180], stroke_width=stroke_width)
        responses = measure(model, [f"{layer}:{i}" for i in range(width)], stim)
    cur = responses[responses["kind"] == "curve"].groupby("index")["response"].max()
    lin = responses[responses["kind"] == "line"].groupby("index")["response"].max()
    met = tuning_metrics(radial_tuning(responses)).set_index("index")
    t = pd.DataFrame({"curve_peak": cur, "line_peak": lin})
    t = t.join(stats[["mean", "std", "frac_positive"]])
    t["curve_sigma"] = (t["curve_peak"] - t["mean"]) / t["std"]
    t["line_sigma"] = (t["line_peak"] - t["mean"]) / t["std"]
    excess_line = (t["line_peak"] - t["mean"]).clip(lower=1e-9)
    t["curve_line"] = (t["curve_peak"] - t["mean"]) / excess_line
    for c in ("selectivity", "preferred_orientation", "peak_orientation", "echo_ratio", "tuning_width"):
        t[c] = met[c]
    if layer.startswith("mixed"):
        t["branch"] = [model.spec.branch_of(layer, int(i)) for i in t.index]
    else:
        t["branch"] = ""
    t["is_curve"] = (
        (t["curve_sigma"] >= min_sigma) & (t["curve_line"] >= min_curve_line) & (t["selectivity"] >= min_selectivity)
    )
    t.index.name = "index"
    fam_t = t[t["is_curve"]].sort_values("preferred_orientation")
    criteria = dict(min_sigma=min_sigma, min_curve_line=min_curve_line, min_selectivity=min_selectivity,
                    orientations=list(map(float, orientations)), radii=list(map(float, radii)),
                    stroke_width=stroke_width, reference=_describe_reference(reference))
    fam = Family(
        name="curves", layer=layer, units=tuple(int(i) for i in fam_t.index), kind="curve",
        source=f"discovered from synthetic curves ({model.spec.name}); studies.discovery.discover_curves",
        orientations=tuple(round(float(o), 1) for o in fam_t["preferred_orientation"]),
    )
    return Discovery(fam, t.reset_index(), criteria)


def _describe_reference(reference) -> str:
    if isinstance(reference, torch.Tensor):
        return f"{len(reference)} images (tensor)"
    if isinstance(reference, pd.DataFrame):
        return "precomputed statistics"
    return f"{Path(reference).name}: 100 evenly spaced images, all positions, pre-ReLU"


def orientation_coverage_gap(orientations: Sequence[float]) -> float:
    """Largest gap (deg) between consecutive preferred orientations around the circle."""
    o = np.sort(np.mod(np.asarray(orientations, float), 360.0))
    if len(o) == 0:
        return 360.0
    gaps = np.diff(np.concatenate([o, [o[0] + 360.0]]))
    return float(gaps.max())


def freeze_family(discovery: Discovery, checkpoint: str, command: str, path: str | Path | None = None) -> Path:
    """Write (or replace) a discovered family in the checkpoint's catalog YAML.

    The entry records the units, preferred orientations, criteria, per-unit measurements
    and the ``command`` that regenerates it.
    """
    import yaml

    from circuits.catalog import catalog_path

    path = Path(path) if path else catalog_path(checkpoint)
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    data = data or {"checkpoint": checkpoint, "families": []}
    fam = discovery.family
    t = discovery.table.set_index("index").loc[list(fam.units)]
    entry = {
        "name": fam.name, "layer": fam.layer, "kind": fam.kind,
        "units": [int(u) for u in fam.units],
        "orientations": [float(o) for o in fam.orientations or ()],
        "branches": [str(b) for b in t["branch"]],
        "curve_sigma": [round(float(v), 2) for v in t["curve_sigma"]],
        "selectivity": [round(float(v), 3) for v in t["selectivity"]],
        "source": fam.source,
        "criteria": discovery.criteria,
        "regenerate": command,
    }
    data["families"] = [f for f in data.get("families", []) if (f["layer"], f["name"]) != (fam.layer, fam.name)]
    data["families"].append(entry)
    data["families"].sort(key=lambda f: (f["layer"], f["name"]))
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=120, default_flow_style=None))
    return path

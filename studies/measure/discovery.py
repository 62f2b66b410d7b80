"""Family discovery from synthetic stimuli: which units of a layer are curve or line detectors.

Every unit of a layer is measured at its receptive-field centre (:func:`studies.measure.tuning.measure`,
pre-ReLU) on one sweep: circular arcs (36 orientations, 10° steps × 9 radii, 2-px dark
strokes on white) plus the 18 straight lines of those orientations that lie in [0°, 180°)
(a line is 180°-periodic). Responses are put in units of the unit's dataset spread: σ =
(response − mean) / std, with mean and std of the pre-ReLU activation over all positions of
100 reference images (Curve Detectors reports tuning "in standard deviations of the
unit's dataset activation"; the best curves reach ≈24σ for Lucid's 3b:379).

Curve family (:func:`discover_curves`) — a unit is a curve detector when

1. **strong** — its best curve is ≥ ``min_sigma`` σ above its dataset mean;
2. **prefers curves to lines** — the best curve drives it ≥ ``min_curve_line`` times as far
   above its mean as the best straight line;
3. **orientation-selective** — its radial tuning curve (positive responses averaged over
   radius, :func:`studies.measure.tuning.radial_tuning`) has selectivity
   ``|Σ r e^{iθ}| / Σ r`` (1 − circular variance) ≥ ``min_selectivity``.

Its preferred orientation is the angle of that vector sum, in [0°, 360°) (convention in
:mod:`studies.measure.stimuli`: the curve opens towards θ).

Line family (:func:`discover_lines`) — a unit is a line detector when

1. **strong** — its best line is ≥ ``min_sigma`` σ above its dataset mean;
2. **prefers lines to curves** — the best line drives it ≥ ``min_line_curve`` times as far
   above its mean as the best *tight* curve (radius ≤ ``TIGHT_RADIUS_FRACTION`` × the
   receptive field, i.e. the three smallest default radii: whole small circles inside the
   receptive field), **and** no curve of any radius drives it more than ``max_curve_line``
   times as far as the line does (this keeps out "shallow curve" units whose best stimulus
   is an arc about as wide as the receptive field);
3. **orientation-selective with 180° periodicity** — doubled-angle selectivity
   ``|Σ r e^{2iθ}| / Σ r`` ≥ ``min_selectivity`` over the positive line responses r(θ),
   θ ∈ [0°, 180°).

Its preferred orientation is half the angle of the doubled-angle vector sum, in [0°, 180°).
As for every stimulus here, a line's orientation θ is the direction of its *normal*: the
line through the centre perpendicular to θ (θ = 90° is a horizontal line).

Layer-aware defaults
--------------------
**Radii** scale with the receptive field (:func:`default_radii`): curvature matters only at
radii comparable to what the unit sees, so the default radii are
:data:`studies.measure.stimuli.DEFAULT_RADII` (8–200 px, chosen for the 91-px receptive field of
mixed3b) × ``rf.size / 91``, rounded to 0.01 px: conv2d2 (19 px) 1.67–41.76 px, mixed3a
(59 px) 5.19–129.67 px, mixed3b unchanged, mixed4a (171 px) 15.03–375.82 px. The stroke is
2 px everywhere (a thinner stroke would be sub-pixel at conv2d2).

**Thresholds** (:data:`CURVE_CRITERIA`, :data:`LINE_CRITERIA`; layers not listed use
:data:`DEFAULT_CURVE_CRITERIA` / :data:`DEFAULT_LINE_CRITERIA`):

===========  =========  ==============  ===============
curves       min_sigma  min_curve_line  min_selectivity
===========  =========  ==============  ===============
default      5          3               0.8
conv2d2      4          2.5             0.8
mixed3a      4          3               0.8
mixed4a      4          3               0.8
===========  =========  ==============  ===============

- mixed3b keeps 5σ (its frozen family predates the per-layer defaults and must not change).
- conv2d2, mixed3a and mixed4a units are weaker in σ: the best curve response of any
  conv2d2 unit is 5.9σ, so 5σ would leave 3 units; 4σ is the threshold the mixed4a family
  was first frozen with.
- conv2d2 takes ``min_curve_line`` 2.5: the 2-px stroke is 10 % of its 19-px receptive
  field (2 % at mixed3b), so an arc and its tangent line share much more ink inside the
  field and the curve/line contrast is compressed for every unit of the layer.
- No criterion involves echoes: conv2d2 and mixed3a curve units have them in Lucid's model
  (Curve Circuits: echo ratios 0.19–0.88 and 0.04–0.53), so low echo is not required there.
  (Echoes lower the selectivity; the echo ratio is recorded per unit in the catalog.)

Lines (all layers): ``min_sigma`` 2.9, ``min_line_curve`` 1.5, ``max_curve_line`` 1.5,
``min_selectivity`` 0.7. Straight dark lines are weak stimuli in σ (the best line of any
conv2d2 / mixed3a unit reaches 5.7σ / 5.0σ). The σ threshold is 2.9 rather than a round 3
because BVLC 3a:55 sits at 2.999σ: a threshold on top of a unit would make the family
depend on float rounding (the nearest line σ of otherwise qualifying units are 2.98 above
and 2.81 below 2.9). A rectified cos 2Δ tuning curve has doubled-angle selectivity
π/4 ≈ 0.79 and cos²Δ has 0.5, so 0.7 asks for tuning nearly as sharp as a rectified cosine.

Freezing
--------
The families of a checkpoint listed in :data:`FROZEN_FAMILIES` are written into its
packaged catalog (``circuits/data/families_<checkpoint>.yaml``) with this module's entry
point, which is also recorded in the file::

    python -m studies.measure.frozen --model inceptionv1_caffe --images $CIRCUITS_DATA/imagenet-sample-1000 --freeze
    python -m studies.measure.frozen --model inceptionv1_caffe --images $CIRCUITS_DATA/imagenet-sample-1000 --check
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from circuits.geometry import receptive_field
from circuits.model import InceptionV1
from circuits.units import Family, canonical_layer
from studies.measure import stimuli as S
from studies.measure.images import ReferenceImages
from studies.measure.statistics import as_reference, reference_statistics, reference_statistics_by_layer
from studies.measure.tuning import measure, radial_tuning, tuning_metrics

#: Receptive-field size (px) the default radii :data:`studies.measure.stimuli.DEFAULT_RADII` were
#: chosen for (mixed3b, 5x5 branch; Branch Specialization: "about 91 px").
REFERENCE_RF = 91
#: Default stimulus orientations (deg) of a discovery sweep; lines use those in [0, 180).
DEFAULT_ORIENTATIONS = tuple(range(0, 360, 10))
#: Curves with radius ≤ this fraction of the receptive field are "tight" (line criterion 2).
TIGHT_RADIUS_FRACTION = 0.25

#: Curve criteria for layers without an entry in :data:`CURVE_CRITERIA`.
DEFAULT_CURVE_CRITERIA = {"min_sigma": 5.0, "min_curve_line": 3.0, "min_selectivity": 0.8}
#: Per-layer curve criteria (reasons in the module docstring).
CURVE_CRITERIA = {
    "conv2d2": {"min_sigma": 4.0, "min_curve_line": 2.5, "min_selectivity": 0.8},
    "mixed3a": {"min_sigma": 4.0, "min_curve_line": 3.0, "min_selectivity": 0.8},
    "mixed4a": {"min_sigma": 4.0, "min_curve_line": 3.0, "min_selectivity": 0.8},
}
#: Line criteria for layers without an entry in :data:`LINE_CRITERIA`.
DEFAULT_LINE_CRITERIA = {"min_sigma": 2.9, "min_line_curve": 1.5, "max_curve_line": 1.5, "min_selectivity": 0.7}
#: Per-layer line criteria (none differ from the default yet).
LINE_CRITERIA: dict[str, dict[str, float]] = {}

#: Families frozen into each checkpoint's packaged catalog by ``--freeze``: (layer, name).
FROZEN_FAMILIES: dict[str, tuple[tuple[str, str], ...]] = {
    "inceptionv1_caffe": (
        ("conv2d2", "curves"), ("conv2d2", "lines"),
        ("mixed3a", "curves"), ("mixed3a", "lines"),
        ("mixed3b", "curves"),
        ("mixed4a", "curves"),
    ),
}
#: Other names of discovered families, recorded as ``aliases`` in the catalog (Lucid's names
#: for the same kinds of units: An Overview of Early Vision's "tiny curves" and "early curves").
FAMILY_ALIASES: dict[tuple[str, str], list[str]] = {
    ("conv2d2", "curves"): ["tiny_curves"],
    ("mixed3a", "curves"): ["early_curves"],
}
#: Reference images used by the frozen catalogs (relative to ``$CIRCUITS_DATA``) and how many.
REFERENCE_FOLDER = "imagenet-sample-1000"
REFERENCE_IMAGES = 100
#: Tolerance (deg) when a fresh discovery is compared with the frozen catalog.
ORIENTATION_TOLERANCE = 0.1


def regenerate_command(checkpoint: str, check: bool = False) -> str:
    """The shell command that regenerates (or, with ``check``, verifies) a frozen catalog."""
    return (f"python -m studies.measure.frozen --model {checkpoint} --images $CIRCUITS_DATA/{REFERENCE_FOLDER} "
            + ("--check" if check else "--freeze"))


# --------------------------------------------------------------------------- sweep
def default_radii(spec, layer: str) -> tuple[float, ...]:
    """Default curve radii (px) of a layer: :data:`studies.measure.stimuli.DEFAULT_RADII` scaled by
    ``receptive_field(spec, layer).size / 91`` and rounded to 0.01 px (mixed3b: unchanged)."""
    rf = receptive_field(spec, canonical_layer(layer)).size
    if rf == REFERENCE_RF:
        return tuple(S.DEFAULT_RADII)
    return tuple(round(r * rf / REFERENCE_RF, 2) for r in S.DEFAULT_RADII)


def curve_criteria(layer: str) -> dict[str, float]:
    """Default curve criteria of a layer (copy)."""
    return dict(CURVE_CRITERIA.get(canonical_layer(layer), DEFAULT_CURVE_CRITERIA))


def line_criteria(layer: str) -> dict[str, float]:
    """Default line criteria of a layer (copy)."""
    return dict(LINE_CRITERIA.get(canonical_layer(layer), DEFAULT_LINE_CRITERIA))


def sweep_stimuli(
    orientations: Sequence[float] = DEFAULT_ORIENTATIONS,
    radii: Sequence[float] = S.DEFAULT_RADII,
    stroke_width: float = 2.0,
) -> S.Stimuli:
    """The discovery sweep: curves (orientations × radii) + lines at the orientations in [0, 180)."""
    line_ors = [o for o in orientations if 0 <= o < 180]
    return S.curves(orientations, radii, stroke_width=stroke_width) + S.lines(line_ors, stroke_width=stroke_width)


def sweep(
    model: InceptionV1,
    layer: str,
    orientations: Sequence[float] = DEFAULT_ORIENTATIONS,
    radii: Sequence[float] | None = None,
    stroke_width: float = 2.0,
    progress: bool = False,
) -> pd.DataFrame:
    """:func:`~studies.measure.tuning.measure` of every unit of ``layer`` on :func:`sweep_stimuli`
    (``radii`` default: :func:`default_radii`). Pass it as ``responses=`` to
    :func:`discover_curves` and :func:`discover_lines` to share one sweep."""
    layer = canonical_layer(layer)
    radii = default_radii(model.spec, layer) if radii is None else radii
    width = model.spec.layer_width(layer)
    stim = sweep_stimuli(orientations, radii, stroke_width)
    return measure(model, [f"{layer}:{i}" for i in range(width)], stim, progress=progress)


# --------------------------------------------------------------------------- discovery
@dataclass
class Discovery:
    """Result of :func:`discover_curves` / :func:`discover_lines`: the family and the
    per-unit table it came from."""

    family: Family
    table: pd.DataFrame
    criteria: dict = field(default_factory=dict)


def _statistics(model, layer, reference) -> pd.DataFrame:
    if reference is None:
        raise ValueError("discovery needs reference images (a folder or tensor) or statistics for the dataset σ")
    return reference if isinstance(reference, pd.DataFrame) else reference_statistics(model, layer, reference)


def _criteria_record(criteria: dict, orientations, radii, stroke_width, reference) -> dict:
    return dict(**{k: float(v) for k, v in criteria.items()},
                orientations=[float(o) for o in orientations], radii=[float(r) for r in radii],
                stroke_width=float(stroke_width), reference=_describe_reference(reference))


def _responses(model, layer, responses, orientations, radii, stroke_width) -> pd.DataFrame:
    if responses is None:
        responses = sweep(model, layer, orientations, radii, stroke_width)
    return responses[responses["layer"] == layer] if "layer" in responses.columns else responses


def _branches(model, layer, index) -> list[str]:
    if layer.startswith("mixed"):
        return [model.spec.branch_of(layer, int(i)) for i in index]
    return [""] * len(index)


def _family(t: pd.DataFrame, flag: str, name: str, kind: str, layer: str, source: str) -> Family:
    """The family of the units of table ``t`` (indexed by unit index; renamed ``index``) whose
    ``flag`` column is true, sorted by preferred orientation (rounded to 0.1°)."""
    t.index.name = "index"
    fam_t = t[t[flag]].sort_values("preferred_orientation")
    return Family(name=name, layer=layer, units=tuple(int(i) for i in fam_t.index), kind=kind, source=source,
                  orientations=tuple(round(float(o), 1) for o in fam_t["preferred_orientation"]))


def discover_curves(
    model: InceptionV1,
    layer: str = "mixed3b",
    reference: torch.Tensor | ReferenceImages | str | Path | pd.DataFrame | None = None,
    orientations: Sequence[float] = DEFAULT_ORIENTATIONS,
    radii: Sequence[float] | None = None,
    stroke_width: float = 2.0,
    min_sigma: float | None = None,
    min_curve_line: float | None = None,
    min_selectivity: float | None = None,
    responses: pd.DataFrame | None = None,
) -> Discovery:
    """Find the curve detectors of ``layer`` (criteria in the module docstring).

    Args:
        model: the network.
        layer: canonical or short layer name.
        reference: images (tensor or folder) for the dataset statistics, or a table from
            :func:`reference_statistics`. Required.
        radii: px; default :func:`default_radii` (scaled to the receptive field).
        min_sigma, min_curve_line, min_selectivity: default :func:`curve_criteria` of the layer.
        responses: optional precomputed :func:`sweep` of the layer with the same
            orientations, radii and stroke (saves a sweep).

    Returns:
        :class:`Discovery` with ``family`` (units ordered by preferred orientation, each
        unit's preferred orientation in ``family.orientations``) and ``table`` (one row per
        unit of the layer: ``curve_peak``, ``line_peak``, ``mean``, ``std``,
        ``curve_sigma``, ``line_sigma``, ``curve_line``, ``selectivity``,
        ``preferred_orientation``, ``echo_ratio``, ``tuning_width``, ``peak_radius``,
        ``branch``, ``is_curve``).

    Raises:
        ValueError: no reference given.
    """
    layer = canonical_layer(layer)
    stats = _statistics(model, layer, reference)
    radii = default_radii(model.spec, layer) if radii is None else tuple(radii)
    crit = curve_criteria(layer)
    for k, v in (("min_sigma", min_sigma), ("min_curve_line", min_curve_line), ("min_selectivity", min_selectivity)):
        if v is not None:
            crit[k] = float(v)
    responses = _responses(model, layer, responses, orientations, radii, stroke_width)
    curves = responses[responses["kind"] == "curve"]
    cur = curves.groupby("index")["response"].max()
    lin = responses[responses["kind"] == "line"].groupby("index")["response"].max()
    met = tuning_metrics(radial_tuning(responses)).set_index("index")
    t = pd.DataFrame({"curve_peak": cur, "line_peak": lin})
    t = t.join(stats[["mean", "std", "frac_positive"]])
    t["curve_sigma"] = (t["curve_peak"] - t["mean"]) / t["std"]
    t["line_sigma"] = (t["line_peak"] - t["mean"]) / t["std"]
    # ratios of excesses over the dataset mean; a denominator is floored at 0.1σ so that a
    # unit whose best line stays below its mean gets a large but finite ratio
    floor = 0.1 * t["std"]
    excess_line = (t["line_peak"] - t["mean"]).clip(lower=floor)
    t["curve_line"] = (t["curve_peak"] - t["mean"]) / excess_line
    for c in ("selectivity", "preferred_orientation", "peak_orientation", "echo_ratio", "tuning_width"):
        t[c] = met[c]
    t["peak_radius"] = curves.loc[curves.groupby("index")["response"].idxmax()].set_index("index")["radius"]
    t["branch"] = _branches(model, layer, t.index)
    t["is_curve"] = (
        (t["curve_sigma"] >= crit["min_sigma"]) & (t["curve_line"] >= crit["min_curve_line"])
        & (t["selectivity"] >= crit["min_selectivity"])
    )
    fam = _family(t, "is_curve", "curves", "curve", layer,
                  f"discovered from synthetic curves ({model.spec.name}); studies.measure.discovery.discover_curves")
    return Discovery(fam, t.reset_index(), _criteria_record(crit, orientations, radii, stroke_width, reference))


def line_tuning_metrics(responses: pd.DataFrame) -> pd.DataFrame:
    """180°-periodic tuning measures of the ``kind == "line"`` rows of a :func:`measure` table.

    Columns (one row per ``index``): ``line_selectivity`` (``|Σ r e^{2iθ}| / Σ r`` over the
    positive responses r), ``preferred_orientation`` (deg in [0, 180): half the angle of
    that sum), ``peak_orientation`` (deg, argmax mod 180), ``line_tuning_width`` (deg, the
    orientations whose response is ≥ half the peak).
    """
    d = responses[responses["kind"] == "line"]
    rows = []
    for i, g in d.groupby("index", sort=True):
        g = g.groupby(g["orientation"] % 180.0)["response"].mean()
        o = g.index.to_numpy(float)
        r = g.to_numpy(float).clip(min=0)
        total = r.sum()
        if total > 0:
            vec = (r * np.exp(2j * np.radians(o))).sum()
            sel, pref = float(abs(vec) / total), float((np.degrees(np.angle(vec)) / 2) % 180.0)
            step = float(np.median(np.diff(o))) if len(o) > 1 else 180.0
            width = float((r >= r.max() / 2).sum() * step)
            pk = float(o[int(np.argmax(r))])
        else:
            sel, pref, width, pk = 0.0, math.nan, math.nan, math.nan
        rows.append({"index": int(i), "line_selectivity": sel, "preferred_orientation": pref,
                     "peak_orientation": pk, "line_tuning_width": width})
    return pd.DataFrame(rows).set_index("index")


def _line_table(responses: pd.DataFrame, stats: pd.DataFrame, rf: int, layer: str) -> pd.DataFrame:
    """Per unit: line / curve / tight-curve peaks, their σ, the line–curve ratios and the
    doubled-angle line tuning (:func:`discover_lines`'s table before the criteria)."""
    curves = responses[responses["kind"] == "curve"]
    tight = curves[curves["radius"] <= TIGHT_RADIUS_FRACTION * rf]
    if tight.empty:
        raise ValueError(f"no curve with radius ≤ {TIGHT_RADIUS_FRACTION} × {rf} px in the sweep of {layer}; "
                         f"radii were {sorted(curves['radius'].unique())}")
    lines = responses[responses["kind"] == "line"]
    if lines.empty:
        raise ValueError("the sweep has no lines (orientations in [0, 180) are needed)")
    t = pd.DataFrame({"line_peak": lines.groupby("index")["response"].max(),
                      "curve_peak": curves.groupby("index")["response"].max(),
                      "tight_curve_peak": tight.groupby("index")["response"].max()})
    t = t.join(stats[["mean", "std", "frac_positive"]])
    for c, peak in (("line_sigma", "line_peak"), ("curve_sigma", "curve_peak"), ("tight_sigma", "tight_curve_peak")):
        t[c] = (t[peak] - t["mean"]) / t["std"]
    floor = 0.1 * t["std"]  # denominators floored at 0.1σ (finite ratios)
    excess_line = (t["line_peak"] - t["mean"]).clip(lower=floor)
    t["line_curve"] = excess_line / (t["tight_curve_peak"] - t["mean"]).clip(lower=floor)
    t["curve_line"] = (t["curve_peak"] - t["mean"]).clip(lower=0) / excess_line
    met = line_tuning_metrics(responses)
    t["selectivity"] = met["line_selectivity"]
    for c in ("preferred_orientation", "peak_orientation", "line_tuning_width"):
        t[c] = met[c]
    return t


def discover_lines(
    model: InceptionV1,
    layer: str,
    reference: torch.Tensor | ReferenceImages | str | Path | pd.DataFrame | None = None,
    orientations: Sequence[float] = DEFAULT_ORIENTATIONS,
    radii: Sequence[float] | None = None,
    stroke_width: float = 2.0,
    min_sigma: float | None = None,
    min_line_curve: float | None = None,
    max_curve_line: float | None = None,
    min_selectivity: float | None = None,
    responses: pd.DataFrame | None = None,
) -> Discovery:
    """Find the line detectors of ``layer`` (criteria in the module docstring).

    Lines are 180°-periodic: only the sweep's orientations in [0, 180) are used for lines,
    selectivity is measured on the doubled angle and preferred orientations are in [0, 180)
    (the direction of the line's normal, :mod:`studies.measure.stimuli`).

    Args:
        model: the network.
        layer: canonical or short layer name.
        reference: images (tensor or folder) or a :func:`reference_statistics` table. Required.
        orientations, radii, stroke_width: the sweep (:func:`sweep`); radii default to
            :func:`default_radii`. Curves with radius ≤ ``TIGHT_RADIUS_FRACTION`` × the
            receptive field are the "tight" curves of criterion 2.
        min_sigma, min_line_curve, max_curve_line, min_selectivity: default
            :func:`line_criteria` of the layer.
        responses: optional precomputed :func:`sweep` of the layer (shared with
            :func:`discover_curves`).

    Returns:
        :class:`Discovery`: family ``<layer>/lines`` (kind ``line``) ordered by preferred
        orientation; table with ``line_peak``, ``curve_peak``, ``tight_curve_peak``,
        ``mean``, ``std``, ``line_sigma``, ``curve_sigma``, ``tight_sigma``,
        ``line_curve`` (line excess / tight-curve excess), ``curve_line`` (best-curve
        excess / line excess), ``selectivity`` (doubled-angle), ``preferred_orientation``,
        ``peak_orientation``, ``line_tuning_width``, ``branch``, ``is_line``.

    Raises:
        ValueError: no reference given, or no tight curve in the sweep.
    """
    layer = canonical_layer(layer)
    stats = _statistics(model, layer, reference)
    radii = default_radii(model.spec, layer) if radii is None else tuple(radii)
    crit = line_criteria(layer)
    for k, v in (("min_sigma", min_sigma), ("min_line_curve", min_line_curve), ("max_curve_line", max_curve_line),
                 ("min_selectivity", min_selectivity)):
        if v is not None:
            crit[k] = float(v)
    responses = _responses(model, layer, responses, orientations, radii, stroke_width)
    t = _line_table(responses, stats, receptive_field(model.spec, layer).size, layer)
    t["branch"] = _branches(model, layer, t.index)
    t["is_line"] = (
        (t["line_sigma"] >= crit["min_sigma"]) & (t["line_curve"] >= crit["min_line_curve"])
        & (t["curve_line"] <= crit["max_curve_line"]) & (t["selectivity"] >= crit["min_selectivity"])
    )
    fam = _family(t, "is_line", "lines", "line", layer, f"discovered from synthetic lines and curves "
                  f"({model.spec.name}); studies.measure.discovery.discover_lines")
    return Discovery(fam, t.reset_index(), _criteria_record(crit, orientations, radii, stroke_width, reference))


def _describe_reference(reference) -> str:
    if isinstance(reference, pd.DataFrame):
        return reference.attrs.get("reference", "precomputed statistics")
    if isinstance(reference, ReferenceImages):
        return reference.description
    if isinstance(reference, torch.Tensor):
        return f"{len(reference)} images (tensor)"
    return f"{Path(reference).name}: 100 evenly spaced images, all positions, pre-ReLU"


def orientation_coverage_gap(orientations: Sequence[float]) -> float:
    """Largest gap (deg) between consecutive preferred orientations around the circle."""
    o = np.sort(np.mod(np.asarray(orientations, float), 360.0))
    if len(o) == 0:
        return 360.0
    gaps = np.diff(np.concatenate([o, [o[0] + 360.0]]))
    return float(gaps.max())


_DISCOVER = {"curves": discover_curves, "lines": discover_lines}


def discover_families(
    model: InceptionV1,
    images: torch.Tensor | ReferenceImages | str | Path,
    families: Sequence[tuple[str, str]] | None = None,
    n_images: int = REFERENCE_IMAGES,
    progress: bool = False,
) -> dict[str, Discovery]:
    """Discover several families with the layer defaults, sharing work: one forward pass
    per image batch gives the statistics of every layer, one :func:`sweep` per layer serves
    its curve and line families.

    Args:
        images: reference images (:class:`~studies.measure.images.ReferenceImages`, tensor or folder).
        families: ``(layer, name)`` pairs with name ``"curves"`` or ``"lines"``; default
            :data:`FROZEN_FAMILIES` of the model's checkpoint.

    Returns:
        ``{"<layer>/<name>": Discovery}`` in the order given.

    Raises:
        KeyError: no frozen families for this checkpoint, or an unknown family name.
    """
    if families is None:
        if model.spec.name not in FROZEN_FAMILIES:
            raise KeyError(f"no frozen families for {model.spec.name}; checkpoints with some: "
                           f"{', '.join(FROZEN_FAMILIES)}")
        families = FROZEN_FAMILIES[model.spec.name]
    families = [(canonical_layer(layer), name) for layer, name in families]
    for _, name in families:
        if name not in _DISCOVER:
            raise KeyError(f"cannot discover family {name!r}; discoverable: {', '.join(_DISCOVER)}")
    layers = list(dict.fromkeys(layer for layer, _ in families))
    stats = reference_statistics_by_layer(model, layers, as_reference(images, n_images))
    out = {}
    for layer in layers:
        resp = sweep(model, layer, progress=progress)
        for lyr, name in families:
            if lyr == layer:
                out[f"{layer}/{name}"] = _DISCOVER[name](model, layer, stats[layer], responses=resp)
    return out

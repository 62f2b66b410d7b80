"""The feature-visualization loop and its on-disk cache.

:func:`render` optimises a batch of images (:mod:`.param`) under random transformations
(:mod:`.transforms`) to maximise an :class:`~.objectives.Objective`, with Adam (learning rate
0.05, 512 steps: Lucid/Lucent ``render_vis`` defaults; shared/docs/science.md §5).

Fast by construction:

- the forward pass stops at the objective's layer (``model.forward(stop_at=...)``);
- objectives that read only the centre position (neuron, direction at the centre) run on the
  receptive-field window only: the differentiable cone (:class:`circuits.cone.GradCone`: 91x91 px for
  BVLC mixed3b, every stage without padding, only the needed branches and channels) when the
  model is a plain InceptionV1 (edited weights and ``Linearize`` linear paths allowed, checked
  against ``model.run``), else ``model.forward`` on the measurement window
  (:func:`circuits.geometry.measurement_window`: 96 px for mixed3b) with hooks — any
  :class:`edits.EditPlan` variant, structural edits and interventions included;
- a family is one batch, one image per unit (per-image objectives).

The optimised picture is ``size`` px square (default: the measurement window, so the picture
holds the unit's whole receptive field; 128 px for objectives that read whole maps); each
step it is padded, jittered, scaled and rotated, and the window the unit sees is cut from the
centre of the result (grey 0.5 fills any shortfall).

Results are cached under ``$CIRCUITS_CACHE/vis`` (:func:`circuits.weights.cache_dir`), keyed by
the SHA-256 of the model's state dict (edits included), a plan label, the objective, the
settings, the batch size and the seed; a repeated call loads the images and the history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from circuits.cone import GradCone
from circuits.geometry import measurement_window, receptive_field
from circuits.model import InceptionV1
from circuits.spec import MIXED_LAYERS
from circuits.weights import cache_dir, state_digest

from .objectives import Acts, Need, Objective
from .param import PARAMETERIZATIONS, ImageParam
from .transforms import TRANSFORMS, get_transforms

#: Bump when the rendering changes, so old cache entries are not reused.
CACHE_VERSION = 1
MAP_DEFAULT_SIZE = 128


@dataclass(frozen=True)
class VisSettings:
    """Settings of one optimisation (all part of the cache key).

    Attributes:
        steps: optimisation steps (512, Lucid's default).
        size: side of the optimised picture in px; ``None`` = the layer's measurement window
            for centre-only objectives (96 px for mixed3b), 128 px otherwise.
        lr: Adam learning rate (0.05).
        param: ``"fft"`` or ``"pixel"`` (:mod:`.param`).
        decorrelate: colour decorrelation (:func:`.param.color_matrix`).
        transforms: ``"standard"`` (Lucid's sequence) or ``"none"``.
        seed: seeds the initial image and the transforms' random draws.
    """

    steps: int = 512
    size: int | None = None
    lr: float = 0.05
    param: str = "fft"
    decorrelate: bool = True
    transforms: str = "standard"
    seed: int = 0

    def check(self) -> None:
        """Raises ValueError naming the bad setting and the valid range/choices."""
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer; got {self.steps!r}")
        if self.size is not None and (not isinstance(self.size, int) or not 16 <= self.size <= 1024):
            raise ValueError(f"size must be an integer in 16..1024 px (or None for automatic); got {self.size!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number; got {self.lr!r}")
        if self.param not in PARAMETERIZATIONS:
            raise ValueError(f"unknown param {self.param!r}; valid: {', '.join(PARAMETERIZATIONS)}")
        if self.transforms not in TRANSFORMS:
            raise ValueError(f"unknown transforms {self.transforms!r}; valid: {', '.join(TRANSFORMS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")


@dataclass
class VisResult:
    """Output of :func:`render`.

    Attributes:
        images: ``(N, 3, size, size)`` float32 RGB in [0, 1] (CPU).
        history: ``(steps, N)`` objective value of each image at each step (under that step's
            transforms).
        final: ``(N,)`` objective value of the final images without transforms (centred).
        objective: the objective's description.
        settings: the :class:`VisSettings` (with ``size`` resolved).
        path: ``"cone"`` (differentiable cone), ``"window"`` (``model.forward`` on the
            measurement window) or ``"map"`` (``model.forward`` on the whole picture).
        seconds: optimisation wall time (of the original run, for a cached result).
        cached: loaded from the cache.
        key: cache key.
        meta: what the cache stores besides: ``batch``, ``model``, ``plan`` and ``computed_at``
            (UTC time of the original run, ISO 8601; for entries written before it was recorded,
            the time their file was written).
    """

    images: Tensor
    history: np.ndarray
    final: np.ndarray
    objective: str
    settings: VisSettings
    path: str
    seconds: float
    cached: bool = False
    key: str = ""
    meta: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Feed:
    """How the network sees the picture: a centred window of ``crop`` px whose centre pixel is
    ``center`` (None: the whole picture), and a function from that input to activations."""

    path: str
    crop: int | None
    center: float | None
    run: Callable[[Tensor], Acts]
    default_size: int


def _names_layer(model: InceptionV1, needs: list[Need]) -> tuple[list[str], str]:
    names = list(dict.fromkeys(n.name for n in needs))
    for n in names:
        model.stage_of(n)  # KeyError with the valid names
    stages = [model.stage_of(n) for n in names]
    return names, max(stages, key=model.stage_names.index)


def _layer_of(name: str) -> str:
    return name.removesuffix("_pre_relu")


def _cone_feed(model: InceptionV1, needs: list[Need], names: list[str], window: tuple) -> _Feed | None:
    layers = {_layer_of(n) for n in names}
    if len(layers) != 1 or not all(n.center_only for n in needs):
        return None
    layer = layers.pop()
    if any(n not in (layer, f"{layer}_pre_relu") for n in names):
        return None
    width = model.spec.layer_width(layer)
    chans: set[int] = set()
    for n in needs:
        chans |= set(range(width)) if n.channels is None else set(n.channels)
    idx = sorted(chans)
    try:
        cone = GradCone(model, layer, idx)
    except ValueError:
        return None
    if len(getattr(model.block(layer), "linear_paths", ())) if layer in MIXED_LAYERS else False:
        if cone.self_check() > 1e-2:  # guard for edited blocks: the cone must equal model.run
            return None
    dev = next(model.parameters()).device
    sel = torch.tensor(idx, device=dev)

    def run(x: Tensor) -> Acts:
        pre = cone(x)  # (N, len(idx))
        full = pre.new_zeros(pre.shape[0], width).index_copy(1, sel, pre).view(-1, width, 1, 1)
        maps = {n: (full if n.endswith("_pre_relu") else F.relu(full)) for n in names}
        return Acts(maps, {n: (0, 0) for n in names})

    return _Feed("cone", cone.crop, cone.center, run, window[0])


@contextlib.contextmanager
def _no_param_grads(model: InceptionV1):
    """Parameters stop requiring gradients for the duration (only the image needs them);
    restored on exit."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _model_feed(model: InceptionV1, needs: list[Need], names: list[str], stage: str) -> _Feed:
    centre_only = all(n.center_only for n in needs)
    layers = {_layer_of(n) for n in names}
    geo = {n: receptive_field(model.spec, _layer_of(n)) for n in names}
    if centre_only and len(layers) == 1:
        size, pos, center = measurement_window(model.spec, layers.pop())
        crop, centre_pos = size, {n: (pos, pos) for n in names}
    else:
        crop = center = centre_pos = None

    def run(x: Tensor) -> Acts:
        with model.capture(names) as cap:
            model.forward(x, stop_at=stage)
            maps = {n: cap[n] for n in names}
        if centre_pos is not None:
            cen = centre_pos
        else:
            cen = {}
            for n, a in maps.items():
                rf, h = geo[n], x.shape[-1]
                p = int(round(((h - 1) / 2 - rf.offset) / rf.stride))
                cen[n] = (min(max(p, 0), a.shape[-2] - 1), min(max(p, 0), a.shape[-1] - 1))
        return Acts(maps, cen)

    if crop is not None:
        return _Feed("window", crop, center, run, crop)
    return _Feed("map", None, None, run, MAP_DEFAULT_SIZE)


def _feed(model: InceptionV1, objective: Objective) -> _Feed:
    needs = objective.needs()
    names, stage = _names_layer(model, needs)
    layers = {_layer_of(n) for n in names}
    window = measurement_window(model.spec, next(iter(layers))) if len(layers) == 1 else (MAP_DEFAULT_SIZE,)
    return _cone_feed(model, needs, names, window) or _model_feed(model, needs, names, stage)


def centre_window(x: Tensor, crop: int | None, center: float | None, fill: float = 0.5) -> Tensor:
    """The ``crop``-px window of ``x (N, C, H, W)`` whose pixel ``center`` sits on the picture's
    centre ``((H-1)/2, (W-1)/2)``; pads with ``fill`` where the picture is too small. ``crop``
    None → ``x`` unchanged."""
    if crop is None:
        return x
    h, w = x.shape[-2:]
    top, left = int(round((h - 1) / 2 - center)), int(round((w - 1) / 2 - center))
    pt, pl = max(0, -top), max(0, -left)
    pb, pr = max(0, top + crop - h), max(0, left + crop - w)
    if pt or pl or pb or pr:
        x = F.pad(x, (pl, pr, pt, pb), value=fill)
        top, left = top + pt, left + pl
    return x[..., top:top + crop, left:left + crop]


# ----------------------------------------------------------------------------- cache
def cache_key(model: InceptionV1, objective: Objective, settings: VisSettings, batch: int, plan: str = "") -> str:
    """SHA-256 (24 hex digits) of the model's state-dict digest, ``plan`` (a label, e.g. the
    plan file's digest), the objective, the settings and the batch size."""
    blob = json.dumps(dict(v=CACHE_VERSION, model=state_digest(model.state_dict()), spec=model.spec.name,
                           plan=plan, objective=objective.desc, settings=dataclasses.asdict(settings), batch=batch),
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def vis_cache_dir() -> Path:
    """``$CIRCUITS_CACHE/vis`` (see :func:`circuits.weights.cache_dir`)."""
    return cache_dir() / "vis"


def _load(key: str, settings: VisSettings) -> VisResult | None:
    d = vis_cache_dir()
    pt, js = d / f"{key}.pt", d / f"{key}.json"
    if not (pt.is_file() and js.is_file()):
        return None
    try:
        t = torch.load(pt, weights_only=True)
        meta = json.loads(js.read_text())
    except Exception:  # a damaged entry is recomputed
        return None
    if "computed_at" not in meta:  # entries cached before the time was recorded: their file's time
        meta["computed_at"] = _utc(js.stat().st_mtime)
    return VisResult(t["images"], t["history"].numpy(), t["final"].numpy(), meta["objective"], settings,
                     meta["path"], meta["seconds"], True, key, meta)


def _utc(t: float | None = None) -> str:
    """``t`` (seconds since the epoch; default now) as ``2026-11-30T20:45:36+00:00``."""
    import datetime as dt

    return dt.datetime.fromtimestamp(time.time() if t is None else t, dt.timezone.utc).isoformat(timespec="seconds")


def _save(r: VisResult) -> None:
    d = vis_cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f"{r.key}.tmp.pt"
    torch.save(dict(images=r.images, history=torch.from_numpy(r.history), final=torch.from_numpy(r.final)), tmp)
    tmp.replace(d / f"{r.key}.pt")
    meta = dict(objective=r.objective, path=r.path, seconds=r.seconds, settings=dataclasses.asdict(r.settings),
                **r.meta)
    (d / f"{r.key}.json").write_text(json.dumps(meta, indent=1))


# ----------------------------------------------------------------------------- render
def _chunks(n: int, feed: _Feed, obj: Objective, dev: torch.device) -> list[tuple[int, int]]:
    """Row ranges processed in parallel: on CPU, the cone path and independent images are split
    over ``torch.get_num_threads()`` Python threads, each running torch single-threaded (small
    tensors: OpenMP's barriers cost more than they share, badly so on a loaded machine —
    measured 0.45 s vs 4 s per step for 19 mixed3b images under load 9 on 2 cores)."""
    workers = min(torch.get_num_threads(), n) if dev.type == "cpu" and feed.path == "cone" and not obj.coupled() else 1
    bounds = np.linspace(0, n, workers + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


@contextlib.contextmanager
def _single_threaded(dev: torch.device, workers: int):
    """On CPU: torch single-threaded for the duration, and a pool of ``workers`` threads (None
    for one); restored on exit."""
    if dev.type != "cpu":
        yield None
        return
    n_main = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="featurevis") if workers > 1 else None
    try:
        torch.set_num_threads(1)
        yield pool
    finally:
        torch.set_num_threads(n_main)
        if pool is not None:
            pool.shutdown()


def _step(image: ImageParam, obj: Objective, feed: _Feed, settings: VisSettings, step: int,
          chunks: list[tuple[int, int]], pool) -> list[tuple[np.ndarray, Tensor]]:
    """One optimisation step's objective values and gradients, per chunk of rows. Every chunk
    draws the same transforms (a generator seeded by seed and step), so splitting the batch
    changes no value; gradients come back separately and are summed in a fixed order
    (deterministic)."""
    tf = get_transforms(settings.transforms)

    def work(rows: tuple[int, int]) -> tuple[np.ndarray, Tensor]:
        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
        sl = None if rows == (0, image.batch) else slice(*rows)
        with torch.enable_grad():
            x = centre_window(tf(image(sl), gen), feed.crop, feed.center)
            acts = feed.run(x)
            acts.rows = None if sl is None else rows
            vals = obj(acts)
            (grad,) = torch.autograd.grad(-vals.sum(), image.param)
        return vals.detach().float().cpu().numpy(), grad

    if pool is None or len(chunks) == 1:
        return [work(c) for c in chunks]
    return list(pool.map(work, chunks))


def render(
    model: InceptionV1,
    objective: Objective,
    batch: int | None = None,
    settings: VisSettings = VisSettings(),
    cache: bool = True,
    plan: str = "",
    log: Callable[[str], None] | None = None,
) -> VisResult:
    """Optimise ``batch`` images to maximise ``objective`` (module docstring).

    Args:
        model: an :class:`~circuits.model.InceptionV1` (any edit applied; never modified —
            parameters' ``requires_grad`` is switched off during the run and restored).
        objective: an :class:`~.objectives.Objective` (bound to ``model.spec`` here).
        batch: number of images; default the per-image objective's size, else 1.
        settings: :class:`VisSettings`.
        cache: load/store the result under :func:`vis_cache_dir`.
        plan: a label of the edit plan (part of the cache key; the weights digest already
            distinguishes edited weights).
        log: progress messages (every 64 steps).

    Returns:
        :class:`VisResult`.

    Raises:
        KeyError / IndexError / ValueError: bad units, layers, settings or batch size, before
            any compute.
    """
    settings.check()
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be a studies.measure.featurevis Objective; got {type(objective).__name__}")
    obj = objective.bind(model.spec)
    want = obj.batch_size()
    n = batch if batch is not None else (want or 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"batch must be a positive integer; got {batch!r}")
    if want is not None and n != want:
        raise ValueError(f"{obj.desc} is a per-image objective for {want} images; batch={n}")
    feed = _feed(model, obj)
    settings = dataclasses.replace(settings, size=settings.size or max(feed.default_size, feed.crop or 0))
    key = cache_key(model, obj, settings, n, plan)
    if cache and (hit := _load(key, settings)) is not None:
        return hit
    dev = next(model.parameters()).device
    image = ImageParam(n, settings.size, kind=settings.param, decorrelate=settings.decorrelate,
                       seed=settings.seed).to(dev)
    chunks = _chunks(n, feed, obj, dev)
    opt = torch.optim.Adam(image.parameters(), lr=settings.lr)
    hist = np.zeros((settings.steps, n), dtype=np.float32)
    t0 = time.perf_counter()
    with _no_param_grads(model), _single_threaded(dev, len(chunks)) as pool:
        for step in range(settings.steps):
            opt.zero_grad(set_to_none=True)
            parts = _step(image, obj, feed, settings, step, chunks, pool)
            image.param.grad = parts[0][1] if len(parts) == 1 else torch.stack([g for _, g in parts]).sum(0)
            opt.step()
            hist[step] = np.concatenate([v for v, _ in parts])
            if log and (step + 1) % 64 == 0:
                log(f"  step {step + 1}/{settings.steps}: mean objective {hist[step].mean():.4g}")
        with torch.no_grad():
            final_img = image().detach()
            final = obj(feed.run(centre_window(final_img, feed.crop, feed.center))).float().cpu().numpy()
    secs = time.perf_counter() - t0
    res = VisResult(final_img.float().cpu(), hist, final, obj.desc, settings, feed.path, secs, False, key,
                    dict(batch=n, model=model.spec.name, plan=plan, computed_at=_utc()))
    if cache:
        _save(res)
    return res


@torch.no_grad()
def centre_responses(model: InceptionV1, images: Tensor, layer: str, indices: list[int],
                     pre_relu: bool = True) -> Tensor:
    """Responses of units ``indices`` of ``layer`` at the position whose receptive field is
    centred on each picture: ``images (N, 3, H, W)`` → ``(N, len(indices))``.

    Uses the cone on the centred window when the model allows it, else ``model.forward`` on
    the measurement window (grey 0.5 fills a picture smaller than the window)."""
    size, pos, center = measurement_window(model.spec, layer)
    name = f"{layer}_pre_relu"
    dev = next(model.parameters()).device
    x = centre_window(images.to(dev), size, center)
    try:
        cone = GradCone(model, layer, indices)
        out = cone(centre_window(images.to(dev), cone.crop, cone.center))
    except ValueError:
        out = model.run(x, [name])[name][:, indices, pos, pos]
    return out if pre_relu else out.clamp(min=0)

"""Unit assets made by jobs: feature visualizations and dataset examples, stored per unit.

- **Feature visualization** (Olah et al., "Feature Visualization", Distill 2017; Curve Detectors
  figs. 2 and 5): :func:`studies.measure.featurevis.visualize_units` (neuron objective at the
  receptive-field centre, pre-ReLU; Fourier parameterization, decorrelated colour, Lucid's
  transforms; ``vis_steps`` steps, ``seed``), one batched optimisation per chunk of units, through
  its own cache (``$CIRCUITS_CACHE/vis``); each unit's picture is stored as a PNG.
- **Dataset examples** (Curve Detectors, figs. 6-7): one streamed pass over the image folder for all
  requested units of a layer (:func:`studies.measure.dataset.unit_statistics` with an
  :class:`studies.measure.activation_stats.ActivationObserver`): the ``top_k`` images with the highest
  pre-ReLU activation (receptive-field crops) and ``top_k // 2`` random positions per activation range
  (:data:`studies.measure.activation_stats.DEFAULT_RANGES`: top 1 %, 90-99 %, 45-55 %, bottom 1 %).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from circuits.units import Unit, group_by_layer

from . import figures
from .context import Explorer, UserError

#: Units per feature-visualization batch (one optimisation; progress is reported per batch).
VIS_CHUNK = 16
WHAT = ("pages", "featurevis", "dataset")  #: what a build job can make


def vis_settings(ex: Explorer) -> dict:
    return dict(steps=ex.config.vis_steps, seed=ex.config.seed, objective="neuron", pre_relu=True)


def featurevis_key(ex: Explorer, u: Unit, fp: str | None = None, plan=None) -> str:
    from .store import make_key

    return make_key(fp or ex.fp, "featurevis-png", dict(vis_settings(ex), unit=str(u)), plan)


def featurevis_url(ex: Explorer, u: Unit) -> str | None:
    k = featurevis_key(ex, u)
    return ex.store.url(k, "png") if ex.store.has(k, "png") else None


def _pending(ex: Explorer, what: str, u: Unit):
    job = ex.memo(("pending", what), dict).get(str(u))
    return job if job is not None and job.state in ("queued", "running") else None


def featurevis_state(ex: Explorer, u: Unit) -> dict:
    url = featurevis_url(ex, u)
    if url:
        return dict(state="ready", image=url)
    job = _pending(ex, "featurevis", u)
    return dict(state="running" if job else "missing", job=job.id if job else None)


def dataset_settings(ex: Explorer) -> dict:
    return dict(images=ex.config.images, limit=ex.config.dataset_limit, k=ex.config.top_k, seed=ex.config.seed,
                ranges="default", size=224)


def dataset_key(ex: Explorer, u: Unit) -> str:
    return ex.key("dataset-unit", dict(dataset_settings(ex), unit=str(u)))


def dataset_state(ex: Explorer, u: Unit) -> dict:
    if ex.config.images is None:
        return dict(state="no-images", job=None)
    got = ex.store.read_json(dataset_key(ex, u))
    if got is not None:
        return dict(state="ready", **got)
    job = _pending(ex, "dataset", u)
    return dict(state="running" if job else "missing", job=job.id if job else None)


# ---------------------------------------------------------------- feature visualization
def render_featurevis(ex: Explorer, model, units: Sequence[Unit], report: Callable, fp: str | None = None,
                      plan=None, label: str = "", lo: float = 0.0, hi: float = 1.0) -> list[str]:
    """Feature visualizations of ``units`` on ``model`` (the unedited one, or an edited one with its
    fingerprint ``fp`` and ``plan``): PNG urls in ``units`` order, stored; missing ones rendered in
    batches of :data:`VIS_CHUNK` (progress from ``lo`` to ``hi``)."""
    from studies.measure.featurevis import VisSettings, visualize_units

    keys = [featurevis_key(ex, u, fp, plan) for u in units]
    todo = [u for u, k in zip(units, keys) if not ex.store.has(k, "png")]
    settings = VisSettings(steps=ex.config.vis_steps, seed=ex.config.seed)
    done = 0
    for a in range(0, len(todo), VIS_CHUNK):
        chunk = todo[a:a + VIS_CHUNK]
        report(lo + (hi - lo) * done / max(1, len(todo)), f"feature visualization{label}: {done}/{len(todo)} units")
        for v in visualize_units(model, chunk, settings=settings, plan=label):
            ex.store.write_png(featurevis_key(ex, v.unit, fp, plan), figures.image_png(v.image))
        done += len(chunk)
    return [ex.store.url(k, "png") for k in keys]


# ---------------------------------------------------------------- dataset
class _Progress:
    """An observer of :func:`studies.measure.dataset.unit_statistics` that reports images seen."""

    def __init__(self, n: int, report: Callable, lo: float, hi: float, layer: str):
        self.n, self.report, self.lo, self.hi, self.layer, self.seen = n, report, lo, hi, layer, 0

    def update(self, layer, ids, acts, file_idx) -> None:
        if layer == self.layer:
            self.seen += len(file_idx)
            self.report(self.lo + (self.hi - self.lo) * self.seen / self.n, f"dataset pass: {self.seen}/{self.n} images")


def compute_dataset(ex: Explorer, units: Sequence[Unit], report: Callable) -> None:
    """Top and range examples of ``units`` (one layer per pass), stored per unit."""
    from studies.measure.activation_stats import DEFAULT_RANGES, ActivationObserver, finish
    from studies.measure.dataset import unit_statistics
    from studies.measure.images import list_images

    if ex.config.images is None:
        raise UserError("no image folder: start circuits explore with --images DIR for dataset examples")
    files = list_images(ex.config.images)
    files = files[:ex.config.dataset_limit] if ex.config.dataset_limit else files
    for layer, idx in group_by_layer(list(units)).items():
        us = [Unit(layer, i) for i in idx]
        obs = ActivationObserver(ex.model, DEFAULT_RANGES, k=max(1, ex.config.top_k // 2), seed=ex.config.seed)
        prog = _Progress(len(files), report, 0.0, 0.85, layer)
        stats = unit_statistics(ex.model, us, files, k=ex.config.top_k, observers=[obs, prog], num_workers=0)
        rep = finish(obs, stats, files, ex.model)
        report(0.9, "writing examples")
        for u in us:
            _store_unit_examples(ex, u, stats, rep)


def _crop_url(ex: Explorer, u: Unit, crop, what: str, rank: int) -> str:
    key = ex.key("dataset-crop", dict(dataset_settings(ex), unit=str(u), what=what, rank=rank))
    ex.store.write_png(key, figures.image_png(crop, scale=1))
    return ex.store.url(key, "png")


def _store_unit_examples(ex: Explorer, u: Unit, stats, rep) -> None:
    from pathlib import Path

    name = str(u)
    top = stats.top[stats.top["unit"] == name].sort_values("rank")
    crops = stats.crops[name]
    top_rows = [dict(image=_crop_url(ex, u, crops[j], "top", int(r["rank"])), activation=float(r["activation"]),
                     source=Path(r["path"]).name, x=float(r["x"]), y=float(r["y"]))
                for j, (_, r) in enumerate(top.iterrows())]
    ex_rows = rep.examples[rep.examples["unit"] == name]
    range_rows = []
    for label, g in ex_rows.groupby("range", sort=False):
        rc = rep.crops[name][label]
        for j, (_, r) in enumerate(g.sort_values("rank").iterrows()):
            range_rows.append(dict(image=_crop_url(ex, u, rc[j], f"range:{label}", int(r["rank"])),
                                   activation=float(r["activation"]), label=str(label), source=Path(r["path"]).name))
    ex.store.write_json(dataset_key(ex, u), dict(top=top_rows, range=range_rows, n_images=int(stats.n_images)))

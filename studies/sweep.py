"""Run many named edit plans over one image set, with a resumable on-disk cache per plan.

>>> from studies.sweep import run_sweep
>>> res = run_sweep({"unedited": None, "3b-curves": EditPlan([Ablate("mixed3b/curves")])},
...                 "imagenet-sample-1000", model="inceptionv1_caffe", limit=200, jobs=2)
>>> res.per_image                 # tidy: one row per (variant, image), column ``variant``
>>> res.computed, res.loaded      # which plans ran now, which came from the cache

Cache. Each plan's per-image result is stored in ``cache_dir/<key>.pkl`` where ``key`` is the
SHA-256 of: the plan's JSON (``None`` = the unedited model), the checkpoint name and a digest
of the model's weights (:func:`circuits.weights.state_digest`), a description of the image set
(resolved folder, and path/size/mtime of every evaluated file), ``limit``, the batch size
(resampling draws donors within a batch) and, for plans that need reference images (mean
ablation without stored means), a digest of the reference tensor. An entry is written under a
temporary name and renamed when complete, so an interrupted sweep (Ctrl-C, crash) leaves only
finished plans; re-running loads them and computes the rest.

Passes. Plans are split, in the given order, into chunks of ``plans_per_pass``; each chunk is
evaluated in one pass over the images with :func:`studies.classify.evaluate_variants` (each
batch decoded once, the unedited prefix shared). The chunks do not depend on ``jobs``.

Jobs. ``jobs > 1`` evaluates chunks in that many worker processes (``spawn`` context), each
loading the model once and using ``max(1, threads // jobs)`` torch threads. Predictions are the
same as with ``jobs=1``; the label logits may differ in the last float bits (thread count can
change the order of floating-point reductions). Start-up costs a few seconds per worker
(importing torch and loading the weights), so workers only pay off for sweeps of minutes.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import os
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from edits import EditPlan

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$CIRCUITS_CACHE/sweeps`` (see :func:`circuits.weights.cache_dir`)."""
    from circuits.weights import cache_dir

    return cache_dir() / "sweeps"


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns.

    Attributes:
        per_image: one row per (variant, image): ``variant`` then the columns of
            :class:`studies.classify.ClassificationResult.per_image` (``top5`` as a list).
        skipped: ``path``, ``reason`` of files not evaluated.
        keys: ``{variant: cache key}``.
        computed: variants evaluated in this call, in order.
        loaded: variants loaded from the cache.
        seconds: ``{variant: seconds}`` of the pass that computed it (shared by a chunk).
    """

    per_image: pd.DataFrame
    skipped: pd.DataFrame
    keys: dict[str, str]
    computed: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """``variant, n_images, top1, top5`` in the order of the plans."""
        g = self.per_image.groupby("variant", sort=False)
        return pd.DataFrame({"n_images": g.size(), "top1": g["correct_top1"].mean(),
                             "top5": g["correct_top5"].mean()}).reset_index()


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's shape, dtype and bytes."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}".encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()


def image_set_description(dataset) -> dict:
    """Resolved folder and ``[relative path, size, mtime_ns]`` of every sample of an
    :class:`~studies.classify.ImageFolderDataset` (after ``head(limit)``)."""
    root = Path(dataset.root).resolve()
    files = []
    for p, _, _ in dataset.samples:
        try:
            st = os.stat(p)
            files.append([os.path.relpath(p, root), st.st_size, st.st_mtime_ns])
        except OSError:
            files.append([os.path.relpath(p, root), None, None])
    return {"root": str(root), "n": len(files), "files_sha256": _sha(files)}


def plan_json(plan: EditPlan | None) -> str:
    return "null" if plan is None else json.dumps(plan.to_dict(), sort_keys=True)


def cache_key(plan: EditPlan | None, checkpoint: str, weights_digest: str, images: dict, limit: int | None,
              batch_size: int, reference_digest: str | None = None) -> str:
    """The cache key of one plan (see the module docstring)."""
    needs_ref = plan is not None and bool(plan.needs_reference())
    return _sha({"v": CACHE_VERSION, "plan": plan_json(plan), "checkpoint": checkpoint, "weights": weights_digest,
                 "images": images, "limit": limit, "batch_size": batch_size,
                 "reference": reference_digest if needs_ref else None})


def _write_entry(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_entry(path: Path, key: str) -> dict | None:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    return entry


# ---------------------------------------------------------------------------- evaluation of one chunk
_WORKER: dict = {}


def _evaluate_chunk(model, chunk: list[tuple[str, str, str]], images: str, limit, reference, batch_size: int,
                    device: str, num_workers: int, cache_dir: str, progress: bool) -> list[tuple[str, float]]:
    """Evaluate ``[(variant, key, plan json)]`` in one pass; write one cache entry per variant."""
    from .classify import evaluate_variants

    t0 = time.perf_counter()
    models = {}
    for name, _key, pj in chunk:
        if pj == "null":
            models[name] = model
        else:
            plan = EditPlan.from_dict(json.loads(pj))
            models[name] = plan.apply(model, reference=reference if plan.needs_reference() else None)[0]
    res = evaluate_variants(models, images, batch_size=batch_size, num_workers=num_workers, device=device,
                            limit=limit, progress=progress)
    dt = time.perf_counter() - t0
    for name, key, pj in chunk:
        r = res[name]
        _write_entry(Path(cache_dir) / f"{key}.pkl",
                     {"key": key, "variant": name, "plan": pj, "per_image": r.per_image, "skipped": r.skipped,
                      "seconds": dt})
    return [(name, dt) for name, _, _ in chunk]


def _worker_init(checkpoint: str, weights: str | None, device: str, threads: int, env: dict) -> None:
    os.environ.update(env)
    torch.set_num_threads(threads)
    from circuits import load_model

    _WORKER["model"] = load_model(checkpoint, weights=weights, device=device)


def _worker_run(chunk, images, limit, reference, batch_size, device, cache_dir):
    return _evaluate_chunk(_WORKER["model"], chunk, images, limit, reference, batch_size, device, 0, cache_dir,
                           False)


# ---------------------------------------------------------------------------- the sweep
def run_sweep(
    plans: Mapping[str, EditPlan | None],
    images: str | Path,
    model="inceptionv1_caffe",
    weights: str | Path | None = None,
    limit: int | None = None,
    reference: torch.Tensor | None = None,
    cache_dir: str | Path | None = None,
    jobs: int = 1,
    plans_per_pass: int = 8,
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int | None = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> SweepResult:
    """Evaluate every plan of ``plans`` (``None`` = the unedited model) on ``images``.

    Args:
        plans: ``{variant name: EditPlan or None}``; names must be unique (they are dict keys).
        images: labelled image folder (see :mod:`studies.classify`).
        model: a checkpoint name or a loaded :class:`~circuits.model.InceptionV1` (workers reload
            it from ``model.weights_source``).
        weights: weights file when ``model`` is a name.
        limit: evaluate the first ``limit`` images in sorted order.
        reference: ``(N, 3, H, W)`` images for plans that measure statistics (mean ablation).
        cache_dir: where entries live (default :func:`default_cache_dir`).
        jobs: worker processes (1 = in this process).
        plans_per_pass: plans evaluated together in one pass over the images.
        batch_size, device, num_workers: as :func:`studies.classify.evaluate_variants`
            (``num_workers`` is the DataLoader's; workers always use 0).
        progress: tqdm bars (``jobs=1`` only).
        log: called with one line per event (default: nothing).

    Returns:
        A :class:`SweepResult`.

    Raises:
        ValueError: no plan, ``jobs``/``plans_per_pass`` < 1, no usable image, or a plan needs
            ``reference`` and none was given.
    """
    from circuits import load_model
    from circuits.weights import state_digest

    from .classify import ImageFolderDataset, wnid_index

    log = log or (lambda msg: None)
    if not plans:
        raise ValueError("no plans to run")
    if jobs < 1 or plans_per_pass < 1:
        raise ValueError(f"jobs and plans_per_pass must be ≥ 1, got {jobs}, {plans_per_pass}")
    if isinstance(model, str):
        checkpoint, weights_arg = model, (str(weights) if weights is not None else None)
        model = load_model(checkpoint, weights=weights_arg, device=device)
    else:
        checkpoint = model.spec.name
        weights_arg = str(weights) if weights is not None else getattr(model, "weights_source", None)
    for name, plan in plans.items():
        if plan is not None:
            plan.validate(model.spec)
            if plan.needs_reference() and reference is None:
                raise ValueError(f"plan {name!r} needs reference images (mean ablation); pass reference=")
    ds = ImageFolderDataset(images, wnid_index(model)).head(limit)
    if len(ds) == 0:
        raise ValueError(f"image folder {images} has no usable labelled image")
    images = str(Path(images).resolve())
    desc = image_set_description(ds)
    wdig = state_digest(model.state_dict())
    rdig = tensor_digest(reference) if reference is not None else None
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)

    keys = {n: cache_key(p, checkpoint, wdig, desc, limit, batch_size, rdig) for n, p in plans.items()}
    entries: dict[str, dict] = {}
    todo: list[tuple[str, str, str]] = []
    for name, plan in plans.items():
        e = _read_entry(cache / f"{keys[name]}.pkl", keys[name])
        if e is not None:
            entries[name] = e
        else:
            todo.append((name, keys[name], plan_json(plan)))
    loaded = list(entries)
    if loaded:
        log(f"sweep: {len(loaded)} plan(s) loaded from the cache {cache}")
    chunks = [todo[i:i + plans_per_pass] for i in range(0, len(todo), plans_per_pass)]
    seconds: dict[str, float] = {}
    computed: list[str] = []
    if chunks:
        log(f"sweep: {len(todo)} plan(s) to compute in {len(chunks)} pass(es), jobs={jobs}")
    if jobs == 1 or len(chunks) <= 1:
        for i, chunk in enumerate(chunks):
            t = time.perf_counter()
            for name, dt in _evaluate_chunk(model, chunk, images, limit, reference, batch_size, device,
                                            0 if num_workers is None else num_workers, str(cache), progress):
                seconds[name] = dt
                computed.append(name)
            log(f"sweep: pass {i + 1}/{len(chunks)} ({len(chunk)} plans) done in {time.perf_counter() - t:.1f}s")
    else:
        threads = max(1, torch.get_num_threads() // min(jobs, len(chunks)))
        env = {k: v for k, v in os.environ.items() if k.startswith("CIRCUITS_")}
        ex = cf.ProcessPoolExecutor(max_workers=min(jobs, len(chunks)), mp_context=mp.get_context("spawn"),
                                    initializer=_worker_init, initargs=(checkpoint, weights_arg, device, threads, env))
        try:
            futs = [ex.submit(_worker_run, c, images, limit, reference, batch_size, device, str(cache)) for c in chunks]
            for i, fut in enumerate(cf.as_completed(futs)):
                done = fut.result()
                for name, dt in done:
                    seconds[name] = dt
                log(f"sweep: {i + 1}/{len(chunks)} passes done")
            computed = [name for c in chunks for name, _, _ in c]
        except BaseException:
            for f in futs if "futs" in locals() else []:
                f.cancel()
            ex.shutdown(wait=False, cancel_futures=True)
            for p in list(getattr(ex, "_processes", {}).values()):
                if p.is_alive():
                    p.terminate()
            raise
        ex.shutdown(wait=True)
    for name, _, _ in todo:
        e = _read_entry(cache / f"{keys[name]}.pkl", keys[name])
        if e is None:  # pragma: no cover - written just above
            raise RuntimeError(f"cache entry of {name!r} missing after computing it")
        entries[name] = e
    frames = [entries[n]["per_image"].assign(variant=n) for n in plans]
    per_image = pd.concat(frames, ignore_index=True)
    per_image = per_image[["variant", *[c for c in per_image.columns if c != "variant"]]]
    skipped = entries[next(iter(plans))]["skipped"]
    return SweepResult(per_image=per_image, skipped=skipped, keys=keys, computed=computed, loaded=loaded,
                       seconds=seconds)

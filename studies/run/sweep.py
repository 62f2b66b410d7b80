"""Run many named edit plans over an image set and/or a stimulus set, with a resumable on-disk
cache, on a local or a Ray executor (:mod:`studies.run.executors`).

>>> from studies.run.sweep import run_sweep
>>> res = run_sweep({"unedited": None, "3b-curves": EditPlan([Ablate("mixed3b/curves")])},
...                 "imagenet-sample-1000", model="inceptionv1_caffe", limit=200, jobs=2)
>>> res.per_image                 # tidy: one row per (variant, image), column ``variant``
>>> res.computed, res.loaded      # which plans ran now, which came from the cache
>>> run_sweep(plans, images, executor=make_executor("ray", address="auto"))   # on a cluster

Tasks. The work is cut into tasks of (chunk of plans × image shard) and (chunk of plans ×
stimulus batch). An image shard is ``shard_size`` consecutive images of the sorted image set
(a multiple of ``batch_size``, so every shard's batches are the batches of the whole set and
the results do not depend on the sharding: resampling draws donors within a batch). A chunk
is up to ``plans_per_pass`` plans evaluated in one pass with
:func:`studies.measure.classify.evaluate_variants`: each batch decoded once, the unedited prefix (the
layers before the first edited one) computed once for the chunk. Stimulus tasks measure
``units`` on ``stimulus_batch`` consecutive stimuli with :func:`studies.measure.tuning.measure`.

Cache. Each (plan, shard) result is stored in ``cache_dir/<key>/images-<shard>.pkl`` (and
``…/stimuli-<batch>.pkl`` under the plan's stimulus key). The image key is the SHA-256 of:
the plan's JSON (``None`` = the unedited model), the checkpoint name and a digest of the
model's weights (:func:`circuits.weights.state_digest`), a description of the image set
(resolved folder, and path/size/mtime of every evaluated file), ``limit``, ``batch_size``,
``shard_size`` and, for plans that need reference images (mean ablation without stored
means), a digest of the reference tensor. The stimulus key hashes the plan, checkpoint,
weights, the stimulus table, the units, ``pre_relu`` and ``stimulus_batch``. Entries are
written by the driver only (never by workers), under a temporary name renamed when complete:
an interrupted sweep leaves only finished entries, and re-running — with either executor —
computes only the missing ones. The executor, ``jobs`` and ``plans_per_pass`` are not in the
keys: they do not change the results.

Faults. A task that raises, or whose worker process dies, is retried up to ``max_retries``
times by the executor. A chunk that still fails is split into single plans, which get their
own retries; a plan that still fails is reported in :attr:`SweepResult.failed` with its error
(and its finished shards stay cached), and the sweep goes on.

Numbers. Predictions and tuning values are the same whatever the executor; the label logits
may differ in the last float bits between different torch thread counts (the order of
floating-point reductions), so compare runs with equal threads per task for bitwise equality.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from edits import EditPlan
from studies.run.executors import Executor, LocalExecutor, Task, TaskFailure

CACHE_VERSION = 2
#: Test hook: a JSON object in this environment variable makes tasks fail on purpose (see
#: :func:`_inject_faults`); the executors forward every ``CIRCUITS_*`` variable to workers.
FAULT_ENV = "CIRCUITS_FAULT_INJECT"


def default_cache_dir() -> Path:
    """``$CIRCUITS_CACHE/sweeps`` (see :func:`circuits.weights.cache_dir`)."""
    from circuits.weights import cache_dir

    return cache_dir() / "sweeps"


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns.

    Attributes:
        per_image: one row per (variant, image): ``variant`` then the columns of
            :class:`studies.measure.classify.ClassificationResult.per_image` (``top5`` as a list).
            Empty without an image set; failed variants have no rows.
        skipped: ``path``, ``reason`` of files not evaluated.
        keys: ``{variant: image cache key}`` (``None`` without images).
        computed: variants with at least one task run in this call, in plan order.
        loaded: variants read entirely from the cache.
        seconds: ``{variant: seconds}`` summed over the tasks that computed it (a task's time
            is shared by the plans of its chunk).
        tuning: with stimuli, one row per (variant, unit, stimulus): ``variant`` then the
            columns of :func:`studies.measure.tuning.measure` (``stimulus`` numbers the whole table).
        stimulus_keys: ``{variant: stimulus cache key}``.
        failed: ``{variant: error}`` of plans that failed after their retries.
        tasks: number of tasks run in this call.
    """

    per_image: pd.DataFrame
    skipped: pd.DataFrame
    keys: dict[str, str | None]
    computed: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    tuning: pd.DataFrame | None = None
    stimulus_keys: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    tasks: int = 0

    def summary(self) -> pd.DataFrame:
        """``variant, n_images, top1, top5, error`` in the order of the plans (failed variants
        have NaN accuracies and their error; ``error`` is empty otherwise)."""
        names = list(self.keys)
        if len(self.per_image):
            g = self.per_image.groupby("variant", sort=False)
            df = pd.DataFrame({"n_images": g.size(), "top1": g["correct_top1"].mean(),
                               "top5": g["correct_top5"].mean()})
        else:
            df = pd.DataFrame(columns=["n_images", "top1", "top5"], dtype=float)
        df = df.reindex(names)
        df.index.name = "variant"
        df["error"] = [self.failed.get(n, "") for n in names]
        return df.reset_index()


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
    :class:`~studies.measure.images.ImageFolderDataset` (after ``head(limit)``)."""
    root = Path(dataset.root).resolve()
    files = []
    for p, _, _ in dataset.samples:
        try:
            st = os.stat(p)
            files.append([os.path.relpath(p, root), st.st_size, st.st_mtime_ns])
        except OSError:
            files.append([os.path.relpath(p, root), None, None])
    return {"root": str(root), "n": len(files), "files_sha256": _sha(files)}


def stimulus_set_description(stimuli) -> dict:
    """Size, centre and a digest of every parameter of a :class:`~studies.measure.stimuli.Stimuli` table."""
    return {"n": len(stimuli), "size": stimuli.size, "center": stimuli.center,
            "params_sha256": _sha(stimuli._params), "meta_sha256": _sha(stimuli.meta.to_dict("list"))}


def plan_json(plan: EditPlan | None) -> str:
    return "null" if plan is None else json.dumps(plan.to_dict(), sort_keys=True)


def cache_key(plan: EditPlan | None, checkpoint: str, weights_digest: str, images: dict, limit: int | None,
              batch_size: int, reference_digest: str | None = None, shard_size: int | None = None) -> str:
    """The image cache key of one plan (see the module docstring)."""
    needs_ref = plan is not None and bool(plan.needs_reference())
    return _sha({"v": CACHE_VERSION, "plan": plan_json(plan), "checkpoint": checkpoint, "weights": weights_digest,
                 "images": images, "limit": limit, "batch_size": batch_size, "shard_size": shard_size,
                 "reference": reference_digest if needs_ref else None})


def stimulus_cache_key(plan: EditPlan | None, checkpoint: str, weights_digest: str, stimuli: dict,
                       units: Sequence[str], pre_relu: bool, stimulus_batch: int,
                       reference_digest: str | None = None) -> str:
    """The stimulus cache key of one plan (see the module docstring)."""
    needs_ref = plan is not None and bool(plan.needs_reference())
    return _sha({"v": CACHE_VERSION, "kind": "stimuli", "plan": plan_json(plan), "checkpoint": checkpoint,
                 "weights": weights_digest, "stimuli": stimuli, "units": list(units), "pre_relu": pre_relu,
                 "stimulus_batch": stimulus_batch, "reference": reference_digest if needs_ref else None})


def entry_path(cache: Path, key: str, kind: str, index: int) -> Path:
    """Where the result of one plan (``key``) on shard/batch ``index`` of ``kind`` is stored."""
    return Path(cache) / key / f"{kind}-{index:05d}.pkl"


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


def _read_entry(path: Path, key: str, kind: str, index: int) -> dict | None:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None
    if not isinstance(entry, dict) or (entry.get("key"), entry.get("kind"), entry.get("index")) != (key, kind, index):
        return None
    return entry


# ---------------------------------------------------------------------------- one task
@dataclass
class SweepContext:
    """What every task shares (sent to each worker once)."""

    images: str | None
    batch_size: int
    num_workers: int
    stimuli: object | None = None
    units: tuple[str, ...] = ()
    pre_relu: bool = True
    stimulus_batch: int = 512
    driver_pid: int = 0


def _inject_faults(ctx: SweepContext, task: Task) -> None:
    """Test hook (``$CIRCUITS_FAULT_INJECT``, JSON): ``{"raise": [variant, …]}`` makes every
    task with that variant raise; ``{"raise_once": {"variant": v, "marker": path}}`` raises
    once (the marker file records it); ``{"kill_once": {"variant": v, "marker": path}}`` kills
    the worker process (SIGKILL) once — never the driver."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    spec = json.loads(spec)
    names = set(task.variants)
    if names & set(spec.get("raise", [])):
        raise RuntimeError(f"injected fault in {task.label()}")
    for what in ("raise_once", "kill_once"):
        f = spec.get(what)
        if f and f["variant"] in names and not (what == "kill_once" and os.getpid() == ctx.driver_pid):
            try:
                fd = os.open(f["marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            if what == "raise_once":
                raise RuntimeError(f"injected one-off fault in {task.label()}")
            os.kill(os.getpid(), signal.SIGKILL)


_LAST_CHUNK: dict = {}


def _edited_models(model, chunk) -> dict:
    """``{variant: edited copy}`` of a chunk; the last chunk's copies are kept (per process) so
    the tasks of one chunk on successive shards apply its plans once."""
    sig = tuple(pj for _, _, pj in chunk)
    ref = _LAST_CHUNK.get("model")
    if ref is not None and ref() is model and _LAST_CHUNK.get("sig") == sig:
        return dict(zip([c[0] for c in chunk], _LAST_CHUNK["models"]))
    _LAST_CHUNK.clear()
    edited = [model if pj == "null" else EditPlan.from_dict(json.loads(pj)).apply(model)[0] for pj in sig]
    _LAST_CHUNK.update(model=weakref.ref(model), sig=sig, models=edited)
    return dict(zip([c[0] for c in chunk], edited))


def run_task(model, ctx: SweepContext, task: Task) -> dict[str, dict]:
    """Evaluate one task: ``{variant: {"per_image", "skipped"} or {"tuning"}, plus "seconds"}``.

    Runs wherever the executor puts it; writes nothing (the driver stores the results).
    """
    from studies.measure.classify import evaluate_variants, wnid_index
    from studies.measure.images import ImageFolderDataset
    from studies.measure.tuning import measure

    _inject_faults(ctx, task)
    t0 = time.perf_counter()
    models = _edited_models(model, task.chunk)
    device = next(model.parameters()).device
    out: dict[str, dict] = {}
    if task.kind == "images":
        ds = ImageFolderDataset.from_samples(ctx.images, wnid_index(model), task.payload["samples"])
        res = evaluate_variants(models, ds, batch_size=ctx.batch_size, num_workers=ctx.num_workers, device=device,
                                progress=False)
        out = {n: {"per_image": r.per_image, "skipped": r.skipped} for n, r in res.items()}
    elif task.kind == "stimuli":
        start, stop = task.payload["start"], task.payload["stop"]
        stim = ctx.stimuli.subset(range(start, stop))
        for name, m in models.items():
            df = measure(m, list(ctx.units), stim, pre_relu=ctx.pre_relu, device=device)
            df["stimulus"] += start
            out[name] = {"tuning": df}
    else:  # pragma: no cover - the driver only makes these two kinds
        raise ValueError(f"unknown task kind {task.kind!r}")
    dt = time.perf_counter() - t0
    for v in out.values():
        v["seconds"] = dt
    return out


# ---------------------------------------------------------------------------- the sweep
def _shards(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def run_sweep(
    plans: Mapping[str, EditPlan | None],
    images: str | Path | None,
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
    executor: Executor | None = None,
    shard_size: int | None = None,
    stimuli=None,
    units=None,
    pre_relu: bool = True,
    stimulus_batch: int = 512,
) -> SweepResult:
    """Evaluate every plan of ``plans`` (``None`` = the unedited model) on ``images`` and/or
    measure ``units`` on ``stimuli`` under every plan.

    Args:
        plans: ``{variant name: EditPlan or None}``; names must be unique (they are dict keys).
        images: labelled image folder (see :mod:`studies.measure.classify`), or ``None`` (stimuli only).
        model: a checkpoint name or a loaded :class:`~circuits.model.InceptionV1`.
        weights: weights file when ``model`` is a name.
        limit: evaluate the first ``limit`` images in sorted order.
        reference: ``(N, 3, H, W)`` images for plans that measure statistics (mean ablation);
            their means are measured once, here, and the resolved plans go to the tasks.
        cache_dir: where entries live (default :func:`default_cache_dir`).
        jobs: worker processes of the default :class:`~studies.run.executors.LocalExecutor`.
        plans_per_pass: plans evaluated together in one task (shared prefix).
        batch_size: images per forward pass.
        device: where the model runs locally (Ray tasks use ``cuda`` when they reserve GPUs).
        num_workers: DataLoader workers in this process (pool workers use 0; Ray tasks use
            :attr:`~studies.run.executors.RayExecutor.loader_workers`).
        progress: a progress bar over tasks (stderr).
        log: called with one line per event (default: nothing).
        executor: a :class:`~studies.run.executors.Executor` (default ``LocalExecutor(jobs)``).
        shard_size: images per task (default ``16 × batch_size``); a multiple of ``batch_size``.
        stimuli: a :class:`~studies.measure.stimuli.Stimuli` table to measure ``units`` on.
        units: units or family keys to measure (``"3b:379"``, ``"mixed3b/curves"``).
        pre_relu: measure pre-ReLU values (default; post-ReLU otherwise).
        stimulus_batch: stimuli per task.

    Returns:
        A :class:`SweepResult`.

    Raises:
        ValueError: no plan, neither images nor stimuli, ``jobs``/``plans_per_pass``/
            ``shard_size``/``stimulus_batch`` invalid, no usable image, stimuli without units,
            a plan that does not validate, or a plan needs ``reference`` and none was given —
            all before any compute.
    """
    from circuits import load_model
    from circuits.units import resolve_targets
    from circuits.weights import state_digest
    from studies.measure.classify import wnid_index
    from studies.measure.images import ImageFolderDataset

    log = log or (lambda msg: None)
    if not plans:
        raise ValueError("no plans to run")
    if images is None and stimuli is None:
        raise ValueError("nothing to evaluate: give images and/or stimuli")
    if jobs < 1 or plans_per_pass < 1 or batch_size < 1 or stimulus_batch < 1:
        raise ValueError(f"jobs, plans_per_pass, batch_size and stimulus_batch must be ≥ 1, got {jobs}, "
                         f"{plans_per_pass}, {batch_size}, {stimulus_batch}")
    shard_size = 16 * batch_size if shard_size is None else shard_size
    if shard_size < 1 or shard_size % batch_size:
        raise ValueError(f"shard_size ({shard_size}) must be a positive multiple of batch_size ({batch_size}): "
                         "shards must not split a batch")
    if stimuli is not None and not units:
        raise ValueError("stimuli given without units to measure (e.g. units=['mixed3b/curves'])")
    executor = executor or LocalExecutor(jobs=jobs)
    executor.check()
    if isinstance(model, str):
        checkpoint = model
        model = load_model(checkpoint, weights=str(weights) if weights is not None else None, device=device)
    else:
        checkpoint = model.spec.name
    plans = dict(plans)
    for name, plan in plans.items():
        if plan is not None:
            plan.validate(model.spec)
            if plan.needs_reference() and reference is None:
                raise ValueError(f"plan {name!r} needs reference images (mean ablation); pass reference=")
    unit_names: tuple[str, ...] = ()
    if stimuli is not None:
        from studies.measure.stimuli import Stimuli

        if not isinstance(stimuli, Stimuli) or len(stimuli) == 0:
            raise ValueError("stimuli must be a non-empty studies.measure.stimuli.Stimuli table")
        unit_names = tuple(str(u) for u in resolve_targets(units, model.spec)[0])
    ds = None
    if images is not None:
        ds = ImageFolderDataset(images, wnid_index(model)).head(limit)
        if len(ds) == 0:
            raise ValueError(f"image folder {images} has no usable labelled image")
        images = str(Path(images).resolve())
    wdig = state_digest(model.state_dict())
    rdig = tensor_digest(reference) if reference is not None else None
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)

    # what each plan needs: (kind, key, index) entries
    parts: list[tuple[str, dict[str, str], list[tuple[int, dict]]]] = []
    keys: dict[str, str | None] = {n: None for n in plans}
    skeys: dict[str, str] = {}
    if ds is not None:
        desc = image_set_description(ds)
        keys = {n: cache_key(p, checkpoint, wdig, desc, limit, batch_size, rdig, shard_size) for n, p in plans.items()}
        parts.append(("images", keys, [(i, {"samples": ds.samples[a:b]})
                                       for i, (a, b) in enumerate(_shards(len(ds), shard_size))]))
    if stimuli is not None:
        sdesc = stimulus_set_description(stimuli)
        skeys = {n: stimulus_cache_key(p, checkpoint, wdig, sdesc, unit_names, pre_relu, stimulus_batch, rdig)
                 for n, p in plans.items()}
        parts.append(("stimuli", skeys, [(i, {"start": a, "stop": b})
                                         for i, (a, b) in enumerate(_shards(len(stimuli), stimulus_batch))]))

    entries: dict[tuple[str, str, int], dict] = {}  # (variant, kind, index) → entry
    missing: list[tuple[str, int, dict, str]] = []   # (kind, index, payload, variant)
    for kind, kmap, pieces in parts:
        for i, payload in pieces:
            for name in plans:
                e = _read_entry(entry_path(cache, kmap[name], kind, i), kmap[name], kind, i)
                if e is not None:
                    entries[(name, kind, i)] = e
                else:
                    missing.append((kind, i, payload, name))
    todo_names = {m[3] for m in missing}
    loaded = [n for n in plans if n not in todo_names]
    if loaded:
        log(f"sweep: {len(loaded)} plan(s) loaded from the cache {cache}")

    # plans that measure statistics are resolved once, here
    resolved: dict[str, str] = {}
    for name in plans:
        plan = plans[name]
        if name in todo_names and plan is not None and plan.needs_reference():
            log(f"sweep: measuring the statistics of {name!r} on the reference images")
            resolved[name] = json.dumps(plan.apply(model, reference=reference)[1].plan, sort_keys=True)
    pj = {n: resolved.get(n) or plan_json(p) for n, p in plans.items()}

    tasks: list[Task] = []
    by_piece: dict[tuple[str, int], list[str]] = {}
    payloads: dict[tuple[str, int], dict] = {}
    for kind, i, payload, name in missing:
        by_piece.setdefault((kind, i), []).append(name)
        payloads[(kind, i)] = payload
    kmaps = {kind: kmap for kind, kmap, _ in parts}
    for (kind, i), names in by_piece.items():
        for c in range(0, len(names), plans_per_pass):
            chunk = tuple((n, kmaps[kind][n], pj[n]) for n in names[c:c + plans_per_pass])
            tasks.append(Task(kind, i, chunk, payloads[(kind, i)]))
    # chunk-major order: a worker that gets the next shard of the same chunk reuses its edited copies
    first_seen: dict[tuple, int] = {}
    for t in tasks:
        first_seen.setdefault(tuple(v for v, _, _ in t.chunk), len(first_seen))
    tasks.sort(key=lambda t: (first_seen[tuple(v for v, _, _ in t.chunk)], t.kind != "images", t.index))

    failed: dict[str, str] = {}
    seconds: dict[str, float] = {}
    computed_set: set[str] = set()
    in_process = isinstance(executor, LocalExecutor) and executor.jobs == 1
    loader_workers = (num_workers or 0) if in_process else getattr(executor, "loader_workers", 0)
    ctx = SweepContext(images=images, batch_size=batch_size, num_workers=loader_workers, stimuli=stimuli, units=unit_names, pre_relu=pre_relu, stimulus_batch=stimulus_batch,
                       driver_pid=os.getpid())
    n_run = 0
    if tasks:
        log(f"sweep: {len(todo_names)} plan(s) to compute in {len(tasks)} task(s) on the {executor.name} executor")
        bar = tqdm(total=len(tasks), desc="sweep tasks", unit="task", disable=not progress)
        retry: list[Task] = []

        def on_done(task: Task, result) -> None:
            if isinstance(result, TaskFailure):
                if len(task.chunk) > 1:  # isolate the failing plan: its chunk-mates get their own tasks
                    retry.extend(Task(task.kind, task.index, (c,), task.payload) for c in task.chunk)
                    log(f"sweep: {task.label()} failed ({result.error}); retrying its plans one by one")
                else:
                    name = task.chunk[0][0]
                    failed.setdefault(name, f"{task.kind} {task.index}: {result.error} "
                                            f"(after {result.attempts} attempt(s))")
                    log(f"sweep: plan {name!r} failed on {task.kind} {task.index}: {result.error}")
            else:
                for name, key, _ in task.chunk:
                    r = result[name]
                    entry = {"key": key, "kind": task.kind, "index": task.index, "variant": name,
                             "plan": plan_json(plans[name]), **r}
                    _write_entry(entry_path(cache, key, task.kind, task.index), entry)
                    entries[(name, task.kind, task.index)] = entry
                    seconds[name] = seconds.get(name, 0.0) + r["seconds"]
                    computed_set.add(name)
            bar.update(1)

        try:
            executor.run(run_task, model, ctx, tasks, on_done)
            n_run = len(tasks)
            if retry:
                bar.total += len(retry)
                again, retry = list(retry), []
                executor.run(run_task, model, ctx, again, on_done)
                n_run += len(again)
        finally:
            bar.close()
            _LAST_CHUNK.clear()  # the edited copies of the local executor's last chunk
        log(f"sweep: {n_run} task(s) done" + (f", {len(failed)} plan(s) failed" if failed else ""))

    ok = [n for n in plans if n not in failed]
    per_image = pd.DataFrame()
    skipped = pd.DataFrame(columns=["path", "reason"])
    if ds is not None:
        n_shards = len(parts[0][2])
        frames = [entries[(n, "images", i)]["per_image"].assign(variant=n) for n in ok for i in range(n_shards)]
        if frames:
            per_image = pd.concat(frames, ignore_index=True)
            per_image = per_image[["variant", *[c for c in per_image.columns if c != "variant"]]]
        bad = list(ds.skipped)
        ref = ok[0] if ok else None
        if ref is not None:
            for i in range(n_shards):
                bad += [tuple(r) for r in entries[(ref, "images", i)]["skipped"][["path", "reason"]].values.tolist()]
        skipped = pd.DataFrame(sorted(set(bad)), columns=["path", "reason"])
    tuning = None
    if stimuli is not None:
        n_batches = len(parts[-1][2])
        frames = [entries[(n, "stimuli", i)]["tuning"].assign(variant=n) for n in ok for i in range(n_batches)]
        if frames:
            tuning = pd.concat(frames, ignore_index=True)
            tuning = tuning[["variant", *[c for c in tuning.columns if c != "variant"]]]
            tuning = tuning.sort_values(["variant", "unit", "stimulus"], kind="stable",
                                        key=_order_by({"variant": list(plans), "unit": list(unit_names)}))
            tuning = tuning.reset_index(drop=True)
    return SweepResult(per_image=per_image, skipped=skipped, keys=keys,
                       computed=[n for n in plans if n in computed_set], loaded=loaded, seconds=seconds,
                       tuning=tuning, stimulus_keys=skeys, failed=failed, tasks=n_run)


def _order_by(orders: dict[str, list[str]]):
    """A ``sort_values`` key: columns named in ``orders`` sort by position in their list."""
    pos = {col: {v: i for i, v in enumerate(vals)} for col, vals in orders.items()}

    def key(col: pd.Series) -> pd.Series:
        return col.map(pos[col.name]) if col.name in pos else col

    return key


def evaluate_plans(plans: Mapping[str, EditPlan | None], images: str | Path, model, executor: Executor | None = None,
                   **kwargs) -> dict:
    """:func:`studies.measure.classify.evaluate_variants` for edit plans, run as a :func:`run_sweep`
    (cached, on any executor): ``{name: ClassificationResult}``.

    Args:
        plans: ``{name: EditPlan or None}`` (``None`` = the unedited model).
        images, model, executor: as :func:`run_sweep`; ``kwargs`` too (``limit``,
            ``batch_size``, ``device``, ``cache_dir``, ``progress``, ``log``, …).

    Raises:
        RuntimeError: a plan failed after its retries (the message names it and its error);
            and as :func:`run_sweep`.
    """
    from studies.measure.classify import ClassificationResult

    res = run_sweep(plans, images, model=model, executor=executor, **kwargs)
    if res.failed:
        raise RuntimeError("plans failed: " + "; ".join(f"{n}: {e}" for n, e in res.failed.items()))
    out = {}
    for name in plans:
        pi = res.per_image[res.per_image["variant"] == name].drop(columns=["variant"]).reset_index(drop=True)
        out[name] = ClassificationResult(
            per_image=pi, top1=float(pi["correct_top1"].mean()), top5=float(pi["correct_top5"].mean()),
            n_images=len(pi), skipped=res.skipped, n_skipped=len(res.skipped),
            checkpoint=model.spec.name if not isinstance(model, str) else model, root=str(Path(images).resolve()))
    return out


def evaluate_study_variants(models: Mapping, plans: Mapping[str, EditPlan | None] | None, images: str | Path,
                            executor: Mapping | None = None, **kwargs) -> dict:
    """Classification of a study's variants: in this process with
    :func:`studies.measure.classify.evaluate_variants` (the local executor), or as a sweep of
    ``plans`` on another executor (``executor`` settings as :func:`studies.run.executors.make_executor`
    takes them, e.g. ``{"name": "ray", "address": "auto"}``).

    Args:
        models: ``{name: model}`` (the unedited one among them); ``plans``: the same names →
            the plan that made each model (``None`` for the unedited one), or ``None`` when the
            variants are not single plans (they then run locally).
        kwargs: ``batch_size``, ``device``, ``limit``, ``num_workers``, ``progress``.

    Returns:
        ``{name: ClassificationResult}``.
    """
    from studies.measure.classify import evaluate_variants
    from studies.run.executors import make_executor

    settings = dict(executor or {"name": "local"})
    if settings.get("name", "local") == "local" or plans is None:
        return evaluate_variants(models, images, **kwargs)
    base = next(m for n, m in models.items() if plans.get(n) is None)
    kwargs.pop("num_workers", None)
    return evaluate_plans(dict(plans), images, base, executor=make_executor(**settings), **kwargs)

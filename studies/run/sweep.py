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
(a multiple of ``batch_size``). Results do not depend on the sharding or the batch size: resample
ablation draws donors within fixed groups of dataset indices
(:func:`edits.interventions.resample_groups`), and when a sweep has such plans each task
evaluates its shard (or stimulus batch) widened to whole groups and returns its own rows. A chunk
is up to ``plans_per_pass`` plans evaluated in one pass with
:func:`studies.measure.classify.evaluate_variants`: each batch decoded once, the unedited prefix (the
layers before the first edited one) computed once for the chunk. Stimulus tasks measure
``units`` on ``stimulus_batch`` consecutive stimuli with :func:`studies.measure.tuning.measure`.

Cache. Each (plan, shard) result is stored in ``cache_dir/<key>/images-<shard>.entry`` (and
``…/stimuli-<batch>.entry`` under the plan's stimulus key), a verified data file
(:mod:`studies.run.cache`: no pickle, a SHA-256 checksum; a bad entry is reported, discarded
and recomputed). The image key is the SHA-256 of: the plan's JSON (``None`` = the unedited
model), the checkpoint name and the model's :func:`circuits.fingerprint.fingerprint` (weights,
every buffer, forward-changing flags such as linearisation, structure and installed
interventions: a model with a hook, or a linearised copy, never shares the plain model's
entries; a model with a hook that cannot be fingerprinted is refused), a description of the image set
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

import json
import os
import signal
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from circuits import load_model
from circuits.fingerprint import FingerprintError, fingerprint
from circuits.units import resolve_targets
from edits import EditPlan
from studies.measure.classify import ClassificationResult, evaluate_variants, wnid_index
from studies.measure.images import ImageFolderDataset
from studies.measure.stimuli import Stimuli
from studies.measure.tuning import measure
from studies.run.cache import (
    cache_key,
    default_cache_dir,
    entry_path,
    image_set_description,
    plan_json,
    read_entry,
    stimulus_cache_key,
    stimulus_set_description,
    tensor_digest,
    write_entry,
)
from studies.run.executors import Executor, LocalExecutor, Task, TaskFailure
from studies.run.shards import group_span, resamples, shard_payload, shard_rows, shards

#: Test hook: a JSON object in this environment variable makes tasks fail on purpose (see
#: :func:`_inject_faults`); the executors forward every ``CIRCUITS_*`` variable to workers.
FAULT_ENV = "CIRCUITS_FAULT_INJECT"


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
    _inject_faults(ctx, task)
    t0 = time.perf_counter()
    models = _edited_models(model, task.chunk)
    device = next(model.parameters()).device
    out: dict[str, dict] = {}
    if task.kind == "images":
        ds = ImageFolderDataset.from_samples(ctx.images, wnid_index(model), task.payload["samples"])
        res = evaluate_variants(models, ds, batch_size=ctx.batch_size, num_workers=ctx.num_workers, device=device,
                                progress=False, first_index=task.payload.get("start", 0))
        keep = task.payload.get("keep")
        out = {n: {"per_image": shard_rows(r.per_image, keep), "skipped": shard_rows(r.skipped, keep)}
               for n, r in res.items()}
    elif task.kind == "stimuli":
        start, stop = task.payload["start"], task.payload["stop"]
        a, b = task.payload.get("span", (start, stop))  # widened to whole resample groups with resampling plans
        stim = ctx.stimuli.subset(range(a, b))
        for name, m in models.items():
            df = measure(m, list(ctx.units), stim, pre_relu=ctx.pre_relu, device=device, first_index=a)
            df["stimulus"] += a
            out[name] = {"tuning": df[(df["stimulus"] >= start) & (df["stimulus"] < stop)].reset_index(drop=True)}
    else:  # pragma: no cover - the driver only makes these two kinds
        raise ValueError(f"unknown task kind {task.kind!r}")
    dt = time.perf_counter() - t0
    for v in out.values():
        v["seconds"] = dt
    return out


# ---------------------------------------------------------------------------- the sweep
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
        plans_per_pass: plans evaluated together in one task (shared prefix); batch_size: images
            per forward pass.
        device: where the model runs locally (Ray tasks use ``cuda`` when they reserve GPUs).
        num_workers: DataLoader workers in this process (pool workers use 0; Ray tasks use
            :attr:`~studies.run.executors.RayExecutor.loader_workers`).
        progress: a progress bar over tasks (stderr); log: called with one line per event.
        executor: a :class:`~studies.run.executors.Executor` (default ``LocalExecutor(jobs)``).
        shard_size: images per task (default ``16 × batch_size``); a multiple of ``batch_size``.
        stimuli: a :class:`~studies.measure.stimuli.Stimuli` table to measure ``units`` on.
        units: units or family keys to measure (``"3b:379"``, ``"mixed3b/curves"``); pre_relu:
            pre-ReLU values (default) or post-ReLU; stimulus_batch: stimuli per task.

    Returns:
        A :class:`SweepResult`.

    Raises:
        ValueError: no plan, neither images nor stimuli, ``jobs``/``plans_per_pass``/
            ``shard_size``/``stimulus_batch`` invalid, no usable image, stimuli without units,
            a plan that does not validate, or a plan needs ``reference`` and none was given —
            all before any compute.
    """
    log = log or (lambda msg: None)
    shard_size = _check_settings(plans, images, stimuli, units, jobs, plans_per_pass, batch_size, stimulus_batch,
                                 shard_size)
    executor = executor or LocalExecutor(jobs=jobs)
    executor.check()
    model = load_model(model, weights=weights and str(weights), device=device) if isinstance(model, str) else model
    plans = dict(plans)
    unit_names, ds, images = _check_inputs(plans, model, images, limit, reference, stimuli, units)
    run = _SweepRun(plans, Path(cache_dir or default_cache_dir()), log, [], {n: None for n in plans})
    digests = (model.spec.name, _model_identity(model), tensor_digest(reference) if reference is not None else None)
    run.add_parts(ds, stimuli, digests, limit, batch_size, shard_size, unit_names, pre_relu, stimulus_batch,
                  resamples(plans, model))
    run.read_cache()
    tasks = run.tasks(run.resolved_plans(model, reference), plans_per_pass)
    in_process = isinstance(executor, LocalExecutor) and executor.jobs == 1
    ctx = SweepContext(images=images, batch_size=batch_size, stimuli=stimuli,
                       num_workers=(num_workers or 0) if in_process else getattr(executor, "loader_workers", 0),
                       units=unit_names, pre_relu=pre_relu, stimulus_batch=stimulus_batch, driver_pid=os.getpid())
    n_run = run.execute(executor, model, ctx, tasks, progress) if tasks else 0
    per_image, skipped = run.collect_images(ds)
    return SweepResult(per_image=per_image, skipped=skipped, keys=run.keys,
                       computed=[n for n in plans if n in run.computed], loaded=run.loaded, seconds=run.seconds,
                       tuning=run.collect_tuning(unit_names) if stimuli is not None else None,
                       stimulus_keys=run.skeys, failed=run.failed, tasks=n_run)


def _model_identity(model) -> str:
    """The model's :func:`~circuits.fingerprint.fingerprint`, or a ValueError naming what cannot be fingerprinted."""
    try:
        return fingerprint(model)
    except FingerprintError as e:
        raise ValueError(f"cannot sweep this model: its results could not be told apart from another model's "
                         f"in the cache ({e})") from None


def _check_settings(plans, images, stimuli, units, jobs: int, plans_per_pass: int, batch_size: int,
                    stimulus_batch: int, shard_size: int | None) -> int:
    """The settings checks of :func:`run_sweep`; returns the shard size (default ``16 × batch_size``)."""
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
    return shard_size


def _check_inputs(plans: dict, model, images, limit, reference, stimuli, units):
    """Validate the plans (before any compute), resolve the units and scan the image folder:
    ``(unit names, dataset or None, resolved image folder or None)``."""
    for name, plan in plans.items():
        if plan is not None:
            plan.validate(model.spec)
            if plan.needs_reference() and reference is None:
                raise ValueError(f"plan {name!r} needs reference images (mean ablation); pass reference=")
    unit_names: tuple[str, ...] = ()
    if stimuli is not None:
        if not isinstance(stimuli, Stimuli) or len(stimuli) == 0:
            raise ValueError("stimuli must be a non-empty studies.measure.stimuli.Stimuli table")
        unit_names = tuple(str(u) for u in resolve_targets(units, model.spec)[0])
    ds = None
    if images is not None:
        ds = ImageFolderDataset(images, wnid_index(model)).head(limit)
        if len(ds) == 0:
            raise ValueError(f"image folder {images} has no usable labelled image")
        images = str(Path(images).resolve())
    return unit_names, ds, images


@dataclass
class _SweepRun:
    """The driver's state of one :func:`run_sweep` call: what each plan needs, what the cache
    holds, the tasks to run and what came back."""

    plans: dict
    cache: Path
    log: Callable[[str], None]
    #: ``(kind, {variant: key}, [(index, payload)])`` per kind of work (images, stimuli)
    parts: list[tuple[str, dict[str, str], list[tuple[int, dict]]]]
    keys: dict[str, str | None]
    skeys: dict[str, str] = field(default_factory=dict)
    entries: dict[tuple[str, str, int], dict] = field(default_factory=dict)  # (variant, kind, index) → entry
    missing: list[tuple[str, int, dict, str]] = field(default_factory=list)  # (kind, index, payload, variant)
    loaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    computed: set[str] = field(default_factory=set)

    def add_parts(self, ds, stimuli, digests, limit, batch_size, shard_size, unit_names, pre_relu,
                  stimulus_batch, coupled: bool = False) -> None:
        """The cache keys and the pieces (image shards, stimulus batches) of every plan."""
        checkpoint, wdig, rdig = digests
        if ds is not None:
            desc = image_set_description(ds)
            self.keys = {n: cache_key(p, checkpoint, wdig, desc, limit, batch_size, rdig, shard_size)
                         for n, p in self.plans.items()}
            self.parts.append(("images", self.keys, [(i, shard_payload(ds.samples, a, b, coupled))
                                                     for i, (a, b) in enumerate(shards(len(ds), shard_size))]))
        if stimuli is not None:
            sdesc = stimulus_set_description(stimuli)
            self.skeys = {n: stimulus_cache_key(p, checkpoint, wdig, sdesc, unit_names, pre_relu, stimulus_batch, rdig)
                          for n, p in self.plans.items()}
            self.parts.append(("stimuli", self.skeys, [
                (i, {"start": a, "stop": b, "span": group_span(a, b, len(stimuli)) if coupled else (a, b)})
                for i, (a, b) in enumerate(shards(len(stimuli), stimulus_batch))]))

    def read_cache(self) -> None:
        """Load the finished entries; the rest is :attr:`missing`."""
        self.cache.mkdir(parents=True, exist_ok=True)
        for kind, kmap, pieces in self.parts:
            for i, payload in pieces:
                for name in self.plans:
                    e = read_entry(entry_path(self.cache, kmap[name], kind, i), kmap[name], kind, i)
                    if e is not None:
                        self.entries[(name, kind, i)] = e
                    else:
                        self.missing.append((kind, i, payload, name))
        todo = {m[3] for m in self.missing}
        self.loaded = [n for n in self.plans if n not in todo]
        if self.loaded:
            self.log(f"sweep: {len(self.loaded)} plan(s) loaded from the cache {self.cache}")

    def resolved_plans(self, model, reference) -> dict[str, str]:
        """``{variant: plan JSON}``; plans that measure statistics are resolved once, here."""
        todo = {m[3] for m in self.missing}
        resolved: dict[str, str] = {}
        for name, plan in self.plans.items():
            if name in todo and plan is not None and plan.needs_reference():
                self.log(f"sweep: measuring the statistics of {name!r} on the reference images")
                resolved[name] = json.dumps(plan.apply(model, reference=reference)[1].plan, sort_keys=True)
        return {n: resolved.get(n) or plan_json(p) for n, p in self.plans.items()}

    def tasks(self, pj: dict[str, str], plans_per_pass: int) -> list[Task]:
        """Tasks of up to ``plans_per_pass`` plans per missing piece, in chunk-major order (a
        worker that gets the next shard of the same chunk reuses its edited copies)."""
        by_piece: dict[tuple[str, int], list[str]] = {}
        payloads: dict[tuple[str, int], dict] = {}
        for kind, i, payload, name in self.missing:
            by_piece.setdefault((kind, i), []).append(name)
            payloads[(kind, i)] = payload
        kmaps = {kind: kmap for kind, kmap, _ in self.parts}
        tasks: list[Task] = []
        for (kind, i), names in by_piece.items():
            for c in range(0, len(names), plans_per_pass):
                chunk = tuple((n, kmaps[kind][n], pj[n]) for n in names[c:c + plans_per_pass])
                tasks.append(Task(kind, i, chunk, payloads[(kind, i)]))
        first_seen: dict[tuple, int] = {}
        for t in tasks:
            first_seen.setdefault(tuple(v for v, _, _ in t.chunk), len(first_seen))
        tasks.sort(key=lambda t: (first_seen[tuple(v for v, _, _ in t.chunk)], t.kind != "images", t.index))
        return tasks

    def on_done(self, task: Task, result, retry: list[Task]) -> None:
        """Store a task's results (the driver writes the cache), or note its failure: a failed
        chunk is retried plan by plan, a failed single plan is reported."""
        if isinstance(result, TaskFailure):
            if len(task.chunk) > 1:  # isolate the failing plan: its chunk-mates get their own tasks
                retry.extend(Task(task.kind, task.index, (c,), task.payload) for c in task.chunk)
                self.log(f"sweep: {task.label()} failed ({result.error}); retrying its plans one by one")
            else:
                name = task.chunk[0][0]
                self.failed.setdefault(name, f"{task.kind} {task.index}: {result.error} "
                                             f"(after {result.attempts} attempt(s))")
                self.log(f"sweep: plan {name!r} failed on {task.kind} {task.index}: {result.error}")
            return
        for name, key, _ in task.chunk:
            r = result[name]
            entry = {"key": key, "kind": task.kind, "index": task.index, "variant": name,
                     "plan": plan_json(self.plans[name]), **r}
            write_entry(entry_path(self.cache, key, task.kind, task.index), entry)
            self.entries[(name, task.kind, task.index)] = entry
            self.seconds[name] = self.seconds.get(name, 0.0) + r["seconds"]
            self.computed.add(name)

    def execute(self, executor: Executor, model, ctx: SweepContext, tasks: list[Task], progress: bool) -> int:
        """Run ``tasks`` (then the plan-by-plan retries of failed chunks); returns the tasks run."""
        todo = {m[3] for m in self.missing}
        self.log(f"sweep: {len(todo)} plan(s) to compute in {len(tasks)} task(s) on the {executor.name} executor")
        bar = tqdm(total=len(tasks), desc="sweep tasks", unit="task", disable=None if progress else True)
        retry: list[Task] = []

        def on_done(task: Task, result) -> None:
            self.on_done(task, result, retry)
            bar.update(1)

        try:
            executor.run(run_task, model, ctx, tasks, on_done)
            n_run = len(tasks)
            if retry:
                bar.total += len(retry)
                again, retry[:] = list(retry), []
                executor.run(run_task, model, ctx, again, on_done)
                n_run += len(again)
        finally:
            bar.close()
            _LAST_CHUNK.clear()  # the edited copies of the local executor's last chunk
        self.log(f"sweep: {n_run} task(s) done" + (f", {len(self.failed)} plan(s) failed" if self.failed else ""))
        return n_run

    def ok(self) -> list[str]:
        return [n for n in self.plans if n not in self.failed]

    def collect_images(self, ds) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(per_image, skipped)`` of the plans that did not fail."""
        per_image = pd.DataFrame()
        if ds is None:
            return per_image, pd.DataFrame(columns=["path", "reason"])
        ok = self.ok()
        n_shards = len(self.parts[0][2])
        frames = [self.entries[(n, "images", i)]["per_image"].assign(variant=n) for n in ok for i in range(n_shards)]
        if frames:
            per_image = pd.concat(frames, ignore_index=True)
            per_image = per_image[["variant", *[c for c in per_image.columns if c != "variant"]]]
        bad = list(ds.skipped)
        if ok:
            for i in range(n_shards):
                bad += [tuple(r) for r in self.entries[(ok[0], "images", i)]["skipped"][["path", "reason"]].values.tolist()]
        return per_image, pd.DataFrame(sorted(set(bad)), columns=["path", "reason"])

    def collect_tuning(self, unit_names: tuple[str, ...]) -> pd.DataFrame | None:
        """The stimulus responses of the plans that did not fail, ordered by plan, unit, stimulus."""
        n_batches = len(self.parts[-1][2])
        frames = [self.entries[(n, "stimuli", i)]["tuning"].assign(variant=n) for n in self.ok() for i in range(n_batches)]
        if not frames:
            return None
        tuning = pd.concat(frames, ignore_index=True)
        tuning = tuning[["variant", *[c for c in tuning.columns if c != "variant"]]]
        tuning = tuning.sort_values(["variant", "unit", "stimulus"], kind="stable",
                                    key=_order_by({"variant": list(self.plans), "unit": list(unit_names)}))
        return tuning.reset_index(drop=True)


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
    from studies.run.executors import make_executor

    settings = dict(executor or {"name": "local"})
    if settings.get("name", "local") == "local" or plans is None:
        return evaluate_variants(models, images, **kwargs)
    base = next(m for n, m in models.items() if plans.get(n) is None)
    kwargs.pop("num_workers", None)
    return evaluate_plans(dict(plans), images, base, executor=make_executor(**settings), **kwargs)

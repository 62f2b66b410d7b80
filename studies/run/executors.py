"""Where a sweep's tasks run: in this process or a local process pool (:class:`LocalExecutor`),
or on a Ray cluster (:class:`RayExecutor`).

A sweep (:func:`studies.run.sweep.run_sweep`) is cut into tasks — (chunk of edit plans × image
shard) and (chunk of edit plans × stimulus batch) — and hands them to an executor together
with one *context* (the model and everything the tasks share). An executor calls
``fn(model, context, task)`` for each task, somewhere, and reports each outcome to the driver
with ``on_done(task, result)`` — a result or a :class:`TaskFailure` after the retries. The
driver (not the workers) writes the on-disk cache, so every (plan, shard) entry is written
once, atomically, whichever executor ran it: a sweep started on Ray resumes locally and vice
versa.

Ray. The model and the context go into the object store once (``ray.put``); each task gets
the object references, and each worker process deserialises them once and keeps them for
the tasks that follow. A task that raises or whose worker process dies is retried by Ray
(``max_retries``); after that it is reported as a :class:`TaskFailure` and the sweep goes on.
Ray is an optional extra: ``pip install -e '.[ray]'``.

>>> from studies.run.executors import make_executor
>>> ex = make_executor("ray", address="auto", gpus_per_task=1)   # an existing cluster
>>> ex = make_executor("local", jobs=2)                          # two spawn workers
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from studies.run import parent_watch
from studies.run.parent_watch import ParentWatch

EXECUTORS = ("local", "ray")
RAY_INSTALL_HINT = ("the Ray executor needs Ray: install the optional extra with "
                    "`pip install -e '.[ray]'` (or `pip install 'circuits[ray]'`)")


@dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes:
        kind: ``"images"`` (a shard of the image set) or ``"stimuli"`` (a batch of stimuli).
        index: the shard / batch number (0-based, in image / stimulus order).
        chunk: ``[(variant, cache key, plan JSON)]`` evaluated together (shared prefix).
        payload: what the kind needs: ``samples`` ``[(path, wnid, label)]`` for images,
            ``start``/``stop`` stimulus rows for stimuli.
    """

    kind: str
    index: int
    chunk: tuple[tuple[str, str, str], ...]
    payload: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def variants(self) -> list[str]:
        return [c[0] for c in self.chunk]

    def label(self) -> str:
        return f"{self.kind} {self.index} of {', '.join(self.variants)}"


@dataclass(frozen=True)
class TaskFailure:
    """A task that still failed after its retries: ``error`` is the last exception (type and
    message), ``attempts`` how many times it ran (as far as the executor knows)."""

    error: str
    attempts: int


TaskFn = Callable[[Any, Any, Task], Any]
OnDone = Callable[[Task, Any], None]


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".strip()


class Executor:
    """Runs a sweep's tasks. Subclasses implement :meth:`run`."""

    name = "executor"
    #: a task that raises is run at most ``1 + max_retries`` times.
    max_retries: int = 2

    def run(self, fn: TaskFn, model, context, tasks: Sequence[Task], on_done: OnDone) -> None:
        """Call ``fn(model, context, task)`` for every task and ``on_done(task, result)`` (or
        ``on_done(task, TaskFailure)``) in this process as each finishes, in any order.

        Raises:
            KeyboardInterrupt and errors of the executor itself (not of a task).
        """
        raise NotImplementedError

    def check(self) -> None:
        """Refuse settings the executor can tell are unusable, before any compute (called by
        :func:`studies.run.sweep.run_sweep` before it reads the cache). Default: nothing."""

    def describe(self) -> dict:
        """Settings worth recording in a report's ``config.yaml``."""
        return {"executor": self.name, "max_retries": self.max_retries}


# ---------------------------------------------------------------------------- local
_POOL: dict = {}


def _set_env(env: dict) -> None:
    """Make this worker's ``CIRCUITS_*`` variables exactly the driver's (workers outlive tasks)."""
    for k in [k for k in os.environ if k.startswith("CIRCUITS_") and k not in env]:
        del os.environ[k]
    os.environ.update(env)


def _circuits_env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("CIRCUITS_")}


def _pool_init(model, context, threads: int, env: dict) -> None:
    _set_env(env)
    torch.set_num_threads(threads)
    _POOL["model"], _POOL["context"] = model, context


def _pool_run(fn: TaskFn, task: Task):
    return fn(_POOL["model"], _POOL["context"], task)


class LocalExecutor(Executor):
    """Tasks in this process (``jobs=1``) or in ``jobs`` spawned worker processes.

    Args:
        jobs: worker processes; 1 runs the tasks here, one after the other.
        max_retries: extra attempts for a task that raises, or whose worker process died
            (the pool is then rebuilt), before it is reported as a :class:`TaskFailure`.
        threads: torch threads per task (default: this process's setting for ``jobs=1``,
            ``max(1, threads // jobs)`` for workers).

    Raises:
        ValueError: ``jobs < 1``, ``max_retries < 0`` or ``threads < 1``.
    """

    name = "local"

    def __init__(self, jobs: int = 1, max_retries: int = 2, threads: int | None = None):
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be an integer ≥ 1, got {jobs!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer ≥ 0, got {max_retries!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be an integer ≥ 1, got {threads!r}")
        self.jobs, self.max_retries, self.threads = jobs, max_retries, threads

    def describe(self) -> dict:
        return {**super().describe(), "jobs": self.jobs}

    def run(self, fn: TaskFn, model, context, tasks: Sequence[Task], on_done: OnDone) -> None:
        if self.jobs == 1 or len(tasks) <= 1:
            self._run_here(fn, model, context, tasks, on_done)
        else:
            self._run_pool(fn, model, context, tasks, on_done)

    def _run_here(self, fn, model, context, tasks, on_done) -> None:
        old = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            for task in tasks:
                for attempt in range(1, self.max_retries + 2):
                    try:
                        result = fn(model, context, task)
                    except Exception as e:  # a task error is data, not a crash of the sweep
                        if attempt > self.max_retries:
                            result = TaskFailure(_describe(e), attempt)
                            break
                    else:
                        break
                on_done(task, result)
        finally:
            torch.set_num_threads(old)

    def _run_pool(self, fn, model, context, tasks, on_done) -> None:
        jobs = min(self.jobs, len(tasks))
        threads = self.threads or max(1, torch.get_num_threads() // jobs)
        env = _circuits_env()
        attempts = {i: 0 for i in range(len(tasks))}
        pending = set(attempts)
        while pending:
            ex = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                        initializer=parent_watch.init,
                                        initargs=(ParentWatch(), _pool_init, model, context, threads, env))
            broken = False
            try:
                futs = {}
                for i in sorted(pending):
                    attempts[i] += 1
                    futs[ex.submit(_pool_run, fn, tasks[i])] = i
                todo = set(futs)
                while todo:
                    done, todo = cf.wait(todo, return_when=cf.FIRST_COMPLETED)
                    for f in done:
                        i = futs[f]
                        try:
                            result = f.result()
                        except cf.process.BrokenProcessPool:
                            broken = True
                            continue
                        except Exception as e:
                            if attempts[i] <= self.max_retries:
                                attempts[i] += 1
                                nf = ex.submit(_pool_run, fn, tasks[i])
                                futs[nf] = i
                                todo.add(nf)
                                continue
                            result = TaskFailure(_describe(e), attempts[i])
                        pending.discard(i)
                        on_done(tasks[i], result)
            except BaseException:
                _stop_pool(ex)
                raise
            ex.shutdown(wait=not broken, cancel_futures=True)
            if broken:  # a worker died: the unfinished tasks go to a fresh pool, within their budget
                for i in sorted(pending):
                    if attempts[i] > self.max_retries:
                        pending.discard(i)
                        on_done(tasks[i], TaskFailure("worker process died (BrokenProcessPool)", attempts[i]))


def _stop_pool(ex: cf.ProcessPoolExecutor) -> None:
    """End a pool now (Ctrl-C, an error in the driver): cancel what has not started, terminate
    the workers, wait for them at most 5 s, then kill what is left. Never raises: the exception
    that brought us here is the one to report."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    try:
        ex.shutdown(wait=False, cancel_futures=True)
    except Exception:  # noqa: BLE001 - cleanup of a pool that may already be broken
        pass
    for p in procs:
        try:
            if p.is_alive():
                p.terminate()
        except Exception:  # noqa: BLE001
            pass
    deadline = time.monotonic() + 5.0
    for p in procs:
        try:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1.0)
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------------------- Ray
def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(RAY_INSTALL_HINT) from e
    return ray


_RAY_WORKER: dict = {}


def _ray_task(fn: TaskFn, refs: list, task: Task, threads: int, device: str, env: dict):
    """Body of a Ray task: the model and context are fetched from the object store once per
    worker process (``refs`` is wrapped in a list so Ray does not resolve it per task)."""
    import ray

    _set_env(env)
    torch.set_num_threads(threads)
    model_ref, ctx_ref = refs
    key = (model_ref.hex(), ctx_ref.hex(), device)
    if _RAY_WORKER.get("key") != key:
        _RAY_WORKER.clear()
        model, context = ray.get([model_ref, ctx_ref])
        if device != "cpu":
            model = model.to(device)
        _RAY_WORKER.update(key=key, model=model, context=context)
    return fn(_RAY_WORKER["model"], _RAY_WORKER["context"], task)


class RayExecutor(Executor):
    """Tasks as Ray tasks, on a running cluster or a local Ray instance.

    Args:
        address: ``None`` starts (or reuses) a local Ray instance; ``"auto"`` joins the
            cluster this machine belongs to; ``"HOST:PORT"`` joins that head node (Ray's own
            meaning of ``ray.init(address=...)``).
        gpus_per_task: GPUs each task reserves (``num_gpus``; fractions share a GPU). With
            GPUs the tasks run on ``cuda``.
        cpus_per_task: CPUs each task reserves; also its torch thread count.
        max_retries: extra attempts for a task that raises or whose worker dies
            (Ray's ``max_retries`` with ``retry_exceptions=True``).
        num_cpus: CPUs of a local instance started here (default: all); ignored when joining.
        max_in_flight: tasks submitted at once (default: unlimited).

    Raises:
        ImportError: Ray is not installed (the message says how to install it).
        ValueError: a negative or non-numeric setting.
    """

    name = "ray"

    def __init__(self, address: str | None = None, gpus_per_task: float = 0, cpus_per_task: int = 1,
                 max_retries: int = 2, num_cpus: int | None = None, max_in_flight: int | None = None):
        _import_ray()
        if not isinstance(gpus_per_task, (int, float)) or isinstance(gpus_per_task, bool) or gpus_per_task < 0:
            raise ValueError(f"gpus_per_task must be a number ≥ 0, got {gpus_per_task!r}")
        if isinstance(cpus_per_task, bool) or not isinstance(cpus_per_task, int) or cpus_per_task < 1:
            raise ValueError(f"cpus_per_task must be an integer ≥ 1, got {cpus_per_task!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer ≥ 0, got {max_retries!r}")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(f"address must be 'auto', 'HOST:PORT' or None (local instance), got {address!r}")
        self.address, self.gpus_per_task, self.cpus_per_task = address, gpus_per_task, cpus_per_task
        self.max_retries, self.num_cpus, self.max_in_flight = max_retries, num_cpus, max_in_flight
        #: DataLoader workers inside a task: a GPU task decodes JPEGs on its CPUs in parallel
        #: while the GPU computes; a CPU task keeps its CPUs for the forward pass.
        self.loader_workers = cpus_per_task if gpus_per_task > 0 else 0

    def describe(self) -> dict:
        return {**super().describe(), "address": self.address, "gpus_per_task": self.gpus_per_task,
                "cpus_per_task": self.cpus_per_task}

    def check(self) -> None:
        """The resources a task asks for against the cluster's: the running cluster when Ray is
        already initialised, else, for the local instance :meth:`run` would start, this
        machine's CPUs (``num_cpus``) and visible GPUs. A cluster given by ``address`` is checked
        when :meth:`run` joins it.

        Raises:
            ValueError: a task asks for more GPUs or CPUs than there are.
        """
        ray = _import_ray()
        if ray.is_initialized():
            self._check_resources(ray.cluster_resources())
        elif self.address is None:
            self._check_resources({"CPU": float(self.num_cpus or os.cpu_count() or 1),
                                   "GPU": float(torch.cuda.device_count())})

    def _check_resources(self, have: dict) -> None:
        """A task that asks for more than the whole cluster has would wait forever: refuse it."""
        for what, need in (("GPU", self.gpus_per_task), ("CPU", self.cpus_per_task)):
            if need and have.get(what, 0) < need:
                flag = "--gpus-per-task" if what == "GPU" else "--cpus-per-task"
                raise ValueError(f"each task asks for {need:g} {what}(s) ({flag}) but the Ray cluster has "
                                 f"{have.get(what, 0):g}; lower {flag} or add nodes with {what}s")

    def _connect(self):
        ray = _import_ray()
        if ray.is_initialized():
            return ray, False
        kw: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address is not None:
            ray.init(address=self.address, **kw)
        else:
            ray.init(address="local", num_cpus=self.num_cpus, **kw)  # a new local instance, never a stale cluster
        return ray, True

    def run(self, fn: TaskFn, model, context, tasks: Sequence[Task], on_done: OnDone) -> None:
        if not tasks:
            return
        ray, started = self._connect()
        running: dict = {}  # object ref → task number
        try:
            self._check_resources(ray.cluster_resources())
            device = "cuda" if self.gpus_per_task > 0 else "cpu"
            cpu_model = model if next(model.parameters()).device.type == "cpu" else _cpu_copy(model)
            refs = [ray.put(cpu_model), ray.put(context)]  # once, whatever the number of tasks
            remote = ray.remote(_ray_task).options(
                num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=self.max_retries,
                retry_exceptions=True)
            env = _circuits_env()
            limit = self.max_in_flight or len(tasks)
            queue = list(range(len(tasks)))
            while queue or running:
                while queue and len(running) < limit:
                    i = queue.pop(0)
                    running[remote.remote(fn, refs, tasks[i], self.cpus_per_task, device, env)] = i
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    i = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # RayTaskError, WorkerCrashedError, … after the retries
                        cause = getattr(e, "cause", None)
                        result = TaskFailure(_describe(cause) if isinstance(cause, BaseException) else
                                             _describe(e).splitlines()[0], self.max_retries + 1)
                    on_done(tasks[i], result)
        except BaseException:  # Ctrl-C or an error of the driver: stop what is still running
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()


def _cpu_copy(model):
    import copy

    return copy.deepcopy(model).cpu()


def make_executor(name: str = "local", *, jobs: int = 1, address: str | None = None, gpus_per_task: float = 0,
                  cpus_per_task: int = 1, max_retries: int = 2) -> Executor:
    """An executor by name (``"local"`` or ``"ray"``) from command-line style settings.

    Raises:
        ValueError: an unknown name (the valid choices are listed), or settings that belong to
            the other executor (``address``/``gpus_per_task`` with ``local``).
        ImportError: ``"ray"`` without Ray installed (with the install command).
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    if name == "local":
        if address is not None or gpus_per_task:
            raise ValueError("--address and --gpus-per-task apply to --executor ray only")
        return LocalExecutor(jobs=jobs, max_retries=max_retries)
    return RayExecutor(address=address, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task,
                       max_retries=max_retries)


"""Background jobs: one compute worker thread, so page requests never wait behind long work.

A job is a function ``fn(report)`` run on the worker; it calls ``report(progress, message)``
(progress in [0, 1]) as it goes and returns a JSON-able result. A job that raises ends in state
``error`` with the message (as the command line would print it, :func:`studies.cli.common.message`);
the worker and the server keep going. :meth:`JobRunner.stop` (server shutdown: Ctrl-C, SIGTERM) cancels:
the running job's next ``report`` raises :class:`JobCancelled`, queued jobs never start. Jobs with the same ``key`` (e.g. the feature visualizations
of one layer) are not queued twice: :meth:`JobRunner.submit` returns the one already queued or running.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("circuits.explore")

#: Most jobs waiting (queued, not running) at once; one more is refused (:class:`QueueFull`, HTTP 429).
MAX_QUEUED = 8
#: Finished jobs remembered (oldest forgotten first).
KEEP = 256
JOB_ID_LEN = 16


class QueueFull(Exception):
    """:meth:`JobRunner.submit` when :data:`MAX_QUEUED` jobs already wait (the server answers 429)."""


class JobCancelled(Exception):
    """Raised by :meth:`Job.report` once the runner is stopping (the job ends at its next report)."""


@dataclass
class Job:
    """One job: ``state`` is ``queued``, ``running``, ``done`` or ``error``."""

    id: str
    kind: str
    key: str | None = None
    state: str = "queued"
    progress: float = 0.0
    message: str = ""
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    seconds: float | None = None
    fn: Callable | None = field(default=None, repr=False)
    cancel: threading.Event | None = field(default=None, repr=False)

    def report(self, progress: float | None = None, message: str | None = None) -> None:
        """Progress in [0, 1] and a message. Raises :class:`JobCancelled` when the server is stopping."""
        if self.cancel is not None and self.cancel.is_set():
            raise JobCancelled("the server is stopping")
        if progress is not None:
            self.progress = float(min(1.0, max(self.progress, progress)))
        if message is not None:
            self.message = str(message)[:500]

    def to_dict(self) -> dict:
        d = dict(id=self.id, kind=self.kind, state=self.state, progress=round(self.progress, 4),
                 message=self.message)
        if self.state == "done":
            d["result"] = self.result
        if self.state == "error":
            d["error"] = self.error
        if self.seconds is not None:
            d["seconds"] = round(self.seconds, 3)
        return d


def message(e: BaseException) -> str:
    """The human message of an exception, as ``circuits`` prints it (a ``KeyError``'s text, not its repr)."""
    if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
        return e.args[0]
    return str(e) or type(e).__name__


class JobRunner:
    """A queue and one daemon worker thread (started with the first job)."""

    def __init__(self):
        self._q: queue.Queue = queue.Queue()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._count = itertools.count()
        self._stopping = threading.Event()

    def submit(self, kind: str, fn: Callable[[Callable], Any], key: str | None = None) -> Job:
        """Queue ``fn(report)``; returns its :class:`Job` (or the queued/running job with the same ``key``).

        Raises:
            QueueFull: :data:`MAX_QUEUED` jobs are already waiting."""
        with self._lock:
            if key is not None:
                for j in self._jobs.values():
                    if j.key == key and j.state in ("queued", "running"):
                        return j
            waiting = sum(j.state == "queued" for j in self._jobs.values())
            if waiting >= MAX_QUEUED:
                raise QueueFull(f"{waiting} jobs are already waiting (at most {MAX_QUEUED}); try again when one "
                                "has finished")
            job = Job(secrets.token_hex(JOB_ID_LEN // 2), kind, key, fn=fn, cancel=self._stopping)
            self._jobs[job.id] = job
            self._forget()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="explore-worker", daemon=True)
                self._thread.start()
        self._q.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def active(self, key: str) -> Job | None:
        """The queued or running job of ``key``, if any."""
        with self._lock:
            return next((j for j in self._jobs.values() if j.key == key and j.state in ("queued", "running")), None)

    def wait(self, job: Job, timeout: float = 600.0) -> Job:
        """Block until ``job`` is done or failed (command line and tests)."""
        t0 = time.monotonic()
        while job.state in ("queued", "running"):
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"job {job.id} ({job.kind}) still {job.state} after {timeout:g} s")
            time.sleep(0.02)
        return job

    def stop(self, timeout: float = 10.0) -> bool:
        """Cancel (the running job stops at its next ``report``, queued jobs never run) and wait up to
        ``timeout`` seconds for the worker; ``True`` when no worker thread is left running."""
        self._stopping.set()
        self._q.put(None)
        t = self._thread
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()

    def _forget(self) -> None:
        done = [k for k, j in self._jobs.items() if j.state in ("done", "error")]
        for k in done[:max(0, len(self._jobs) - KEEP)]:
            del self._jobs[k]

    def _work(self) -> None:
        while True:
            job = self._q.get()
            if job is None or self._stopping.is_set():
                if job is not None:
                    job.state, job.error, job.fn = "error", "cancelled: the server is stopping", None
                    continue
                return
            job.state = "running"
            t0 = time.perf_counter()
            try:
                job.result = job.fn(job.report)
                job.progress = 1.0
                job.state = "done"
            except JobCancelled as e:
                job.error, job.state = f"cancelled: {e}", "error"
            except Exception as e:  # noqa: BLE001 - any failure ends the job, never the worker
                job.error = message(e)[:2000]
                job.state = "error"
                log.warning("job %s (%s) failed: %s\n%s", job.id, job.kind, job.error, traceback.format_exc(limit=5))
            finally:
                job.seconds = time.perf_counter() - t0
                job.fn = None
                self._q.task_done()

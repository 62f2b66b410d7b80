"""Worker processes end with their driver (issue 13, kind 7), armed as early as possible.

A spawned pool worker unpickles its initializer arguments — the model among them, which needs
torch and takes seconds — before the initializer runs. :class:`ParentWatch` is placed first in
those arguments: unpickling it (in the worker, before the model) calls :func:`arm`. This module
imports nothing heavy, so a driver killed while its workers are still starting leaves none
behind.

:func:`arm`: on Linux the kernel sends SIGKILL to the worker when its parent dies
(``prctl(PR_SET_PDEATHSIG)``); on every platform a daemon thread ends the worker within a
second of the parent's pid changing. SIGINT is ignored in workers: Ctrl-C reaches the whole
process group, and the driver alone stops the pool (exit status 130, one line).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

_ARMED: list[int] = []


def arm(parent: int) -> None:
    """Make this process end when process ``parent`` (its driver) ends. Idempotent."""
    if _ARMED:
        return
    _ARMED.append(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the driver died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="circuits-parent-watch", daemon=True).start()


class ParentWatch:
    """Pickles as "call :func:`arm` with the driver's pid" (created in the driver)."""

    def __init__(self, parent: int | None = None) -> None:
        self.parent = os.getpid() if parent is None else parent

    def __reduce__(self):
        return (_unpickle, (self.parent,))


def _unpickle(parent: int) -> ParentWatch:
    arm(parent)
    return ParentWatch(parent)


def init(watch: ParentWatch, fn: Callable, *args) -> None:
    """Pool initializer: ``fn(*args)`` in a worker already armed by unpickling ``watch``."""
    arm(watch.parent)
    fn(*args)

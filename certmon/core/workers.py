"""Worker processes that end with the process that started them and leave Ctrl-C to it.

A terminal's Ctrl-C sends SIGINT to every process of its foreground group, workers included: each would print a
KeyboardInterrupt traceback while the parent is already shutting them down. And a parent killed by SIGKILL or the
OOM killer runs no clean-up: its workers, blocked reading their task queue (whose write end they hold themselves),
would wait forever with parent 1.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_POLL_SECONDS = 1.0  # how soon a worker without PR_SET_PDEATHSIG notices that its parent is gone


class WorkerPool(ProcessPoolExecutor):
    """A pool of spawned worker processes that exit when this process dies and ignore SIGINT.

    The pool starts its workers as tasks are submitted, in the submitting thread. Linux's parent-death signal is
    sent when the thread that started a worker ends, not the process, so certmon submits from the event loop's
    thread, the main one.
    """

    def __init__(self, workers: int, *, max_tasks_per_child: int | None = None) -> None:
        super().__init__(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
            max_tasks_per_child=max_tasks_per_child,
        )

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        # A worker started now inherits the blocked SIGINT, so a Ctrl-C before its initializer runs stays pending,
        # and is discarded when the initializer ignores SIGINT.
        with _sigint_blocked():
            return super().submit(fn, *args, **kwargs)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _init_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` (the pid that started it) dies.

    On Linux the kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG); elsewhere, or if prctl fails, a
    daemon thread polls the parent pid.
    """
    if not _set_parent_death_signal(signal.SIGKILL):
        threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    # The parent may have died before the kernel was asked to tell us.
    if os.getppid() != parent:
        os._exit(1)


def _set_parent_death_signal(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc: Any = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)

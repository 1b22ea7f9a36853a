"""Ctrl-C while an ablation runs: counted by the parent, kept away from workers being started."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from types import FrameType


class CtrlC:
    """Counts Ctrl-C presses: the SIGINT handler while runs are in flight."""

    def __init__(self) -> None:
        self.presses = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1


@contextmanager
def counting_ctrl_c() -> Iterator[CtrlC]:
    ctrl_c = CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield ctrl_c  # only the main thread can handle signals; leave them to the caller
        return
    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def sigint_blocked() -> Iterator[None]:
    # A process spawned meanwhile inherits the mask, so a Ctrl-C cannot interrupt it before its
    # initializer ignores SIGINT (the stdlib's resource tracker is started the same way). Here
    # the signal is only delayed.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def terminate(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers now (SIGTERM); the pool then reports itself broken.

    Python 3.14 has the public `terminate_workers`. Before it there is no public way to reach
    a pool's processes, so the one private read (`_processes`, pid -> Process) is here;
    tests/test_interrupts.py checks that attribute, so a change of the standard library fails
    there rather than leaving workers running.
    """
    stop = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if stop is not None:
        stop()
        return
    for process in list((pool._processes or {}).values()):
        process.terminate()

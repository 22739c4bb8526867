"""SIGTERM and SIGHUP as Ctrl-C while a run is open, so it stops the same clean way.

A batch scheduler's time limit (SLURM sends SIGTERM, then SIGKILL after ``KillWait``), a closed
terminal or ``kill`` would otherwise end the driver on the spot: no verdict, no report, no
``daskprs resume`` hint, and for dask-jobqueue clusters batch jobs left in the queue.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP raise KeyboardInterrupt("received SIGTERM") in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)

"""Jobs die with the bench-run that launched them.

A launcher's worker processes (joblib's, a local Ray's) outlive a killed parent and would go on
running the rest of the sweep, billing a paid API. `bench-run` leaves its host and pid in the
environment (`PARENT_ENV`) before launching; a job in another process on the same host starts a
watchdog thread that, once that pid is gone, records the interrupted run as failed (through the
callback the runner keeps current) and exits. Jobs on other hosts (SLURM, a Ray cluster) are
not tied to the login node's process.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

from bench.claims import process_alive

__all__ = ["PARENT_ENV", "mark_parent", "set_interrupt_record", "watch_parent"]

PARENT_ENV = "BENCH_RUN_PARENT"
EXIT_PARENT_DIED = 3
_state: dict[str, object] = {}
_lock = threading.Lock()


def mark_parent() -> None:
    """Called by bench-run before it launches jobs."""
    os.environ[PARENT_ENV] = f"{socket.gethostname()}:{os.getpid()}"


def set_interrupt_record(callback: Callable[[str], None] | None) -> None:
    """What to do with the run in progress if the parent dies: `callback(reason)`."""
    with _lock:
        _state["record"] = callback


def watch_parent(interval_s: float = 1.0) -> bool:
    """Start the watchdog in a job process (once); True when one is watching."""
    host, _, pid = os.environ.get(PARENT_ENV, "").rpartition(":")
    if not pid.isdigit() or host != socket.gethostname() or int(pid) == os.getpid():
        return False
    with _lock:
        if _state.get("watching"):
            return True
        _state["watching"] = True
    parent = int(pid)

    def watch() -> None:
        while process_alive(parent):
            time.sleep(interval_s)
        with _lock:
            record = _state.get("record")
            if callable(record):
                record(
                    f"interrupted: the bench-run process (pid {parent}) that launched this job died"
                )
        os._exit(EXIT_PARENT_DIED)

    threading.Thread(target=watch, name="bench-lifeline", daemon=True).start()
    return True

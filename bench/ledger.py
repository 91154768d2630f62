"""Which runs this very sweep executed, so that its summary never claims another's.

Two identical sweeps started together split the runs between them (bench/claims.py); each must
then say what *it* executed, not every run that finished meanwhile. `bench-run` names its sweep
in the environment (`SWEEP_ENV`, inherited by launcher workers); every job of that sweep appends
one line per run it executed to ``<results_dir>/.sweep/executed-<sweep id>.log`` (appends of a
few bytes are atomic on POSIX file systems), and the summary reads it back. Runs executed in
bench-run's own process are also kept in memory, so that the summary is right even where the
ledger cannot be written (a full disk).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["NOT_STORED", "SWEEP_ENV", "executed", "forget", "mark_sweep", "note_executed"]

SWEEP_ENV = "BENCH_SWEEP_ID"
# The outcome of a run executed but whose record could not be written (a full disk): it is
# counted as such, never as its status.
NOT_STORED = "not stored"
_IN_PROCESS: dict[tuple[str, Path], dict[str, str]] = {}  # (sweep id, folder) -> {stem: outcome}


def mark_sweep() -> str:
    """Called by bench-run before it launches jobs: a fresh id for this sweep."""
    sweep_id = uuid.uuid4().hex[:12]
    os.environ[SWEEP_ENV] = sweep_id
    return sweep_id


def _path(results_dir: Path) -> Path | None:
    sweep_id = os.environ.get(SWEEP_ENV, "")
    if not sweep_id.isalnum():
        return None
    return Path(results_dir) / ".sweep" / f"executed-{sweep_id}.log"


def note_executed(results_dir: Path, stem: str, outcome: str) -> None:
    """Note that this sweep executed run `stem`, ending in `outcome` (its status, or
    "not stored"). A courtesy to the summary: never fails a run."""
    path = _path(results_dir)
    if path is None:
        return
    _IN_PROCESS.setdefault(_key(results_dir), {})[stem] = outcome
    line = f"{stem}\t{outcome}\n".encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass


def executed(results_dir: Path) -> dict[str, str] | None:
    """{stem: outcome} of the runs this sweep executed; None when this process runs no sweep
    of bench-run (the summary then counts by time alone)."""
    path = _path(results_dir)
    if path is None:
        return None
    try:
        lines = path.read_text().splitlines()
    except OSError:  # not written (no run yet, or a full disk): what this process knows
        lines = []
    out = {}
    for line in lines:
        stem, tab, outcome = line.partition("\t")
        if tab:
            out[stem] = outcome  # the last word on a run wins (a retry within the sweep)
    return {**out, **_IN_PROCESS.get(_key(results_dir), {})}


def _key(results_dir: Path) -> tuple[str, Path]:
    return os.environ.get(SWEEP_ENV, ""), Path(results_dir).resolve()


def forget(results_dir: Path) -> None:
    """Remove this sweep's ledger once summarized."""
    _IN_PROCESS.pop(_key(results_dir), None)
    path = _path(results_dir)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)

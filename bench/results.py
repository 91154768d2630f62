"""The results store: one JSON file per run plus a Parquet file of its per-row predictions.

Layout under a results directory PATH::

    PATH/runs/<dataset>__<method>__n<n>__s<seed>__<hash>.json   one record per run
    PATH/predictions/<same stem>.parquet                         per-row predictions (ok runs)
    PATH/failures/<same stem>.json                               a failed retry of a finished run

Files are written atomically (temporary file + rename), so a crash or a concurrent job never
leaves a half-written record, and a failing run never replaces a finished one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from bench.claims import process_alive
from bench.llm.protocol import PHASE_USAGE_KEYS, Usage
from bench.metrics import METRIC_NAMES
from bench.record import (
    DONE_STATUSES,
    RUNNING,
    STATUSES,
    NotARunRecord,
    RunRecord,
    Timing,
    interrupted,
    read_record,
)

__all__ = [
    "DONE_STATUSES",
    "LEADING_COLUMNS",
    "RUNNING",
    "STATUSES",
    "ResultsStore",
    "load_results",
    "write_atomic",
    "write_problem",
]

log = logging.getLogger(__name__)

# The leading columns of `load_results`, then the metrics, timing and usage groups.
LEADING_COLUMNS = [
    "experiment",
    "dataset",
    "method",
    "family",
    "serializer",
    "llm",
    "n_train",
    "seed",
    "status",
]
METRIC_COLUMNS = list(METRIC_NAMES)
TIMING_COLUMNS = [f.name for f in fields(Timing)]
USAGE_COLUMNS = [*Usage().as_dict(), *(f"fit_{key}" for key in PHASE_USAGE_KEYS)]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600 files; colleagues sharing a results folder need the umask's mode.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_problem(root: str | Path) -> str | None:
    """Why the results folder `root` cannot be written (one line naming the path), or None.

    Creates `root` when it is missing (bench-run would) and a file in it and in its runs/."""
    root = Path(root)
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, not a folder"
    folder = root
    try:
        root.mkdir(parents=True, exist_ok=True)
        for folder in (root, root / "runs"):
            if folder.is_dir():
                fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check-")
                os.close(fd)
                os.unlink(probe)
    except OSError as error:
        return f"{folder} cannot be written ({error.strerror or error})"
    return None


class ResultsStore:
    """Run records under one results directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.predictions_dir = self.root / "predictions"
        self.failures_dir = self.root / "failures"
        self.artifacts_dir = self.root / "artifacts"
        self.unreadable: list[tuple[str, str]] = []  # (file, why) skipped by the last records()
        self.settled: list[str] = []  # the stems the last settle_orphans marked failed

    def record_path(self, stem: str) -> Path:
        return self.runs_dir / f"{stem}.json"

    def load(self, stem: str) -> dict[str, Any] | None:
        """The stored JSON of a run as written, or None when absent or unreadable (it is then
        simply rerun). `read` gives it as a `RunRecord`."""
        path = self.record_path(stem)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            log.warning("Ignoring unreadable run record %s: %s", path, error)
            return None

    def read(self, stem: str) -> RunRecord | None:
        """The stored run as a `RunRecord` (upgraded to the current layout), or None."""
        data = self.load(stem)
        if data is None:
            return None
        try:
            return read_record(data, self.root)
        except NotARunRecord as error:  # a foreign file under a run's name: rerun the run
            log.warning("Ignoring %s: %s", self.record_path(stem), error)
            return None

    def save(
        self, record: RunRecord | Mapping[str, Any], predictions: pd.DataFrame | None = None
    ) -> Path:
        """Store a run; returns where the record went.

        Predictions are written before the record, so a record marked ok always has its
        predictions; so are the record's artifact `files` (e.g. the program an LLM wrote,
        under artifacts/<stem>/). A failed or unavailable run that would replace a finished
        record goes to failures/ instead, so nothing finished is lost. A plain dict is read
        as a stored record (`read_record`) first.
        """
        if not isinstance(record, RunRecord):
            record = read_record(record, self.root)
        stem = record.stem
        target = self.record_path(stem)
        if not record.done:
            existing = self.load(stem)
            if existing and existing.get("status") in DONE_STATUSES:
                target = self.failures_dir / f"{stem}.json"
        written: list[Path] = []  # removed again if the record itself cannot be written
        try:
            if predictions is not None:
                where = self.predictions_dir / f"{stem}.parquet"
                write_atomic(where, predictions.to_parquet(index=False))
                written.append(where)
                record = replace(record, predictions_file=f"predictions/{stem}.parquet")
                if record.rows.n_test is None:  # a record handed without it: one row per test row
                    record = replace(record, rows=replace(record.rows, n_test=len(predictions)))
            if record.files:
                folder = self.artifacts_dir / stem
                for name, text in record.files.items():
                    write_atomic(folder / Path(name).name, str(text).encode())
                    written.append(folder / Path(name).name)
                paths = tuple(f"artifacts/{stem}/{Path(n).name}" for n in record.files)
                record = replace(record, artifacts=paths, files={})
            text = json.dumps(record.to_dict(), indent=2, default=_json_default)
            write_atomic(target, text.encode())
        except BaseException:
            # No record points at them (a full disk, a read-only folder): leave no orphans.
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return target

    def records(self) -> list[dict[str, Any]]:
        """Every readable run record as stored (JSON dicts); unreadable files are skipped,
        named in a warning and listed in `unreadable` (path, reason) until the next call.
        `runs` gives them as `RunRecord`s."""
        return [data for data, _ in self._scan()]

    def runs(self) -> list[RunRecord]:
        """Every readable run record, upgraded to the current layout (`read_record`)."""
        return [record for _, record in self._scan()]

    def _scan(self) -> list[tuple[dict[str, Any], RunRecord]]:
        """Each file of runs/ that `read_record` accepts; the others go to `unreadable`."""
        out: list[tuple[dict[str, Any], RunRecord]] = []
        self.unreadable = []
        for path in sorted(self.runs_dir.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                out.append((data, read_record(data, self.root)))
                continue
            except NotARunRecord as error:  # e.g. a foreign {"status": "ok"}
                reason = str(error)
            except (OSError, ValueError, TypeError) as error:
                reason = f"{type(error).__name__}: {error}"
            log.warning("Skipping unreadable run record %s: %s", path, reason)
            self.unreadable.append((str(path), reason))
        return out

    def settle_orphans(self) -> int:
        """Mark runs whose process died mid-run (a `running` marker of a dead process on this
        host) as failed, saying what is known; returns how many. Markers of live processes, or
        of other hosts (a cluster node), are left alone; `settled` lists the runs marked."""
        host, settled = socket.gethostname(), 0
        self.settled = []
        for record in self.runs():
            where = record.provenance
            if record.status != RUNNING or where.host != host:
                continue
            if process_alive(int(where.pid or 0)):
                continue
            started = where.started_at or where.finished_at
            reason = (
                f"the job died while this run was executing (killed, out of memory, or its "
                f"launcher worker crashed): started {started} on host "
                f"{host}, pid {where.pid}; rerun the sweep to retry it"
            )
            self.save(interrupted(record, reason))
            self.settled.append(record.stem)
            settled += 1
        return settled

    def predictions(self, record: RunRecord | Mapping[str, Any]) -> pd.DataFrame:
        name = record.predictions_file if isinstance(record, RunRecord) else None
        return pd.read_parquet(self.root / (name or record["predictions_file"]))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


def load_results(path: str | Path) -> pd.DataFrame:
    """All run records under `path` as one tidy DataFrame, a row per run.

    The leading columns are always experiment, dataset, method, family, serializer, llm,
    n_train, seed, status; then metrics, timings, LLM usage, and the remaining fields.

    Unreadable files in runs/ are skipped and listed in ``frame.attrs["unreadable"]``; a
    `path` that does not exist is an error (a typo would otherwise read as "no results").

    >>> load_results("/nonexistent")
    Traceback (most recent call last):
    FileNotFoundError: results directory /nonexistent does not exist (load_results)
    """
    if not Path(path).is_dir():
        raise FileNotFoundError(f"results directory {path} does not exist (load_results)")
    store = ResultsStore(path)
    frame = pd.DataFrame([record.row() for record in store.runs()])
    fixed = LEADING_COLUMNS + METRIC_COLUMNS + TIMING_COLUMNS + USAGE_COLUMNS
    for column in fixed:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object" if column in LEADING_COLUMNS else "float64")
    rest = [c for c in frame.columns if c not in fixed]
    frame = frame[fixed + rest]
    if len(frame):
        frame = frame.sort_values(["dataset", "method", "n_train", "seed"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame.attrs["unreadable"] = list(store.unreadable)
    return frame

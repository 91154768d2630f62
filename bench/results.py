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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench.claims import process_alive
from bench.metrics import METRIC_NAMES

__all__ = [
    "DONE_STATUSES",
    "LEADING_COLUMNS",
    "STATUSES",
    "ResultsStore",
    "load_results",
    "write_atomic",
]

log = logging.getLogger(__name__)

STATUSES = ("ok", "skipped", "failed", "unavailable")
DONE_STATUSES = ("ok", "skipped")  # a rerun skips these and retries the others
RUNNING = "running"  # a marker written when a run starts; replaced by its result
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
TIMING_COLUMNS = ["fit_s", "predict_s", "wall_s", "cpu_s"]
USAGE_COLUMNS = [
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_hits",
    "usd",
]


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


class ResultsStore:
    """Run records under one results directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.predictions_dir = self.root / "predictions"
        self.failures_dir = self.root / "failures"
        self.artifacts_dir = self.root / "artifacts"
        self.unreadable: list[tuple[str, str]] = []  # (file, why) skipped by the last records()

    def record_path(self, stem: str) -> Path:
        return self.runs_dir / f"{stem}.json"

    def load(self, stem: str) -> dict[str, Any] | None:
        """The stored record, or None when absent or unreadable (it is then simply rerun)."""
        path = self.record_path(stem)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            log.warning("Ignoring unreadable run record %s: %s", path, error)
            return None

    def save(self, record: dict[str, Any], predictions: pd.DataFrame | None = None) -> Path:
        """Store a run; returns where the record went.

        Predictions are written before the record, so a record marked ok always has its
        predictions. A failed or unavailable run that would replace a finished record goes to
        failures/ instead, so nothing finished is lost.
        """
        stem = record["run_stem"]
        target = self.record_path(stem)
        if record["status"] not in DONE_STATUSES:
            existing = self.load(stem)
            if existing and existing.get("status") in DONE_STATUSES:
                target = self.failures_dir / f"{stem}.json"
        if predictions is not None:
            buffer = predictions.to_parquet(index=False)
            write_atomic(self.predictions_dir / f"{stem}.parquet", buffer)
            record["predictions_file"] = f"predictions/{stem}.parquet"
        artifacts = record.pop("_artifacts", None) or {}
        if artifacts:  # e.g. the program an LLM wrote: artifacts/<stem>/model.py
            folder = self.artifacts_dir / stem
            for name, text in artifacts.items():
                write_atomic(folder / Path(name).name, str(text).encode())
            record["artifacts"] = [f"artifacts/{stem}/{Path(n).name}" for n in artifacts]
        write_atomic(target, json.dumps(record, indent=2, default=_json_default).encode())
        return target

    def records(self) -> list[dict[str, Any]]:
        """Every readable run record; unreadable files are skipped, named in a warning and
        listed in `unreadable` (path, reason) until the next call."""
        out: list[dict[str, Any]] = []
        self.unreadable = []
        for path in sorted(self.runs_dir.glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                reason = f"{type(error).__name__}: {error}"
            else:
                if isinstance(record, dict) and "status" in record:
                    out.append(record)
                    continue
                reason = f"not a run record (a JSON {type(record).__name__})"
            log.warning("Skipping unreadable run record %s: %s", path, reason)
            self.unreadable.append((str(path), reason))
        return out

    def settle_orphans(self) -> int:
        """Mark runs whose process died mid-run (a `running` marker of a dead process on this
        host) as failed, saying what is known; returns how many. Markers of live processes, or
        of other hosts (a cluster node), are left alone."""
        host, settled = socket.gethostname(), 0
        for record in self.records():
            if record.get("status") != RUNNING or record.get("host") != host:
                continue
            if process_alive(int(record.get("pid", 0))):
                continue
            started = record.get("started_at") or record.get("finished_at")
            record.update(
                status="failed",
                error=(
                    f"the job died while this run was executing (killed, out of memory, or its "
                    f"launcher worker crashed): started {started} on host "
                    f"{host}, pid {record.get('pid')}; rerun the sweep to retry it"
                ),
                started_at=started,
                # when the death was noticed: a marker's own time is when the run started
                finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            self.save(record)
            settled += 1
        return settled

    def predictions(self, record: dict[str, Any]) -> pd.DataFrame:
        return pd.read_parquet(self.root / record["predictions_file"])


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
    rows = []
    for record in store.records():
        row = {k: v for k, v in record.items() if k not in ("metrics", "timing", "usage", "spec")}
        for group in ("metrics", "timing", "usage"):
            row.update(record.get(group) or {})
        rows.append(row)
    frame = pd.DataFrame(rows)
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

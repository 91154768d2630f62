"""The run record: what one run of a sweep was, saw, did and cost, as a typed, versioned value.

The results store keeps one record per run (``runs/<stem>.json``). A `RunRecord` has small
typed parts: who the run is (`Identity`, from its `RunSpec`), where and when it executed
(`Provenance`), the rows it was handed and their hashes (`RowsSeen`), and what came out:
metrics, `Timing`, `RunUsage` (with the share spent during fit), details, artifacts, or the
error. Records are built only through the constructors `running`, `ok`, `skipped`, `failed`
(status ``failed``, or ``unavailable`` for a resource that is missing by design) and
`interrupted`; they are read only through `read_record`, which upgrades older layouts in this
one place. `RunRecord.to_dict` writes the JSON layout the store has always written, plus
`version`, so older readers and the users' own scripts keep working.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.llm.protocol import PHASE_USAGE_KEYS, Usage

if TYPE_CHECKING:
    from bench.spec import RunSpec

__all__ = [
    "DONE_STATUSES",
    "FIT_LLM_FAMILIES",
    "RECORD_VERSION",
    "RUNNING",
    "STATUSES",
    "Identity",
    "NotARunRecord",
    "Provenance",
    "RowsSeen",
    "RunRecord",
    "RunUsage",
    "Timing",
    "failed",
    "interrupted",
    "ok",
    "read_record",
    "running",
    "skipped",
]

# 1: the first typed layout (`version` written). Records without `version` are upgraded by
# `read_record`; bump this with a new upgrade step there when the layout changes.
RECORD_VERSION = 1
STATUSES = ("ok", "skipped", "failed", "unavailable")
DONE_STATUSES = ("ok", "skipped")  # a rerun skips these and retries the others
RUNNING = "running"  # a marker written when a run starts; replaced by its result
ZERO_USAGE: dict[str, float] = Usage().as_dict()
# Families whose LLM calls happen during fit: an older record without the phase split spent all
# of its usage fitting (llm_icl calls the LLM per test row: all of its usage is marginal).
FIT_LLM_FAMILIES = ("llm_codegen", "llm_distill")
_FIT_KEYS = tuple(f"fit_{key}" for key in PHASE_USAGE_KEYS)
# What every record of every version states: a JSON file without them is not a run record
# (a foreign `{"status": "ok"}` must never count as a run).
REQUIRED_FIELDS = ("run_stem", "dataset", "method", "status")


class NotARunRecord(ValueError):
    """A stored file that is not a run record: it lacks a required field or its status."""


def now() -> str:
    """The time a record states, in whole seconds (UTC)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Identity:
    """Who the run is, from its `RunSpec`: the store finds the run by `run_stem`."""

    experiment: str | None = None
    dataset: str | None = None
    method: str | None = None
    family: str | None = None
    serializer: str | None = None
    llm: str | None = None
    n_train_requested: int | str | None = None  # an integer or "all", as configured
    seed: int | None = None
    run_id: str | None = None
    run_stem: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # the determinants hashed into run_id

    @classmethod
    def of(cls, spec: RunSpec) -> Identity:
        return cls(
            experiment=spec.experiment,
            dataset=spec.dataset,
            method=spec.method,
            family=spec.family,
            serializer=spec.serializer,
            llm=spec.llm,
            n_train_requested=spec.n_train,
            seed=spec.seed,
            run_id=spec.run_id,
            run_stem=spec.stem,
            spec=spec.determinants,
        )


@dataclass(frozen=True)
class Provenance:
    """Where, when and on what data the run executed."""

    attempts: int = 1  # this run's executions so far, failed ones included
    finished_at: str | None = None
    host: str | None = None  # host, pid, started_at: on a run's marker while it executes
    pid: int | None = None
    started_at: str | None = None
    data_fingerprint: str | None = None  # the data file and package version the run read
    tags: dict[str, Any] | None = None  # the method's declared MethodTags


@dataclass(frozen=True)
class RowsSeen:
    """The rows a run was handed (bench/data/rowhash.py): all None until they are drawn."""

    n_train: int | None = None  # the training rows: as requested until resolved ("all")
    n_test: int | None = None
    class_labels: list[str] | None = None
    positive_label: str | None = None  # the class binary metrics score
    test_rows_hash: str | None = None
    train_rows_hash: str | None = None  # None when n_train exceeds the training pool
    unlabelled_rows_hash: str | None = None  # for a method tagged `wants_unlabelled`

    @property
    def drawn(self) -> bool:
        return self.n_test is not None


@dataclass(frozen=True)
class Timing:
    """Seconds of the run: wall and CPU per phase (fit, predict), and its whole wall time."""

    fit_s: float | None = None
    predict_s: float | None = None  # without the diagnostics predict_proba ran (explanations)
    cpu_s: float | None = None
    fit_cpu_s: float | None = None
    predict_cpu_s: float | None = None
    wall_s: float | None = None

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class RunUsage:
    """LLM usage of the run (`Usage` fields, plus any a method adds), and the share of it spent
    during fit by `PHASE_USAGE_KEYS` (None: not measured; the rest was spent predicting)."""

    totals: dict[str, float] = field(default_factory=lambda: dict(ZERO_USAGE))
    fit: dict[str, float] | None = None

    def as_dict(self) -> dict[str, float]:
        """The store's layout: the totals, then the fit share as `fit_<key>`."""
        fit = {f"fit_{key}": value for key, value in (self.fit or {}).items()}
        return {**self.totals, **fit}

    @classmethod
    def from_dict(cls, usage: Mapping[str, Any]) -> RunUsage:
        fit = {key: usage[f"fit_{key}"] for key in PHASE_USAGE_KEYS if f"fit_{key}" in usage}
        totals = {k: v for k, v in usage.items() if k not in _FIT_KEYS}
        return cls({**ZERO_USAGE, **totals}, fit or None)


@dataclass(frozen=True)
class RunRecord:
    """One run's record. Build it with `running`, `ok`, `skipped`, `failed` or `interrupted`;
    read a stored one with `read_record`."""

    identity: Identity
    status: str
    provenance: Provenance = field(default_factory=Provenance)
    rows: RowsSeen = field(default_factory=RowsSeen)
    error: str | None = None
    traceback: str | None = None  # of a failed run
    metrics: dict[str, float] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    usage: RunUsage = field(default_factory=RunUsage)
    details: dict[str, Any] | None = None  # what the method reported (bench.methods.base)
    artifacts: tuple[str, ...] = ()  # files next to the record, relative to the results folder
    predictions_file: str | None = None
    # Artifact files (name -> text) the store writes under artifacts/<stem>/ when it saves the
    # record, listing them in `artifacts`; never part of the stored JSON.
    files: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)  # stored fields this version lacks
    version: int = RECORD_VERSION

    @property
    def stem(self) -> str:
        return str(self.identity.run_stem)

    @property
    def done(self) -> bool:
        """Finished for good: a rerun reuses it (on the same data)."""
        return self.status in DONE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON layout: a field appears where the store has always written it, and
        one a run did not get to (host, hashes, details, traceback, ...) is left out."""
        who, when, rows = self.identity, self.provenance, self.rows
        out: dict[str, Any] = {
            "experiment": who.experiment,
            "dataset": who.dataset,
            "method": who.method,
            "family": who.family,
            "serializer": who.serializer,
            "llm": who.llm,
            "n_train": rows.n_train,
            "n_train_requested": who.n_train_requested,
            "seed": who.seed,
            "status": self.status,
            "error": self.error,
            "metrics": dict(self.metrics),
            "timing": self.timing.as_dict(),
            "usage": self.usage.as_dict(),
            "run_id": who.run_id,
            "run_stem": who.run_stem,
            "attempts": when.attempts,
            "finished_at": when.finished_at,
            "spec": who.spec,
        }
        optional: dict[str, Any] = {
            "host": when.host,
            "pid": when.pid,
            "started_at": when.started_at,
            "details": self.details,
            "traceback": self.traceback,
            "data_fingerprint": when.data_fingerprint,
            "tags": when.tags,
        }
        out.update((k, v) for k, v in optional.items() if v is not None)
        if rows.drawn:  # written together: a run that drew its rows knows all three
            out.update(
                n_test=rows.n_test,
                class_labels=rows.class_labels,
                positive_label=rows.positive_label,
            )
        hashes = ("test_rows_hash", "train_rows_hash", "unlabelled_rows_hash")
        out.update((k, getattr(rows, k)) for k in hashes if getattr(rows, k) is not None)
        if self.predictions_file is not None:
            out["predictions_file"] = self.predictions_file
        if self.artifacts:
            out["artifacts"] = list(self.artifacts)
        out.update((k, v) for k, v in self.extra.items() if k not in out)
        out["version"] = self.version
        return out

    def row(self) -> dict[str, Any]:
        """The record as one row of `load_results`: metrics, timing and usage flattened."""
        data = self.to_dict()
        row = {k: v for k, v in data.items() if k not in ("metrics", "timing", "usage", "spec")}
        for group in ("metrics", "timing", "usage"):
            row.update(data[group])
        return row


# -- constructors ----------------------------------------------------------------------------
def _attempts(existing: RunRecord | None) -> int:
    return (existing.provenance.attempts if existing else 0) + 1


def _new(
    spec: RunSpec,
    existing: RunRecord | None,
    status: str,
    *,
    data_fingerprint: str | None = None,
    tags: dict[str, Any] | None = None,
    rows: RowsSeen | None = None,
    **outcome: Any,
) -> RunRecord:
    provenance = Provenance(
        attempts=_attempts(existing),
        finished_at=now(),
        data_fingerprint=data_fingerprint,
        tags=tags,
    )
    if rows is None:  # not drawn (yet): the training size as requested
        rows = RowsSeen(n_train=spec.n_train if isinstance(spec.n_train, int) else None)
    return RunRecord(Identity.of(spec), status, provenance, rows, **outcome)


def running(spec: RunSpec, existing: RunRecord | None) -> RunRecord:
    """The marker a run leaves when it starts: if its process dies, the sweep can say so."""
    marker = _new(spec, existing, RUNNING)
    started = marker.provenance.finished_at
    where = replace(
        marker.provenance, host=socket.gethostname(), pid=os.getpid(), started_at=started
    )
    return replace(marker, provenance=where)


def ok(
    spec: RunSpec,
    existing: RunRecord | None,
    *,
    data_fingerprint: str,
    tags: dict[str, Any],
    rows: RowsSeen,
    metrics: dict[str, float],
    timing: Timing,
    usage: RunUsage,
    details: dict[str, Any],
    files: dict[str, str] | None = None,
) -> RunRecord:
    """A run that predicted every test row and was scored."""
    return _new(
        spec,
        existing,
        "ok",
        data_fingerprint=data_fingerprint,
        tags=tags,
        rows=rows,
        metrics=metrics,
        timing=timing,
        usage=usage,
        details=details,
        files=files or {},
    )


def skipped(spec: RunSpec, existing: RunRecord | None, reason: str, **seen: Any) -> RunRecord:
    """A run that cannot be done as configured (bench.errors.RunSkipped): finished for good.
    `seen`: what the run got to before it knew (as for `failed`)."""
    return _new(spec, existing, "skipped", error=reason, **seen)


def failed(
    spec: RunSpec,
    existing: RunRecord | None,
    error: str,
    *,
    status: str = "failed",
    traceback: str | None = None,
    **seen: Any,
) -> RunRecord:
    """A run that produced no predictions: `failed` (retried by the next sweep), or
    `unavailable` when something outside the harness is missing (bench.errors).

    `seen` holds what it got to before the error, each optional: data_fingerprint, tags, rows,
    timing, usage, details and files (what it spent and tried is kept).
    """
    if status not in ("failed", "unavailable"):
        raise ValueError(f"a failed run's status is failed or unavailable, not {status!r}")
    return _new(spec, existing, status, error=error, traceback=traceback, **seen)


def interrupted(marker: RunRecord, reason: str) -> RunRecord:
    """A `running` marker whose run did not finish (interrupted, or its process died)."""
    started = marker.provenance.started_at or marker.provenance.finished_at
    when = replace(marker.provenance, started_at=started, finished_at=now())
    return replace(marker, status="failed", error=reason, provenance=when)


# -- the one reader ----------------------------------------------------------------------------
def read_record(data: Mapping[str, Any], root: Path | None = None) -> RunRecord:
    """A stored record (the JSON dict) as a `RunRecord`, upgraded to the current layout;
    `NotARunRecord` when it lacks a field every record has (`REQUIRED_FIELDS`) or a known status.

    Records without `version` (written before the record was a type) are upgraded here, and
    only here: usage fields they lack are 0; an ok record without the fit/predict split of its
    LLM usage spent all of it fitting when its family calls the LLM during fit
    (`FIT_LLM_FAMILIES`), else none; without the per-phase CPU seconds, a phase's CPU seconds
    are its wall seconds; without `n_test`, its test rows are the rows of its predictions file
    (read under `root`, the results folder, when given).
    """
    if not isinstance(data, Mapping):
        raise NotARunRecord(f"not a run record (a JSON {type(data).__name__})")
    missing = [name for name in REQUIRED_FIELDS if data.get(name) in (None, "")]
    if missing:
        raise NotARunRecord(f"not a run record (no {', '.join(missing)})")
    if data["status"] not in (*STATUSES, RUNNING):
        raise NotARunRecord(f"not a run record (status {data['status']!r})")
    version = int(data.get("version") or 0)

    def part(cls: type) -> Any:  # a typed part from the stored fields of the same names
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    record = RunRecord(
        identity=part(Identity),
        status=str(data.get("status")),
        provenance=part(Provenance),
        rows=part(RowsSeen),
        error=data.get("error"),
        traceback=data.get("traceback"),
        metrics=dict(data.get("metrics") or {}),
        timing=Timing(**{k: v for k, v in (data.get("timing") or {}).items() if k in _TIMING}),
        usage=RunUsage.from_dict(_with_wall_seconds(data.get("usage") or {})),
        details=data.get("details"),
        artifacts=tuple(data.get("artifacts") or ()),
        predictions_file=data.get("predictions_file"),
        extra={k: v for k, v in data.items() if k not in _KNOWN},
    )
    if version < RECORD_VERSION:
        record = _upgrade_unversioned(record, root)
    return replace(record, version=max(version, RECORD_VERSION))


_TIMING = {f.name for f in fields(Timing)}
# The stored fields a RunRecord reads into its parts; any other is kept in `extra`.
_KNOWN = {f.name for part in (Identity, Provenance, RowsSeen) for f in fields(part)} | {
    f.name
    for f in fields(RunRecord)
    if f.name not in ("identity", "provenance", "rows", "files", "extra")  # not stored as such
}


def _with_wall_seconds(usage: Mapping[str, Any]) -> Mapping[str, Any]:
    """Usage stored before the LLM's wall time was (`llm_wall_seconds`): its LLM seconds, the
    sum of the requests' latencies, are what it has (more than the wall time when requests ran
    concurrently)."""
    if "llm_wall_seconds" in usage or "llm_seconds" not in usage:
        return usage
    latency = ("llm_seconds", "cached_llm_seconds", "fit_llm_seconds", "fit_cached_llm_seconds")
    wall = {key.replace("llm_seconds", "llm_wall_seconds"): usage.get(key) for key in latency}
    return {**usage, **{key: value for key, value in wall.items() if value is not None}}


def _upgrade_unversioned(record: RunRecord, root: Path | None) -> RunRecord:
    """Fill what records written before `version` may lack (see `read_record`)."""
    usage, timing, rows = record.usage, record.timing, record.rows
    if record.status == "ok" and usage.fit is None:
        in_fit = record.identity.family in FIT_LLM_FAMILIES
        fit = {
            key: float(usage.totals.get(key) or 0.0) if in_fit else 0.0 for key in PHASE_USAGE_KEYS
        }
        usage = replace(usage, fit=fit)
    elif usage.fit is not None:  # written together: one there marks a record with the split
        usage = replace(usage, fit={key: usage.fit.get(key, 0.0) for key in PHASE_USAGE_KEYS})
    if timing.fit_cpu_s is None and timing.fit_s is not None:
        timing = replace(timing, fit_cpu_s=timing.fit_s)
    if timing.predict_cpu_s is None and timing.predict_s is not None:
        timing = replace(timing, predict_cpu_s=timing.predict_s)
    if rows.n_test is None and root is not None and record.predictions_file:
        path = Path(root) / record.predictions_file
        if path.is_file():
            import pyarrow.parquet as pq

            rows = replace(rows, n_test=pq.read_metadata(path).num_rows)
    return replace(record, usage=usage, timing=timing, rows=rows)

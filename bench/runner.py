"""Execute one run: prepare -> fit and predict (timed) -> score -> record.

`execute_run` takes a resolved `RunSpec`, the task and the seed's split, and returns the run's
`RunRecord` with its per-row predictions; it never raises for the run's own error (a skip, a
missing resource, a failure are records too). Which runs to execute, and storing them, is the
job's (bench/job.py); what identifies a run is bench/spec.py's. This module also re-exports
the names older code imports from `bench.runner`.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from threadpoolctl import threadpool_limits

from bench import record as records
from bench.data.dataset import Task
from bench.data.rowhash import rows_hash
from bench.data.splits import Split, TrainSubset, resolve_n_train
from bench.errors import MethodFailed, RunSkipped, RunUnavailable, describe
from bench.llm.cache import CacheKeys, collecting_keys
from bench.llm.prompt_log import PROMPTS_FILE, PromptLog, recording
from bench.llm.protocol import PHASE_USAGE_KEYS
from bench.methods.base import MethodReport, build_method, method_report, unlabelled_details
from bench.metrics import compute_metrics
from bench.record import ZERO_USAGE, RowsSeen, RunRecord, RunUsage, Timing
from bench.spec import PROTOCOL_VERSION, RunSpec, SplitSettings, specs_for

__all__ = [
    "PROTOCOL_VERSION",
    "JobSummary",  # noqa: F822 (bench/job.py's, resolved by __getattr__ below)
    "RunSpec",
    "SplitSettings",
    "execute_run",
    "run_job",  # noqa: F822
    "specs_for",
]

# Names older code imports from here that now live with the job (bench/job.py), which imports
# this module: resolved on first use, so neither import order is circular.
_FROM_JOB = {"JobSummary": "JobSummary", "run_job": "run_job", "_split_or_error": "split_or_error"}


def __getattr__(name: str) -> Any:
    if name in _FROM_JOB:
        from bench import job

        return getattr(job, _FROM_JOB[name])
    raise AttributeError(f"module 'bench.runner' has no attribute {name!r}")


@dataclass
class PreparedRun:
    """A run ready to fit: its estimator and the rows it may see (never the test labels)."""

    estimator: Any
    rows: RowsSeen
    X_train: pd.DataFrame
    y_train: pd.Series
    X_test: pd.DataFrame
    unlabelled_rows: np.ndarray | None  # pool rows handed over without their labels
    fit_params: dict[str, Any]
    prompts: PromptLog | None = None  # the requests the run sends, when llm.save_prompts


def execute_run(
    spec: RunSpec, existing: RunRecord | None, task: Task, split: Split
) -> tuple[RunRecord, pd.DataFrame | None]:
    """prepare -> fit and predict (timed) -> score -> record; never raises for the run's error."""
    started = time.perf_counter()
    seen: dict[str, Any] = {"data_fingerprint": task.fingerprint, "tags": asdict(spec.tags)}
    estimator = prompts = None
    try:
        subset, seen["rows"] = _draw_rows(spec, task, split)
        prepared = _prepare(spec, task, split, subset, seen["rows"])
        estimator, prompts, seen["rows"] = prepared.estimator, prepared.prompts, prepared.rows
        with collecting_keys(CacheKeys()) as keys:  # the cache entries it used (bench-bundle)
            proba, timing, fit_usage = _fit_predict(prepared, spec.n_jobs)
        keys.check()  # a replay miss a method caught still fails the run
        proba = _align_proba(proba, estimator.classes_, task.class_labels)
        metrics, details = _score(task, split, prepared, proba)
        report = method_report(estimator)
        record = records.ok(
            spec,
            existing,
            **seen,
            metrics=metrics,
            timing=replace(timing, wall_s=time.perf_counter() - started),
            usage=RunUsage({**ZERO_USAGE, **report.usage}, fit_usage),
            details={**report.details, **details},
            files={**_artifact_files(report, prompts), **keys.files()},
        )
        return record, _predictions_frame(split.test_rows, task, proba)
    except Exception as error:
        return _record_error(spec, existing, error, estimator, started, seen, prompts), None


def _draw_rows(spec: RunSpec, task: Task, split: Split) -> tuple[TrainSubset, RowsSeen]:
    """The training subset of the run's size, and what the run is handed: the row counts and
    the hashes of the rows (bench/data/rowhash.py)."""
    n_train = resolve_n_train(spec.n_train, split.pool_size)
    subset = split.subset(n_train, task.y, min_per_class=spec.split.min_per_class)
    X_test = task.X.iloc[split.test_rows]
    train_hash = None
    if len(subset.rows) == n_train:  # (none when n_train exceeds the training pool)
        train_hash = rows_hash(subset.rows, task.X.iloc[subset.rows], task.y.iloc[subset.rows])
    rows = RowsSeen(
        n_train=n_train,
        n_test=len(split.test_rows),
        class_labels=list(task.class_labels),
        positive_label=task.positive_label,  # the class binary metrics score
        test_rows_hash=rows_hash(split.test_rows, X_test),
        train_rows_hash=train_hash,
    )
    return subset, rows


def _prepare(
    spec: RunSpec, task: Task, split: Split, subset: TrainSubset, rows: RowsSeen
) -> PreparedRun:
    """The estimator and its inputs; raises `RunSkipped` when the run cannot be done."""
    if subset.skip_reason:
        raise RunSkipped(subset.skip_reason)
    if rows.n_train == 0 and not spec.tags.zero_shot:
        raise RunSkipped(f"method '{spec.method}' needs training rows (n_train=0)")
    estimator = build_method(OmegaConf.create(spec.method_config), spec.context(task))
    fit_params: dict[str, Any] = {}
    unlabelled = None
    if spec.n_unlabelled > 0:
        unlabelled = _unlabelled_rows(spec.n_unlabelled, split, int(rows.n_train or 0))
        fit_params["X_unlabelled"] = task.X.iloc[unlabelled]
        rows = replace(rows, unlabelled_rows_hash=rows_hash(unlabelled, fit_params["X_unlabelled"]))
    return PreparedRun(
        estimator=estimator,
        rows=rows,
        X_train=task.X.iloc[subset.rows],
        y_train=task.y.iloc[subset.rows],
        X_test=task.X.iloc[split.test_rows],  # the test labels never reach the method
        unlabelled_rows=unlabelled,
        fit_params=fit_params,
        prompts=PromptLog() if spec.save_prompts else None,
    )


def _unlabelled_rows(wanted: int, split: Split, n_train: int) -> np.ndarray:
    """The next `wanted` rows of the training pool after the labelled subset (for a method
    tagged `wants_unlabelled`, e.g. distillation); their labels stay with the runner."""
    rows = split.pool_order[n_train : n_train + wanted]
    if len(rows) < wanted:  # labelling fewer rows than asked would be a different experiment
        raise RunSkipped(
            f"method.params.n_unlabelled={wanted} unlabelled rows requested, but the training "
            f"pool of {split.pool_size} rows has only {len(rows)} left after n_train={n_train}"
        )
    return rows


def _fit_predict(prepared: PreparedRun, n_jobs: int) -> tuple[np.ndarray, Timing, dict[str, float]]:
    """Fit, then predict the test rows; fit and predict seconds (wall and CPU), and the LLM
    usage spent during fit by `PHASE_USAGE_KEYS` (the rest of the run's usage was spent
    predicting)."""
    estimator = prepared.estimator
    cpu0, t0 = time.process_time(), time.perf_counter()
    # Native thread pools (BLAS, OpenMP) follow n_jobs: small fits are slower with idle threads
    # spinning, and parallel jobs would oversubscribe the cores.
    with threadpool_limits(limits=n_jobs):
        with recording(prepared.prompts, "fit"):
            estimator.fit(prepared.X_train, prepared.y_train, **prepared.fit_params)
        t1, cpu1 = time.perf_counter(), time.process_time()
        fit_usage = _usage_so_far(estimator)
        with recording(prepared.prompts, "predict"):
            proba = estimator.predict_proba(prepared.X_test)
        t2, cpu2 = time.perf_counter(), time.process_time()
    aside_wall, aside_cpu = _diagnostic_seconds(estimator)
    timing = Timing(
        fit_s=t1 - t0,
        predict_s=max(0.0, t2 - t1 - aside_wall),
        cpu_s=cpu2 - cpu0,
        # One-off (fit) and marginal (predict) cost are reported apart: bench/report/cost.py.
        fit_cpu_s=cpu1 - cpu0,
        predict_cpu_s=max(0.0, cpu2 - cpu1 - aside_cpu),
    )
    return np.asarray(proba, dtype=float), timing, fit_usage


def _report_or_empty(estimator: Any) -> MethodReport:
    """The method's report, or an empty one when it cannot give one (a report is a courtesy:
    the run's predictions succeeded)."""
    try:
        return method_report(estimator)
    except Exception:
        return MethodReport()


def _diagnostic_seconds(estimator: Any) -> tuple[float, float]:
    """(wall, CPU) seconds of predict_proba spent on diagnostics (explanations), not predicting."""
    wall, cpu = _report_or_empty(estimator).diagnostic_seconds
    return float(wall), float(cpu)


def _usage_so_far(estimator: Any) -> dict[str, float]:
    """The LLM usage a method has reported so far (zeros for one that reports nothing)."""
    usage = _report_or_empty(estimator).usage
    return {key: float(usage.get(key) or 0.0) for key in PHASE_USAGE_KEYS}


def _score(
    task: Task, split: Split, prepared: PreparedRun, proba: np.ndarray
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics on the test labels, and details scored on labels the method never saw."""
    y_codes = (
        task.y.iloc[split.test_rows].map({c: i for i, c in enumerate(task.class_labels)}).to_numpy()
    )
    positive = (
        task.class_labels.index(task.positive_label) if task.positive_label else task.n_classes - 1
    )
    details: dict[str, Any] = {}
    if prepared.unlabelled_rows is not None:
        truth = task.y.iloc[prepared.unlabelled_rows].to_numpy()
        details = unlabelled_details(prepared.estimator, truth)
    return compute_metrics(y_codes, proba, positive), details


def _record_error(
    spec: RunSpec,
    existing: RunRecord | None,
    error: Exception,
    estimator: Any,
    started: float,
    seen: dict[str, Any],
    prompts: PromptLog | None = None,
) -> RunRecord:
    """The record of a run that raised: skipped / unavailable by design, else failed; what was
    spent and tried before the error (LLM tokens, generated programs, prompts) is kept."""
    reported = isinstance(error, MethodFailed) or estimator is not None
    report = error.report if isinstance(error, MethodFailed) else _report_after_error(estimator)
    outcome = {
        **seen,
        "timing": Timing(wall_s=time.perf_counter() - started),
        "usage": RunUsage({**ZERO_USAGE, **report.usage}),
        "details": report.details if reported else None,  # none from a method never built
        "files": _artifact_files(report, prompts),
    }
    if isinstance(error, RunSkipped):
        return records.skipped(spec, existing, str(error), **outcome)
    if isinstance(error, RunUnavailable):
        return records.failed(spec, existing, str(error), status=error.status, **outcome)
    return records.failed(
        spec, existing, describe(error), traceback=traceback.format_exc(), **outcome
    )


def _report_after_error(estimator: Any) -> MethodReport:
    """The report of a method that failed midway; one that cannot report is recorded without."""
    try:
        return method_report(estimator)
    except Exception as error:  # the run's own error is what the record must say
        return MethodReport(details={"report_error": describe(error)})


def _artifact_files(report: MethodReport, prompts: PromptLog | None = None) -> dict[str, str]:
    """Files a method produced (e.g. generated code), and the prompts it sent when the run
    keeps them (`llm.save_prompts`), saved next to the record by the store."""
    files = dict(report.artifacts)
    if prompts is not None:  # the file name is the runner's; no method's artifact uses it
        files[PROMPTS_FILE] = prompts.jsonl()
    return files


def _align_proba(proba: np.ndarray, classes: Any, class_labels: tuple[str, ...]) -> np.ndarray:
    """Reorder the estimator's columns (its classes_) into the task's class order."""
    classes = [str(c) for c in classes]
    if proba.shape != (proba.shape[0], len(classes)):
        raise ValueError(f"predict_proba returned shape {proba.shape} for {len(classes)} classes")
    unknown = set(classes) - set(class_labels)
    if unknown:
        raise ValueError(f"method predicted unknown classes {sorted(unknown)}")
    aligned = np.zeros((proba.shape[0], len(class_labels)))
    for j, label in enumerate(classes):
        aligned[:, class_labels.index(label)] = proba[:, j]
    return aligned


def _predictions_frame(test_rows: np.ndarray, task: Task, proba: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"row": test_rows, "y_true": task.y.iloc[test_rows].to_numpy()})
    frame["y_pred"] = np.asarray(task.class_labels, dtype=object)[proba.argmax(axis=1)]
    for j, label in enumerate(task.class_labels):
        frame[f"proba_{label}"] = proba[:, j]
    return frame

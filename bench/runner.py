"""Run one Hydra job: one dataset x one method over the seeds x n_train grid.

Each (seed, n_train) is a `RunSpec`. Finished runs already in the results store are skipped,
failed ones are retried, and every error is caught, recorded with its message, and logged, so
one broken run never takes down the sweep.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import socket
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from bench.claims import RunClaims
from bench.config import method_llm
from bench.data.audit import warn_leaks
from bench.data.dataset import Task, load_task
from bench.data.rowhash import rows_hash
from bench.data.splits import Split, make_split, resolve_n_train
from bench.endpoint import EndpointBreaker
from bench.errors import MethodFailed, RunSkipped, RunUnavailable
from bench.lifeline import set_interrupt_record, watch_parent
from bench.llm.backend import Usage
from bench.llm.prompt_log import PROMPTS_FILE, PromptLog, recording
from bench.llm.protocol import PHASE_USAGE_KEYS
from bench.methods.base import (
    MethodContext,
    MethodReport,
    MethodTags,
    build_method,
    method_kind,
    method_report,
    unlabelled_details,
)
from bench.metrics import compute_metrics
from bench.paths import resolve_project_path
from bench.progress import SweepProgress
from bench.results import DONE_STATUSES, RUNNING, ResultsStore

__all__ = ["PROTOCOL_VERSION", "JobSummary", "RunSpec", "run_job"]

log = logging.getLogger("bench")

# Bump when a change to splitting or scoring makes old results incomparable; it is in every run id.
PROTOCOL_VERSION = 1
ZERO_USAGE = Usage().as_dict()
# llm settings that change how requests are made, not what they answer: not part of a run's id.
LLM_OPERATIONAL_KEYS = (
    "cache",
    "cache_path",
    "max_concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "timeout_s",
    "max_retries",
    "backoff_s",
    "backoff_max_s",
    "max_consecutive_failures",
    "n_threads",
    "save_prompts",  # keeps what was sent; changes no answer
)
# Settings added after runs were stored, at the value that computes what those runs computed:
# left out of a run's id at that value, so adding a setting does not redo every stored run.
ADDED_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("serializer", "numbers"): "raw",
    ("method", "params", "explain_rows"): 0,
}


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run, resolved once from the configs: its identity in the
    store (`determinants`, hashed into `run_id`) and the settings it executes with. A run reads
    nothing else besides its task and split."""

    experiment: str
    dataset: str
    method: str
    family: str
    seed: int
    n_train: int | str  # as requested: an integer or "all"
    determinants: dict[str, Any]  # resolved dataset/method/split (and llm/serializer) configs
    llm: str | None = None
    serializer: str | None = None
    # How the run executes; resolved from the same configs, not part of its identity.
    tags: MethodTags = field(default_factory=MethodTags, compare=False)
    method_config: dict[str, Any] = field(default_factory=dict, compare=False)
    split: SplitSettings = field(default_factory=lambda: SplitSettings(), compare=False)
    n_jobs: int = 1
    llm_config: dict[str, Any] | None = field(default=None, compare=False)
    serializer_config: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def run_id(self) -> str:
        payload = {
            "protocol": PROTOCOL_VERSION,
            "seed": self.seed,
            "n_train": self.n_train,
            **self.determinants,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def stem(self) -> str:
        return f"{self.dataset}__{self.method}__n{self.n_train}__s{self.seed}__{self.run_id}"

    @property
    def save_prompts(self) -> bool:
        """Whether the run keeps the prompts it sends (`llm.save_prompts`)."""
        return bool((self.llm_config or {}).get("save_prompts"))

    @property
    def n_unlabelled(self) -> int:
        """Unlabelled pool rows the method learns from (tag `wants_unlabelled`), else 0."""
        if not self.tags.wants_unlabelled:
            return 0
        return int(self.method_config.get("params", {}).get("n_unlabelled") or 0)

    def context(self, task: Task) -> MethodContext:
        return MethodContext.for_task(
            task,
            seed=self.seed,
            n_jobs=self.n_jobs,
            llm=self.llm_config,
            serializer=self.serializer_config,
        )


@dataclass(frozen=True)
class SplitSettings:
    """The split configuration (conf: `split`)."""

    test_size: float = 0.2
    max_test_rows: int = 1000
    sampling: str = "stratified"
    min_per_class: int = 1


@dataclass
class JobSummary:
    executed: Counter = field(default_factory=Counter)  # status -> runs executed now
    already_done: int = 0
    elsewhere: int = 0  # runs another process was executing (claimed)

    def line(self, label: str) -> str:
        new = sum(self.executed.values())
        detail = ", ".join(f"{n} {status}" for status, n in sorted(self.executed.items()))
        busy = f", {self.elsewhere} being executed by another process" if self.elsewhere else ""
        return (
            f"[{label}] {new} new run(s){f' ({detail})' if detail else ''}, "
            f"{self.already_done} already done{busy}"
        )


def specs_for(cfg: DictConfig) -> list[RunSpec]:
    """The runs one job is responsible for, in seed-major order, each resolved once."""
    tags = method_kind(cfg.method.kind).tags
    split = OmegaConf.to_container(cfg.split, resolve=True)
    method = OmegaConf.to_container(cfg.method, resolve=True)
    sizes = method.get("n_train") or list(cfg.n_train)
    if method.get("n_train") is None:
        method.pop("n_train", None)  # unpinned: the identity of existing runs is unchanged
    determinants: dict[str, Any] = {
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
        "method": method,
        "split": split,
    }
    llm = serializer = None
    if tags.uses_llm:
        llm = OmegaConf.to_container(method_llm(cfg), resolve=True)
        determinants["llm"] = {k: v for k, v in llm.items() if k not in LLM_OPERATIONAL_KEYS}
        # An in-process model computes with `n_jobs` threads unless llm.n_threads says otherwise:
        # parallel jobs that each took every core would oversubscribe it, and llama.cpp's
        # spinning threads then slow down many times over.
        llm["n_threads"] = llm.get("n_threads") or cfg.n_jobs
    if tags.serializes_rows:
        serializer = OmegaConf.to_container(cfg.serializer, resolve=True)
        determinants["serializer"] = serializer
    if tags.prompt_version:
        determinants["prompt_version"] = tags.prompt_version
    determinants = _without_added_defaults(determinants)
    specs = [
        RunSpec(
            experiment=cfg.experiment_name,
            dataset=cfg.dataset.name,
            method=cfg.method.name,
            family=cfg.method.family,
            seed=int(seed),
            n_train=n if isinstance(n, str) else int(n),
            determinants=determinants,
            llm=llm["name"] if llm else None,
            serializer=serializer["name"] if serializer else None,
            tags=tags,
            method_config=method,
            split=SplitSettings(**split),
            n_jobs=int(cfg.n_jobs),
            llm_config=llm,
            serializer_config=serializer,
        )
        for seed in cfg.seeds
        for n in sizes
    ]
    # `seeds=[0,0]` or `n_train=[16,16]` names one run twice: execute it once.
    unique = {spec.stem: spec for spec in reversed(specs)}
    return [spec for spec in specs if unique.pop(spec.stem, None) is not None]


def run_job(cfg: DictConfig) -> JobSummary:
    """Execute (or skip) every run of one dataset x method job; never raises for a run's error."""
    watch_parent()  # a job in a launcher's worker process dies with the bench-run that started it
    store = ResultsStore(resolve_project_path(cfg.results_dir))
    label = f"{cfg.dataset.name} | {cfg.method.name}"
    summary = JobSummary()
    specs = [(spec, store.load(spec.stem)) for spec in specs_for(cfg)]
    try:
        task = load_task(cfg.dataset)
    except Exception as error:  # a bad card or unreachable data: record the pending runs as failed
        log.error("[%s] cannot load dataset '%s': %s", label, cfg.dataset.name, error)
        progress = SweepProgress(store.root, len(specs))
        for spec, existing in specs:
            if existing and existing.get("status") in DONE_STATUSES:
                summary.already_done += 1
                progress.tick(spec.stem, new=False)
                continue
            _save(store, _record(spec, existing, "failed", error=_describe(error)), None)
            summary.executed["failed"] += 1
            progress.tick(spec.stem, new=True)
        log.info(summary.line(label))
        return summary

    warn_leaks(cfg, task, store.root, label)  # one line when a feature looks like a leak
    if cfg.get("memcheck") and specs and specs[0][0].llm_config:  # once per (dataset, llm)
        from bench.llm.memcheck import ensure_memcheck

        ensure_memcheck(cfg.dataset, specs[0][0].llm_config, store.root)

    progress = SweepProgress(store.root, len(specs))
    pending = []
    for spec, existing in specs:
        # A finished run is reused only if it was computed on the same data (file, package version).
        if _is_done(existing, task.fingerprint):
            summary.already_done += 1
            progress.tick(spec.stem, new=False)
        else:
            pending.append((spec, existing))
    if not pending:
        log.info(summary.line(label) + ": nothing to do")
        return summary

    claims = RunClaims(store.root)
    splits: dict[int, Split | Exception] = {}
    endpoint = EndpointBreaker(specs[0][0].llm_config if specs else None)
    for spec, existing in pending:
        if endpoint.open:  # the endpoint failed run after run: do not spend minutes on each
            record = _record(spec, existing, "failed", error=endpoint.reason)
            _save(store, record, None)
            summary.executed["failed"] += 1
            _log_run(label, record, progress.tick(spec.stem, new=True))
            continue
        if not claims.claim(spec.stem):  # another process is executing this very run
            summary.elsewhere += 1
            log.info(
                "[%s] seed=%s n_train=%s: being executed by another process (%s)",
                label,
                spec.seed,
                spec.n_train,
                claims.path(spec.stem),
            )
            progress.tick(spec.stem, new=False)
            continue
        try:
            existing = store.load(spec.stem)  # it may have finished since the sweep started
            if _is_done(existing, task.fingerprint):
                summary.already_done += 1
                progress.tick(spec.stem, new=False)
                continue
            record = _execute_claimed(store, spec, existing, task, splits, label)
        finally:
            claims.release(spec.stem)
        endpoint.note(record)
        summary.executed[record["status"]] += 1
        seconds = record.get("timing", {}).get("wall_s")
        _log_run(label, record, progress.tick(spec.stem, new=True, seconds=seconds))
    log.info(summary.line(label))
    return summary


def _execute_claimed(
    store: ResultsStore,
    spec: RunSpec,
    existing: dict | None,
    task: Task,
    splits: dict[int, Split | Exception],
    label: str,
) -> dict[str, Any]:
    """Execute one claimed run and store its record; an interruption (Ctrl-C, SIGTERM, the
    launching bench-run dying) is recorded as failed before it propagates."""
    log.info("[%s] seed=%s n_train=%s: running", label, spec.seed, spec.n_train)
    if spec.seed not in splits:
        splits[spec.seed] = _split_or_error(task, spec)
    split = splits[spec.seed]
    if isinstance(split, Exception):
        record = _record(spec, existing, "failed", error=_describe(split))
        _save(store, record, None)
        return record
    # A marker that says the run started: if the process dies here (killed, out of memory),
    # the sweep's summary can tell the run died instead of losing it.
    marker = _record(spec, existing, RUNNING, **_whereabouts(), started_at=_now())
    if not (existing and existing.get("status") in DONE_STATUSES):
        _save(store, marker, None)

    def interrupted(reason: str) -> None:
        _save(store, {**marker, "status": "failed", "error": reason, "finished_at": _now()}, None)

    set_interrupt_record(interrupted)
    try:
        record, predictions = execute_run(spec, existing, task, split)
    except BaseException as error:  # KeyboardInterrupt, SystemExit: record, then stop
        interrupted(
            f"interrupted ({type(error).__name__}) while this run was executing; "
            "rerun the sweep to retry it"
        )
        raise
    finally:
        set_interrupt_record(None)
    _save(store, record, predictions)
    return record


def _whereabouts() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _split_or_error(task: Task, spec: RunSpec) -> Split | Exception:
    """The seed's split, or the error that prevents it (recorded on each of its runs)."""
    try:
        return make_split(
            task.y,
            task.name,
            spec.seed,
            test_size=spec.split.test_size,
            max_test_rows=spec.split.max_test_rows,
            sampling=spec.split.sampling,
        )
    except ValueError as error:
        return error


def _is_done(existing: dict | None, fingerprint: str) -> bool:
    return bool(
        existing
        and existing.get("status") in DONE_STATUSES
        and existing.get("data_fingerprint") == fingerprint
    )


@dataclass
class PreparedRun:
    """A run ready to fit: its estimator and the rows it may see (never the test labels)."""

    estimator: Any
    n_train: int
    X_train: pd.DataFrame
    y_train: pd.Series
    X_test: pd.DataFrame
    unlabelled_rows: np.ndarray | None  # pool rows handed over without their labels
    fit_params: dict[str, Any]
    prompts: PromptLog | None = None  # the requests the run sends, when llm.save_prompts


def execute_run(
    spec: RunSpec, existing: dict | None, task: Task, split: Split
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """prepare -> fit and predict (timed) -> score -> record; never raises for the run's error."""
    started = time.perf_counter()
    base: dict[str, Any] = {"data_fingerprint": task.fingerprint, "tags": asdict(spec.tags)}
    estimator = prompts = None
    try:
        prepared = _prepare(spec, task, split, base)
        if isinstance(prepared, str):  # a skip reason
            return _record(spec, existing, "skipped", error=prepared, **base), None
        estimator, prompts = prepared.estimator, prepared.prompts
        proba, timing, fit_usage = _fit_predict(prepared, spec.n_jobs)
        proba = _align_proba(proba, estimator.classes_, task.class_labels)
        metrics, details = _score(task, split, prepared, proba)
        timing["wall_s"] = time.perf_counter() - started
        report = method_report(estimator)
        record = _record(
            spec,
            existing,
            "ok",
            metrics=metrics,
            timing=timing,
            usage={**ZERO_USAGE, **report.usage, **fit_usage},
            details={**report.details, **details},
            **base,
        )
        _attach_artifacts(record, report, prompts)
        return record, _predictions_frame(split.test_rows, task, proba)
    except Exception as error:
        return _failed_record(spec, existing, error, estimator, started, base, prompts), None


def _prepare(spec: RunSpec, task: Task, split: Split, base: dict[str, Any]) -> PreparedRun | str:
    """The training subset, the estimator and its inputs; or the reason the run is skipped.
    The hashes of the rows it hands over go into `base` (bench/data/rowhash.py)."""
    n_train = resolve_n_train(spec.n_train, split.pool_size)
    subset = split.subset(n_train, task.y, min_per_class=spec.split.min_per_class)
    X_train, y_train = task.X.iloc[subset.rows], task.y.iloc[subset.rows]
    X_test = task.X.iloc[split.test_rows]  # the test labels never reach the method
    base.update(
        n_train=n_train,
        n_test=len(split.test_rows),
        class_labels=list(task.class_labels),
        positive_label=task.positive_label,  # the class binary metrics score
        test_rows_hash=rows_hash(split.test_rows, X_test),
    )
    if len(subset.rows) == n_train:  # (none when n_train exceeds the training pool)
        base["train_rows_hash"] = rows_hash(subset.rows, X_train, y_train)
    if subset.skip_reason:
        return subset.skip_reason
    if n_train == 0 and not spec.tags.zero_shot:
        return f"method '{spec.method}' needs training rows (n_train=0)"
    estimator = build_method(OmegaConf.create(spec.method_config), spec.context(task))
    fit_params: dict[str, Any] = {}
    unlabelled = None
    if spec.n_unlabelled > 0:
        unlabelled = _unlabelled_rows(spec.n_unlabelled, split, n_train)
        fit_params["X_unlabelled"] = task.X.iloc[unlabelled]
        base["unlabelled_rows_hash"] = rows_hash(unlabelled, fit_params["X_unlabelled"])
    return PreparedRun(
        estimator=estimator,
        n_train=n_train,
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        unlabelled_rows=unlabelled,
        fit_params=fit_params,
        prompts=PromptLog() if spec.save_prompts else None,
    )


def _fit_predict(
    prepared: PreparedRun, n_jobs: int
) -> tuple[np.ndarray, dict[str, float], dict[str, float]]:
    """Fit, then predict the test rows; fit and predict seconds (wall and CPU), and the LLM
    usage spent during fit as `fit_<key>` (the rest of the run's usage was spent predicting)."""
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
    timing = {
        "fit_s": t1 - t0,
        "predict_s": max(0.0, t2 - t1 - aside_wall),
        "cpu_s": cpu2 - cpu0,
        # One-off (fit) and marginal (predict) cost are reported apart: bench/report/cost.py.
        "fit_cpu_s": cpu1 - cpu0,
        "predict_cpu_s": max(0.0, cpu2 - cpu1 - aside_cpu),
    }
    return np.asarray(proba, dtype=float), timing, fit_usage


def _without_added_defaults(determinants: dict[str, Any]) -> dict[str, Any]:
    """`determinants` less the ADDED_DEFAULTS settings that are at their default (a copy)."""
    trimmed = copy.deepcopy(determinants)
    for path, default in ADDED_DEFAULTS.items():
        *parents, key = path
        node = trimmed
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node and node[key] == default:
            del node[key]
    return trimmed


def _diagnostic_seconds(estimator: Any) -> tuple[float, float]:
    """(wall, CPU) seconds of predict_proba spent on diagnostics (explanations), not predicting."""
    try:
        wall, cpu = method_report(estimator).diagnostic_seconds
    except Exception:  # a report is a courtesy; the run's predictions succeeded
        return 0.0, 0.0
    return float(wall), float(cpu)


def _usage_so_far(estimator: Any) -> dict[str, float]:
    """The LLM usage a method has reported so far (zeros for one that reports nothing)."""
    try:
        usage = method_report(estimator).usage
    except Exception:  # a report is a courtesy; the run's fit succeeded
        return {}
    return {f"fit_{key}": float(usage.get(key) or 0.0) for key in PHASE_USAGE_KEYS}


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


def _failed_record(
    spec: RunSpec,
    existing: dict | None,
    error: Exception,
    estimator: Any,
    started: float,
    base: dict[str, Any],
    prompts: PromptLog | None = None,
) -> dict[str, Any]:
    """The record of a run that raised: skipped / unavailable by design, else failed; what was
    spent and tried before the error (LLM tokens, generated programs, prompts) is kept."""
    if isinstance(error, RunSkipped | RunUnavailable):
        status, message = error.status, str(error)
    else:
        status, message = "failed", _describe(error)
    report = error.report if isinstance(error, MethodFailed) else _report_after_error(estimator)
    record = _record(
        spec,
        existing,
        status,
        error=message,
        timing={"wall_s": time.perf_counter() - started},
        usage={**ZERO_USAGE, **report.usage},
        details=report.details,
        traceback=traceback.format_exc(),
        **base,
    )
    _attach_artifacts(record, report, prompts)
    return record


def _report_after_error(estimator: Any) -> MethodReport:
    """The report of a method that failed midway; one that cannot report is recorded without."""
    try:
        return method_report(estimator)
    except Exception as error:  # the run's own error is what the record must say
        return MethodReport(details={"report_error": _describe(error)})


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


def _attach_artifacts(
    record: dict[str, Any], report: MethodReport, prompts: PromptLog | None = None
) -> None:
    """Files a method produced (e.g. generated code), and the prompts it sent when the run
    keeps them (`llm.save_prompts`), saved next to the record by the store."""
    artifacts = dict(report.artifacts)
    if prompts is not None:  # the file name is the runner's; no method's artifact uses it
        artifacts[PROMPTS_FILE] = prompts.jsonl()
    if artifacts:
        record["_artifacts"] = artifacts


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record(spec: RunSpec, existing: dict | None, status: str, **fields: Any) -> dict[str, Any]:
    now = _now()
    record: dict[str, Any] = {
        "experiment": spec.experiment,
        "dataset": spec.dataset,
        "method": spec.method,
        "family": spec.family,
        "serializer": spec.serializer,
        "llm": spec.llm,
        "n_train": spec.n_train if isinstance(spec.n_train, int) else None,
        "n_train_requested": spec.n_train,
        "seed": spec.seed,
        "status": status,
        "error": None,
        "metrics": {},
        "timing": {},
        "usage": dict(ZERO_USAGE),
        "run_id": spec.run_id,
        "run_stem": spec.stem,
        "attempts": int((existing or {}).get("attempts", 0)) + 1,
        "finished_at": now,
        "spec": spec.determinants,
    }
    record.update(fields)
    return record


def _save(store: ResultsStore, record: dict[str, Any], predictions: pd.DataFrame | None) -> None:
    try:
        store.save(record, predictions)
    except OSError as error:  # a full disk or a permissions problem: say where, keep going
        log.error("Could not write run %s to %s: %s", record["run_stem"], store.root, error)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _log_run(label: str, record: dict[str, Any], progress: str = "") -> None:
    where = f"{progress} [{label}] seed={record['seed']} n_train={record['n_train_requested']}"
    if record["status"] == "ok":
        m = record["metrics"]
        log.info(
            "%s: ok accuracy=%.3f roc_auc=%.3f (%.1f s)",
            where,
            m["accuracy"],
            m["roc_auc"],
            record["timing"]["wall_s"],
        )
    elif record["status"] == "skipped":
        log.info("%s: skipped: %s", where, record["error"])
    else:
        log.warning("%s: %s: %s", where, record["status"], record["error"])

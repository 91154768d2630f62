"""Run one Hydra job: one dataset x one method over the seeds x n_train grid.

Each (seed, n_train) is a `RunSpec`. Finished runs already in the results store are skipped,
failed ones are retried, and every error is caught, recorded with its message, and logged, so
one broken run never takes down the sweep.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from bench.data.dataset import Task, load_task
from bench.data.splits import Split, make_split, resolve_n_train
from bench.errors import RunSkipped
from bench.llm.backend import Usage
from bench.llm.codegen_prompt import CODEGEN_PROMPT_VERSION
from bench.llm.prompts import PROMPT_VERSION
from bench.methods.base import MethodContext, build_method
from bench.metrics import compute_metrics
from bench.progress import SweepProgress
from bench.results import DONE_STATUSES, RUNNING, ResultsStore

__all__ = ["PROTOCOL_VERSION", "JobSummary", "RunSpec", "run_job"]

log = logging.getLogger("bench")

# Bump when a change to splitting or scoring makes old results incomparable; it is in every run id.
PROTOCOL_VERSION = 1
ZERO_USAGE = Usage().as_dict()
LLM_FAMILIES = ("llm_icl", "llm_codegen", "llm_distill")
SERIALIZING_FAMILIES = ("llm_icl", "llm_distill")  # families that write rows into prompts
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
    "n_threads",
)


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run's result, and its identity in the store."""

    experiment: str
    dataset: str
    method: str
    family: str
    seed: int
    n_train: int | str  # as requested: an integer or "all"
    determinants: dict[str, Any]  # resolved dataset/method/split (and later llm/serializer) configs
    llm: str | None = None
    serializer: str | None = None

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


@dataclass
class JobSummary:
    executed: Counter = field(default_factory=Counter)  # status -> runs executed now
    already_done: int = 0

    def line(self, label: str) -> str:
        new = sum(self.executed.values())
        detail = ", ".join(f"{n} {status}" for status, n in sorted(self.executed.items()))
        return (
            f"[{label}] {new} new run(s){f' ({detail})' if detail else ''}, "
            f"{self.already_done} already done"
        )


def uses_llm(cfg: DictConfig) -> bool:
    return cfg.method.family in LLM_FAMILIES


def specs_for(cfg: DictConfig) -> list[RunSpec]:
    """The runs one job is responsible for, in seed-major order."""
    determinants = {
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
        "method": OmegaConf.to_container(cfg.method, resolve=True),
        "split": OmegaConf.to_container(cfg.split, resolve=True),
    }
    llm_name = serializer_name = None
    if uses_llm(cfg):
        llm = OmegaConf.to_container(cfg.llm, resolve=True)
        determinants["llm"] = {k: v for k, v in llm.items() if k not in LLM_OPERATIONAL_KEYS}
        llm_name = cfg.llm.name
        if cfg.method.family in SERIALIZING_FAMILIES:
            determinants["serializer"] = OmegaConf.to_container(cfg.serializer, resolve=True)
            determinants["prompt_version"] = PROMPT_VERSION
            serializer_name = cfg.serializer.name
        else:
            determinants["prompt_version"] = f"codegen-{CODEGEN_PROMPT_VERSION}"
    return [
        RunSpec(
            experiment=cfg.experiment_name,
            dataset=cfg.dataset.name,
            method=cfg.method.name,
            family=cfg.method.family,
            seed=int(seed),
            n_train=n if isinstance(n, str) else int(n),
            determinants=determinants,
            llm=llm_name,
            serializer=serializer_name,
        )
        for seed in cfg.seeds
        for n in cfg.n_train
    ]


def run_job(cfg: DictConfig) -> JobSummary:
    """Execute (or skip) every run of one dataset x method job; never raises for a run's error."""
    store = ResultsStore(Path(cfg.results_dir).resolve())
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

    splits: dict[int, Split | Exception] = {}
    for spec, existing in pending:
        log.info("[%s] seed=%s n_train=%s: running", label, spec.seed, spec.n_train)
        if spec.seed not in splits:
            splits[spec.seed] = _split_or_error(task, spec.seed, cfg)
        split = splits[spec.seed]
        if isinstance(split, Exception):
            record, predictions = _record(spec, existing, "failed", error=_describe(split)), None
        else:
            # A marker that says the run started: if the process dies here (killed, out of
            # memory), the sweep's summary can tell the run died instead of losing it.
            if not (existing and existing.get("status") in DONE_STATUSES):
                _save(store, _record(spec, existing, RUNNING, **_whereabouts()), None)
            record, predictions = execute_run(spec, existing, task, split, cfg)
        _save(store, record, predictions)
        summary.executed[record["status"]] += 1
        _log_run(label, record, progress.tick(spec.stem, new=True))
    log.info(summary.line(label))
    return summary


def _whereabouts() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _llm_extra(cfg: DictConfig) -> dict[str, Any]:
    llm = OmegaConf.to_container(cfg.llm, resolve=True)
    # An in-process model computes with `n_jobs` threads unless llm.n_threads says otherwise:
    # parallel jobs that each took every core would oversubscribe it, and llama.cpp's spinning
    # threads then slow down many times over.
    llm["n_threads"] = llm.get("n_threads") or cfg.n_jobs
    return {"llm": llm, "serializer": OmegaConf.to_container(cfg.serializer, resolve=True)}


def _split_or_error(task: Task, seed: int, cfg: DictConfig) -> Split | Exception:
    """The seed's split, or the error that prevents it (recorded on each of its runs)."""
    try:
        return make_split(
            task.y,
            task.name,
            seed,
            test_size=cfg.split.test_size,
            max_test_rows=cfg.split.max_test_rows,
            sampling=cfg.split.sampling,
        )
    except ValueError as error:
        return error


def _is_done(existing: dict | None, fingerprint: str) -> bool:
    return bool(
        existing
        and existing.get("status") in DONE_STATUSES
        and existing.get("data_fingerprint") == fingerprint
    )


def execute_run(
    spec: RunSpec, existing: dict | None, task: Task, split: Split, cfg: DictConfig
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Fit on the spec's training subset, score on the split's test rows."""
    started = time.perf_counter()
    base: dict[str, Any] = {"data_fingerprint": task.fingerprint}
    estimator = None
    try:
        n_train = resolve_n_train(spec.n_train, split.pool_size)
        subset = split.subset(n_train, task.y, min_per_class=cfg.split.min_per_class)
        context = MethodContext(
            dataset=task.name,
            features=task.features,
            class_labels=task.class_labels,
            positive_label=task.positive_label,
            description=task.description,
            seed=spec.seed,
            n_jobs=cfg.n_jobs,
            target=task.target,
            extra=_llm_extra(cfg) if uses_llm(cfg) else {},
        )
        estimator = build_method(cfg.method, context)
        if (
            subset.skip_reason is None
            and n_train == 0
            and not getattr(estimator, "supports_zero_shot", False)
        ):
            subset = type(subset)(
                0, subset.rows, f"method '{spec.method}' needs training rows (n_train=0)"
            )
        base.update(
            n_train=n_train, n_test=len(split.test_rows), class_labels=list(task.class_labels)
        )
        if subset.skip_reason:
            return _record(spec, existing, "skipped", error=subset.skip_reason, **base), None

        X_train, y_train = task.X.iloc[subset.rows], task.y.iloc[subset.rows]
        X_test = task.X.iloc[split.test_rows]  # the test labels never reach the method
        fit_params, unlabelled = _unlabelled_rows(estimator, split, n_train, task)
        cpu0, t0 = time.process_time(), time.perf_counter()
        # Native thread pools (BLAS, OpenMP) follow n_jobs: small fits are slower with idle threads
        # spinning, and parallel jobs would oversubscribe the cores.
        with threadpool_limits(limits=cfg.n_jobs):
            estimator.fit(X_train, y_train, **fit_params)
            t1 = time.perf_counter()
            raw_proba = estimator.predict_proba(X_test)
            t2 = time.perf_counter()
        proba = _align_proba(
            np.asarray(raw_proba, dtype=float), estimator.classes_, task.class_labels
        )
        y_codes = (
            task.y.iloc[split.test_rows]
            .map({c: i for i, c in enumerate(task.class_labels)})
            .to_numpy()
        )
        positive = (
            task.class_labels.index(task.positive_label)
            if task.positive_label
            else task.n_classes - 1
        )
        metrics = compute_metrics(y_codes, proba, positive)
        timing = {
            "fit_s": t1 - t0,
            "predict_s": t2 - t1,
            "wall_s": time.perf_counter() - started,
            "cpu_s": time.process_time() - cpu0,
        }
        details = dict(getattr(estimator, "fit_info_", None) or {})
        if unlabelled is not None and hasattr(estimator, "silver_labels_"):
            # Scored here, where the labels are: the method never saw the unlabelled rows' labels.
            truth = task.y.iloc[unlabelled].to_numpy()
            details["silver_accuracy"] = float(np.mean(estimator.silver_labels_ == truth))
        record = _record(
            spec,
            existing,
            "ok",
            metrics=metrics,
            timing=timing,
            usage={**ZERO_USAGE, **(getattr(estimator, "usage_", None) or {})},
            details=details,
            **base,
        )
        _attach_artifacts(record, estimator)
        return record, _predictions_frame(split.test_rows, task, proba)
    except Exception as error:
        # RunSkipped / RunUnavailable (bench.errors) carry their own status; the rest failed.
        status = getattr(error, "status", None)
        status = status if status in ("skipped", "unavailable") else "failed"
        timing = {"wall_s": time.perf_counter() - started}
        # What was spent and tried before the error (LLM tokens, generated programs) is kept.
        usage = getattr(error, "usage", None) or getattr(estimator, "usage_", None) or {}
        details = getattr(error, "details", None) or getattr(estimator, "fit_info_", None) or {}
        record = _record(
            spec,
            existing,
            status,
            error=_describe(error) if status == "failed" else str(error),
            timing=timing,
            usage={**ZERO_USAGE, **usage},
            details=details,
            traceback=traceback.format_exc(),
            **base,
        )
        _attach_artifacts(record, estimator)
        return record, None


def _unlabelled_rows(
    estimator: Any, split: Split, n_train: int, task: Task
) -> tuple[dict[str, Any], np.ndarray | None]:
    """For a method that learns from unlabelled rows (`n_unlabelled` > 0, e.g. distillation):
    the next rows of the training pool after the labelled subset, features only."""
    wanted = int(getattr(estimator, "n_unlabelled", 0) or 0)
    if wanted <= 0:
        return {}, None
    rows = split.pool_order[n_train : n_train + wanted]
    if len(rows) < wanted:  # labelling fewer rows than asked would be a different experiment
        raise RunSkipped(
            f"method.params.n_unlabelled={wanted} unlabelled rows requested, but the training "
            f"pool of {split.pool_size} rows has only {len(rows)} left after n_train={n_train}"
        )
    return {"X_unlabelled": task.X.iloc[rows]}, rows


def _attach_artifacts(record: dict[str, Any], estimator: Any) -> None:
    """Files a method produced (e.g. generated code), saved next to the record by the store."""
    artifacts = getattr(estimator, "artifacts_", None)
    if artifacts:
        record["_artifacts"] = dict(artifacts)


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


def _record(spec: RunSpec, existing: dict | None, status: str, **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
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

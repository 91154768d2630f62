"""Run one Hydra job: one dataset x one method over the seeds x n_train grid.

Each (seed, n_train) is a `RunSpec` (bench/spec.py). A job goes through small named steps: load
the task, audit it for leaks, test the model's memory of it (memcheck), reuse the runs already
done, then for each pending run: check the endpoint breaker, claim the run, execute it
(bench/runner.py), store its record and report progress. Finished runs already in the results
store are reused, failed ones are retried, and every error is caught, recorded with its message
and logged, so one broken run never takes down the sweep.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
from omegaconf import DictConfig

from bench import record as records
from bench.claims import RunClaims
from bench.data.audit import warn_leaks
from bench.data.dataset import Task, load_task
from bench.data.splits import Split, make_split
from bench.endpoint import EndpointBreaker
from bench.errors import describe
from bench.ledger import NOT_STORED, note_executed
from bench.lifeline import set_interrupt_record, watch_parent
from bench.llm.budget import BudgetLedger
from bench.paths import resolve_project_path
from bench.progress import SweepProgress
from bench.record import RunRecord
from bench.results import ResultsStore
from bench.runner import execute_run
from bench.spec import RunSpec, specs_for

__all__ = ["JobSummary", "run_job", "split_or_error"]

log = logging.getLogger("bench")


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


@dataclass
class _Job:
    """One job's store, tally and progress: every run ends in `reused`, `elsewhere` or
    `finish`, each counted and reported once."""

    label: str
    store: ResultsStore
    progress: SweepProgress
    summary: JobSummary = field(default_factory=JobSummary)

    def reused(self, spec: RunSpec, existing: RunRecord | None, fingerprint: str | None) -> bool:
        """Count `spec` as already done when `existing` finished it on the same data (the data
        file and package version; any data when `fingerprint` is None: it could not load)."""
        if existing is None or not existing.done:
            return False
        if fingerprint is not None and existing.provenance.data_fingerprint != fingerprint:
            return False
        self.summary.already_done += 1
        self.progress.tick(spec.stem, new=False)
        return True

    def elsewhere(self, spec: RunSpec, claims: RunClaims) -> None:
        self.summary.elsewhere += 1
        log.info(
            "[%s] seed=%s n_train=%s: being executed by another process (%s)",
            self.label,
            spec.seed,
            spec.n_train,
            claims.path(spec.stem),
        )
        self.progress.tick(spec.stem, new=False)

    def finish(
        self, spec: RunSpec, record: RunRecord, predictions: pd.DataFrame | None = None
    ) -> None:
        """Save a run executed now, count it and log it; one that cannot be stored is counted
        and logged as such (the ERROR line says why), never as its status."""
        stored = save(self.store, record, predictions)
        self.summary.executed[record.status if stored else NOT_STORED] += 1
        note_executed(self.store.root, spec.stem, record.status if stored else NOT_STORED)
        at = self.progress.tick(spec.stem, new=True, seconds=record.timing.wall_s)
        if stored:
            _log_run(self.label, record, at)
        else:
            log.warning(
                "%s [%s] seed=%s n_train=%s: %s, not stored (see the error above)",
                at,
                self.label,
                spec.seed,
                spec.n_train,
                record.status,
            )


def run_job(cfg: DictConfig) -> JobSummary:
    """Execute (or skip) every run of one dataset x method job; never raises for a run's error."""
    watch_parent()  # a job in a launcher's worker process dies with the bench-run that started it
    store = ResultsStore(resolve_project_path(cfg.results_dir))
    specs = [(spec, store.read(spec.stem)) for spec in specs_for(cfg)]
    job = _Job(
        f"{cfg.dataset.name} | {cfg.method.name}", store, SweepProgress(store.root, len(specs))
    )
    try:
        task = load_task(cfg.dataset)
    except Exception as error:  # a bad card or unreachable data: record the pending runs as failed
        log.error("[%s] cannot load dataset '%s': %s", job.label, cfg.dataset.name, error)
        for spec, existing in specs:
            if not job.reused(spec, existing, fingerprint=None):
                job.finish(spec, records.failed(spec, existing, describe(error)))
        log.info(job.summary.line(job.label))
        return job.summary

    warn_leaks(cfg, task, store.root, job.label)  # one line when a feature looks like a leak
    _memcheck(cfg, specs, store)
    pending = [(s, e) for s, e in specs if not job.reused(s, e, task.fingerprint)]
    if not pending:
        log.info(job.summary.line(job.label) + ": nothing to do")
        return job.summary
    _execute_pending(job, pending, task)
    log.info(job.summary.line(job.label))
    return job.summary


def _memcheck(
    cfg: DictConfig, specs: list[tuple[RunSpec, RunRecord | None]], store: ResultsStore
) -> None:
    """Once per (dataset, llm) of an LLM job, when asked (`memcheck=true`): did the model
    memorise the dataset's file? (bench-llm memcheck; skipped when done before)"""
    if cfg.get("memcheck") and specs and specs[0][0].llm_config:
        from bench.llm.memcheck import ensure_memcheck

        ensure_memcheck(cfg.dataset, specs[0][0].llm_config, store.root)


def _execute_pending(
    job: _Job, pending: list[tuple[RunSpec, RunRecord | None]], task: Task
) -> None:
    """Each pending run, unless the endpoint keeps failing or another process has claimed it."""
    claims = RunClaims(job.store.root)
    splits: dict[int, Split | Exception] = {}
    # shared by the sweep's jobs; the backend counts each request that cannot reach the endpoint
    endpoint = EndpointBreaker(pending[0][0].llm_config, job.store.root)
    budget = BudgetLedger(job.store.root)  # llm.budget_usd's spend, shared by the sweep's jobs
    for spec, existing in pending:
        if endpoint.open:  # the endpoint failed run after run: do not spend minutes on each
            job.finish(spec, records.failed(spec, existing, endpoint.reason))
            continue
        if refused := budget.refusal(spec.llm_config):  # no LLM run starts past the budget
            job.finish(spec, records.failed(spec, existing, refused))
            continue
        if not claims.claim(spec.stem):  # another process is executing this very run
            job.elsewhere(spec, claims)
            continue
        try:
            existing = job.store.read(spec.stem)  # it may have finished since the sweep started
            if job.reused(spec, existing, task.fingerprint):
                continue
            if spec.seed not in splits:
                splits[spec.seed] = split_or_error(task, spec)
            record, predictions = _execute_claimed(job, spec, existing, task, splits[spec.seed])
            job.finish(spec, record, predictions)  # stored before another process may claim it
        finally:
            claims.release(spec.stem)


def _execute_claimed(
    job: _Job,
    spec: RunSpec,
    existing: RunRecord | None,
    task: Task,
    split: Split | Exception,
) -> tuple[RunRecord, pd.DataFrame | None]:
    """Execute one claimed run; an interruption (Ctrl-C, SIGTERM, the launching bench-run
    dying) is recorded as failed before it propagates."""
    log.info("[%s] seed=%s n_train=%s: running", job.label, spec.seed, spec.n_train)
    if isinstance(split, Exception):
        return records.failed(spec, existing, describe(split)), None
    # A marker that says the run started: if the process dies here (killed, out of memory),
    # the sweep's summary can tell the run died instead of losing it.
    marker = records.running(spec, existing)
    if not (existing and existing.done):
        save(job.store, marker)

    def interrupted(reason: str) -> None:
        stored = save(job.store, records.interrupted(marker, reason))
        note_executed(job.store.root, spec.stem, "failed" if stored else NOT_STORED)

    set_interrupt_record(interrupted)
    try:
        return execute_run(spec, existing, task, split)
    except BaseException as error:  # KeyboardInterrupt, SystemExit: record, then stop
        interrupted(
            f"interrupted ({type(error).__name__}) while this run was executing; "
            "rerun the sweep to retry it"
        )
        raise
    finally:
        set_interrupt_record(None)


def split_or_error(task: Task, spec: RunSpec) -> Split | Exception:
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


def save(store: ResultsStore, record: RunRecord, predictions: pd.DataFrame | None = None) -> bool:
    """Store a record; a full disk or a permissions problem is logged (False), and the job
    goes on."""
    try:
        store.save(record, predictions)
    except OSError as error:
        log.error("Could not write run %s to %s: %s", record.stem, store.root, error)
        return False
    return True


def _log_run(label: str, record: RunRecord, progress: str = "") -> None:
    who = record.identity
    where = f"{progress} [{label}] seed={who.seed} n_train={who.n_train_requested}"
    if record.status == "ok":
        m = record.metrics
        guessed = (record.details or {}).get("guessed")  # answers that named no class
        log.info(
            "%s: ok accuracy=%.3f roc_auc=%.3f (%.1f s)%s",
            where,
            m["accuracy"],
            m["roc_auc"],
            record.timing.wall_s,
            f"; {guessed}" if guessed else "",
        )
    elif record.status == "skipped":
        log.info("%s: skipped: %s", where, record.error)
    else:
        log.warning("%s: %s: %s", where, record.status, record.error)

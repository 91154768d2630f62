"""What a sweep is: its jobs (`expand_jobs`), the runs bench-run planned, and a Hydra callback
that tells the user what a whole `bench-run` did, and where to look next."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench.claims import RunClaims
from bench.config import report_settings
from bench.ledger import NOT_STORED, executed, forget, note_executed
from bench.paths import resolve_project_path
from bench.progress import write_plan
from bench.record import RunRecord
from bench.results import ResultsStore

if TYPE_CHECKING:
    from bench.preflight import SweepPlan

__all__ = [
    "NOT_STORED",
    "OUTCOME",
    "SweepSummary",
    "Tally",
    "current_plan",
    "expand_jobs",
    "finish_interrupted",
    "statuses_since",
    "summarize_since",
    "tally",
    "use_plan",
]

log = logging.getLogger("bench")


def expand_jobs(sweep_params: Mapping[str, Any], overrides: Sequence[str]) -> list[list[str]]:
    """The override list of every job of a multirun, as Hydra's basic sweeper launches them:
    `sweep_params` (an experiment's `hydra.sweeper.params`) first, then the command line's
    `overrides`, the later winning for the same key; each comma list, `range()` or `choice()` is
    one axis of the product. The one expansion of a sweep: preflight and progress both use it.
    """
    # Hydra's public override grammar; its BasicSweeper.split_arguments does the same product
    # but lives in the private hydra._internal.
    from hydra.core.override_parser.overrides_parser import OverridesParser

    merged = [f"{key}={value}" for key, value in sweep_params.items()] + list(overrides)
    axes: dict[str, list[str]] = {}  # by key, in first-seen order, as the basic sweeper keeps them
    for override in OverridesParser.create().parse_overrides(merged):
        key = override.get_key_element()
        if not override.is_sweep_override():
            axes[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            axes[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise ValueError(f"{override.input_line}: a sweep of jobs takes lists, not intervals")
    return [list(job) for job in itertools.product(*axes.values())]


# What the last sweep of this process executed, by status: bench-run's exit code reads it.
OUTCOME: Counter = Counter()
_PLAN: list[SweepPlan] = []  # the sweep bench-run planned (preflight), when there is one


def use_plan(plan: SweepPlan | None) -> None:
    """Hand bench-run's plan of the sweep (bench/preflight.py) to its summary and progress:
    only its runs are this sweep's; other records in the same folder (an earlier sweep's) are
    never counted as its own."""
    _PLAN[:] = [plan] if plan is not None else []


def current_plan() -> SweepPlan | None:
    return _PLAN[0] if _PLAN else None


def _planned() -> frozenset[str]:
    plan = current_plan()
    return plan.run_stems if plan is not None else frozenset()


def _finished_at(record: RunRecord) -> datetime:
    return datetime.fromisoformat(record.provenance.finished_at or "1970-01-01T00:00:00+00:00")


@dataclass
class Tally:
    """This sweep's runs: those it executed (by status, or "not stored"), those another process
    executed meanwhile, those reused from the store, and the planned ones not accounted for."""

    new: Counter = field(default_factory=Counter)
    by_others: int = 0
    reused: int = 0
    missing: int = 0


def tally(results_dir: Path, since: datetime) -> Tally:
    """Count this sweep's runs (every record of the folder when no plan is known). A run this
    sweep executed is one in its ledger (bench/ledger.py); without a ledger, one recorded since
    `since`."""
    planned = _planned()
    mine = executed(results_dir)
    out, seen = Tally(), set()
    for record in ResultsStore(results_dir).runs():
        if planned and record.stem not in planned:
            continue  # another sweep's record in the same folder, e.g. an orphan settled now
        seen.add(record.stem)
        if mine is not None and record.stem in mine:
            continue  # counted from the ledger below
        if _finished_at(record) < since:
            out.reused += 1
        elif mine is None:
            out.new[record.status] += 1
        else:
            out.by_others += 1  # a concurrent sweep claimed and executed it
    for stem, outcome in (mine or {}).items():
        if not planned or stem in planned:
            out.new[outcome] += 1
            seen.add(stem)
    out.missing = len(planned - seen)
    return out


def statuses_since(results_dir: Path, since: datetime) -> Counter:
    """This sweep's runs executed since `since`, by status (every run when no plan is known)."""
    return tally(results_dir, since).new


def summarize_since(results_dir: Path, since: datetime, stopped: bool = False) -> str:
    """One paragraph: runs this sweep executed by status, runs another process executed, runs
    reused, runs neither run nor found, and where the results are. `stopped`: the sweep was
    interrupted or aborted, so runs not found were simply not reached."""
    counts = tally(results_dir, since)
    new = counts.new
    total_new = sum(new.values())
    detail = ", ".join(f"{n} {status}" for status, n in sorted(new.items()))
    lines = [
        f"Executed {total_new} new run(s){f' ({detail})' if detail else ''}; "
        f"{counts.reused} run(s) already in the store were reused.",
        f"Results: {results_dir}/runs  (python: bench.load_results('{results_dir}'))",
    ]
    if counts.by_others:
        lines.insert(
            1,
            f"{counts.by_others} run(s) of this sweep were executed by another process at the "
            "same time (an identical sweep on the same store); it reports them.",
        )
    if counts.missing and stopped:
        lines.insert(
            0,
            f"{counts.missing} run(s) of this sweep were not reached before it stopped; "
            "rerun the same command to do them.",
        )
    elif counts.missing:
        lines.insert(
            0,
            f"{counts.missing} run(s) of this sweep were neither run nor found in the results "
            "store (see the errors above).",
        )
    elif total_new == 0 and not counts.by_others and not stopped:
        lines.insert(
            0, "Nothing new to run: every run of this sweep is already in the results store."
        )
    if new.get(NOT_STORED):
        lines.append(
            f"{new[NOT_STORED]} run(s) were executed but could not be stored (see the errors "
            f"above: {results_dir} full or not writable); rerun to redo them."
        )
    if new.get("failed") or new.get("unavailable"):
        lines.append(
            "Some runs did not finish; their `error` field says why. Rerun to retry them (a "
            "replay miss, llm.replay=true, stays one: name the cache the runs were made with in "
            "llm.cache_path)."
        )
    elsewhere = RunClaims(results_dir).held_by_others()
    if elsewhere:
        lines.append(
            f"{elsewhere} run(s) are being executed by another process right now "
            f"(claims in {results_dir}/claims); its sweep records them."
        )
    return "\n".join(lines)


# The sweep this process launched, so that bench-run can still summarize it when a launcher
# aborts (a worker killed by the OS makes joblib, submitit or Ray raise, and Hydra then skips
# the end-of-sweep callbacks).
_ACTIVE: dict[str, Any] = {}


def _settle(results_dir: Path) -> int:
    """Mark this sweep's runs whose job died as failed (`settle_orphans`) and note them as
    executed by this sweep: they were, and died doing it."""
    store = ResultsStore(results_dir)
    died = store.settle_orphans()
    planned = _planned()
    for stem in store.settled:
        if not planned or stem in planned:
            note_executed(results_dir, stem, "failed")
    return died


def finish_interrupted(reason: str = "see the error above") -> None:
    """After a sweep ended by an error or a signal: settle runs whose process died, then
    summarize. `reason` says why it stopped."""
    if not _ACTIVE:
        return
    results_dir, start = _ACTIVE.pop("results_dir"), _ACTIVE.pop("start")
    try:
        died = _settle(results_dir)
    except OSError:  # a store that cannot be written: the summary still reads it
        died = 0
    print(f"The sweep stopped early ({reason}).", flush=True)
    if died:
        print(f"{died} run(s) died with their job and are recorded as failed.", flush=True)
    print(summarize_since(results_dir, start, stopped=True), flush=True)
    forget(results_dir)


class SweepSummary(Callback):
    """Prints `summarize_since` once at the end of a single run or a multirun sweep."""

    def __init__(self) -> None:
        self._start = datetime.now(UTC)

    def _mark(self, config: DictConfig, multirun: bool) -> None:
        # Records store whole seconds; drop ours so a run finishing this second still counts.
        self._start = datetime.now(UTC).replace(microsecond=0)
        _ACTIVE.update(results_dir=resolve_project_path(config.results_dir), start=self._start)
        write_plan(config, multirun=multirun, plan=current_plan())

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._mark(config, multirun=False)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._mark(config, multirun=True)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(config)

    def _report(self, config: DictConfig) -> None:
        _ACTIVE.clear()
        results_dir = resolve_project_path(config.results_dir)
        _settle(results_dir)
        counts = tally(results_dir, self._start)
        OUTCOME.clear()
        OUTCOME.update(counts.new)  # exactly what the summary below reports
        OUTCOME["missing"] = counts.missing  # neither run nor found: a start-up failure
        print(summarize_since(results_dir, self._start), flush=True)
        forget(results_dir)
        settings = report_settings(config.get("report"))
        if settings is not None:
            from bench.report import write_report

            try:
                out = write_report(results_dir, settings=settings)
            except (OSError, ValueError) as error:
                print(f"Could not write the report: {error}", flush=True)
                return
            print(f"Report:  {out / 'report.html'} (and report.md, *.tex, *.png)", flush=True)

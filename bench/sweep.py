"""What a sweep is: its jobs (`expand_jobs`), the runs bench-run planned, and a Hydra callback
that tells the user what a whole `bench-run` did, and where to look next."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench.claims import RunClaims
from bench.config import report_settings
from bench.paths import resolve_project_path
from bench.progress import write_plan
from bench.record import RunRecord
from bench.results import ResultsStore

__all__ = [
    "OUTCOME",
    "PLANNED",
    "PLANNED_FAMILIES",
    "SweepSummary",
    "expand_jobs",
    "finish_interrupted",
    "statuses_since",
    "summarize_since",
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
# The run stems of the sweep bench-run planned (empty when unknown): only these are this
# sweep's; other records in the same folder (an earlier sweep's) are never counted as its own.
PLANNED: set[str] = set()
# The family of each method of the planned sweep (from its composed configs): the ETA's likeness.
PLANNED_FAMILIES: dict[str, str] = {}


def _finished_at(record: RunRecord) -> datetime:
    return datetime.fromisoformat(record.provenance.finished_at or "1970-01-01T00:00:00+00:00")


def _tally(results_dir: Path, since: datetime) -> tuple[Counter, int, set[str]]:
    """This sweep's runs executed since `since` by status, its runs reused from the store, and
    the stems of all its runs found there (every record when the plan is unknown)."""
    new: Counter = Counter()
    reused = 0
    seen: set[str] = set()
    for record in ResultsStore(results_dir).runs():
        if PLANNED and record.stem not in PLANNED:
            continue  # another sweep's record in the same folder, e.g. an orphan settled now
        seen.add(record.stem)
        if _finished_at(record) >= since:
            new[record.status] += 1
        else:
            reused += 1
    return new, reused, seen


def statuses_since(results_dir: Path, since: datetime) -> Counter:
    """This sweep's runs recorded since `since`, by status (every run when no plan is known)."""
    return _tally(results_dir, since)[0]


def summarize_since(results_dir: Path, since: datetime) -> str:
    """One paragraph: runs executed since `since` by status, runs of this sweep reused, runs
    neither run nor found (a start-up failure), and where the results are."""
    new, reused, seen = _tally(results_dir, since)
    total_new = sum(new.values())
    detail = ", ".join(f"{n} {status}" for status, n in sorted(new.items()))
    lines = [
        f"Executed {total_new} new run(s){f' ({detail})' if detail else ''}; "
        f"{reused} run(s) already in the store were reused.",
        f"Results: {results_dir}/runs  (python: bench.load_results('{results_dir}'))",
    ]
    missing = len(PLANNED - seen)
    if missing:
        lines.insert(
            0,
            f"{missing} run(s) of this sweep were neither run nor found in the results store "
            "(see the errors above: e.g. a results_dir that cannot be written).",
        )
    elif total_new == 0:
        lines.insert(
            0, "Nothing new to run: every run of this sweep is already in the results store."
        )
    if new.get("failed") or new.get("unavailable"):
        lines.append("Some runs did not finish; their `error` field says why. Rerun to retry them.")
    elsewhere = RunClaims(results_dir).held_by_others()
    if elsewhere:
        lines.append(
            f"{elsewhere} run(s) were being executed by another process "
            f"(claims in {results_dir}/claims); its sweep records them."
        )
    return "\n".join(lines)


# The sweep this process launched, so that bench-run can still summarize it when a launcher
# aborts (a worker killed by the OS makes joblib, submitit or Ray raise, and Hydra then skips
# the end-of-sweep callbacks).
_ACTIVE: dict[str, Any] = {}


def finish_interrupted() -> None:
    """After a sweep ended by an error: settle runs whose process died, then summarize."""
    if not _ACTIVE:
        return
    results_dir = _ACTIVE["results_dir"]
    died = ResultsStore(results_dir).settle_orphans()
    print("The sweep stopped early (see the error above).", flush=True)
    if died:
        print(f"{died} run(s) died with their job and are recorded as failed.", flush=True)
    print(summarize_since(results_dir, _ACTIVE["start"]), flush=True)


class SweepSummary(Callback):
    """Prints `summarize_since` once at the end of a single run or a multirun sweep."""

    def __init__(self) -> None:
        self._start = datetime.now(UTC)

    def _mark(self, config: DictConfig, multirun: bool) -> None:
        # Records store whole seconds; drop ours so a run finishing this second still counts.
        self._start = datetime.now(UTC).replace(microsecond=0)
        _ACTIVE.update(results_dir=resolve_project_path(config.results_dir), start=self._start)
        write_plan(config, multirun=multirun)

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
        ResultsStore(results_dir).settle_orphans()
        new, _, seen = _tally(results_dir, self._start)
        OUTCOME.clear()
        OUTCOME.update(new)  # exactly what the summary below reports
        OUTCOME["missing"] = len(PLANNED - seen)  # neither run nor found: a start-up failure
        print(summarize_since(results_dir, self._start), flush=True)
        settings = report_settings(config.get("report"))
        if settings is not None:
            from bench.report import write_report

            try:
                out = write_report(results_dir, settings=settings)
            except (OSError, ValueError) as error:
                print(f"Could not write the report: {error}", flush=True)
                return
            print(f"Report:  {out / 'report.html'} (and report.md, *.tex, *.png)", flush=True)

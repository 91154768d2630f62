"""Sweep progress as plain log lines: runs done / total, the current run, an ETA.

A line per event (no carriage returns, no bars) reads the same in a terminal, in Hydra's job
logs and in SLURM or Ray log files. The count is sweep-wide even when jobs run in separate
processes or on separate nodes: when a multirun starts, `write_plan` puts the planned number of
runs in ``<results_dir>/.sweep/plan.json``; every job appends one short line per finished run to
``<results_dir>/.sweep/<plan id>.done`` (appends of a few bytes are atomic on POSIX file
systems), and counts the lines to say where the sweep stands.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from bench.paths import resolve_project_path
from bench.results import write_atomic

if TYPE_CHECKING:
    from bench.preflight import SweepPlan

__all__ = ["SweepProgress", "estimate_remaining", "planned_jobs", "write_plan"]


def planned_jobs(config: DictConfig) -> int:
    """How many Hydra jobs a multirun launches: the product of its sweep lists, as the basic
    sweeper expands them (command-line overrides win over `hydra.sweeper.params`)."""
    from bench.sweep import expand_jobs

    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    task = OmegaConf.select(config, "hydra.overrides.task", default=None) or []
    return len(expand_jobs(params, list(task)))


def write_plan(config: DictConfig, multirun: bool, plan: SweepPlan | None = None) -> Path | None:
    """Record the sweep's planned run count; returns the plan file (None if it cannot tell).

    `plan` is bench-run's plan of the sweep (bench/preflight.py): with it the count is exact
    (also when a method pins its own training sizes) and each run's method, training size and
    family are recorded for the ETA; they are never parsed back out of a stem, where a dataset
    named with "__" would read as another method. Without it the count is the product of the
    sweep's lists."""
    try:
        runs_per_job = len(config.seeds) * len(config.n_train)
        total = (planned_jobs(config) if multirun else 1) * runs_per_job
        sweep_dir = resolve_project_path(config.results_dir) / ".sweep"
    except Exception:  # an unusual sweeper: progress falls back to per-job counts
        return None
    written: dict[str, Any] = {"id": uuid.uuid4().hex[:12], "total": total, "started": time.time()}
    if plan is not None and plan.run_stems:
        stems = sorted(plan.run_stems)
        runs = {s: list(plan.runs[s]) for s in stems if s in plan.runs}
        written.update(total=len(stems), stems=stems, runs=runs, families=dict(plan.families))
    path = sweep_dir / "plan.json"
    try:
        write_atomic(path, json.dumps(written).encode())
    except OSError:  # progress is a courtesy: a full disk falls back to per-job counts
        return None
    return path


class SweepProgress:
    """Counts finished runs of the current sweep (or of one job when no plan exists)."""

    def __init__(self, results_dir: Path, job_total: int) -> None:
        self.job_total, self.job_done = job_total, 0
        self.started = time.time()
        self.plan = _read_plan(results_dir / ".sweep" / "plan.json")
        self.done_file = results_dir / ".sweep" / f"{self.plan['id']}.done" if self.plan else None

    def tick(self, stem: str, new: bool, seconds: float | None = None) -> str:
        """Note one finished run (`new`: executed now, taking `seconds`; else found already
        done); the line to log."""
        self.job_done += 1
        if self.done_file is None:
            return f"[{self.job_done}/{self.job_total} runs of this job]"
        took = f" {seconds:.3f}" if new and seconds is not None else ""
        line = f"{'new' if new else 'old'} {stem}{took}\n".encode()
        try:
            fd = os.open(self.done_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
            entries = self.done_file.read_bytes().splitlines()
        except OSError:  # progress is a courtesy: never fail a run over it
            return f"[{self.job_done}/{self.job_total} runs of this job]"
        done = len(entries)
        total = max(int(self.plan["total"]), done)
        eta = estimate_remaining(self.plan, entries, time.time())
        return f"[sweep {done}/{total} runs, {done / total:.0%}{_eta_text(eta)}]"


def _eta_text(seconds: float | None) -> str:
    return "" if seconds is None else f", ETA {_duration(seconds)}"


def estimate_remaining(plan: dict[str, Any], entries: list[bytes], now: float) -> float | None:
    """Seconds until the sweep ends. Runs differ by orders of magnitude (a classical fit in a
    second, an LLM run in minutes), so each remaining run is estimated from the finished runs
    most like it: the same method at the same training size, else the same method, else the
    same family (llm_icl_knn from llm_icl, lightgbm_tuned from the classical fits), else all
    finished runs. The total is divided by the parallelism observed so far (run-seconds done
    per wall-clock second)."""
    elapsed = now - float(plan["started"])
    fields = [e.decode(errors="replace").split() for e in entries]
    new = [f for f in fields if len(f) >= 2 and f[0] == "new"]
    timed = [(f[1], float(f[2])) for f in new if len(f) >= 3 and _is_number(f[2])]
    remaining_count = max(int(plan["total"]) - len(fields), 0)
    if not new or remaining_count == 0 or elapsed <= 0:
        return None
    if "stems" not in plan or not timed:  # no per-run detail: the average pace so far
        return elapsed / len(new) * remaining_count
    families = plan.get("families") or {}
    runs = plan.get("runs") or {}  # stem -> [method, n_train], as planned

    def method(stem: str) -> str | None:
        return runs[stem][0] if stem in runs else None

    ways = (  # from the most to the least specific likeness between two runs
        lambda stem: tuple(runs[stem]) if stem in runs else None,
        method,
        lambda stem: families.get(method(stem)),
    )
    tables = [_mean_by(way, timed) for way in ways]
    overall = sum(s for _, s in timed) / len(timed)
    done = {f[1] for f in fields if len(f) >= 2}
    work = 0.0
    for stem in (s for s in plan["stems"] if s not in done):
        keys = [way(stem) for way in ways]
        known = [table[key] for table, key in zip(tables, keys, strict=True) if key in table]
        work += known[0] if known else overall
    parallelism = max(1.0, sum(s for _, s in timed) / elapsed)
    return work / parallelism


def _mean_by(key: Any, timed: list[tuple[str, float]]) -> dict[Any, float]:
    """Mean seconds of the timed runs grouped by `key(stem)` (runs whose key is None left out)."""
    groups: dict[Any, list[float]] = {}
    for stem, seconds in timed:
        if (group := key(stem)) is not None:
            groups.setdefault(group, []).append(seconds)
    return {group: sum(values) / len(values) for group, values in groups.items()}


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _read_plan(path: Path) -> dict[str, Any] | None:
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    # A plan from an earlier sweep in the same folder would miscount: trust it for one day.
    fresh = time.time() - float(plan.get("started", 0)) < 86_400
    return plan if fresh and "id" in plan and "total" in plan else None


def _duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"

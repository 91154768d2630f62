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
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.paths import resolve_project_path
from bench.results import write_atomic

__all__ = ["SweepProgress", "estimate_remaining", "planned_jobs", "write_plan"]


def planned_jobs(config: DictConfig) -> int:
    """How many Hydra jobs a multirun launches: the product of its sweep lists, as the basic
    sweeper expands them (command-line overrides win over `hydra.sweeper.params`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    by_key: dict[str, str] = {}
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    for key, value in params.items():
        by_key[str(key)] = f"{key}={value}"
    for override in OmegaConf.select(config, "hydra.overrides.task", default=None) or []:
        by_key[override.partition("=")[0].lstrip("+~")] = override
    parsed = OverridesParser.create().parse_overrides(list(by_key.values()))
    jobs = 1
    for override in parsed:
        if override.is_sweep_override():
            jobs *= max(1, len(list(override.sweep_string_iterator())))
    return jobs


def write_plan(config: DictConfig, multirun: bool) -> Path | None:
    """Record the sweep's planned run count; returns the plan file (None if it cannot tell)."""
    try:
        runs_per_job = len(config.seeds) * len(config.n_train)
        total = (planned_jobs(config) if multirun else 1) * runs_per_job
        sweep_dir = resolve_project_path(config.results_dir) / ".sweep"
    except Exception:  # an unusual sweeper: progress falls back to per-job counts
        return None
    from bench.sweep import PLANNED  # the runs bench-run planned: the ETA weighs each by method

    plan = {"id": uuid.uuid4().hex[:12], "total": total, "started": time.time()}
    if PLANNED:
        plan.update(total=len(PLANNED), stems=sorted(PLANNED))
    path = sweep_dir / "plan.json"
    write_atomic(path, json.dumps(plan).encode())
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


def _method_of(stem: str) -> str:
    parts = stem.split("__")  # <dataset>__<method>__n<n>__s<seed>__<id>
    return parts[1] if len(parts) > 2 else stem


def estimate_remaining(plan: dict[str, Any], entries: list[bytes], now: float) -> float | None:
    """Seconds until the sweep ends. Runs differ by orders of magnitude (a classical fit in a
    second, an LLM run in minutes), so each remaining run is estimated from the finished runs of
    the same method (all finished runs when its method has none yet), and the total is divided
    by the parallelism observed so far (run-seconds done per wall-clock second)."""
    elapsed = now - float(plan["started"])
    fields = [e.decode(errors="replace").split() for e in entries]
    new = [f for f in fields if len(f) >= 2 and f[0] == "new"]
    timed = [(f[1], float(f[2])) for f in new if len(f) == 3]
    remaining_count = max(int(plan["total"]) - len(fields), 0)
    if not new or remaining_count == 0 or elapsed <= 0:
        return None
    if "stems" not in plan or not timed:  # no per-run detail: the average pace so far
        return elapsed / len(new) * remaining_count
    by_method: dict[str, list[float]] = {}
    for stem, seconds in timed:
        by_method.setdefault(_method_of(stem), []).append(seconds)
    overall = sum(s for _, s in timed) / len(timed)
    done = {f[1] for f in fields if len(f) >= 2}
    remaining = [stem for stem in plan["stems"] if stem not in done]
    work = sum(
        sum(by_method[m]) / len(by_method[m]) if (m := _method_of(stem)) in by_method else overall
        for stem in remaining
    )
    parallelism = max(1.0, sum(s for _, s in timed) / elapsed)
    return work / parallelism


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

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

from bench.results import write_atomic

__all__ = ["SweepProgress", "planned_jobs", "write_plan"]


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
        sweep_dir = Path(config.results_dir).resolve() / ".sweep"
    except Exception:  # an unusual sweeper: progress falls back to per-job counts
        return None
    plan = {"id": uuid.uuid4().hex[:12], "total": total, "started": time.time()}
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

    def tick(self, stem: str, new: bool) -> str:
        """Note one finished run (`new`: executed now, else found already done); the line to log."""
        self.job_done += 1
        if self.done_file is None:
            return f"[{self.job_done}/{self.job_total} runs of this job]"
        line = f"{'new' if new else 'old'} {stem}\n".encode()
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
        executed = sum(1 for e in entries if e.startswith(b"new"))
        total = max(int(self.plan["total"]), done)
        return f"[sweep {done}/{total} runs, {done / total:.0%}{self._eta(executed, total - done)}]"

    def _eta(self, executed: int, remaining: int) -> str:
        elapsed = time.time() - float(self.plan["started"])
        if executed == 0 or remaining <= 0 or elapsed <= 0:
            return ""
        return f", ETA {_duration(elapsed / executed * remaining)}"


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

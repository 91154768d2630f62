"""Killing a sweep stops its workers; Ctrl-C records the run it interrupted; identical sweeps
sharing a results directory never execute a run twice. Real bench-run processes throughout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import DictConfig

from bench.claims import RunClaims
from bench.results import ResultsStore
from bench.runner import run_job, specs_for

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
BASIC = "hydra/launcher=basic"  # jobs in bench-run's own process
SLOW_METHOD = """
import json, os, time
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from bench.methods.base import MethodKind


class Slow(ClassifierMixin, BaseEstimator):
    def __init__(self, log_dir="", sleep_s=1.0):
        self.log_dir, self.sleep_s = log_dir, sleep_s

    def fit(self, X, y):
        with open(os.path.join(self.log_dir, "fits.log"), "a") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "rows": len(X), "t": time.time()}) + "\\n")
        time.sleep(self.sleep_s)
        self.classes_, counts = np.unique(np.asarray(y), return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X):
        return np.tile(self.prior_, (len(X), 1))


SLOW = MethodKind(build=lambda cfg, context: Slow(**cfg.params))
"""


@pytest.fixture
def slow_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    (tmp_path / "slowmod.py").write_text(SLOW_METHOD)
    logs = tmp_path / "logs"
    logs.mkdir()
    return {**os.environ, "PYTHONPATH": str(tmp_path)}, logs


def slow_args(logs: Path, results: Path, sleep_s: float, *extra: str) -> list[str]:
    return [
        "dataset=callcenter",
        "method=majority",
        "method.kind=slowmod:SLOW",
        f"+method.params.log_dir={logs}",
        f"+method.params.sleep_s={sleep_s}",
        f"results_dir={results}",
        "report=false",
        *extra,
    ]


def fits(logs: Path) -> list[dict]:
    path = logs / "fits.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_killing_bench_run_stops_its_joblib_workers(
    slow_env: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, logs = slow_env
    results = tmp_path / "results"
    sweep_args = ["method.name=slow_a,slow_b", "seeds=[0,1,2,3]", "n_train=[16]"]
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    args = ["-m", *slow_args(logs, results, 4.0, *sweep_args, *launcher)]
    sweep = subprocess.Popen(
        [str(BIN / "bench-run"), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len({f["pid"] for f in fits(logs)}) >= 2, 120, "two workers fitting")
        workers = {f["pid"] for f in fits(logs)}
        sweep.kill()  # SIGKILL: no handler of bench-run's runs
        sweep.wait()
        wait_for(lambda: not any(alive(pid) for pid in workers), 15, "the workers to exit")
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    started = len(fits(logs))
    time.sleep(5)
    assert len(fits(logs)) == started, "a worker went on with the sweep after bench-run died"
    assert started < 8
    records = ResultsStore(results).records()
    interrupted = [r for r in records if "bench-run process" in str(r.get("error"))]
    assert len(interrupted) >= 2, [(r["status"], r.get("error")) for r in records]
    assert all(r["status"] == "failed" for r in interrupted)
    assert not [r for r in records if r["status"] == "running"]


@pytest.mark.parametrize(
    ("stop", "says"),
    [(signal.SIGINT, "KeyboardInterrupt"), (signal.SIGTERM, "SystemExit")],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_or_sigterm_records_the_interrupted_run_as_failed(
    slow_env: tuple[dict[str, str], Path], tmp_path: Path, stop: signal.Signals, says: str
) -> None:
    env, logs = slow_env
    results = tmp_path / "results"
    sweep = subprocess.Popen(
        [
            str(BIN / "bench-run"),
            *slow_args(logs, results, 30.0, "seeds=[0]", "n_train=[16]", BASIC),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A shell runs background jobs (`pytest &`) with SIGINT ignored, which a child inherits
        # and Python then keeps: give bench-run the default Ctrl-C, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for(lambda: fits(logs), 120, "the fit to start")
        sweep.send_signal(stop)
        output = sweep.communicate(timeout=60)[0]
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    (record,) = ResultsStore(results).records()
    assert record["status"] == "failed"
    assert f"interrupted ({says})" in record["error"]
    # The summary says what happened, and nothing after it: no traceback, no blame on the
    # results folder, the shell's status of a stopped command.
    assert "Traceback" not in output, output
    assert "results_dir" not in output and "cannot be written" not in output, output
    expected = "interrupted by Ctrl-C" if stop == signal.SIGINT else "stopped by SIGTERM"
    assert f"The sweep stopped early ({expected})" in output, output
    assert "Executed 1 new run(s) (1 failed)" in output, output
    assert sweep.returncode == 128 + stop, output


def test_two_identical_sweeps_execute_each_run_once(
    slow_env: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, logs = slow_env
    results = tmp_path / "results"
    args = slow_args(logs, results, 1.5, "seeds=[0,1,2,3]", "n_train=[16,32]", BASIC)
    sweeps = [
        subprocess.Popen(
            [str(BIN / "bench-run"), *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [sweep.communicate(timeout=300)[0] for sweep in sweeps]
    assert [s.returncode for s in sweeps] == [0, 0], outputs
    assert len(fits(logs)) == 8, "some run was fitted twice"
    records = ResultsStore(results).records()
    assert sorted(r["status"] for r in records) == ["ok"] * 8
    assert not list((results / "failures").glob("*.json"))
    assert not list(RunClaims(results).dir.glob("*.lock"))  # every claim released
    # Each summary claims only the runs its own sweep executed; together they are all 8.
    claimed = [int(re.search(r"Executed (\d+) new run", out).group(1)) for out in outputs]
    assert sum(claimed) == 8, outputs
    if len({f["pid"] for f in fits(logs)}) == 2:  # they overlapped: each saw the other's claims
        assert all(n < 8 for n in claimed), outputs
        assert any("executed by another process" in out for out in outputs)
        for out, mine in zip(outputs, claimed, strict=True):
            if mine < 8:
                assert f"{8 - mine} run(s) of this sweep were executed by another process" in out
                assert "Nothing new to run" not in out


def test_a_repeated_seed_or_size_is_one_run(compose_run, tmp_path: Path) -> None:
    cfg: DictConfig = compose_run(
        "dataset=callcenter", "method=majority", "seeds=[0,0,1]", "n_train=[16,16]"
    )
    assert [(s.seed, s.n_train) for s in specs_for(cfg)] == [(0, 16), (1, 16)]
    summary = run_job(cfg)
    assert dict(summary.executed) == {"ok": 2}


def test_a_stale_claim_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claims = RunClaims(tmp_path)
    claims.dir.mkdir(parents=True)
    claims.path("run").write_text(
        json.dumps({"host": claims.host, "pid": dead.pid, "since": time.time()})
    )
    assert claims.claim("run")
    assert claims.holder("run")["pid"] == os.getpid()
    other = RunClaims(tmp_path)
    other.pid = os.getppid()  # a live process that is not us
    assert not other.claim("run")
    claims.release("run")
    assert claims.holder("run") is None

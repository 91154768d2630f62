"""Crash safety: a sweep killed midway resumes without redoing finished runs or finished LLM
calls, a job that dies inside a launcher is recorded as failed, and `settle_orphans` only ever
touches `running` markers of dead processes on this host."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from bench.results import RUNNING, ResultsStore, load_results
from bench.runner import run_job, specs_for

Compose = Callable[..., DictConfig]

BENCH_RUN = Path(sys.executable).with_name("bench-run")
HOST = socket.gethostname()
TEST_ROWS = 6
# One job, three runs one after another in one process; scoring in batches of two queries, so
# the request cache fills while a run is still going.
CRASH_SWEEP = (
    "hydra/launcher=basic",
    "dataset=callcenter",
    "method=llm_icl",
    "serializer=csv_table",
    "seeds=[0,1,2]",
    "n_train=[4]",
    f"split.max_test_rows={TEST_ROWS}",
    "+method.params.batch_size=2",
    "llm=local_smollm2_135m",
    "report=false",
)


# -- helpers -------------------------------------------------------------------------------------
def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """bench-run in its own process group (so the group can be killed), output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BENCH_RUN), *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def run_records(results: Path) -> dict[str, dict[str, Any]]:
    """Every runs/*.json by stem; each one must parse, whenever it is read (atomic writes)."""
    out = {}
    for path in sorted((results / "runs").glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except ValueError as error:  # pragma: no cover - the failure this guards against
            pytest.fail(f"half-written run record {path.name}: {error}")
    return out


def cache_rows(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        conn.close()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def progress_lines(text: str) -> list[str]:
    return re.findall(r"\[sweep \d+/\d+ runs, \d+%(?:, ETA \d+[hm]\d\d[ms])?\]", text)


# -- settle_orphans --------------------------------------------------------------------------
def marker(stem: str, **fields: Any) -> dict[str, Any]:
    """A `running` marker as run_job writes it when a run starts."""
    return {
        "run_stem": stem,
        "dataset": "callcenter",
        "method": "logreg",
        "status": RUNNING,
        "error": None,
        "attempts": 1,
        "finished_at": "2026-01-02T03:04:05+00:00",
        "host": HOST,
        "pid": os.getpid(),
        **fields,
    }


def test_a_marker_of_a_dead_process_on_this_host_becomes_failed(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    pid = dead_pid()
    store.save(marker("a__logreg__n16__s0__1", pid=pid))
    assert store.settle_orphans() == 1
    record = store.load("a__logreg__n16__s0__1")
    assert record["status"] == "failed"
    assert "died" in record["error"]
    # What is known is kept and said: host, pid, start time.
    assert (record["host"], record["pid"]) == (HOST, pid)
    for known in (HOST, str(pid), "2026-01-02T03:04:05"):
        assert known in record["error"]
    # finished_at says when the death was noticed; the start time is kept as started_at
    assert record["started_at"] == "2026-01-02T03:04:05+00:00"
    assert record["finished_at"] > record["started_at"]
    assert store.settle_orphans() == 0  # settled once


def test_markers_of_live_processes_and_other_hosts_are_left_alone(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.save(marker("live__logreg__n16__s0__1", pid=os.getpid()))
    store.save(marker("node__logreg__n16__s0__1", host=f"not-{HOST}", pid=dead_pid()))
    assert store.settle_orphans() == 0
    assert {r["status"] for r in store.records()} == {RUNNING}


def test_a_finished_record_is_never_replaced(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    stem = "done__logreg__n16__s0__1"
    finished = {**marker(stem), "status": "ok", "metrics": {"accuracy": 0.8}}
    store.save(finished)
    before = store.record_path(stem).read_bytes()
    # A late marker (or a failed retry) of the same run goes to failures/, not over the result.
    assert store.save(marker(stem, pid=dead_pid())) == store.failures_dir / f"{stem}.json"
    assert store.save({**marker(stem), "status": "failed"}).parent == store.failures_dir
    assert store.settle_orphans() == 0
    assert store.record_path(stem).read_bytes() == before


def test_a_truncated_record_is_rerun_not_read(compose_run: Compose) -> None:
    cfg = compose_run("dataset=callcenter", "method=logreg", "seeds=[0]", "n_train=[16,64]")
    assert dict(run_job(cfg).executed) == {"ok": 2}
    store = ResultsStore(cfg.results_dir)
    broken, intact = (spec.stem for spec in specs_for(cfg))
    kept = store.record_path(intact).read_bytes()
    text = store.record_path(broken).read_text()
    store.record_path(broken).write_text(text[: len(text) // 2])  # what a torn write would leave
    again = run_job(cfg)
    assert (dict(again.executed), again.already_done) == ({"ok": 1}, 1)
    assert store.load(broken)["status"] == "ok"
    assert store.record_path(intact).read_bytes() == kept
    assert len(load_results(cfg.results_dir)) == 2


# -- a sweep killed midway, then rerun ----------------------------------------------------------
def midway(results: Path, cache: Path) -> bool:
    """Some run of the crash sweep is recorded, and a later one has answers in the cache."""
    done = [r for r in run_records(results).values() if r["status"] == "ok"]
    billed = sum(r["usage"]["requests"] for r in done)
    return 0 < len(done) < 3 and cache_rows(cache) > billed


@pytest.mark.e2e
def test_a_killed_sweep_resumes_without_redoing_finished_work(tmp_path: Path) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache.sqlite"
    args = [*CRASH_SWEEP, f"llm.cache_path={cache}", f"results_dir={results}"]
    sweep = start(args, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 300
        while True:
            assert sweep.poll() is None, (
                "the sweep ended before it could be killed:\n"
                + (tmp_path / "first.log").read_text()[-3000:]
            )
            assert time.monotonic() < deadline, "no run finished within 300 s"
            # Kill once a run is recorded and the next one has answers in the cache; checked
            # again with the sweep stopped, so that it is still true at the kill.
            if midway(results, cache):
                os.killpg(sweep.pid, signal.SIGSTOP)
                if midway(results, cache):
                    break
                os.killpg(sweep.pid, signal.SIGCONT)
            time.sleep(0.02)
    finally:
        kill_group(sweep)

    killed = run_records(results)
    finished = {stem: r for stem, r in killed.items() if r["status"] == "ok"}
    in_flight = [r for r in killed.values() if r["status"] == RUNNING]
    assert 1 <= len(finished) < 3
    assert len(in_flight) == 1, {s: r["status"] for s, r in killed.items()}
    assert in_flight[0]["host"] == HOST
    cached_at_kill = cache_rows(cache)
    billed = sum(r["usage"]["requests"] for r in finished.values())
    assert cached_at_kill > billed
    finished_files = {
        stem: (results / "runs" / f"{stem}.json").read_bytes()
        + (results / r["predictions_file"]).read_bytes()
        for stem, r in finished.items()
    }
    # A write the kill cut short leaves only a hidden temporary file, never a result.
    stem = in_flight[0]["run_stem"]
    (results / "runs" / f".{stem}.json.x1y2z3.tmp").write_text('{"status": "ok", "metr')

    again = subprocess.run(
        [str(BENCH_RUN), *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr[-3000:]
    new = 3 - len(finished)
    assert f"Executed {new} new run(s) ({new} ok); {len(finished)} run(s) already" in again.stdout
    lines = progress_lines(again.stdout + again.stderr)
    assert len(lines) == new and lines[-1] == "[sweep 3/3 runs, 100%]", lines

    after = run_records(results)
    assert len(after) == 3 and {r["status"] for r in after.values()} == {"ok"}
    assert len(load_results(results)) == 3
    for stem, data in finished_files.items():  # reused as they were, not recomputed
        record = after[stem]
        assert (results / "runs" / f"{stem}.json").read_bytes() + (
            results / record["predictions_file"]
        ).read_bytes() == data
    rerun = [r for s, r in after.items() if s not in finished]
    for record in rerun:
        assert record["usage"]["requests"] + record["usage"]["cache_hits"] == TEST_ROWS
    # Every LLM answer computed before the kill is served from the cache, none twice.
    assert sum(r["usage"]["cache_hits"] for r in rerun) == cached_at_kill - billed
    resumed = after[in_flight[0]["run_stem"]]
    assert resumed["usage"]["cache_hits"] >= 1  # answers of the killed run, kept one by one
    assert resumed["attempts"] == 2
    assert cache_rows(cache) == 3 * TEST_ROWS


# -- a launcher worker dies ------------------------------------------------------------------
def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


@pytest.mark.e2e
def test_a_job_whose_joblib_worker_dies_is_recorded_as_failed(tmp_path: Path) -> None:
    results = tmp_path / "results"
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "dataset=callcenter",
        "method=majority,llm_icl",
        "seeds=[0]",
        "n_train=[4]",
        f"split.max_test_rows={TEST_ROWS}",
        "llm=local_smollm2_135m",
        f"llm.cache_path={tmp_path / 'cache.sqlite'}",
        "report=false",
        f"results_dir={results}",
    ]
    log = tmp_path / "sweep.log"
    sweep = start(args, log)
    try:
        deadline, victim = time.monotonic() + 180, None
        while victim is None:
            assert sweep.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the llm_icl run never started"
            status = {r["method"]: r for r in run_records(results).values()}
            llm, other = status.get("llm_icl"), status.get("majority")
            # The LLM run is under way (and the other job is done, so only one run dies).
            if llm and llm["status"] == RUNNING and other and other["status"] == "ok":
                victim = int(llm["pid"])
            time.sleep(0.02)
        # The marker names the loky worker running the job: a child of bench-run.
        assert victim != sweep.pid and parent_of(victim) == sweep.pid
        os.kill(victim, signal.SIGKILL)
        sweep.wait(timeout=120)
    finally:
        kill_group(sweep)
    output = log.read_text()
    assert sweep.returncode != 0
    assert "1 run(s) died with their job and are recorded as failed" in output, output[-3000:]
    records = {r["method"]: r for r in run_records(results).values()}
    assert records["majority"]["status"] == "ok"
    died = records["llm_icl"]
    assert died["status"] == "failed"
    assert "died" in died["error"] and str(victim) in died["error"]
    assert (died["host"], died["pid"]) == (HOST, victim)
    assert "Executed 2 new run(s) (1 failed, 1 ok)" in output


# -- completed LLM calls of a killed run ---------------------------------------------------------
COMPLETION = {
    "id": "cmpl-1",
    "object": "text_completion",
    "created": 0,
    "model": "local-model",
    # no logprobs: the answer and its probability, as `llm.scoring=verbalized` asks for them
    "choices": [
        {"index": 0, "text": " yes\nProbability: 90", "finish_reason": "stop", "logprobs": None}
    ],
    "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
}


class CountingEndpoint:
    """A loopback OpenAI-compatible completions endpoint that answers "yes" and counts requests.

    After `answer_limit` answers it stops answering (the request hangs), as a run killed while
    waiting on the endpoint would see it.
    """

    def __init__(self, answer_limit: int | None = None) -> None:
        self.answer_limit = answer_limit
        self.received = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with endpoint._lock:
                    endpoint.received += 1
                    hang = endpoint.answer_limit is not None and (
                        endpoint.received > endpoint.answer_limit
                    )
                if hang:
                    endpoint.release.wait(timeout=120)
                    return
                body = json.dumps(COMPLETION).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[CountingEndpoint]:
    server = CountingEndpoint(answer_limit=3)
    yield server
    server.close()


@pytest.mark.e2e
def test_calls_answered_before_a_kill_are_not_billed_again(
    endpoint: CountingEndpoint, tmp_path: Path
) -> None:
    rows = 6
    results = tmp_path / "results"
    args = [
        "hydra/launcher=basic",
        "dataset=callcenter",
        "method=llm_icl",
        "seeds=[0]",
        "n_train=[4]",
        f"split.max_test_rows={rows}",
        "llm=openai_compatible",
        f"llm.base_url={endpoint.url}",
        "llm.max_concurrency=1",  # one request at a time: exactly 3 answered before the kill
        "llm.scoring=verbalized",  # the endpoint gives no logprobs: one verbalized ask per row
        f"llm.cache_path={tmp_path / 'cache.sqlite'}",
        "report=false",
        f"results_dir={results}",
    ]
    sweep = start(args, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 120
        while endpoint.received <= 3:  # 3 answered, the 4th is waiting for its answer
            assert sweep.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        kill_group(sweep)
    endpoint.answer_limit, endpoint.received = None, 0
    endpoint.release.set()

    again = subprocess.run(
        [str(BENCH_RUN), *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr[-3000:]
    (record,) = run_records(results).values()
    assert record["status"] == "ok", record["error"]
    assert record["usage"]["cache_hits"] + record["usage"]["requests"] == rows
    assert endpoint.received == rows - 3  # only the calls that had not been answered
    assert record["usage"]["cache_hits"] == 3

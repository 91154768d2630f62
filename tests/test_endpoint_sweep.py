"""A dead or silent endpoint fails a sweep fast, once for all its jobs: bench-run over two jobs
against a loopback endpoint that accepts and never answers (bench/endpoint.py)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench.paths import PROJECT_ROOT

if TYPE_CHECKING:
    from loopback import FaultProxy

BENCH_RUN = PROJECT_ROOT / ".venv" / "bin" / "bench-run"


@pytest.mark.e2e
def test_a_silent_endpoint_fails_a_two_job_sweep_fast(
    fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    """An endpoint that accepts and never answers: the first run's 4 concurrent requests time
    out after their retries and all count, so the breaker opens after one run's retry budget
    (2 x 1 s); the job's next run and every run of the second job fail at once, naming the
    URL, the llm config and the setting."""
    proxy = fault_proxy(None, then="hang")
    results = tmp_path / "results"
    start = time.monotonic()
    done = subprocess.run(
        [
            str(BENCH_RUN),
            "-m",
            "dataset=callcenter,credit_data",
            "method=llm_icl",
            "llm=openai_compatible",
            f"llm.base_url={proxy.url}",
            "llm.timeout_s=1",
            "llm.max_retries=1",
            "llm.backoff_s=0.05",
            "split.max_test_rows=4",
            "seeds=[0,1]",
            "n_train=[4]",
            "report=false",
            f"results_dir={results}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - start
    records = [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]
    assert len(records) == 4, done.stdout[-2000:] + done.stderr[-3000:]
    assert {r["status"] for r in records} == {"failed"}
    tried = [r for r in records if not r["error"].startswith("not attempted: ")]
    assert len(tried) == 1 and tried[0]["error"].startswith("LLMUnavailableError")
    for record in records:
        if record is not tried[0]:
            error = record["error"]
            assert "requests in a row could not reach the LLM endpoint" in error
            assert proxy.url in error and "llm 'openai_compatible'" in error
            assert "llm.max_consecutive_failures=3" in error
            assert record["usage"]["requests"] == 0
    assert {r["dataset"] for r in records} == {"callcenter", "credit_data"}
    assert len(proxy.attempts) == 4 * 2  # one run's requests, each tried twice: no more
    assert elapsed < 120, elapsed

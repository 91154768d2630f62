"""The endpoint breaker (bench/endpoint.py): requests that cannot reach an endpoint count, the
count is shared by the jobs of a sweep through the results store (safe under concurrent
writers), an answer resets it and a new sweep starts from zero. The sweep itself against a
silent endpoint: tests/test_endpoint_sweep.py."""

from __future__ import annotations

import json
from pathlib import Path

from bench.endpoint import EndpointBreaker

LLM = {
    "name": "openai_compatible",
    "base_url": "http://127.0.0.1:9/v1",
    "model": "m",
    "max_consecutive_failures": 2,
}


def plan(results: Path, sweep_id: str) -> None:
    """What bench-run writes when a sweep starts (bench/progress.py)."""
    (results / ".sweep").mkdir(parents=True, exist_ok=True)
    (results / ".sweep" / "plan.json").write_text(json.dumps({"id": sweep_id, "total": 1}))


def test_the_count_is_shared_by_the_jobs_of_a_sweep_and_reset_by_the_next(tmp_path: Path) -> None:
    plan(tmp_path, "sweep-1")
    first, second = EndpointBreaker(LLM, tmp_path), EndpointBreaker(LLM, tmp_path)
    first.failure(TimeoutError("no answer"))
    assert second.in_a_row == 1 and not second.open
    second.failure(TimeoutError("no answer"))
    assert first.open  # a job in another process sees it
    assert "http://127.0.0.1:9/v1" in first.reason and "llm 'openai_compatible'" in first.reason
    assert "llm.max_consecutive_failures=2" in first.reason and "no answer" in first.reason
    assert list((tmp_path / ".sweep").glob("endpoint-*.json"))
    plan(tmp_path, "sweep-2")  # a new sweep tries the endpoint again
    assert EndpointBreaker(LLM, tmp_path).in_a_row == 0


def _fail(results: Path, times: int) -> None:
    breaker = EndpointBreaker({**LLM, "max_consecutive_failures": 1000}, results)
    for _ in range(times):
        breaker.failure("x")


def test_concurrent_writers_lose_no_count(tmp_path: Path) -> None:
    import multiprocessing

    plan(tmp_path, "sweep-1")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_fail, args=(tmp_path, 25)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0] * 4
    assert EndpointBreaker(LLM, tmp_path).in_a_row == 100


def test_an_answer_resets_the_count(tmp_path: Path) -> None:
    plan(tmp_path, "sweep-1")
    breaker = EndpointBreaker(LLM, tmp_path)
    breaker.failure("LLMUnavailableError: refused")
    breaker.success()
    breaker.failure("LLMUnavailableError: refused")
    assert breaker.in_a_row == 1 and not breaker.open


def test_without_a_sweep_plan_the_count_is_the_jobs_own(tmp_path: Path) -> None:
    breaker = EndpointBreaker(LLM, tmp_path)  # run_job from Python: no bench-run plan
    breaker.failure("x")
    breaker.failure("x")
    assert breaker.open and not EndpointBreaker(LLM, tmp_path).open
    assert not (tmp_path / ".sweep").exists()


def test_zero_never_gives_up(tmp_path: Path) -> None:
    plan(tmp_path, "sweep-1")
    breaker = EndpointBreaker({**LLM, "max_consecutive_failures": 0}, tmp_path)
    for _ in range(5):
        breaker.failure("x")
    assert not breaker.open

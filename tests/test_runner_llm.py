"""run_job with the LLM family on the embedded SmolLM2: usage in the record, a rerun served from
the request cache, an unreachable endpoint and a too-small context recorded, not raised."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import DictConfig

from bench.config import compose_config
from bench.llm.server import free_port
from bench.results import METRIC_COLUMNS, ResultsStore
from bench.runner import JobSummary, run_job, specs_for

Compose = Callable[..., DictConfig]

TEST_ROWS = 10
JOB = (
    "dataset=callcenter",
    "method=llm_icl",
    "seeds=[0]",
    "n_train=[0,8]",
    f"split.max_test_rows={TEST_ROWS}",
)
LLM_JOB = (*JOB, "llm=local_smollm2_135m")


def records(cfg: DictConfig) -> dict[int | str, dict[str, Any]]:
    """The job's run records by requested n_train."""
    return {r["n_train_requested"]: r for r in ResultsStore(cfg.results_dir).records()}


@dataclass(frozen=True)
class CachedRerun:
    first: DictConfig
    first_summary: JobSummary
    second: DictConfig
    second_summary: JobSummary
    cache_path: Path


@pytest.fixture(scope="module")
def llm_job(tmp_path_factory: pytest.TempPathFactory) -> CachedRerun:
    """The LLM job run twice into fresh results folders, sharing one request cache."""
    work = tmp_path_factory.mktemp("llm_job")
    cache = work / "cache.sqlite"

    def compose(results: str) -> DictConfig:
        return compose_config(
            [*LLM_JOB, f"llm.cache_path={cache}", f"results_dir={work / results}"]
        )

    first, second = compose("first"), compose("second")
    first_summary = run_job(first)
    second_summary = run_job(second)
    return CachedRerun(first, first_summary, second, second_summary, cache)


@pytest.mark.e2e
def test_llm_runs_are_recorded_with_their_usage(llm_job: CachedRerun) -> None:
    assert dict(llm_job.first_summary.executed) == {"ok": 2}
    runs = records(llm_job.first)
    assert set(runs) == {0, 8}
    store = ResultsStore(llm_job.first.results_dir)
    for n_train, record in runs.items():
        assert record["status"] == "ok", record["error"]
        assert (record["method"], record["family"]) == ("llm_icl", "llm_icl")
        assert record["llm"] == "local_smollm2_135m"
        assert record["n_train"] == n_train and record["n_test"] == TEST_ROWS
        assert set(record["metrics"]) == set(METRIC_COLUMNS)
        usage = record["usage"]
        assert usage["requests"] == TEST_ROWS
        assert usage["cache_hits"] == 0
        assert usage["prompt_tokens"] > 0 and usage["llm_seconds"] > 0
        assert usage["usd"] == 0.0
        assert record["details"]["shots"] == n_train
        assert record["details"]["scoring"] == {"logprobs": TEST_ROWS}
        assert record["spec"]["llm"]["model"] == "SmolLM2-135M-Instruct"
        predictions = store.predictions(record)
        assert len(predictions) == TEST_ROWS
        proba = predictions[["proba_no", "proba_yes"]].sum(axis=1)
        assert proba.to_numpy() == pytest.approx(1.0)
    # The shots are a prefix every query shares: most prompt tokens come from the KV cache.
    few_shot = runs[8]["usage"]
    assert few_shot["cached_tokens"] > few_shot["prompt_tokens"] / 2


@pytest.mark.e2e
def test_a_rerun_with_the_same_cache_makes_no_requests(llm_job: CachedRerun) -> None:
    assert dict(llm_job.second_summary.executed) == {"ok": 2}
    first, second = records(llm_job.first), records(llm_job.second)
    for n_train in (0, 8):
        usage = second[n_train]["usage"]
        assert usage["cache_hits"] == TEST_ROWS
        assert usage["requests"] == 0
        assert usage["prompt_tokens"] == 0 and usage["usd"] == 0.0
        assert second[n_train]["run_id"] == first[n_train]["run_id"]
        assert second[n_train]["metrics"] == first[n_train]["metrics"]
        pd.testing.assert_frame_equal(
            ResultsStore(llm_job.second.results_dir).predictions(second[n_train]),
            ResultsStore(llm_job.first.results_dir).predictions(first[n_train]),
        )


@pytest.mark.e2e
def test_zero_shot_runs_for_llm_icl_but_is_skipped_for_majority(
    llm_job: CachedRerun, compose_run: Compose
) -> None:
    assert records(llm_job.first)[0]["status"] == "ok"
    cfg = compose_run("dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[0]")
    assert dict(run_job(cfg).executed) == {"skipped": 1}
    assert "needs training rows" in records(cfg)[0]["error"]


def test_an_unreachable_endpoint_records_failed_runs_and_the_job_goes_on(
    compose_run: Compose, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    cfg = compose_run(
        *JOB,
        "llm=openai_compatible",
        f"llm.base_url={url}",
        "llm.max_retries=1",
        "llm.backoff_s=0.01",
        "llm.max_consecutive_failures=0",  # each run tries (the breaker: test_endpoint_breaker)
        f"llm.cache_path={tmp_path / 'cache.sqlite'}",
    )
    summary = run_job(cfg)  # returns: one endpoint's failure never crashes the sweep
    assert dict(summary.executed) == {"failed": 2}
    for record in records(cfg).values():
        assert record["status"] == "failed"
        assert record["llm"] == "openai_compatible"
        assert record["error"].startswith("LLMUnavailableError: ")
        assert url in record["error"] and "'openai_compatible'" in record["error"]
        assert "after 2 attempts" in record["error"]
        assert record["metrics"] == {}
    # Other methods of the same sweep go on, into the same results folder.
    others = compose_run("dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[8]")
    assert dict(run_job(others).executed) == {"ok": 1}
    assert dict(run_job(cfg).executed) == {"failed": 2}  # failed runs are retried next time


def test_a_context_too_small_for_the_prompt_is_a_skipped_run(
    compose_run: Compose, tmp_path: Path
) -> None:
    cfg = compose_run(*LLM_JOB, "llm.n_ctx=32", f"llm.cache_path={tmp_path / 'cache.sqlite'}")
    assert dict(run_job(cfg).executed) == {"skipped": 2}
    for record in records(cfg).values():
        assert record["status"] == "skipped"
        found = re.search(
            r"prompt of (\d+) tokens exceeds the context window of 32 tokens", record["error"]
        )
        assert found, record["error"]
        assert int(found.group(1)) > 32
        assert "local_smollm2_135m" in record["error"] and "llm.n_ctx" in record["error"]


def test_a_run_skipped_for_its_prompt_length_is_not_redone(
    compose_run: Compose, tmp_path: Path
) -> None:
    cfg = compose_run(*LLM_JOB, "llm.n_ctx=32", f"llm.cache_path={tmp_path / 'cache.sqlite'}")
    assert dict(run_job(cfg).executed) == {"skipped": 2}
    again = run_job(cfg)  # skipped is a finished status (bench.results.DONE_STATUSES)
    assert (sum(again.executed.values()), again.already_done) == (0, 2)


@pytest.mark.e2e
def test_a_too_small_context_is_skipped_even_when_the_cache_has_the_answers(
    llm_job: CachedRerun, compose_run: Compose
) -> None:
    cfg = compose_run(*LLM_JOB, "llm.n_ctx=32", f"llm.cache_path={llm_job.cache_path}")
    run_job(cfg)
    assert {r["status"] for r in records(cfg).values()} == {"skipped"}


def test_run_ids_follow_the_llm_but_not_how_it_is_called(compose_run: Compose) -> None:
    base = ("dataset=callcenter", "method=llm_icl", "seeds=[0]", "n_train=[8]")

    def stem(*overrides: str) -> str:
        return specs_for(compose_run(*base, *overrides))[0].stem

    smollm = stem("llm=local_smollm2_135m")
    assert stem("llm=local_gemma3_270m") != smollm
    assert stem("llm=local_smollm2_135m", "llm.n_ctx=4096") != smollm  # what the model sees
    for operational in (
        "llm.max_concurrency=2",
        "llm.cache=false",
        "llm.cache_path=/elsewhere/cache.sqlite",
        "llm.n_threads=1",
        "llm.timeout_s=5",
        "llm.max_retries=0",
    ):
        assert stem("llm=local_smollm2_135m", operational) == smollm, operational
    # A method that uses no LLM does not change with the llm choice.
    majority = ("dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[8]")
    assert (
        specs_for(compose_run(*majority, "llm=local_gemma3_270m"))[0].stem
        == specs_for(compose_run(*majority, "llm=local_smollm2_135m"))[0].stem
    )
    assert specs_for(compose_run(*majority))[0].llm is None


def test_a_dead_endpoint_fails_the_remaining_runs_at_once(compose_run, tmp_path: Path) -> None:
    import time

    from bench.llm.server import free_port
    from bench.results import ResultsStore
    from bench.runner import run_job

    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    cfg = compose_run(
        "dataset=callcenter",
        "method=llm_icl",
        "llm=openai_compatible",
        f"llm.base_url={dead}",
        "llm.max_retries=1",
        "llm.backoff_s=0.05",
        "llm.max_consecutive_failures=2",
        "split.max_test_rows=4",
        "seeds=[0,1,2]",
        "n_train=[4]",
    )
    start = time.monotonic()
    summary = run_job(cfg)
    assert time.monotonic() - start < 60
    assert dict(summary.executed) == {"failed": 3}
    records = sorted(ResultsStore(cfg.results_dir).records(), key=lambda r: r["seed"])
    # the first run's requests (4 test rows) failed after their retries: the breaker opened
    assert records[0]["error"].split(":")[0] == "LLMUnavailableError"
    for later in records[1:]:
        assert later["error"].startswith("not attempted: ")
        assert "requests in a row could not reach the LLM endpoint" in later["error"]
        assert dead in later["error"] and "llm.max_consecutive_failures=2" in later["error"]
        assert later["usage"]["requests"] == 0

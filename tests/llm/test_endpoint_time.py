"""What an endpoint's requests are recorded as costing: the wall time of concurrent requests
(not the sum of their latencies), and every request sent, retries included. Against the real
loopback server, a fault proxy in front of it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from omegaconf import DictConfig

from bench.llm import LLMUnavailableError, make_backend
from bench.llm.openai_backend import WallShares
from bench.llm.requests import GenerateRequest, ScoreRequest

if TYPE_CHECKING:
    from loopback import FaultProxy, LLMServer

pytestmark = pytest.mark.e2e

Compose = Callable[..., DictConfig]
StartProxy = Callable[..., "FaultProxy"]
QUICK = ("llm.backoff_s=0.05", "llm.backoff_max_s=5")


def test_wall_shares_add_up_to_the_wall_time_not_the_latencies() -> None:
    clock = WallShares()
    first = clock.start()
    second = clock.start()  # two in flight: each accrues half of every second
    time.sleep(0.2)
    a = clock.stop(first)
    time.sleep(0.1)  # the second alone
    b = clock.stop(second)
    assert a == pytest.approx(0.1, abs=0.03) and b == pytest.approx(0.2, abs=0.03)
    assert a + b == pytest.approx(0.3, abs=0.03)  # the latencies add up to 0.5


def test_an_llm_run_records_the_wall_time_of_its_concurrent_requests(
    llm_server: LLMServer, fault_proxy: StartProxy, compose_run: Compose, tmp_path: Path
) -> None:
    """8 test rows, 4 requests at a time, each held 1 s by the proxy: the predict phase takes
    about 2-3 s of wall time while its requests' latencies add up to 8 s or more. The record
    says the wall time (`llm_wall_seconds`) and `usd_per_hour` is charged on it."""
    from bench.job import run_job
    from bench.results import ResultsStore

    proxy = fault_proxy(llm_server, then="late", late_s=1.0)
    cfg = compose_run(
        "dataset=callcenter",
        "method=llm_icl",
        "llm=openai_compatible",
        f"llm.base_url={proxy.url}",
        f"llm.model={llm_server.model}",
        "llm.api=completions",
        "llm.max_concurrency=4",
        "llm.cache=false",
        "llm.prices.usd_per_hour=3600",  # $1 a second: usd reads as seconds charged
        "split.max_test_rows=8",
        "seeds=[0]",
        "n_train=[4]",
    )
    start = time.monotonic()
    run_job(cfg)
    elapsed = time.monotonic() - start
    (record,) = ResultsStore(cfg.results_dir).records()
    assert record["status"] == "ok", record["error"]
    usage, timing = record["usage"], record["timing"]
    predicting = usage["llm_wall_seconds"] - usage["fit_llm_wall_seconds"]
    latencies = usage["llm_seconds"] - usage["fit_llm_seconds"]
    assert usage["requests"] - usage["fit_requests"] == 8
    # the wall time the phase's requests took: within the phase, and most of it
    assert 0.5 * timing["predict_s"] <= predicting <= timing["predict_s"] + 0.05
    assert predicting <= elapsed
    assert latencies >= 8.0 and latencies > 2.5 * predicting  # what was recorded before
    assert usage["usd"] == pytest.approx(usage["llm_wall_seconds"], rel=1e-6)


def test_every_request_sent_is_counted_retries_included(
    llm_server: LLMServer, openai_llm: Compose, fault_proxy: StartProxy
) -> None:
    """`requests` counts answers, `requests_sent` the HTTP requests sent for them: a request
    that timed out twice (a slow answer, then none at all) and was answered the third time."""
    proxy = fault_proxy(llm_server, script=["slow", "hang"], slow_s=3.0)
    cfg = openai_llm(
        proxy.url,
        "llm.api=completions",
        "llm.timeout_s=1",
        "llm.max_retries=3",
        *QUICK,
        model=llm_server.model,
    )
    backend = make_backend(cfg, use_cache=False)
    (result,) = backend.generate([GenerateRequest("Once upon a time", max_tokens=4)])
    assert [a.fault for a in proxy.attempts] == ["slow", "hang", "forward"]
    assert (result.usage.requests, result.usage.requests_sent) == (1, 3)
    (again,) = backend.score([ScoreRequest("The capital of France is", [" Paris", " London"])])
    assert (again.usage.requests, again.usage.requests_sent) == (1, 1)


def test_an_answer_that_is_not_json_names_the_endpoint(
    openai_llm: Compose, fault_proxy: StartProxy
) -> None:
    proxy = fault_proxy(None, then="badjson")
    cfg = openai_llm(proxy.url, "llm.api=completions", *QUICK)
    backend = make_backend(cfg, use_cache=False)
    with pytest.raises(LLMUnavailableError) as caught:
        backend.score([ScoreRequest("The capital of France is", [" Paris", " London"])])
    message = str(caught.value)
    assert proxy.url in message and "llm 'openai_compatible'" in message
    assert "not JSON" in message and "llm.base_url" in message
    assert len(proxy.attempts) == 1  # a wrong answer is not asked again

"""The OpenAI-compatible backend (the `openai` SDK) against a real llama-cpp-python server, and
through a fault-injecting proxy in front of it: retries, Retry-After, timeouts, clear errors."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from omegaconf import DictConfig

from bench.llm import LLMConfigError, LLMUnavailableError, PromptTooLongError, make_backend
from bench.llm.requests import GenerateRequest, ScoreRequest

if TYPE_CHECKING:
    from loopback import FaultProxy, LLMServer

pytestmark = pytest.mark.e2e

Compose = Callable[..., DictConfig]
StartProxy = Callable[..., "FaultProxy"]

PROMPT = "The capital of France is"
LABELS = [" Paris", " London"]
# Fast failures: the first retry after 0.05 s (the jitter makes it 0.025-0.05 s).
QUICK = ("llm.backoff_s=0.05", "llm.backoff_max_s=5")


def assert_distribution(probs: dict[str, float], labels: list[str]) -> None:
    assert list(probs) == labels
    assert all(p >= 0 for p in probs.values())
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_score_returns_a_distribution_from_logprobs(
    llm_server: LLMServer, openai_llm: Compose, api: str
) -> None:
    cfg = openai_llm(llm_server.base_url, f"llm.api={api}", model=llm_server.model)
    (result,) = make_backend(cfg, use_cache=False).score([ScoreRequest(PROMPT, LABELS)])
    assert_distribution(result.probs, LABELS)
    assert result.method == "logprobs" and result.valid
    assert result.usage.requests == 1
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert result.usage.llm_seconds > 0
    if api == "completions":  # a raw continuation: the obvious answer wins
        assert result.probs[" Paris"] > 0.8


def test_completions_without_logprob_mass_falls_back_honestly(
    llm_server: LLMServer, openai_llm: Compose
) -> None:
    """SmolLM2 ends a raw "Answer:" prompt at once (EOS): no answer token, so no label in any
    top logprobs. The backend itself parses the (empty) generated text instead and says so
    (through make_backend, `llm.scoring=auto` asks such a row again, verbalized:
    tests/llm/test_scoring.py)."""
    from bench.llm.backend import as_llm_config
    from bench.llm.openai_backend import OpenAIBackend

    cfg = openai_llm(llm_server.base_url, "llm.api=completions", model=llm_server.model)
    prompt = "Question: Is water wet? Answer yes or no.\nAnswer:"
    backend = OpenAIBackend(as_llm_config(cfg))
    (result,) = backend.score([ScoreRequest(prompt, [" yes", " no"])])
    assert_distribution(result.probs, [" yes", " no"])
    assert result.usage.completion_tokens == 0
    assert result.method == "generation"
    assert (result.text, result.valid) == ("", False)
    assert result.probs == {" yes": 0.5, " no": 0.5}  # no label named: uniform


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_generate_returns_text_and_usage(
    llm_server: LLMServer, openai_llm: Compose, api: str
) -> None:
    cfg = openai_llm(llm_server.base_url, f"llm.api={api}", model=llm_server.model)
    backend = make_backend(cfg, use_cache=False)
    requests = ["Once upon a time", [{"role": "user", "content": "Say hello."}]]
    for result in backend.generate([GenerateRequest(r, max_tokens=6) for r in requests]):
        assert result.text.strip()
        assert result.usage.requests == 1
        assert result.usage.prompt_tokens > 0
        assert 0 < result.usage.completion_tokens <= 6


def test_eight_prompts_at_once(llm_server: LLMServer, openai_llm: Compose) -> None:
    cfg = openai_llm(
        llm_server.base_url, "llm.api=chat", "llm.max_concurrency=8", model=llm_server.model
    )
    prompts = [f"Is {n} an even number? Answer yes or no." for n in range(8)]
    results = make_backend(cfg, use_cache=False).score(
        [ScoreRequest(r, [" yes", " no"]) for r in prompts]
    )
    assert len(results) == 8
    for result in results:
        assert_distribution(result.probs, [" yes", " no"])
        assert result.method == "logprobs"
        assert result.usage.requests == 1


def test_the_server_answers_whatever_model_name_the_default_config_sends(
    llm_server: LLMServer, openai_llm: Compose
) -> None:
    # openai_compatible's default model id is "local-model"; a one-model server ignores it.
    cfg = openai_llm(llm_server.base_url, "llm.api=chat")
    assert cfg.model == "local-model"
    (result,) = make_backend(cfg, use_cache=False).generate([GenerateRequest("Hi", max_tokens=2)])
    assert result.usage.completion_tokens > 0


def test_backend_succeeds_after_each_kind_of_fault(
    llm_server: LLMServer, openai_llm: Compose, fault_proxy: StartProxy
) -> None:
    proxy = fault_proxy(llm_server, script=["drop", "429", "500", "slow"], slow_s=5.0)
    cfg = openai_llm(
        proxy.url,
        "llm.api=completions",
        "llm.max_retries=4",
        "llm.timeout_s=2.5",
        *QUICK,
        model=llm_server.model,
    )
    start = time.monotonic()
    (result,) = make_backend(cfg, use_cache=False).score([ScoreRequest(PROMPT, LABELS)])
    assert time.monotonic() - start < 15
    assert_distribution(result.probs, LABELS)
    assert result.method == "logprobs"
    assert result.probs[" Paris"] > 0.8

    attempts = proxy.attempts
    assert [a.fault for a in attempts] == ["drop", "429", "500", "slow", "forward"]
    assert all(a.path == "/v1/completions" and a.method == "POST" for a in attempts)
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert gaps[0] < 0.9  # after a dropped connection: the short backoff
    assert gaps[1] >= 0.95  # after 429 with Retry-After: 1: a whole second
    assert gaps[2] < 0.9
    assert gaps[3] >= 2.4  # the slow answer was abandoned at llm.timeout_s, then retried


def test_faults_during_concurrent_scoring_are_retried(
    llm_server: LLMServer, openai_llm: Compose, fault_proxy: StartProxy
) -> None:
    proxy = fault_proxy(llm_server, script=["drop", "500", "429", "drop"], retry_after="0")
    cfg = openai_llm(
        proxy.url, "llm.api=completions", "llm.max_retries=3", *QUICK, model=llm_server.model
    )
    prompts = [f"The capital of France is{'.' * n}" for n in range(6)]
    results = make_backend(cfg, use_cache=False).score([ScoreRequest(r, LABELS) for r in prompts])
    assert len(results) == 6
    for result in results:
        assert_distribution(result.probs, LABELS)
    assert len(proxy.attempts) == 6 + 4


def test_a_permanently_failing_endpoint_names_the_url_and_the_llm(
    openai_llm: Compose, fault_proxy: StartProxy
) -> None:
    proxy = fault_proxy(None, then="500")
    cfg = openai_llm(proxy.url, "llm.max_retries=2", *QUICK)
    with pytest.raises(LLMUnavailableError) as caught:
        make_backend(cfg, use_cache=False).score([ScoreRequest(PROMPT, LABELS)])
    message = str(caught.value)
    assert proxy.url in message
    assert "openai_compatible" in message
    assert "after 3 attempts" in message and "500" in message
    assert len(proxy.attempts) == 3  # max_retries + 1, not one more


@pytest.mark.parametrize("status", ["400", "401"])
def test_client_errors_are_not_retried(
    openai_llm: Compose, fault_proxy: StartProxy, status: str
) -> None:
    proxy = fault_proxy(None, then=status)
    cfg = openai_llm(proxy.url, "llm.max_retries=3", *QUICK)
    with pytest.raises(LLMUnavailableError, match=f"HTTP {status}") as caught:
        make_backend(cfg, use_cache=False).generate([GenerateRequest("Hi", max_tokens=2)])
    assert proxy.url in str(caught.value) and "openai_compatible" in str(caught.value)
    assert len(proxy.attempts) == 1


def test_an_unreachable_endpoint_names_the_url(openai_llm: Compose) -> None:
    from bench.llm.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    cfg = openai_llm(url, "llm.max_retries=1", "llm.backoff_s=0.01")
    with pytest.raises(LLMUnavailableError, match="after 2 attempts") as caught:
        make_backend(cfg, use_cache=False).score([ScoreRequest(PROMPT, LABELS)])
    assert url in str(caught.value) and "openai_compatible" in str(caught.value)


def test_a_missing_api_key_variable_is_named(
    openai_llm: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BENCH_TEST_MISSING_KEY", raising=False)
    cfg = openai_llm("http://127.0.0.1:9/v1", "llm.api_key_env=BENCH_TEST_MISSING_KEY")
    with pytest.raises(LLMConfigError, match="BENCH_TEST_MISSING_KEY") as caught:
        make_backend(cfg)
    assert "llm.api_key_env" in str(caught.value)


def test_the_api_key_is_sent_as_a_bearer_token(
    llm_server: LLMServer,
    openai_llm: Compose,
    fault_proxy: StartProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BENCH_TEST_KEY", "sk-bench-test-key-0123456789")
    proxy = fault_proxy(llm_server)
    cfg = openai_llm(proxy.url, "llm.api_key_env=BENCH_TEST_KEY", model=llm_server.model)
    make_backend(cfg, use_cache=False).generate([GenerateRequest("Hi", max_tokens=2)])
    assert [a.authorization for a in proxy.attempts] == ["Bearer sk-bench-test-key-0123456789"]


def test_a_prompt_longer_than_the_context_is_too_long(
    llm_server: LLMServer, openai_llm: Compose
) -> None:
    cfg = openai_llm(
        llm_server.base_url,
        "llm.api=completions",
        f"llm.context_length={llm_server.n_ctx}",
        model=llm_server.model,
    )
    with pytest.raises(PromptTooLongError, match=f"{llm_server.n_ctx} tokens"):
        make_backend(cfg, use_cache=False).score(
            [ScoreRequest("word " * (llm_server.n_ctx + 100), LABELS)]
        )


def test_a_malformed_retry_after_backs_off_instead_of_failing(
    llm_server: LLMServer,
    openai_llm: Compose,
    fault_proxy: StartProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = fault_proxy(llm_server, script=["429"], retry_after="soon, maybe")
    cfg = openai_llm(
        proxy.url, "llm.api=completions", "llm.max_retries=2", *QUICK, model=llm_server.model
    )
    with caplog.at_level("WARNING", logger="bench"):
        (result,) = make_backend(cfg, use_cache=False).score([ScoreRequest(PROMPT, LABELS)])
    assert_distribution(result.probs, LABELS)
    assert [a.fault for a in proxy.attempts] == ["429", "forward"]
    # each retry is logged with the endpoint, so a stalled run is never silent
    assert any(
        proxy.url in r.getMessage() and "retry 1/2" in r.getMessage() for r in caplog.records
    )


def test_an_endpoint_answering_200_with_html_names_the_url(openai_llm: Compose) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from bench.llm.backend import LLMUnavailableError

    class Portal(BaseHTTPRequestHandler):  # e.g. a login page in front of the API
        def do_POST(self) -> None:
            body = b"<html><body>Please sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        cfg = openai_llm(url, "llm.max_retries=0", *QUICK, model="any")
        with pytest.raises(LLMUnavailableError, match=r"answered, but not with an OpenAI-style"):
            make_backend(cfg, use_cache=False).generate([GenerateRequest("Hello", max_tokens=4)])
        with pytest.raises(LLMUnavailableError, match=re.escape(url)):
            make_backend(cfg, use_cache=False).generate([GenerateRequest("Hello", max_tokens=4)])
    finally:
        server.shutdown()


@pytest.mark.parametrize("header", ["nan", "inf"])
def test_a_non_finite_retry_after_gets_the_ordinary_backoff(
    header: str, llm_server: LLMServer, openai_llm: Compose, fault_proxy: StartProxy
) -> None:
    """float() parses both: "nan" once meant no wait at all (asyncio.sleep(nan) returns at once),
    "inf" the longest wait llm.backoff_max_s allows; each is the llm.backoff_s backoff now."""
    proxy = fault_proxy(llm_server, script=["429"], retry_after=header)
    cfg = openai_llm(
        proxy.url,
        "llm.api=completions",
        "llm.max_retries=1",
        "llm.backoff_s=0.6",
        "llm.backoff_max_s=4",
        model=llm_server.model,
    )
    (result,) = make_backend(cfg, use_cache=False).score([ScoreRequest(PROMPT, LABELS)])
    assert_distribution(result.probs, LABELS)
    first, second = proxy.attempts
    assert (first.fault, second.fault) == ("429", "forward")
    assert 0.3 <= second.at - first.at < 2.5  # backoff_s x (0.5 to 1), not 0 and not 4 s

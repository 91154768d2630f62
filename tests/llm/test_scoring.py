"""`llm.scoring` (bench/llm/scoring.py): probabilities from an endpoint without logprobs.

Against the real loopback server (tests/loopback.py, SmolLM2 behind llama-cpp-python's
OpenAI-compatible server) with a proxy that strips the logprobs from every answer, as a hosted
model without them (GPT-5 family, some Gemini) answers. Nothing is mocked: the answers are the
model's own, parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from loopback import LLMServer, hiding_label_logprobs, stripping_logprobs
from omegaconf import DictConfig

from bench.llm.backend import LLMConfigError, ScoreRequest, make_backend
from bench.llm.scoring import (
    SCORING_MODES,
    parse_answer,
    parse_verbalized,
    smoothed_frequencies,
    verbalized_prompt,
)

Compose = Callable[..., DictConfig]
LABELS = (" yes", " no")
# Few-shot prompts in llm_icl's layout (instruction, shots, query, "Answer:").
INSTRUCTION = (
    "Predict `spam` for the last row. 4 labelled examples come first. Answer with one of: yes, no."
)
SHOTS = (
    "subject: WIN A FREE PRIZE NOW\nAnswer: yes\n\n"
    "subject: Meeting notes for Tuesday\nAnswer: no\n\n"
    "subject: Cheap pills, click here\nAnswer: yes\n\n"
    "subject: Your invoice for March\nAnswer: no\n\n"
)
QUERIES = (
    "FREE money, claim your prize",
    "Lunch tomorrow?",
    "Click here for cheap watches",
    "Quarterly report attached",
)
PROMPTS = [f"{INSTRUCTION}\n\n{SHOTS}subject: {q}\nAnswer:" for q in QUERIES]


def _stripped(fault_proxy: Callable[..., Any], server: LLMServer) -> Any:
    return fault_proxy(server, rewrite=stripping_logprobs)


def _cfg(compose: Compose, url: str, server: LLMServer, *extra: str) -> DictConfig:
    return compose(url, "llm.api=chat", "llm.max_retries=0", *extra, model=server.model)


def _score(cfg: DictConfig, prompts: list[str] = PROMPTS) -> list[Any]:
    backend = make_backend(cfg)
    try:
        return backend.score([ScoreRequest(p, LABELS) for p in prompts])
    finally:
        backend.close()


def _two_batches(
    cfg: DictConfig, proxy: Any, caplog: pytest.LogCaptureFixture
) -> tuple[list[Any], int, list[Any]]:
    """Score PROMPTS in two batches through one backend, the log captured: (the first batch's
    results, requests the proxy saw by then, the second batch's results)."""
    backend = make_backend(cfg)
    try:
        with caplog.at_level(logging.INFO, logger="bench"):
            first = backend.score([ScoreRequest(p, LABELS) for p in PROMPTS[:2]])
            sent = len(proxy.attempts)
            second = backend.score([ScoreRequest(p, LABELS) for p in PROMPTS[2:]])
    finally:
        backend.close()
    return first, sent, second


# -- parsing (pure functions, on answers models give) ---------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: yes\nProbability: 85", (" yes", 0.85)),
        ("no\n50", (" no", 0.5)),
        ("**Answer:** No\n**Probability:** 70%", (" no", 0.7)),
        ("The answer is yes. Confidence: 0.9", (" yes", 0.9)),
        ("yes (95%)", (" yes", 0.95)),
        ("Answer: yes", (" yes", None)),
        ("I cannot tell.", (None, None)),
        ("Answer: maybe\nProbability: 40", (None, 0.4)),
        ("yes\nProbability: 250", (" yes", None)),  # out of range: not a probability
    ],
)
def test_verbalized_answers_parse_robustly(text: str, expected: tuple) -> None:
    assert parse_verbalized(text, LABELS) == expected


def test_a_letter_is_read_at_the_start_or_after_answer_only() -> None:
    letters = (" A", " B")
    assert parse_answer("B", letters) == " B"
    assert parse_answer("Final answer: A", letters) == " A"
    assert parse_answer("I think so", letters) is None  # no free search for a lone letter


def test_frequencies_are_add_one_smoothed() -> None:
    assert smoothed_frequencies({" yes": 8}, LABELS) == {" yes": 0.9, " no": 0.1}
    assert smoothed_frequencies({}, LABELS) == {" yes": 0.5, " no": 0.5}


def test_the_verbalized_prompt_keeps_the_prompt_and_asks_for_both() -> None:
    chat = verbalized_prompt(PROMPTS[0], LABELS, chat=True)
    completion = verbalized_prompt(PROMPTS[0], LABELS, chat=False)
    assert chat.startswith(PROMPTS[0].removesuffix("Answer:").rstrip())
    assert "best guess (yes, no)" in chat and "Probability: <a number from 0 to 100>" in chat
    assert not chat.endswith("Answer:") and completion.endswith("\n\nAnswer:")


# -- through the real endpoint, logprobs stripped --------------------------------------------
def test_auto_falls_back_to_verbalized_once_and_says_so(
    llm_server: LLMServer,
    fault_proxy: Callable[..., Any],
    openai_llm: Compose,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = _stripped(fault_proxy, llm_server)
    cfg = _cfg(openai_llm, proxy.url, llm_server, "llm.cache=false")
    assert cfg.scoring == "auto" and "auto" in SCORING_MODES
    first, sent, second = _two_batches(cfg, proxy, caplog)
    assert sent == 4  # the score requests (no logprobs came back), then verbalized
    assert len(proxy.attempts) - sent == 2  # learned: verbalized directly, nothing wasted
    assert [r.method for r in first + second] == ["verbalized"] * 4
    said = [r.getMessage() for r in caplog.records if "no log-probabilities" in r.getMessage()]
    assert len(said) == 1 and "llm.scoring=auto" in said[0]
    for result in first + second:
        assert result.usage.requests >= 1 and result.usage.completion_tokens > 0
        assert sum(result.probs.values()) == pytest.approx(1.0)


def test_auto_keeps_logprobs_where_the_endpoint_gives_them(
    llm_server: LLMServer, openai_llm: Compose
) -> None:
    cfg = _cfg(openai_llm, llm_server.base_url, llm_server, "llm.cache=false")
    results = _score(cfg, PROMPTS[:2])
    assert [r.method for r in results] == ["logprobs", "logprobs"]


def test_auto_asks_again_only_the_rows_whose_logprobs_held_no_label(
    llm_server: LLMServer,
    fault_proxy: Callable[..., Any],
    openai_llm: Compose,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An endpoint that gives logprobs, none of them a label's: each such row is asked again
    verbalized, but the endpoint is not taken for one without logprobs (every batch is still
    asked for logprobs first, and the log says which case it is)."""
    proxy = fault_proxy(llm_server, rewrite=hiding_label_logprobs)
    cfg = _cfg(openai_llm, proxy.url, llm_server, "llm.cache=false")
    first, sent, second = _two_batches(cfg, proxy, caplog)
    assert sent == 4  # 2 score requests, then those 2 rows verbalized
    assert len(proxy.attempts) - sent == 4  # not learned as "no logprobs": logprobs asked again
    assert [r.method for r in first + second] == ["verbalized"] * 4
    said = [r.getMessage() for r in caplog.records if "llm.scoring=auto" in r.getMessage()]
    assert said and all("returned no log-probabilities" not in m for m in said)
    assert any("without the labels' log-probabilities" in m for m in said)


def test_logprobs_mode_fails_clearly_without_logprobs(
    llm_server: LLMServer, fault_proxy: Callable[..., Any], openai_llm: Compose
) -> None:
    proxy = _stripped(fault_proxy, llm_server)
    cfg = _cfg(openai_llm, proxy.url, llm_server, "llm.cache=false", "llm.scoring=logprobs")
    with pytest.raises(LLMConfigError) as error:
        _score(cfg, PROMPTS[:1])
    message = str(error.value)
    assert "llm.scoring=logprobs" in message and "returned no log-probabilities" in message
    assert "set llm.scoring to auto" in message and proxy.url in message


def _non_degenerate(results: list[Any]) -> None:
    """Real probabilities: each row sums to one, some row parsed, and some row is neither
    uniform nor 0/1."""
    probs = [r.probs[" yes"] for r in results]
    for result in results:
        assert sum(result.probs.values()) == pytest.approx(1.0)
        assert all(0.0 <= p <= 1.0 for p in result.probs.values())
    assert any(r.valid for r in results)
    assert any(0.0 < p < 1.0 and p != 0.5 for p in probs), probs


def test_verbalized_through_the_endpoint_counts_what_it_cannot_parse(
    llm_server: LLMServer, fault_proxy: Callable[..., Any], openai_llm: Compose
) -> None:
    """SmolLM2 (135M) names a label but states no probability: each such answer is scored
    uniform and counted, never guessed at."""
    proxy = _stripped(fault_proxy, llm_server)
    cfg = _cfg(openai_llm, proxy.url, llm_server, "llm.cache=false", "llm.scoring=verbalized")
    results = _score(cfg)
    assert len(proxy.attempts) == len(PROMPTS)  # one generation per row
    assert {r.method for r in results} == {"verbalized"}
    for result in results:
        label, probability = parse_verbalized(result.text, LABELS)
        if result.valid:
            assert result.probs[label] == pytest.approx(probability) and result.unparsed == 0
        else:
            assert result.probs == {" yes": 0.5, " no": 0.5} and result.unparsed == 1
        assert result.usage.completion_tokens > 0


def test_verbalized_gives_probabilities_from_real_answers() -> None:
    """The embedded Qwen2.5-Coder-0.5B chat model states an answer and a probability."""
    from bench.config import compose_config

    cfg = compose_config(
        ["llm=local_qwen25_coder_0_5b", "llm.cache=false", "llm.scoring=verbalized"]
    ).llm
    results = _score(cfg)
    assert {r.method for r in results} == {"verbalized"}
    assert all(r.usage.completion_tokens > 0 for r in results)
    _non_degenerate(results)


def test_sampled_gives_smoothed_frequencies_and_reproduces_from_the_cache(
    llm_server: LLMServer, fault_proxy: Callable[..., Any], openai_llm: Compose
) -> None:
    proxy = _stripped(fault_proxy, llm_server)
    cfg = _cfg(openai_llm, proxy.url, llm_server, "llm.scoring=sampled", "llm.scoring_samples=6")
    results = _score(cfg)
    assert len(proxy.attempts) == 6 * len(PROMPTS)  # one seeded draw per request
    assert {r.method for r in results} == {"sampled"}
    for result in results:
        assert result.answers == 6 and 0 <= result.unparsed <= 6
        parsed = 6 - result.unparsed
        if parsed:  # (count + 1) / (parsed + 2): a multiple of 1 / (parsed + 2)
            assert (result.probs[" yes"] * (parsed + 2)) == pytest.approx(
                round(result.probs[" yes"] * (parsed + 2))
            )
    _non_degenerate(results)
    again = _score(cfg)  # a second run: every draw from the cache, nothing sent
    assert len(proxy.attempts) == 6 * len(PROMPTS)
    assert [r.probs for r in again] == [r.probs for r in results]
    assert all(r.usage.cache_hits == 6 and r.usage.requests_sent == 0 for r in again)

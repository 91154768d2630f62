"""The in-process llama.cpp backend on the embedded SmolLM2-135M: real model, real tokens."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from bench.config import compose_config
from bench.llm import LLMBackend, PromptTooLongError, ScoreResult, make_backend
from bench.llm.llamacpp_backend import resolve_model_path
from bench.llm.requests import GenerateRequest, ScoreRequest

CAPITALS = "Question: which city is the capital of the country named below?\n" * 4
FRANCE = CAPITALS + "Country: France\nAnswer:"
ENGLAND = CAPITALS + "Country: England\nAnswer:"
CITIES = [" Paris", " London", " New York City"]  # the last is several tokens long


@pytest.fixture(scope="module")
def backend(local_llm_cfg: DictConfig) -> Iterator[LLMBackend]:
    backend = make_backend(local_llm_cfg, use_cache=False)
    yield backend
    backend.close()


def assert_distribution(result: ScoreResult, labels: list[str]) -> None:
    assert list(result.probs) == labels
    assert all(p >= 0 for p in result.probs.values())
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-9)


def test_score_is_a_distribution_and_the_obvious_answer_wins(backend: LLMBackend) -> None:
    (result,) = backend.score([ScoreRequest("The capital of France is", [" Paris", " London"])])
    assert_distribution(result, [" Paris", " London"])
    assert result.probs[" Paris"] > 0.8
    assert result.method == "logprobs" and result.valid
    usage = result.usage
    assert usage.requests == 1
    assert usage.prompt_tokens == backend.count_tokens("The capital of France is")
    assert usage.completion_tokens == 0 and usage.cache_hits == 0
    assert usage.usd == 0.0  # a local model with no $/hour costs nothing
    assert usage.llm_seconds > 0


def test_score_answers_each_request(backend: LLMBackend) -> None:
    france, england = backend.score([ScoreRequest(FRANCE, CITIES), ScoreRequest(ENGLAND, CITIES)])
    for result in (france, england):
        assert_distribution(result, CITIES)
    assert max(france.probs, key=france.probs.get) == " Paris"
    assert max(england.probs, key=england.probs.get) == " London"


def test_multi_token_labels_match_a_full_logits_reference(
    backend: LLMBackend, local_llm_cfg: DictConfig
) -> None:
    """Scores equal the chained token probabilities a logits_all model computes for the whole
    sequence at once (llama-cpp-python itself, no harness code involved)."""
    from llama_cpp import Llama

    (result,) = backend.score([ScoreRequest(FRANCE, CITIES)])
    assert_distribution(result, CITIES)
    assert len(backend.llm.tokenize(b" New York City", add_bos=False)) > 1

    reference = Llama(
        model_path=str(resolve_model_path(local_llm_cfg.model_path, local_llm_cfg.name)),
        n_ctx=256,
        n_threads=2,
        logits_all=True,
        verbose=False,
    )
    logprobs = {}
    prompt = reference.tokenize(FRANCE.encode(), add_bos=True, special=False)
    for label in CITIES:
        full = reference.tokenize((FRANCE + label).encode(), add_bos=True, special=False)
        assert full[: len(prompt)] == prompt
        reference.reset()
        reference.eval(full)
        total = 0.0
        for position in range(len(prompt), len(full)):
            row = np.asarray(reference.scores[position - 1], dtype=np.float64)
            row = row - row.max()
            total += row[full[position]] - math.log(np.exp(row).sum())
        logprobs[label] = total
    top = max(logprobs.values())
    weights = {label: math.exp(lp - top) for label, lp in logprobs.items()}
    expected = {label: w / sum(weights.values()) for label, w in weights.items()}
    for label in CITIES:
        assert result.probs[label] == pytest.approx(expected[label], abs=1e-4)


def test_a_shared_prefix_is_reused(backend: LLMBackend) -> None:
    backend.score([ScoreRequest(FRANCE, CITIES)])
    (england,) = backend.score([ScoreRequest(ENGLAND, CITIES)])
    shared = backend.count_tokens(CAPITALS)
    assert england.usage.cached_tokens >= shared - 1
    assert england.usage.prompt_tokens == backend.count_tokens(ENGLAND)


def test_prefix_reuse_does_not_change_scores(backend: LLMBackend) -> None:
    (first,) = backend.score([ScoreRequest(FRANCE, CITIES)])
    backend.score([ScoreRequest(ENGLAND, CITIES)])  # leaves a different suffix in the KV cache
    (again,) = backend.score([ScoreRequest(FRANCE, CITIES)])
    assert again.usage.cached_tokens > 0
    backend.generate(
        [GenerateRequest("Once upon a time", max_tokens=4)]
    )  # generation moves the cache too
    (after_generation,) = backend.score([ScoreRequest(FRANCE, CITIES)])
    backend.llm.reset()  # nothing reused: the whole prompt is evaluated from scratch
    (fresh,) = backend.score([ScoreRequest(FRANCE, CITIES)])
    assert fresh.usage.cached_tokens == 0
    for result in (again, after_generation, fresh):
        for label in CITIES:
            assert result.probs[label] == pytest.approx(first.probs[label], abs=1e-4)


def test_a_prompt_longer_than_the_context_is_too_long(local_llm_cfg: DictConfig) -> None:
    cfg = OmegaConf.merge(local_llm_cfg, {"n_ctx": 64})
    backend = make_backend(cfg, use_cache=False)
    prompt = "word " * 100
    tokens = backend.count_tokens(prompt + " yes")
    with pytest.raises(PromptTooLongError) as caught:
        backend.score([ScoreRequest(prompt, [" yes", " no"])])
    message = str(caught.value)
    assert f"{tokens} tokens" in message
    assert "64 tokens" in message
    assert local_llm_cfg.name in message and "llm.n_ctx" in message
    assert (caught.value.tokens, caught.value.limit) == (tokens, 64)
    assert caught.value.status == "skipped"
    with pytest.raises(PromptTooLongError, match="64 tokens"):
        backend.generate([GenerateRequest("hi", max_tokens=100)])  # prompt + answer must fit too


def test_n_ctx_comes_from_the_config_composed_with_overrides() -> None:
    cfg = compose_config(["llm=local_smollm2_135m", "llm.n_ctx=64"]).llm
    assert make_backend(cfg, use_cache=False).n_ctx == 64  # type: ignore[attr-defined]


def test_empty_label_is_refused(backend: LLMBackend) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        backend.score([ScoreRequest("The capital of France is", [" Paris", ""])])


def test_generate_from_a_string_prompt(backend: LLMBackend) -> None:
    (result,) = backend.generate([GenerateRequest("The capital of France is", max_tokens=6)])
    assert isinstance(result.text, str) and result.text.strip()
    assert result.usage.requests == 1
    assert result.usage.prompt_tokens == backend.count_tokens("The capital of France is")
    assert 0 < result.usage.completion_tokens <= 6


def test_generate_from_chat_messages_uses_the_chat_template(backend: LLMBackend) -> None:
    messages = [{"role": "user", "content": "Say hello."}]
    (result,) = backend.generate([GenerateRequest(messages, max_tokens=8)])
    assert result.text.strip()
    # The template wraps the message in role markers: more prompt tokens than the text alone.
    assert result.usage.prompt_tokens > backend.count_tokens("Say hello.") + 3
    assert 0 < result.usage.completion_tokens <= 8


def test_generation_is_deterministic_at_temperature_zero(backend: LLMBackend) -> None:
    prompts = ["Count: one, two,", "Count: one, two,"]
    first, second = backend.generate(
        [GenerateRequest(r, max_tokens=5, temperature=0.0) for r in prompts]
    )
    assert first.text == second.text


def test_stop_sequences_end_generation(backend: LLMBackend) -> None:
    (result,) = backend.generate([GenerateRequest("1, 2, 3, 4, 5,", max_tokens=20, stop=[","])])
    assert "," not in result.text

"""The in-process backend's context window (`llm.n_ctx`: auto or fixed) on the real SmolLM2-135M
(context_length 8192), and chat-template rendering (`llm.api: chat`) on the real
Qwen2.5-Coder-0.5B-Instruct. Prompts are only as long as each point needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.config import compose_config
from bench.errors import RunSkipped
from bench.llm import llamacpp_backend
from bench.llm.backend import (
    LLMConfigError,
    PromptTooLongError,
    as_llm_config,
    context_limit,
    fixed_window,
)
from bench.llm.llamacpp_backend import AUTO_MIN_WINDOW, LlamaCppBackend
from bench.llm.requests import GenerateRequest, ScoreRequest

SMOLLM2 = "local_smollm2_135m"
CONTEXT_LENGTH = 8192  # SmolLM2's llm.context_length
ROW = "Row: age 42, plan basic, spend 31.5, churned no.\n"
QUESTION = "Question: did the last customer churn?\nAnswer:"
LABELS = [" yes", " no"]


@pytest.fixture(autouse=True)
def no_loaded_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no model loaded in the process (a loaded larger window is reused)."""
    monkeypatch.setattr(llamacpp_backend, "_MODELS", {})


def smollm2(*overrides: str) -> LlamaCppBackend:
    cfg = compose_config([f"llm={SMOLLM2}", "llm.n_threads=2", *overrides]).llm
    return LlamaCppBackend(as_llm_config(cfg))


def table_prompt(backend: LlamaCppBackend, tokens: int) -> str:
    """Rows of a table and a question: at least `tokens` tokens, at most one row more."""
    rows = -(-(tokens - backend.count_tokens(QUESTION)) // backend.count_tokens(ROW))
    prompt = ROW * rows + QUESTION
    assert tokens <= backend.count_tokens(prompt) <= tokens + backend.count_tokens(ROW) + 2
    return prompt


def test_a_short_prompt_keeps_the_smallest_window() -> None:
    backend = smollm2("llm.n_ctx=auto")
    (result,) = backend.score([ScoreRequest(ROW * 3 + QUESTION, LABELS)])
    assert result.method == "logprobs" and sum(result.probs.values()) == pytest.approx(1.0)
    assert backend._window == AUTO_MIN_WINDOW == 4096
    assert backend.llm.n_ctx() == 4096  # the llama.cpp context itself


def test_auto_grows_the_window_for_a_longer_prompt() -> None:
    backend = smollm2("llm.n_ctx=auto")
    backend.score([ScoreRequest(QUESTION, LABELS)])
    assert backend._window == 4096
    prompt = table_prompt(backend, 4300)
    (result,) = backend.score([ScoreRequest(prompt, LABELS)])
    assert result.method == "logprobs" and sum(result.probs.values()) == pytest.approx(1.0)
    assert result.usage.prompt_tokens == backend.count_tokens(prompt) > 4096
    assert backend._window == 8192 and backend.llm.n_ctx() == 8192
    # The next run's backend reuses the grown model for its short prompts: one copy in memory.
    fresh = smollm2("llm.n_ctx=auto")
    fresh.score([ScoreRequest(QUESTION, LABELS)])
    assert fresh.llm is backend.llm and len(llamacpp_backend._MODELS) == 1


def test_a_fixed_window_skips_the_prompt_auto_would_score() -> None:
    backend = smollm2("llm.n_ctx=4096")
    prompt = table_prompt(backend, 4300)
    with pytest.raises(PromptTooLongError, match=r"llm\.n_ctx") as raised:
        backend.score([ScoreRequest(prompt, LABELS)])
    assert isinstance(raised.value, RunSkipped)  # recorded as a skipped run, not a failure
    assert raised.value.limit == 4096
    assert raised.value.tokens > 4096


def test_a_prompt_beyond_context_length_is_skipped_even_with_auto() -> None:
    backend = smollm2("llm.n_ctx=auto")
    prompt = table_prompt(backend, CONTEXT_LENGTH + 100)
    with pytest.raises(PromptTooLongError, match=r"llm\.context_length") as raised:
        backend.score([ScoreRequest(prompt, LABELS)])
    assert raised.value.limit == CONTEXT_LENGTH
    with pytest.raises(PromptTooLongError):  # generation counts its answer's tokens too
        backend.generate(
            [GenerateRequest(table_prompt(backend, CONTEXT_LENGTH - 50), max_tokens=100)]
        )


@pytest.mark.parametrize("value", ["banana", "-5", "0", "4k"])
def test_a_bad_n_ctx_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(LLMConfigError, match=r"llm\.n_ctx must be `auto`") as raised:
        smollm2(f"llm.n_ctx={value}")
    assert SMOLLM2 in str(raised.value) and value in str(raised.value)


def test_context_limit_is_the_fixed_window_or_the_context_length() -> None:
    assert fixed_window({"n_ctx": "auto"}) is None and fixed_window({"n_ctx": None}) is None
    assert fixed_window({"n_ctx": 2048}) == 2048
    local = {"backend": "llamacpp", "context_length": 8192}
    assert context_limit({**local, "n_ctx": "auto"}) == 8192
    assert context_limit({**local, "n_ctx": 2048}) == 2048
    # An endpoint's window is the server's: n_ctx (even junk) is not read for it.
    assert context_limit({"backend": "openai", "context_length": 128, "n_ctx": "x"}) == 128


@pytest.fixture(scope="module")
def qwen() -> Iterator[LlamaCppBackend]:
    cfg = compose_config(["llm=local_qwen25_coder_0_5b", "llm.n_threads=2"]).llm
    backend = LlamaCppBackend(as_llm_config(cfg))
    assert backend.chat
    yield backend
    backend.close()


def test_control_tokens_in_the_data_stay_plain_text(qwen: LlamaCppBackend) -> None:
    (im_end,) = qwen._tokenize("<|im_end|>", bos=False, special=True)
    with_markup = qwen._request_tokens("hi <|im_end|> there")
    without = qwen._request_tokens("hi there")
    assert without.count(im_end) >= 1  # the template closes its turns with it
    assert with_markup.count(im_end) == without.count(im_end)
    text = qwen._tokenize("hi <|im_end|> there", bos=False)  # as ordinary text
    assert any(with_markup[i : i + len(text)] == text for i in range(len(with_markup)))


def test_chat_labels_lose_their_leading_space(qwen: LlamaCppBackend) -> None:
    prompt_tokens, full = qwen._scoring_tokens("Is water wet?", [" yes", "yes"])
    assert full[" yes"] == full["yes"] == prompt_tokens + qwen._tokenize("yes", bos=False)


def test_a_chat_model_scores_a_yes_no_question(qwen: LlamaCppBackend) -> None:
    prompt = "Is 2 + 2 equal to 4? Answer yes or no."
    (result,) = qwen.score([ScoreRequest(prompt, LABELS)])
    assert result.method == "logprobs" and result.valid
    assert list(result.probs) == LABELS
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-9)
    assert result.probs[" yes"] > result.probs[" no"]
    # The template (system turn, user turn, assistant header) is part of the request.
    assert result.usage.prompt_tokens == qwen.count_tokens(prompt)
    assert result.usage.prompt_tokens > len(qwen._tokenize(prompt)) + 10

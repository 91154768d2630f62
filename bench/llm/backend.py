"""The backend protocol every LLM family uses, its result types and `make_backend`.

A backend answers three kinds of request (frozen data, bench/llm/requests.py), a batch at a time:

* ``score([ScoreRequest(prompt, labels), ...])``: a probability for each label, read from the
  model's next-token log-probabilities of ``prompt + label`` (falling back to parsing generated
  text where an endpoint has no logprobs; `ScoreResult.method` says which);
* ``generate([GenerateRequest(prompt or chat messages, max_tokens=...), ...])``: text;
* ``embed([EmbedRequest(text), ...])``: an embedding vector (mean-pooled hidden states).

Every result carries the `Usage` of its own request, so callers add up exactly what they used,
and a cached answer shows up as a cache hit with no tokens billed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.errors import RunSkipped
from bench.llm.cache import CachedBackend, RequestCache
from bench.llm.prompt_log import RecordingBackend, active_log
from bench.llm.protocol import (
    EmbedResult,
    GenerateResult,
    LLMBackend,
    LLMConfigError,
    Messages,
    OnResult,
    ScoreResult,
    Usage,
)
from bench.llm.requests import EmbedRequest, GenerateRequest, ScoreRequest

__all__ = [
    "EmbedRequest",
    "EmbedResult",
    "GenerateRequest",
    "GenerateResult",
    "LLMBackend",
    "LLMConfigError",
    "LLMUnavailableError",
    "Messages",
    "OnResult",
    "PromptTooLongError",
    "ScoreRequest",
    "ScoreResult",
    "Usage",
    "context_limit",
    "fixed_window",
    "make_backend",
]


class LLMUnavailableError(RuntimeError):
    """The endpoint could not be reached or kept failing after every retry."""


class PromptTooLongError(RunSkipped):
    """A prompt does not fit the model's context window; the run is recorded as skipped."""

    def __init__(self, tokens: int, limit: int, llm: str) -> None:
        super().__init__(
            f"prompt of {tokens} tokens exceeds the context window of {limit} tokens of llm "
            f"'{llm}' (llm.n_ctx / llm.context_length); use fewer shots or a longer-context model"
        )
        self.tokens, self.limit = tokens, limit


def fixed_window(cfg: DictConfig | Mapping[str, Any]) -> int | None:
    """`llm.n_ctx` as a fixed window in tokens, or None for `auto` (grow to what requests need,
    up to `llm.context_length`)."""
    value = cfg.get("n_ctx")
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        window = int(value)
    except (TypeError, ValueError):
        window = 0
    if window <= 0 or str(value).strip() != str(window):
        raise LLMConfigError(
            f"llm '{cfg.get('name')}': llm.n_ctx must be `auto` or a positive number of tokens, "
            f"got {value!r}"
        )
    return window


def context_limit(cfg: DictConfig | Mapping[str, Any]) -> int:
    """The most tokens one request may hold: an in-process model's fixed `llm.n_ctx`, else the
    model's `llm.context_length` (an endpoint's window is the server's business)."""
    window = fixed_window(cfg) if cfg.get("backend") == "llamacpp" else None
    return window or int(cfg.get("context_length"))


BACKENDS = {
    "llamacpp": "bench.llm.llamacpp_backend:LlamaCppBackend",
    "openai": "bench.llm.openai_backend:OpenAIBackend",
}


def as_llm_config(cfg: DictConfig | Mapping[str, Any]) -> DictConfig:
    """An llm config validated against the LLMConfig schema (plain dicts get its defaults)."""
    from bench.config import LLMConfig

    return OmegaConf.merge(OmegaConf.structured(LLMConfig), cfg)


def make_backend(cfg: DictConfig | Mapping[str, Any], use_cache: bool | None = None) -> LLMBackend:
    """The backend an llm config describes, in layers (innermost first):

    1. the model or endpoint itself; under `llm.replay` none (bench/llm/replay.py: every miss
       of the cache is an error), and in a dry run a planner that counts instead of asking
       (bench/dry_run.py);
    2. the sweep's budget (`llm.budget_usd`, bench/llm/budget.py): only requests actually sent
       are paid for, so it sits inside the cache;
    3. the request cache, unless `cache` is off;
    4. the scoring mode (`llm.scoring`, bench/llm/scoring.py): a score asked as generations
       (verbalized, sampled) is cached generation by generation;
    5. a prompt recorder while the runner keeps the run's prompts (bench/llm/prompt_log.py),
       outside the cache: a cached answer was asked for all the same.
    """
    from bench.dry_run import planning_backend
    from bench.llm.budget import with_budget
    from bench.llm.replay import replay_source
    from bench.llm.scoring import with_scoring
    from bench.registry import Registry

    cfg = as_llm_config(cfg)
    planner = None if cfg.replay else planning_backend(cfg)
    if cfg.replay:
        backend = replay_source(cfg)
    elif planner is not None:
        backend = planner  # it reads the request cache itself, and never writes it
    else:
        backend_cls = Registry("llm backend", BACKENDS).get(cfg.backend, key="llm.backend")
        backend = with_budget(backend_cls(cfg))
    if cfg.replay or (planner is None and (cfg.cache if use_cache is None else use_cache)):
        from bench.paths import resolve_project_path

        backend = CachedBackend(backend, RequestCache(resolve_project_path(cfg.cache_path)))
    backend = with_scoring(backend)
    log = active_log()
    if log is not None:
        backend = RecordingBackend(backend, log)
    return backend


def normalize(logprobs: Mapping[str, float]) -> dict[str, float]:
    """Softmax over the labels' log-probabilities."""
    import math

    top = max(logprobs.values())
    weights = {label: math.exp(lp - top) for label, lp in logprobs.items()}
    total = sum(weights.values())
    return {label: w / total for label, w in weights.items()}


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The label a generated answer names: the longest label its start matches, ignoring case."""
    answer = text.strip().lower()
    matches = [
        label
        for label in labels
        if answer.startswith(key := label.strip().lower())
        and not answer[len(key) : len(key) + 1].isalnum()  # "no", not "nothing" or "Not sure"
    ]
    return max(matches, key=len) if matches else None


def generation_score(text: str, labels: Sequence[str], usage: Usage) -> ScoreResult:
    """A ScoreResult from generated text: one-hot on the named label, uniform if none matches."""
    label = parse_label(text, labels)
    if label is None:
        uniform = 1.0 / len(labels)
        return ScoreResult({lb: uniform for lb in labels}, "generation", False, text, usage)
    return ScoreResult({lb: float(lb == label) for lb in labels}, "generation", True, text, usage)

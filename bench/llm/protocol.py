"""The backend protocol and its result types, shared by the backends, the cache and callers.

Kept apart from `bench.llm.backend` (which builds backends and wraps them in the cache) so that
the cache and the backends import these without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from omegaconf import DictConfig

from bench.llm.requests import EmbedRequest, GenerateRequest, ScoreRequest

__all__ = [
    "PHASE_USAGE_KEYS",
    "EmbedResult",
    "GenerateResult",
    "LLMBackend",
    "LLMConfigError",
    "Messages",
    "OnResult",
    "ScoreResult",
    "Usage",
]

Messages = list[dict[str, str]]  # [{"role": "user", "content": "..."}]
# Called with (index of the request, its result) as each request completes, e.g. so the cache
# stores every answer at once and a crash mid-batch loses none that were paid for.
OnResult = Callable[[int, Any], None]


class LLMConfigError(ValueError):
    """The llm config cannot work as written (missing key variable, unknown backend, ...)."""


@dataclass
class Usage:
    """What requests used. `requests` counts answers received (one per request answered by the
    LLM); `requests_sent` counts the HTTP requests sent for them, retries included (0 in-process).
    `llm_seconds` adds up the latencies of the requests; `llm_wall_seconds` is their share of
    the wall time: while n requests are in flight each accrues 1/n of every second, so the
    shares of concurrent requests add up to the wall time the LLM phase took, and
    `usd_per_hour` is charged on them (bench/llm/cost.py)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = (
        0  # prompt tokens served from a prefix/KV cache (billed cheaper, if at all)
    )
    cache_hits: int = 0  # answers served from the request cache: counted, not billed
    usd: float = 0.0
    llm_seconds: float = 0.0
    llm_wall_seconds: float = 0.0
    requests_sent: int = 0
    # What the answers served from the cache cost when they were computed (not spent now), for
    # the `costed_cache_hits` of them whose cache entry recorded it: a rerun answered from the
    # cache still has a cost per prediction (bench/report/cost.py).
    cached_llm_seconds: float = 0.0
    cached_usd: float = 0.0
    costed_cache_hits: int = 0
    cached_llm_wall_seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{k: getattr(self, k) + getattr(other, k) for k in asdict(self)})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The usage a run records per phase as well (`fit_<key>`: spent while fitting, the one-off
# cost; the rest was spent predicting): what the report needs to cost each phase.
PHASE_USAGE_KEYS = (
    "requests",
    "cache_hits",
    "usd",
    "llm_seconds",
    "cached_llm_seconds",
    "cached_usd",
    "costed_cache_hits",
    "llm_wall_seconds",
    "cached_llm_wall_seconds",
)


@dataclass
class ScoreResult:
    probs: dict[str, float]  # label -> probability, summing to 1
    method: str  # "logprobs", or "generation" (read from the text: no label's logprob came)
    valid: bool = True  # False when generated text matched no label (probs are then uniform)
    text: str | None = None  # the generated text, for the generation fallback
    usage: Usage = field(default_factory=Usage)
    # "generation" only: the endpoint did return log-probabilities, none of them a label's (the
    # endpoint can give logprobs; this answer's top tokens just held no label)
    logprobs_without_labels: bool = False


@dataclass
class GenerateResult:
    text: str
    usage: Usage = field(default_factory=Usage)


@dataclass
class EmbedResult:
    vector: list[float]  # the text's embedding: its tokens' hidden states, mean-pooled
    usage: Usage = field(default_factory=Usage)


class LLMBackend(Protocol):
    """What every backend does, and what a wrapper (bench/llm/wrapper.py) forwards.

    Each call takes a batch of requests (bench/llm/requests.py) and returns one result per
    request, in order; `on_result(i, result)` is called as request i completes. Nothing beyond
    these methods is looked up on a backend: an optional capability is declared here and
    answered with None where a backend cannot tell.
    """

    config: DictConfig

    def score(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None = None
    ) -> list[ScoreResult]: ...

    def generate(
        self, requests: Sequence[GenerateRequest], on_result: OnResult | None = None
    ) -> list[GenerateResult]: ...

    def embed(
        self, requests: Sequence[EmbedRequest], on_result: OnResult | None = None
    ) -> list[EmbedResult]: ...

    def count_tokens(self, text: str) -> int: ...

    def first_token(self, text: str) -> int | None:
        """The id of the first token of `text`, or None where the backend has no tokenizer
        at hand (an endpoint): the verbalizer then splits words instead."""
        ...

    def close(self) -> None: ...

"""`BackendWrapper`: a backend around another one, forwarding the whole protocol explicitly.

The request cache (bench/llm/cache.py) and the prompt recorder (bench/llm/prompt_log.py) are
wrappers. Every request kind goes through one hook, `_answer`, which sees the requests as data
(bench/llm/requests.py) and never their fields: a new decoding option passes through untouched.
Nothing is forwarded by name lookup: what a backend offers is what `LLMBackend` declares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig

from bench.llm.protocol import (
    EmbedResult,
    GenerateResult,
    LLMBackend,
    OnResult,
    ScoreResult,
)
from bench.llm.requests import EmbedRequest, GenerateRequest, LLMRequest, ScoreRequest

__all__ = ["Answer", "BackendWrapper"]

# What answers a batch of requests: the wrapped backend's score, generate or embed.
Answer = Callable[..., list[Any]]


class BackendWrapper:
    """Forwards every call of `LLMBackend` to `backend`; subclasses override `_answer`."""

    def __init__(self, backend: LLMBackend) -> None:
        self.backend = backend
        self.config: DictConfig = backend.config

    def score(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None = None
    ) -> list[ScoreResult]:
        return self._answer(requests, self.backend.score, on_result)

    def generate(
        self, requests: Sequence[GenerateRequest], on_result: OnResult | None = None
    ) -> list[GenerateResult]:
        return self._answer(requests, self.backend.generate, on_result)

    def embed(
        self, requests: Sequence[EmbedRequest], on_result: OnResult | None = None
    ) -> list[EmbedResult]:
        return self._answer(requests, self.backend.embed, on_result)

    def _answer(
        self, requests: Sequence[LLMRequest], answer: Answer, on_result: OnResult | None
    ) -> list[Any]:
        """The results of `requests`, one per request in order; `answer` asks the wrapped
        backend (with an `on_result` of its own)."""
        return answer(requests, on_result=on_result)

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def first_token(self, text: str) -> int | None:
        return self.backend.first_token(text)

    def close(self) -> None:
        self.backend.close()

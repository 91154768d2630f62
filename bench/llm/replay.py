"""Answers only from the request cache (`llm.replay`): no endpoint contacted, no model loaded.

`make_backend` puts the request cache around `replay_source(cfg)`, so every request the cache
holds is answered from it, and the ones it does not hold reach the source, which refuses them
with a `ReplayMissError` naming the request, the cache file and `llm.replay`: the runner records
the run as failed. The miss is also noted in the run's `CacheKeys` (bench/llm/cache.py), so the
run fails even where a method caught the error.

What methods ask besides answers is still answered: `count_tokens` and `first_token` (fitting
prompts to the window, checking label words) come from the GGUF file's tokenizer alone (a
vocab-only load, never the weights) for an in-process model, and from the OpenAI backend's own
estimate for an endpoint (no tokenizer there either), so a replayed run sizes its prompts exactly
as the original did.

Replay needs the cache file itself: `replay_problem` says so when `llm.cache_path` does not
exist (bench-run's preflight refuses the sweep with it, exit 2; `replay_source` raises it as an
`LLMConfigError`), instead of opening an empty cache there whose every lookup is a miss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from omegaconf import DictConfig

from bench.llm.cache import ReplayMissError, active_keys
from bench.llm.cache_key import cache_key
from bench.llm.protocol import (
    EmbedResult,
    GenerateResult,
    LLMBackend,
    LLMConfigError,
    OnResult,
    ScoreResult,
)
from bench.llm.requests import EmbedRequest, GenerateRequest, LLMRequest, ScoreRequest

__all__ = ["ReplayMissError", "ReplaySource", "replay_problem", "replay_source"]

EXCERPT_CHARS = 80  # of the missing request's prompt, in the error


def replay_source(cfg: DictConfig) -> LLMBackend:
    """The innermost backend under `llm.replay`: every request that reaches it is a miss.
    Raises `LLMConfigError` when there is no cache file to replay (`replay_problem`)."""
    problem = replay_problem(cfg)
    if problem is not None:
        raise LLMConfigError(problem)
    return ReplaySource(cfg)


def replay_problem(llm: DictConfig | Mapping[str, Any]) -> str | None:
    """Why `llm` cannot be replayed: `llm.replay` is on and its `llm.cache_path` is no file
    (None: replay is off, or the cache is there)."""
    from bench.paths import resolve_project_path

    if not llm.get("replay"):
        return None
    path = resolve_project_path(str(llm.get("cache_path")))
    if path.is_file():
        return None
    return (
        f"llm.replay=true but the request cache {path} (llm.cache_path) does not exist: replay "
        "answers only from an existing cache, so every request would fail. Name the cache the "
        "runs were made with in llm.cache_path (bench-bundle import prints it), or run without "
        "llm.replay to ask the LLM"
    )


class ReplaySource:
    """Refuses every request (the cache around it answers the ones it holds); tokenizes
    without loading a model."""

    def __init__(self, config: DictConfig) -> None:
        self.config = config
        self._tokenizer: Any = None
        if config.backend == "llamacpp":
            # Its constructor loads nothing; only count_tokens / first_token are ever called,
            # which use the vocab-only instance (LlamaCppBackend._vocab) while no model is loaded.
            from bench.llm.llamacpp_backend import LlamaCppBackend

            self._tokenizer = LlamaCppBackend(config)

    def score(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None = None
    ) -> list[ScoreResult]:
        self._missing(requests)

    def generate(
        self, requests: Sequence[GenerateRequest], on_result: OnResult | None = None
    ) -> list[GenerateResult]:
        self._missing(requests)

    def embed(
        self, requests: Sequence[EmbedRequest], on_result: OnResult | None = None
    ) -> list[EmbedResult]:
        self._missing(requests)

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is not None:
            return int(self._tokenizer.count_tokens(text))
        from bench.llm.openai_backend import OpenAIBackend

        # The endpoint backend's own estimate (its tokenizer is the server's): the method it
        # calls reads nothing of the instance, so the key and client it needs are not made.
        return OpenAIBackend.count_tokens(self, text)  # type: ignore[arg-type]

    def first_token(self, text: str) -> int | None:
        if self._tokenizer is not None:
            return self._tokenizer.first_token(text)
        return None  # as OpenAIBackend: an endpoint's tokenizer is not at hand

    def close(self) -> None:
        if self._tokenizer is not None:
            self._tokenizer.close()

    def _missing(self, requests: Sequence[LLMRequest]) -> NoReturn:
        """Raise for the first request (each one reaching here is a miss of the cache)."""
        message = miss_message(self.config, requests[0], len(requests))
        used = active_keys()
        if used is not None:
            used.missed.append(message)
        raise ReplayMissError(message)


def miss_message(cfg: DictConfig, request: LLMRequest, missing: int = 1) -> str:
    """What a replay miss says: the request (kind, key, start of its prompt), the cache file,
    the llm config and what to do."""
    from bench.paths import resolve_project_path

    path = resolve_project_path(cfg.cache_path)
    others = f"; {missing - 1} more request(s) of the batch are missing too" if missing > 1 else ""
    return (
        f"llm.replay=true and the request cache {path} (llm.cache_path) holds no answer to a "
        f"{request.op} request of llm '{cfg.name}' (key {cache_key(cfg, request)[:16]}), whose "
        f"prompt starts {_excerpt(request)!r}{others}. Replay answers only from the cache: name "
        "the cache the runs were made with in llm.cache_path (bench-bundle import prints it), "
        "or run without llm.replay to ask the LLM."
    )


def _excerpt(request: LLMRequest) -> str:
    if isinstance(request, EmbedRequest):
        text = request.text
    elif isinstance(request, GenerateRequest) and request.messages is not None:
        text = " | ".join(str(m.get("content", "")) for m in request.messages)
    else:
        text = request.prompt or ""
    text = " ".join(text.split())  # one line
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 3] + "..."

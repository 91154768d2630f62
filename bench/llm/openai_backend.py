"""Any OpenAI-compatible endpoint through the `openai` SDK's async client.

Requests run concurrently (at most `llm.max_concurrency` at once) under optional requests- and
tokens-per-minute limits. Failures that may pass (connection drops, timeouts, 429, 5xx) are retried
with exponential backoff, waiting what a Retry-After header asks for when there is one; after
`llm.max_retries` retries the error names the URL and the llm config, and so does an answer that is
not JSON. Requests that get no usable answer count on the job's endpoint breaker
(bench/endpoint.py): after `llm.max_consecutive_failures` in a row the rest are not sent. Each
request's usage holds the attempts sent for it (retries included) and its share of the wall time
(`llm_wall_seconds`: concurrent requests share the seconds they overlap), on which `usd_per_hour`
is charged. Scoring asks for the first answer token's top log-probabilities; an endpoint that
returns none is scored by parsing the generated answer instead, and the result says so
(`method="generation"`).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import email.utils
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
from omegaconf import DictConfig

from bench.endpoint import EndpointBreaker, active_breaker
from bench.llm.backend import (
    EmbedResult,
    GenerateResult,
    LLMConfigError,
    LLMUnavailableError,
    Messages,
    OnResult,
    PromptTooLongError,
    ScoreResult,
    Usage,
    generation_score,
    normalize,
)
from bench.llm.cost import priced
from bench.llm.ratelimit import RateLimiter
from bench.llm.requests import EmbedRequest, GenerateRequest, ScoreRequest

log = logging.getLogger("bench")

__all__ = ["OpenAIBackend", "api_key"]

T = TypeVar("T")
PLACEHOLDER_KEY = "no-key-needed"  # local servers ignore the key but the SDK wants one
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# HTTP requests sent for the request being answered (each request runs in its own asyncio task,
# which has its own copy of this variable).
_ATTEMPTS: contextvars.ContextVar[list[int]] = contextvars.ContextVar("attempts")


def api_key(cfg: DictConfig) -> str:
    """The key from the environment variable the config names; the key itself is never logged."""
    if not cfg.api_key_env:
        return PLACEHOLDER_KEY
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise LLMConfigError(
            f"llm '{cfg.name}' needs an API key in the environment variable {cfg.api_key_env} "
            f"(llm.api_key_env), which is not set: export {cfg.api_key_env}=..."
        )
    return key


class OpenAIBackend:
    """Hosted APIs (OpenAI, OpenRouter, Azure) and self-hosted servers (vLLM, Ollama, llama.cpp)."""

    def __init__(self, config: DictConfig) -> None:
        if not config.base_url:
            raise LLMConfigError(
                f"llm '{config.name}' uses the openai backend but sets no llm.base_url"
            )
        if config.api not in ("chat", "completions"):
            raise LLMConfigError(f"llm.api must be 'chat' or 'completions', got '{config.api}'")
        self.config = config
        self._key = api_key(config)
        self._limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self._breaker: EndpointBreaker | None = None

    # -- public protocol ------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as a request, counted offline (bench/llm/tokens.py): the model
        family's own tokenizer where one ships (OpenAI's), else an estimate."""
        from bench.llm.tokens import token_counter

        try:
            counter = token_counter(self.config.model)
            return max(1, len(counter.request_tokens(text, chat=self.config.api == "chat")))
        except ImportError:  # no bpe-openai: characters / 4, the usual rule of thumb
            return max(1, len(text) // 4)

    def first_token(self, text: str) -> int | None:
        return None  # the server's tokenizer is not available here

    def score(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None = None
    ) -> list[ScoreResult]:
        jobs = [(self._estimate(r.prompt, 8), lambda c, r=r: self._score(c, r)) for r in requests]
        return self._run_all(jobs, on_result)

    def generate(
        self, requests: Sequence[GenerateRequest], on_result: OnResult | None = None
    ) -> list[GenerateResult]:
        async def run(client: Any, request: GenerateRequest) -> GenerateResult:
            text, usage, _ = await self._complete(client, request)
            return GenerateResult(text, usage)

        jobs = [
            (self._estimate(r.messages or r.prompt, r.max_tokens), lambda c, r=r: run(c, r))
            for r in requests
        ]
        return self._run_all(jobs, on_result)

    def embed(
        self, requests: Sequence[EmbedRequest], on_result: OnResult | None = None
    ) -> list[EmbedResult]:
        """One `/v1/embeddings` request per text, `llm.max_concurrency` at a time."""
        jobs = [
            (self._estimate(r.text, 0), lambda c, r=r: self._embed(c, r.text)) for r in requests
        ]
        return self._run_all(jobs, on_result)

    def _estimate(self, request: str | Messages, max_tokens: int) -> int:
        """Tokens a request may use, for the tokens-per-minute limit."""
        text = request if isinstance(request, str) else _as_prompt(request)
        return self.count_tokens(text) + max_tokens

    def close(self) -> None:
        pass

    # -- scoring ----------------------------------------------------------------------------
    async def _score(self, client: Any, request: ScoreRequest) -> ScoreResult:
        labels = request.labels
        longest = max(len(label) for label in labels)
        asked = GenerateRequest(request.prompt, max_tokens=max(1, longest // 3 + 1))
        text, usage, top = await self._complete(client, asked, logprobs=True)
        if top:
            probs = _label_mass(top, labels)
            if probs is not None:
                return ScoreResult(probs, "logprobs", usage=usage)
        return replace(generation_score(text, labels, usage), logprobs_without_labels=bool(top))

    # -- embeddings ---------------------------------------------------------------------------
    async def _embed(self, client: Any, text: str) -> EmbedResult:
        start = time.perf_counter()
        response = await self._with_retries(
            lambda: client.embeddings.create(
                model=self.config.model, input=text, encoding_format="float"
            )
        )
        data = self._part(
            response,
            "data",
            "embeddings",
            "check llm.base_url and that the server embeds (bench-llm serve --embedding)",
        )
        usage = _usage(response, time.perf_counter() - start)
        return EmbedResult(_pooled(data[0].embedding), usage)

    # -- one request with retries -----------------------------------------------------------
    async def _complete(
        self,
        client: Any,
        request: GenerateRequest,
        logprobs: bool = False,
    ) -> tuple[str, Usage, dict[str, float] | None]:
        cfg = self.config
        common: dict[str, Any] = {
            "model": cfg.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.stop:
            common["stop"] = list(request.stop)
        if request.seed is not None:
            common["seed"] = request.seed
        if request.top_p is not None:
            common["top_p"] = request.top_p
        start = time.perf_counter()
        chat = request.messages
        if cfg.api == "completions":
            prompt = request.prompt if chat is None else _as_prompt(chat)
            extra = {"logprobs": cfg.top_logprobs} if logprobs else {}
            response = await self._with_retries(
                lambda: client.completions.create(prompt=prompt, **common, **extra)
            )
            choice = self._first_choice(response)
            text = choice.text or ""
            top = None
            if logprobs and choice.logprobs and choice.logprobs.top_logprobs:
                top = dict(choice.logprobs.top_logprobs[0])
        else:
            messages = chat or [{"role": "user", "content": request.prompt}]
            extra = {"logprobs": True, "top_logprobs": cfg.top_logprobs} if logprobs else {}
            response = await self._with_retries(
                lambda: client.chat.completions.create(messages=messages, **common, **extra)
            )
            choice = self._first_choice(response)
            text = choice.message.content or ""
            top = None
            if logprobs and choice.logprobs and choice.logprobs.content:
                top = {t.token: t.logprob for t in choice.logprobs.content[0].top_logprobs}
        return text, _usage(response, time.perf_counter() - start), top

    def _first_choice(self, response: Any) -> Any:
        """The first choice of a completion."""
        check = "check llm.base_url (it ends in /v1 for most servers) and llm.api"
        return self._part(response, "choices", "an OpenAI-style completion", check)[0]

    def _part(self, response: Any, name: str, expected: str, check: str) -> Any:
        """`response.<name>`; an answer without it (an HTML page from a proxy or a wrong
        base_url, which the SDK hands back as text) is an error naming the endpoint."""
        part = getattr(response, name, None)
        if not part:
            cfg = self.config
            seen = " ".join(str(response).split())[:120]
            raise LLMUnavailableError(
                f"LLM endpoint {cfg.base_url} (llm '{cfg.name}') answered, but not with "
                f"{expected} (got: {seen!r}); {check}"
            )
        return part

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        import openai

        cfg = self.config
        last: Exception | None = None
        attempts = _ATTEMPTS.get(None)
        for attempt in range(cfg.max_retries + 1):
            if self._breaker is not None and self._breaker.open:  # given up on meanwhile
                error = LLMUnavailableError(f"request not sent: {self._breaker.cause}")
                error.not_sent = True  # type: ignore[attr-defined]
                raise error from last
            if attempts is not None:
                attempts[0] += 1
            try:
                return await call()
            except (openai.APIConnectionError, openai.APITimeoutError) as error:  # incl. timeouts
                last, wait = error, None
            except json.JSONDecodeError as error:  # HTTP 200 whose body is not JSON
                raise LLMUnavailableError(
                    f"LLM endpoint {cfg.base_url} (llm '{cfg.name}', model '{cfg.model}') "
                    f"answered with a body that is not JSON ({error}); check llm.base_url (it "
                    "ends in /v1 for most servers) and any proxy in front of the server"
                ) from error
            except openai.APIStatusError as error:
                too_long = _context_overflow(str(error)) if error.status_code == 400 else None
                if too_long:
                    raise PromptTooLongError(*too_long, cfg.name) from error
                if error.status_code not in RETRYABLE_STATUS:
                    raise LLMUnavailableError(
                        f"LLM endpoint {cfg.base_url} (llm '{cfg.name}', model '{cfg.model}') "
                        f"refused the request: HTTP {error.status_code}: {_short(error)}"
                    ) from error
                last, wait = error, _retry_after(error.response)
            if attempt < cfg.max_retries:
                backoff = min(cfg.backoff_s * 2**attempt, cfg.backoff_max_s)
                delay = wait if wait is not None else backoff * (0.5 + random.random() / 2)
                delay = min(delay, cfg.backoff_max_s)
                log.warning(
                    "LLM endpoint %s (llm '%s'): %s: %s; retry %d/%d in %.1f s",
                    cfg.base_url,
                    cfg.name,
                    type(last).__name__,
                    _short(last),
                    attempt + 1,
                    cfg.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
        raise LLMUnavailableError(
            f"LLM endpoint {cfg.base_url} (llm '{cfg.name}', model '{cfg.model}') failed after "
            f"{cfg.max_retries + 1} attempts: {type(last).__name__}: {_short(last)}"
        ) from last

    # -- concurrency ----------------------------------------------------------------------------
    def _run_all(
        self, jobs: list[tuple[int, Callable[[Any], Awaitable[T]]]], on_result: OnResult | None
    ) -> list[T]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._gather(jobs, on_result))
        # Called from code that already runs an event loop (a notebook): use a worker thread.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self._gather(jobs, on_result)).result()

    async def _gather(
        self, jobs: list[tuple[int, Callable[[Any], Awaitable[T]]]], on_result: OnResult | None
    ) -> list[T]:
        from openai import AsyncOpenAI

        cfg = self.config
        limiter = self._limiter
        gate = asyncio.Semaphore(cfg.max_concurrency)
        client = AsyncOpenAI(
            base_url=cfg.base_url, api_key=self._key, timeout=cfg.timeout_s, max_retries=0
        )
        breaker = self._breaker = active_breaker(cfg)
        clock = WallShares()
        failed: list[BaseException] = []  # the first request that failed for good

        async def bounded(index: int, tokens: int, job: Callable[[Any], Awaitable[T]]) -> T:
            async with gate:
                if failed:  # the batch has failed: send no more
                    raise _BatchFailed
                started = clock.start()
                _ATTEMPTS.set(attempts := [0])
                try:
                    await limiter.acquire(tokens)
                    result = await job(client)
                except Exception as error:
                    failed.append(error)
                    unreached = isinstance(error, LLMUnavailableError) and not getattr(
                        error, "not_sent", False
                    )
                    if unreached and breaker is not None:
                        breaker.failure(error)  # no usable answer after every retry
                    raise
                finally:
                    share = clock.stop(started)
            if breaker is not None:
                breaker.success()
            # Priced here, once its share of the wall time is known (`usd_per_hour`).
            usage = replace(result.usage, llm_wall_seconds=share, requests_sent=attempts[0])
            result.usage = priced(usage, cfg.prices)  # type: ignore[attr-defined]
            if on_result is not None:  # e.g. the cache stores each answer as it arrives
                on_result(index, result)
            return result

        try:
            # Requests in flight when one fails for good run to their end (their answers are
            # paid for and cached, and each that cannot reach the endpoint counts on the
            # breaker: the first timeouts of a silent endpoint all count); none is sent after.
            calls = (bounded(i, t, j) for i, (t, j) in enumerate(jobs))
            results = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await client.close()
        if failed:
            raise failed[0]
        for result in results:  # e.g. `on_result` failed (it runs after the request)
            if isinstance(result, BaseException):
                raise result
        return list(results)  # type: ignore[arg-type]


class _BatchFailed(Exception):
    """A request not sent because another of its batch failed for good."""


class WallShares:
    """Splits wall time among concurrent requests: while n are in flight, each accrues 1/n of
    every second, so the shares of a batch add up to the wall time some request was in flight
    (not to the sum of their latencies, which grows with `llm.max_concurrency`).

    `start()` when a request starts, `stop(started)` when it ends: its share in seconds.
    """

    def __init__(self) -> None:
        self._in_flight = 0
        self._shared = 0.0  # seconds each request in flight since the start has accrued
        self._last = time.perf_counter()

    def _advance(self) -> float:
        now = time.perf_counter()
        if self._in_flight:
            self._shared += (now - self._last) / self._in_flight
        self._last = now
        return self._shared

    def start(self) -> float:
        started = self._advance()
        self._in_flight += 1
        return started

    def stop(self, started: float) -> float:
        share = self._advance() - started
        self._in_flight -= 1
        return share


def _label_mass(top: dict[str, float], labels: Sequence[str]) -> dict[str, float] | None:
    """Label probabilities from the first answer token's top log-probabilities.

    A token counts for a label when the label (ignoring case and surrounding spaces) starts with
    the token's text and no other label does; labels none of whose tokens appear get a floor.
    """
    import math

    keys = {label: label.strip().lower() for label in labels}
    mass = dict.fromkeys(labels, 0.0)
    for token, logprob in top.items():
        piece = token.strip().lower()
        if not piece:
            continue
        owners = [label for label, key in keys.items() if key.startswith(piece)]
        if len(owners) == 1:
            mass[owners[0]] += math.exp(logprob)
    if not any(mass.values()):
        return None
    floor = min(math.exp(lp) for lp in top.values()) / 2  # below anything the endpoint listed
    return normalize({label: math.log(m if m > 0 else floor) for label, m in mass.items()})


def _pooled(embedding: Any) -> list[float]:
    """A vector from an embedding: as sent, or the mean of per-token vectors (a llama.cpp server
    on a model without a pooling type answers one vector per token)."""
    values = np.asarray(embedding, dtype=float)
    return (values.mean(axis=0) if values.ndim == 2 else values).tolist()


# How servers say a prompt is too long. OpenAI and vLLM: "maximum context length is 8192 tokens
# ... resulted in 9000 tokens"; llama.cpp: "Requested tokens (9000) exceed context window of 8192".
_OVERFLOW_PATTERNS = (
    re.compile(r"maximum context length is (?P<limit>\d+).*?(?P<tokens>\d+) tokens", re.S),
    re.compile(r"Requested tokens \((?P<tokens>\d+)\) exceed context window of (?P<limit>\d+)"),
)


def _context_overflow(message: str) -> tuple[int, int] | None:
    """(prompt tokens, context limit) when an error message says the prompt does not fit."""
    for pattern in _OVERFLOW_PATTERNS:
        match = pattern.search(message)
        if match:
            return int(match["tokens"]), int(match["limit"])
    return None


def _usage(response: Any, seconds: float) -> Usage:
    usage = getattr(response, "usage", None)
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        requests=1,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cached_tokens=int(getattr(details, "cached_tokens", 0) or 0),
        llm_seconds=seconds,
    )


def _retry_after(response: Any) -> float | None:
    """Seconds a Retry-After header asks for (a number or an HTTP date), if there is one."""
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan" would sleep not at all and "inf" forever: back off as if it were absent
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:  # Python >= 3.10 raises on a malformed date instead of returning None
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # malformed: back off as if the header were absent
    if parsed.tzinfo is None:  # "-0000": HTTP dates are in GMT, not the local time zone
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return max(parsed.timestamp() - time.time(), 0.0)


def _as_prompt(messages: Messages) -> str:
    return "\n\n".join(m.get("content", "") for m in messages)


def _short(error: BaseException | None) -> str:
    text = str(error) if error else "no response"
    return text if len(text) <= 300 else text[:297] + "..."

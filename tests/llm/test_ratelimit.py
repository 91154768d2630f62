"""Requests- and tokens-per-minute limits. Every wait here is bounded: a blocked `acquire` is
shown by an asyncio timeout of a fraction of a second, never by waiting out the minute."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from omegaconf import DictConfig

from bench.llm import make_backend
from bench.llm.ratelimit import RateLimiter
from bench.llm.requests import ScoreRequest

if TYPE_CHECKING:
    from loopback import FaultProxy, LLMServer

BLOCKED_WITHIN_S = 0.3


async def blocks(limiter: RateLimiter, tokens: int) -> bool:
    """Whether one more `acquire(tokens)` has to wait (given BLOCKED_WITHIN_S to return)."""
    try:
        await asyncio.wait_for(limiter.acquire(tokens), timeout=BLOCKED_WITHIN_S)
    except TimeoutError:
        return True
    return False


async def acquire_quickly(limiter: RateLimiter, n: int, tokens: int) -> float:
    start = time.monotonic()
    for _ in range(n):
        await asyncio.wait_for(limiter.acquire(tokens), timeout=1.0)
    return time.monotonic() - start


def test_no_limits_never_wait() -> None:
    limiter = RateLimiter(None, None)
    assert asyncio.run(acquire_quickly(limiter, 1000, 10**6)) < 0.5


def test_requests_within_the_minute_budget_pass_then_the_next_waits() -> None:
    async def scenario() -> None:
        limiter = RateLimiter(requests_per_minute=3, tokens_per_minute=None)
        assert await acquire_quickly(limiter, 3, tokens=1) < 0.2
        assert await blocks(limiter, tokens=1)
        assert await blocks(limiter, tokens=1)  # a cancelled wait leaves the budget as it was

    asyncio.run(scenario())


def test_tokens_within_the_minute_budget_pass_then_the_next_waits() -> None:
    async def scenario() -> None:
        limiter = RateLimiter(requests_per_minute=None, tokens_per_minute=1000)
        assert await acquire_quickly(limiter, 2, tokens=400) < 0.2
        assert await blocks(limiter, tokens=400)  # 1200 > 1000

    asyncio.run(scenario())


def test_a_request_larger_than_the_whole_token_budget_goes_alone() -> None:
    async def scenario() -> None:
        limiter = RateLimiter(requests_per_minute=None, tokens_per_minute=100)
        assert await acquire_quickly(limiter, 1, tokens=500) < 0.2
        assert await blocks(limiter, tokens=1)

    asyncio.run(scenario())


def test_waiters_are_served_one_at_a_time() -> None:
    async def scenario() -> None:
        limiter = RateLimiter(requests_per_minute=2, tokens_per_minute=None)
        results = await asyncio.gather(
            *(asyncio.wait_for(limiter.acquire(1), timeout=BLOCKED_WITHIN_S) for _ in range(4)),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 2
        assert sum(isinstance(r, TimeoutError) for r in results) == 2

    asyncio.run(scenario())


@pytest.mark.e2e
def test_requests_per_minute_hold_across_calls(
    llm_server: LLMServer,
    openai_llm: Callable[..., DictConfig],
    fault_proxy: Callable[..., FaultProxy],
) -> None:
    proxy = fault_proxy(llm_server)
    cfg = openai_llm(
        proxy.url,
        "llm.api=completions",
        "llm.requests_per_minute=2",
        "llm.max_retries=0",
        model=llm_server.model,
    )
    backend = make_backend(cfg, use_cache=False)
    backend.score(
        [
            ScoreRequest("The capital of France is", [" A", " B"]),
            ScoreRequest("The capital of Italy is", [" A", " B"]),
        ]
    )
    answered = threading.Event()

    def third_request() -> None:
        # Once the limit holds this waits out the minute; the proxy is gone by then, so the
        # late request fails at once (max_retries=0) and the thread ends.
        with contextlib.suppress(Exception):
            backend.score([ScoreRequest("The capital of Spain is", [" A", " B"])])
        answered.set()

    threading.Thread(target=third_request, daemon=True).start()
    assert not answered.wait(timeout=3.0), "a third request went out within the same minute"

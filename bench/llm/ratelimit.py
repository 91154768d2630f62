"""Requests- and tokens-per-minute limits for an async client (a sliding one-minute window)."""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["RateLimiter"]


class RateLimiter:
    """Waits until one more request of `tokens` tokens fits in the last 60 seconds' budget.

    One limiter lives as long as its backend, so the budget holds across calls; each call runs
    its own event loop, so the lock is made anew for each loop.
    """

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None) -> None:
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self._events: deque[tuple[float, int]] = deque()  # (time, tokens) of recent requests
        self._locks: dict[int, asyncio.Lock] = {}

    def _lock(self) -> asyncio.Lock:
        loop = id(asyncio.get_running_loop())
        if loop not in self._locks:
            self._locks = {loop: asyncio.Lock()}  # earlier loops are closed: forget their locks
        return self._locks[loop]

    async def acquire(self, tokens: int) -> None:
        if not self.rpm and not self.tpm:
            return
        async with self._lock():
            while True:
                now = time.monotonic()
                while self._events and now - self._events[0][0] >= 60.0:
                    self._events.popleft()
                used = sum(t for _, t in self._events)
                fits_requests = not self.rpm or len(self._events) < self.rpm
                # A single request larger than the whole budget is let through alone.
                fits_tokens = not self.tpm or used + tokens <= self.tpm or not self._events
                if fits_requests and fits_tokens:
                    self._events.append((now, tokens))
                    return
                await asyncio.sleep(max(60.0 - (now - self._events[0][0]), 0.01))

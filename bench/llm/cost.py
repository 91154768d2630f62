"""What a request costs: token prices per million, plus an optional $/hour for local hardware."""

from __future__ import annotations

from omegaconf import DictConfig

from bench.llm.backend import Usage

__all__ = ["priced"]


def priced(usage: Usage, prices: DictConfig) -> Usage:
    """`usage` with its `usd` filled in from the llm config's `prices`.

    Cached prompt tokens are billed at the cached-input price, the rest at the input price;
    `usd_per_hour` charges LLM wall time (a rented GPU serving a self-hosted model): the
    request's share of it (`llm_wall_seconds`), so concurrent requests are not charged the same
    hour several times.
    """
    uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
    usd = (
        uncached * prices.input_per_m
        + usage.cached_tokens * prices.cached_input_per_m
        + usage.completion_tokens * prices.output_per_m
    ) / 1e6 + usage.llm_wall_seconds * prices.usd_per_hour / 3600.0
    return Usage(**{**usage.as_dict(), "usd": usd})

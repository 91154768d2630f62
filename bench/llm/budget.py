"""A sweep's spending cap on an endpoint (`llm.budget_usd`), shared by all its jobs and workers."""

from __future__ import annotations

from bench.llm.protocol import LLMBackend

__all__ = ["with_budget"]


def with_budget(backend: LLMBackend) -> LLMBackend:
    """`backend`, refusing any request that would take the sweep past `llm.budget_usd`."""
    return backend  # no cap until the ledger lands

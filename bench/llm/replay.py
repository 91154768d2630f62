"""Answers only from the request cache (`llm.replay`): no endpoint contacted, no model loaded."""

from __future__ import annotations

from omegaconf import DictConfig

from bench.llm.protocol import LLMBackend

__all__ = ["replay_source"]


def replay_source(cfg: DictConfig) -> LLMBackend:
    """The innermost backend under `llm.replay`: every request that reaches it is a miss."""
    raise NotImplementedError("llm.replay is not implemented yet")

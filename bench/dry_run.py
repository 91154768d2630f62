"""`bench-run ... dry_run=true`: the sweep planned as it would run, its LLM requests counted."""

from __future__ import annotations

from omegaconf import DictConfig

from bench.llm.protocol import LLMBackend

__all__ = ["planning_backend"]


def planning_backend(cfg: DictConfig) -> LLMBackend | None:
    """The backend that counts a dry run's requests, or None outside a dry run."""
    return None

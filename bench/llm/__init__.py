"""The LLM layer: one backend protocol, an in-process llama.cpp backend, an OpenAI-compatible
HTTP backend, a request cache and cost accounting. Every LLM family goes through `make_backend`."""

from bench.llm.backend import (
    GenerateResult,
    LLMBackend,
    LLMConfigError,
    LLMUnavailableError,
    PromptTooLongError,
    ScoreResult,
    Usage,
    make_backend,
)

__all__ = [
    "GenerateResult",
    "LLMBackend",
    "LLMConfigError",
    "LLMUnavailableError",
    "PromptTooLongError",
    "ScoreResult",
    "Usage",
    "make_backend",
]

"""The LLM layer: one backend protocol, an in-process llama.cpp backend, an OpenAI-compatible
HTTP backend, a request cache and cost accounting. Every LLM family goes through `make_backend`."""

from bench.llm.backend import (
    EmbedRequest,
    EmbedResult,
    GenerateRequest,
    GenerateResult,
    LLMBackend,
    LLMConfigError,
    LLMUnavailableError,
    PromptTooLongError,
    ScoreRequest,
    ScoreResult,
    Usage,
    make_backend,
)

__all__ = [
    "EmbedRequest",
    "EmbedResult",
    "GenerateRequest",
    "GenerateResult",
    "LLMBackend",
    "LLMConfigError",
    "LLMUnavailableError",
    "PromptTooLongError",
    "ScoreRequest",
    "ScoreResult",
    "Usage",
    "make_backend",
]

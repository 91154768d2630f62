"""The LLM layer: one backend protocol, an in-process llama.cpp backend, an OpenAI-compatible
HTTP backend, a request cache and cost accounting. Every LLM family goes through `make_backend`."""

# The layer's public names are those of bench.llm.backend.
from bench.llm.backend import *  # noqa: F403
from bench.llm.backend import __all__ as __all__

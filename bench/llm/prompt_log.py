"""The prompts a run sent, kept on request (`llm.save_prompts=true`) as `prompts.jsonl`.

The runner opens a `PromptLog` for a run whose llm config asks for it and marks the phase
(``fit`` while the method fits, ``predict`` while it predicts the test rows). While a log is open,
`bench.llm.backend.make_backend` wraps every backend it builds in a `RecordingBackend`, so every
request a method makes -- whichever method, however many backends it builds (a prompt search's
candidates, a distillation teacher, an optimizer LLM) -- is written down before it is sent, with
no change to the methods. The wrapper sits outside the request cache: a request answered from
the cache is recorded too, since the method asked it.

One JSON object per line and request::

    {"phase": "fit" | "predict", "call": "score" | "generate" | "embed",
     "prompt": text (or "messages": a chat message list), "labels": [answer words] (score only)}

Saving prompts does not change what a run computes, so it is not part of the run's id.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from bench.llm.protocol import (
    EmbedResult,
    GenerateResult,
    LLMBackend,
    Messages,
    OnResult,
    ScoreResult,
)

__all__ = ["PROMPTS_FILE", "PromptLog", "RecordingBackend", "active_log", "recording"]

PROMPTS_FILE = "prompts.jsonl"  # the run's artifact: <results>/artifacts/<run stem>/prompts.jsonl

_ACTIVE: ContextVar[PromptLog | None] = ContextVar("bench_prompt_log", default=None)


@dataclass
class PromptLog:
    """The requests of one run, in the order they were made."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    phase: str = "fit"

    def add(self, call: str, request: str | Messages, **extra: Any) -> None:
        if isinstance(request, str):
            entry = {"prompt": request}
        else:  # a copy: a caller may extend its conversation after sending it
            entry = {"messages": [dict(message) for message in request]}
        self.entries.append({"phase": self.phase, "call": call, **entry, **extra})

    def jsonl(self) -> str:
        return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.entries)


def active_log() -> PromptLog | None:
    """The log of the run being executed, if it keeps its prompts."""
    return _ACTIVE.get()


@contextlib.contextmanager
def recording(log: PromptLog | None, phase: str) -> Iterator[None]:
    """Record the requests made inside the block into `log` as `phase` (no-op for None)."""
    if log is None:
        yield
        return
    log.phase = phase
    token = _ACTIVE.set(log)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


class RecordingBackend:
    """Any backend, with every request written to a `PromptLog` before it is sent."""

    def __init__(self, backend: LLMBackend, log: PromptLog) -> None:
        self.backend = backend
        self.log = log
        self.config = backend.config

    def score_many(
        self, prompts: Sequence[str], labels: Sequence[str], on_result: OnResult | None = None
    ) -> list[ScoreResult]:
        for prompt in prompts:
            self.log.add("score", prompt, labels=list(labels))
        return self.backend.score_many(prompts, labels, on_result=on_result)

    def generate_many(
        self,
        requests: Sequence[str | Messages],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        on_result: OnResult | None = None,
        seed: int | None = None,
    ) -> list[GenerateResult]:
        for request in requests:
            self.log.add("generate", request)
        return self.backend.generate_many(
            requests, max_tokens, temperature, stop, on_result=on_result, seed=seed
        )

    def embed_many(
        self, texts: Sequence[str], on_result: OnResult | None = None
    ) -> list[EmbedResult]:
        for text in texts:
            self.log.add("embed", text)
        return self.backend.embed_many(texts, on_result=on_result)

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def __getattr__(self, name: str) -> Any:
        # Optional extras of the wrapped backend (e.g. first_token) pass through.
        if name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    def close(self) -> None:
        self.backend.close()

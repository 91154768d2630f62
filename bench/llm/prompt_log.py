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

from bench.llm.protocol import LLMBackend, OnResult
from bench.llm.requests import EmbedRequest, GenerateRequest, LLMRequest, ScoreRequest
from bench.llm.wrapper import Answer, BackendWrapper

__all__ = ["PROMPTS_FILE", "PromptLog", "RecordingBackend", "active_log", "recording"]

PROMPTS_FILE = "prompts.jsonl"  # the run's artifact: <results>/artifacts/<run stem>/prompts.jsonl

_ACTIVE: ContextVar[PromptLog | None] = ContextVar("bench_prompt_log", default=None)


@dataclass
class PromptLog:
    """The requests of one run, in the order they were made."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    phase: str = "fit"

    def add(self, request: LLMRequest) -> None:
        """One line for `request`: what was asked (decoding options are not kept)."""
        if isinstance(request, GenerateRequest) and request.messages is not None:
            entry: dict[str, Any] = {"messages": request.messages}
        elif isinstance(request, EmbedRequest):
            entry = {"prompt": request.text}
        else:
            entry = {"prompt": request.prompt}
        if isinstance(request, ScoreRequest):
            entry["labels"] = list(request.labels)
        self.entries.append({"phase": self.phase, "call": request.op, **entry})

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


class RecordingBackend(BackendWrapper):
    """Any backend, with every request written to a `PromptLog` before it is sent."""

    def __init__(self, backend: LLMBackend, log: PromptLog) -> None:
        super().__init__(backend)
        self.log = log

    def _answer(
        self, requests: Sequence[LLMRequest], answer: Answer, on_result: OnResult | None
    ) -> list[Any]:
        for request in requests:
            self.log.add(request)
        return answer(requests, on_result=on_result)

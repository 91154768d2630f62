"""What is asked of an LLM, as data: one frozen request type per question a backend answers.

A request holds everything that decides its answer apart from the llm config (the prompt and
every decoding option), so the request cache keys on (LLM identity, request) generically and a
wrapper forwards requests without knowing their fields. Adding a decoding option is one field
here, read by the two backends; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "EmbedRequest",
    "GenerateRequest",
    "LLMRequest",
    "Message",
    "ScoreRequest",
    "as_messages",
    "request_fields",
]

# One chat message, frozen: callers pass OpenAI-style dicts, requests store (role, content).
Message = tuple[str, str]


def as_messages(messages: Sequence[Mapping[str, str] | Sequence[str]]) -> tuple[Message, ...]:
    """Chat messages as a hashable tuple of (role, content) pairs."""
    return tuple(
        (m["role"], m["content"]) if isinstance(m, Mapping) else (m[0], m[1]) for m in messages
    )


@dataclass(frozen=True)
class ScoreRequest:
    """A probability for each label as the continuation of `prompt` (next-token logprobs).

    >>> ScoreRequest("The capital of France is", [" Paris", " London"]).labels
    (' Paris', ' London')
    """

    prompt: str
    labels: tuple[str, ...]

    op = "score"

    def __post_init__(self) -> None:  # a list of labels is accepted, a tuple is kept
        object.__setattr__(self, "labels", tuple(self.labels))


@dataclass(frozen=True)
class GenerateRequest:
    """Text continuing `prompt`: a plain string, or chat messages as (role, content) pairs.

    Chat messages may be given as OpenAI-style dicts and `stop` as a list or None; both are
    stored frozen, so equal requests are equal values.

    >>> GenerateRequest([{"role": "user", "content": "Hi"}], stop=None).prompt
    (('user', 'Hi'),)
    """

    prompt: str | tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None  # sampling seed, so a temperature > 0 answer reproduces
    top_p: float | None = None  # nucleus sampling; None = the backend's default

    op = "generate"

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            object.__setattr__(self, "prompt", as_messages(self.prompt))
        object.__setattr__(self, "stop", tuple(self.stop or ()))

    @property
    def messages(self) -> list[dict[str, str]] | None:
        """The chat messages as the OpenAI API writes them, or None for a plain prompt."""
        if isinstance(self.prompt, str):
            return None
        return [{"role": role, "content": content} for role, content in self.prompt]


@dataclass(frozen=True)
class EmbedRequest:
    """An embedding of `text` (the hidden states of its tokens, mean-pooled)."""

    text: str

    op = "embed"


LLMRequest = ScoreRequest | GenerateRequest | EmbedRequest


def request_fields(request: LLMRequest) -> dict[str, Any]:
    """The request's fields as plain data (for cache keys and prompt logs).

    >>> request_fields(EmbedRequest("a row"))
    {'op': 'embed', 'text': 'a row'}
    """
    return {"op": request.op, **asdict(request)}

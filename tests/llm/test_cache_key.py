"""Cache keys written before requests became data are still found: users paid for those answers.

The hex keys below were computed by the cache as of commit c8ac52d (before requests were data):
its own `CachedBackend.score_many / generate_many / embed_many` (from
`git show c8ac52d:bench/llm/cache.py`) wrapped around a backend that answered every request,
on the `openai_gpt_4o_mini` config, then read back from its SQLite file. A hosted config's key
holds no file identity, so it is the same on every machine. The embedded model's key holds its
weights file's identity (its content since keys became portable; its path and mtime too before,
still read: tests/llm/test_cache_weights.py), so that one is checked against the layout spelled
out.
"""

from __future__ import annotations

import pytest

from bench.config import compose_config
from bench.llm.backend import as_llm_config
from bench.llm.cache import RequestCache
from bench.llm.cache_key import cache_key
from bench.llm.requests import EmbedRequest, GenerateRequest, LLMRequest, ScoreRequest
from bench.llm.weights import resolve_model_path, weights_identity

SCORE = ScoreRequest("The capital of France is", [" Paris", " London"])
TEXT = GenerateRequest("Once upon a time", max_tokens=4)
CHAT = GenerateRequest(
    [{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0.7, stop=["\n"], seed=3
)
EMBED = EmbedRequest("age: 42, plan: basic")

# c8ac52d: score_many([SCORE.prompt], SCORE.labels); generate_many([TEXT.prompt], max_tokens=4);
# generate_many([CHAT messages], max_tokens=8, temperature=0.7, stop=["\n"], seed=3);
# embed_many([EMBED.text]); llm=openai_gpt_4o_mini.
BEFORE = [
    (SCORE, "afcd8d2d221e2404069094ce16d1103a17f5cfb807ed2fdb3180ac0bfb8fe206"),
    (TEXT, "efcd3d31c846d4b6a16c230e0f8227612250f62e72b3081375ad80af78b760b9"),
    (CHAT, "cb627cabcf94746bbc71ad5fd1918907380bf17ab5cb852b441efa97658e7105"),
    (EMBED, "76f6e4d206902633a9950f4cab15302aadd8e17263901eb8b870a8619b6d12d6"),
]


@pytest.mark.parametrize(("request_", "key"), BEFORE, ids=["score", "text", "chat", "embed"])
def test_a_hosted_models_keys_are_those_written_before(request_: LLMRequest, key: str) -> None:
    cfg = as_llm_config(compose_config(["llm=openai_gpt_4o_mini"]).llm)
    assert cache_key(cfg, request_) == key


def test_an_embedded_models_keys_keep_their_old_layout() -> None:
    """The layout of c8ac52d's `CachedBackend`, written out: the weights file's identity stands
    for `model_path` (today by content, then with path and mtime: `legacy_llm_identity`);
    `top_logprobs` is in a score's key only; no seed when none is set."""
    cfg = as_llm_config(compose_config(["llm=local_gemma3_270m"]).llm)
    identity = {
        "backend": "llamacpp",
        "base_url": None,
        "model": "gemma-3-270m-q4_k_m",
        "api": "completions",
        "context": [32768, "auto"],
        "weights": weights_identity(resolve_model_path(cfg.model_path, cfg.name)),
    }
    old = RequestCache.key
    assert cache_key(cfg, SCORE) == old(
        **identity, op="score", labels=list(SCORE.labels), top_logprobs=20, prompt=SCORE.prompt
    )
    assert cache_key(cfg, TEXT) == old(
        **identity, op="generate", max_tokens=4, temperature=0.0, stop=[], request=TEXT.prompt
    )
    assert cache_key(cfg, CHAT) == old(
        **identity,
        op="generate",
        max_tokens=8,
        temperature=0.7,
        stop=["\n"],
        seed=3,
        request=[{"role": "user", "content": "Say hello."}],
    )
    assert cache_key(cfg, EMBED) == old(**identity, op="embed", pooling="mean", text=EMBED.text)


def test_equal_requests_are_equal_values_whatever_their_spelling() -> None:
    """Messages as dicts or pairs, `stop` as a list, a tuple or None: one request, one key."""
    pairs = GenerateRequest((("user", "Say hello."),), 8, 0.7, ("\n",), 3)
    assert pairs == CHAT and hash(pairs) == hash(CHAT)
    assert GenerateRequest("x", stop=None) == GenerateRequest("x", stop=[])
    assert ScoreRequest("p", (" a", " b")) == ScoreRequest("p", [" a", " b"])

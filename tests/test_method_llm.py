"""`method.llm`: a method that always uses its own llm config, whatever the sweep's `llm=` says,
and a request cache that never mixes the answers of the two embedded Qwen models."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig

from bench.config import compose_config
from bench.llm.backend import as_llm_config
from bench.llm.cache import CachedBackend, RequestCache
from bench.llm.cache_key import llm_identity
from bench.llm.llamacpp_backend import LlamaCppBackend
from bench.llm.requests import GenerateRequest
from bench.registry import UnknownNameError
from bench.runner import RunSpec, specs_for

SWEEP_LLM = "local_gemma3_270m"


def sweep(tmp_path: Path, method: str, *overrides: str) -> DictConfig:
    return compose_config(
        [
            "dataset=callcenter",
            f"method={method}",
            f"llm={SWEEP_LLM}",
            f"llm.cache_path={tmp_path / 'sweep_cache.sqlite'}",
            "llm.cache=false",
            "seeds=[0,1]",
            "n_train=[16]",
            f"results_dir={tmp_path / 'results'}",
            *overrides,
        ]
    )


def test_a_pinned_llm_replaces_the_sweeps_but_keeps_its_cache_settings(
    tmp_path: Path,
) -> None:
    specs = specs_for(sweep(tmp_path, "llm_codegen_local"))
    assert len(specs) == 2
    for spec in specs:
        assert spec.llm == "local_qwen25_coder_1_5b"
        assert spec.llm_config is not None
        assert spec.llm_config["model_path"] == "bench.llm.models:qwen25_coder_1_5b_gguf"
        assert spec.llm_config["api"] == "chat"
        assert spec.llm_config["cache_path"] == str(tmp_path / "sweep_cache.sqlite")
        assert spec.llm_config["cache"] is False
        assert spec.determinants["llm"]["name"] == "local_qwen25_coder_1_5b"


def test_an_unpinned_method_uses_the_sweeps_llm(tmp_path: Path) -> None:
    (spec, _) = specs_for(sweep(tmp_path, "llm_icl"))
    assert spec.llm == SWEEP_LLM
    assert spec.llm_config is not None and spec.llm_config["name"] == SWEEP_LLM


def test_pinning_changes_the_run_identity(tmp_path: Path) -> None:
    def first(*overrides: str) -> RunSpec:
        return specs_for(sweep(tmp_path, "llm_codegen", *overrides))[0]

    plain, pinned = first(), first("method.llm=local_qwen25_coder_0_5b")
    assert pinned.llm == "local_qwen25_coder_0_5b"
    assert plain.run_id != pinned.run_id  # results of another model are never reused


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("nope", None), ("local_qwen25_coder_0_5", "Did you mean 'local_qwen25_coder_0_5b'?")],
)
def test_an_unknown_pinned_llm_names_the_key(
    tmp_path: Path, name: str, suggestion: str | None
) -> None:
    with pytest.raises(UnknownNameError) as raised:
        specs_for(sweep(tmp_path, "llm_icl", f"method.llm={name}"))
    message = str(raised.value)
    assert f"Unknown llm '{name}'" in message and "method.llm" in message
    assert "local_qwen25_coder_1_5b" in message  # the valid names are listed
    if suggestion:
        assert suggestion in message


def cached(name: str, tmp_path: Path) -> CachedBackend:
    cfg = compose_config([f"llm={name}", "llm.n_threads=2"]).llm
    cache = RequestCache(tmp_path / "cache.sqlite")
    return CachedBackend(LlamaCppBackend(as_llm_config(cfg)), cache)


def test_the_request_cache_tells_the_two_qwen_models_apart(tmp_path: Path) -> None:
    large = cached("local_qwen25_coder_1_5b", tmp_path)
    small = cached("local_qwen25_coder_0_5b", tmp_path)
    identities = [llm_identity(backend.config, "generate") for backend in (large, small)]
    assert identities[0]["weights"]["size"] != identities[1]["weights"]["size"]
    request = GenerateRequest("Write hello world.", max_tokens=64)
    assert large.key(request) != small.key(request)
    for backend in (large, small):
        backend.close()

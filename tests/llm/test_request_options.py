"""A decoding option is one field of the request, read by the two backends (issue 26: adding
`top_p` took bench/llm/requests.py, openai_backend.py and llamacpp_backend.py, nothing else)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from omegaconf import DictConfig

from bench.llm import make_backend
from bench.llm.requests import GenerateRequest

if TYPE_CHECKING:
    from loopback import LLMServer

PROMPT = "A list of fruits: apple, banana,"


def _texts(cfg: DictConfig, requests: list[GenerateRequest]) -> list[str]:
    backend = make_backend(cfg, use_cache=False)
    try:
        return [result.text for result in backend.generate(requests)]
    finally:
        backend.close()


def _sampled_and_greedy(cfg: DictConfig) -> None:
    greedy = GenerateRequest(PROMPT, max_tokens=12, temperature=0.0)
    # At temperature 1.5 a few seeds give different texts; a tiny top_p keeps only the most
    # likely token at each step, so every seed then writes the greedy text.
    hot = [GenerateRequest(PROMPT, max_tokens=12, temperature=1.5, seed=s) for s in range(4)]
    nucleus = [
        GenerateRequest(PROMPT, max_tokens=12, temperature=1.5, seed=s, top_p=1e-6)
        for s in range(4)
    ]
    (expected,) = _texts(cfg, [greedy])
    assert len(set(_texts(cfg, hot))) > 1  # sampling does vary ...
    assert _texts(cfg, nucleus) == [expected] * 4  # ... and top_p reached the model


def test_top_p_reaches_the_embedded_model(local_llm_cfg: DictConfig) -> None:
    _sampled_and_greedy(local_llm_cfg)


@pytest.mark.e2e
def test_top_p_reaches_an_endpoint(
    llm_server: LLMServer, openai_llm: Callable[..., DictConfig]
) -> None:
    _sampled_and_greedy(
        openai_llm(llm_server.base_url, "llm.api=completions", model=llm_server.model)
    )


def test_an_unset_option_leaves_the_cache_key_as_it_was(local_llm_cfg: DictConfig) -> None:
    backend = make_backend(local_llm_cfg)
    try:
        plain = GenerateRequest(PROMPT, max_tokens=4)
        assert backend.key(plain) == backend.key(GenerateRequest(PROMPT, max_tokens=4, top_p=None))
        assert backend.key(plain) != backend.key(GenerateRequest(PROMPT, max_tokens=4, top_p=0.5))
    finally:
        backend.close()

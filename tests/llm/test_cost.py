"""Cost accounting: token prices per million (cached input cheaper), $/hour for local hardware."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from omegaconf import DictConfig, OmegaConf

from bench.config import PricesConfig, compose_config, config_names
from bench.llm import Usage, make_backend
from bench.llm.cost import priced
from bench.llm.requests import GenerateRequest, ScoreRequest

if TYPE_CHECKING:
    from loopback import LLMServer


def prices(**values: float) -> DictConfig:
    return OmegaConf.merge(OmegaConf.structured(PricesConfig), values)


def test_tokens_are_billed_at_their_prices() -> None:
    usage = Usage(
        requests=3, prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=200_000
    )
    bill = priced(usage, prices(input_per_m=2.0, cached_input_per_m=0.5, output_per_m=8.0))
    # 600k uncached x $2/M + 400k cached x $0.5/M + 200k out x $8/M
    assert bill.usd == pytest.approx(1.2 + 0.2 + 1.6)
    # Everything else is kept as it was, and the input is not modified.
    assert {k: v for k, v in bill.as_dict().items() if k != "usd"} == {
        k: v for k, v in usage.as_dict().items() if k != "usd"
    }
    assert usage.usd == 0.0


def test_cached_tokens_beyond_the_prompt_are_not_billed_twice() -> None:
    usage = Usage(prompt_tokens=100, cached_tokens=150)
    assert priced(usage, prices(input_per_m=1e6, cached_input_per_m=1.0)).usd == pytest.approx(
        150 / 1e6
    )


def test_usd_per_hour_charges_llm_wall_seconds() -> None:
    # the request's share of the wall time, not its latency (shared with concurrent requests)
    usage = Usage(requests=1, prompt_tokens=10, llm_seconds=7200.0, llm_wall_seconds=1800.0)
    assert priced(usage, prices(usd_per_hour=3.0)).usd == pytest.approx(1.5)
    both = priced(usage, prices(usd_per_hour=3.6, input_per_m=1e5))
    assert both.usd == pytest.approx(1.8 + 1.0)


def test_free_prices_cost_nothing() -> None:
    usage = Usage(requests=5, prompt_tokens=10**6, completion_tokens=10**6, llm_seconds=60.0)
    assert priced(usage, prices()).usd == 0.0


def test_usage_adds_up_field_by_field() -> None:
    total = Usage(requests=1, prompt_tokens=10, usd=0.5, llm_seconds=1.0) + Usage(
        requests=2, completion_tokens=3, cached_tokens=4, cache_hits=1, usd=0.25
    )
    assert total == Usage(
        requests=3,
        prompt_tokens=10,
        completion_tokens=3,
        cached_tokens=4,
        cache_hits=1,
        usd=0.75,
        llm_seconds=1.0,
    )


def test_every_llm_config_has_prices_and_local_ones_are_free() -> None:
    for name in config_names("llm"):
        cfg = compose_config([f"llm={name}"]).llm
        assert set(cfg.prices) == {
            "input_per_m",
            "output_per_m",
            "cached_input_per_m",
            "usd_per_hour",
        }
        assert cfg.context_length > 0
        if cfg.backend == "llamacpp":
            assert all(v == 0 for v in cfg.prices.values()), name
        if name.startswith("openai_gpt"):
            p = cfg.prices
            assert 0 < p.cached_input_per_m <= p.input_per_m < p.output_per_m, name


def test_a_local_model_with_an_hourly_price(local_llm_cfg: DictConfig, tmp_path: Path) -> None:
    cfg = OmegaConf.merge(
        local_llm_cfg,
        {"cache_path": str(tmp_path / "cache.sqlite"), "prices": {"usd_per_hour": 36.0}},
    )
    backend = make_backend(cfg)
    (result,) = backend.score([ScoreRequest("The capital of France is", [" Paris", " London"])])
    assert result.usage.usd == pytest.approx(result.usage.llm_seconds * 36.0 / 3600.0)
    assert result.usage.llm_wall_seconds == result.usage.llm_seconds  # one request at a time
    assert result.usage.usd > 0
    (hit,) = backend.score([ScoreRequest("The capital of France is", [" Paris", " London"])])
    assert hit.usage.cache_hits == 1 and hit.usage.usd == 0.0  # counted, not billed


@pytest.mark.e2e
def test_an_endpoint_bills_the_tokens_it_reports(
    llm_server: LLMServer, openai_llm: Callable[..., DictConfig]
) -> None:
    cfg = openai_llm(
        llm_server.base_url,
        "llm.api=chat",
        "llm.prices.input_per_m=2.5",
        "llm.prices.output_per_m=10",
        "llm.prices.cached_input_per_m=1.25",
        model=llm_server.model,
    )
    backend = make_backend(cfg)
    for request in ("score", "generate"):
        if request == "score":
            (result,) = backend.score(
                [ScoreRequest("The capital of France is", [" Paris", " London"])]
            )
        else:
            (result,) = backend.generate([GenerateRequest("Say hello.", max_tokens=4)])
        usage = result.usage
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
        uncached = usage.prompt_tokens - usage.cached_tokens
        expected = (
            uncached * 2.5 + usage.cached_tokens * 1.25 + usage.completion_tokens * 10
        ) / 1e6
        assert usage.usd == pytest.approx(expected), request

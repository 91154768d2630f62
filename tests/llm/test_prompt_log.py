"""The prompt recorder: every request a backend built inside `recording` is written down, in
order, answered from the request cache or not (on the real embedded SmolLM2 model)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.llm import make_backend
from bench.llm.prompt_log import PromptLog, recording
from bench.llm.requests import EmbedRequest, GenerateRequest, ScoreRequest

CHAT = [{"role": "user", "content": "Say hello."}]


def test_every_request_is_recorded_with_its_phase(
    local_llm_cfg: DictConfig, tmp_path: Path
) -> None:
    cfg = OmegaConf.merge(local_llm_cfg, {"cache_path": str(tmp_path / "cache.sqlite")})
    log = PromptLog()
    asked = [ScoreRequest("The capital of France is", [" Paris", " London"])]
    with recording(log, "fit"):
        backend = make_backend(cfg)
        backend.score(asked)
        backend.generate([GenerateRequest(CHAT, max_tokens=2)])
    with recording(log, "predict"):
        backend.score(asked)  # a cache hit: asked all the same
        backend.embed([EmbedRequest("age: 42")])
    backend.close()
    assert log.entries == [
        {
            "phase": "fit",
            "call": "score",
            "prompt": "The capital of France is",
            "labels": [" Paris", " London"],
        },
        {"phase": "fit", "call": "generate", "messages": CHAT},
        {
            "phase": "predict",
            "call": "score",
            "prompt": "The capital of France is",
            "labels": [" Paris", " London"],
        },
        {"phase": "predict", "call": "embed", "prompt": "age: 42"},
    ]
    outside = make_backend(cfg)  # built with no log open: records nothing
    outside.score(asked)
    outside.close()
    assert len(log.entries) == 4

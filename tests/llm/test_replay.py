"""`llm.replay=true`: answers come only from the request cache (bench/llm/replay.py).

Real runs on the embedded SmolLM2 and a real loopback endpoint: a replayed run in a fresh process
computes the same metrics without ever loading the model (llama.cpp's process-wide model table
stays empty; only the vocab-only tokenizer is read), and a request missing from the cache fails
the run, naming the request, the cache file and `llm.replay`, without contacting the endpoint.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from omegaconf import DictConfig

from bench.config import compose_config
from bench.llm.backend import ScoreRequest, make_backend
from bench.llm.cache import (
    CACHE_KEYS_FILE,
    CacheKeys,
    ReplayMissError,
    RequestCache,
    collecting_keys,
)
from bench.llm.openai_backend import OpenAIBackend
from bench.llm.protocol import LLMConfigError
from bench.paths import PROJECT_ROOT
from bench.results import ResultsStore
from bench.runner import run_job

if TYPE_CHECKING:
    from loopback import FaultProxy

JOB = (
    "dataset=callcenter",
    "method=llm_icl",
    "seeds=[0]",
    "n_train=[4]",
    "split.max_test_rows=6",
    "llm=local_smollm2_135m",
)

# Runs the replayed job in a fresh process, then says what llama.cpp loaded there.
REPLAY_SCRIPT = """
import json, sys
from bench.config import compose_config
from bench.runner import run_job
from bench.llm import llamacpp_backend as lb

cfg = compose_config(json.loads(sys.argv[1]))
summary = run_job(cfg)
print(json.dumps({
    "executed": dict(summary.executed),
    "models": len(lb._MODELS),
    "embedders": len(lb._EMBEDDERS),
    "vocabs": len(lb._VOCABS),
}))
"""


def _only_record(results: Path) -> dict:
    (record,) = ResultsStore(results).records()
    return record


@pytest.mark.e2e
def test_a_replayed_run_loads_no_model_and_computes_the_same_metrics(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    first = compose_config([*JOB, f"llm.cache_path={cache}", f"results_dir={tmp_path / 'first'}"])
    assert dict(run_job(first).executed) == {"ok": 1}
    original = _only_record(tmp_path / "first")

    # The run's key list is exactly what its (fresh) cache holds.
    (keys_file,) = [a for a in original["artifacts"] if a.endswith(CACHE_KEYS_FILE)]
    listed = (tmp_path / "first" / keys_file).read_text().split()
    with sqlite3.connect(cache) as conn:
        stored = {row[0] for row in conn.execute("SELECT key FROM responses")}
    assert len(listed) == len(set(listed)) == original["usage"]["requests"] > 0
    assert set(listed) == stored

    overrides = [
        *JOB,
        f"llm.cache_path={cache}",
        "llm.replay=true",
        f"results_dir={tmp_path / 'replayed'}",
    ]
    done = subprocess.run(
        [sys.executable, "-c", REPLAY_SCRIPT, json.dumps(overrides)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["executed"] == {"ok": 1}
    assert loaded["models"] == 0 and loaded["embedders"] == 0  # no weights were loaded
    assert loaded["vocabs"] == 1  # the prompts were sized by the GGUF tokenizer alone
    replayed = _only_record(tmp_path / "replayed")
    assert replayed["run_stem"] == original["run_stem"]  # replay is not part of the run id
    assert replayed["metrics"] == original["metrics"]
    assert replayed["usage"]["requests"] == 0
    assert replayed["usage"]["cache_hits"] == original["usage"]["requests"]


def test_a_replay_miss_fails_the_run_naming_the_request_and_asks_no_endpoint(
    fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = fault_proxy(None, then="500")  # an endpoint that would be counted if asked
    cache = tmp_path / "empty.sqlite"
    assert len(RequestCache(cache)) == 0  # a cache that holds none of this run's answers
    cfg = compose_config(
        [
            "dataset=callcenter",
            "method=llm_icl",
            "seeds=[0]",
            "n_train=[4]",
            "split.max_test_rows=6",
            "llm=openai_compatible",
            f"llm.base_url={proxy.url}",
            f"llm.cache_path={cache}",
            "llm.replay=true",
            f"results_dir={tmp_path / 'results'}",
        ]
    )
    assert dict(run_job(cfg).executed) == {"failed": 1}
    record = _only_record(tmp_path / "results")
    error = record["error"]
    assert error.startswith("ReplayMissError: llm.replay=true and the request cache "), error
    assert str(cache) in error and "llm.cache_path" in error
    assert "score request of llm 'openai_compatible'" in error
    assert "whose prompt starts '" in error  # the start of the missing prompt, on one line
    assert proxy.attempts == []  # nothing was sent


def test_a_miss_a_method_catches_still_fails_the_run(
    openai_llm: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """A prompt search catches a failing candidate; the run's key log still holds the miss, so
    the runner fails the run rather than finish with answers the original never had."""
    cfg = openai_llm("http://127.0.0.1:9/v1", "llm.replay=true")  # nothing listens on port 9
    assert len(RequestCache(cfg.cache_path)) == 0  # a cache without this answer
    backend = make_backend(cfg)
    with collecting_keys(CacheKeys()) as keys, pytest.raises(ReplayMissError):
        backend.score([ScoreRequest("Plan: pro\nChurned:", ["yes", "no"])])
    assert len(keys.keys) == 1 and len(keys.missed) == 1
    with pytest.raises(ReplayMissError, match="Plan: pro Churned:"):
        keys.check()
    endpoint = OpenAIBackend(cfg)  # (makes no connection)
    for text in ("x" * 40, "Plan: pro\nChurned: yes", "  spaced   words  "):
        assert backend.count_tokens(text) == endpoint.count_tokens(text)  # its own count
    assert backend.first_token("yes") is None


def test_replay_without_a_cache_file_is_refused_before_anything_runs(
    openai_llm: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """An `llm.cache_path` that does not exist would be created empty, and every request would
    then fail as a miss: bench-run refuses the sweep (exit 2) naming the setting and the path,
    and writes nothing; a backend made from Python raises the same."""
    missing = tmp_path / "no" / "cache.sqlite"
    cfg = openai_llm("http://127.0.0.1:9/v1", "llm.replay=true", f"llm.cache_path={missing}")
    with pytest.raises(LLMConfigError) as refused:
        make_backend(cfg)
    message = str(refused.value)
    assert message.startswith(f"llm.replay=true but the request cache {missing} (llm.cache_path)")
    assert "does not exist" in message and not missing.parent.exists()

    done = subprocess.run(
        [
            str(PROJECT_ROOT / ".venv" / "bin" / "bench-run"),
            *JOB[:-1],
            "llm=openai_compatible",
            "llm.base_url=http://127.0.0.1:9/v1",
            f"llm.cache_path={missing}",
            "llm.replay=true",
            f"results_dir={tmp_path / 'results'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    assert message in done.stderr and "rerun" not in done.stderr.lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no cache, results or log folder

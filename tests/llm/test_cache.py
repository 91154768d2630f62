"""The request cache: SQLite in WAL mode, hits counted and not billed, safe with several writer
processes, keyed by everything that determines an answer and never holding an API key."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from omegaconf import DictConfig, OmegaConf

from bench.llm import make_backend
from bench.llm.cache import RequestCache
from bench.llm.requests import GenerateRequest, ScoreRequest

if TYPE_CHECKING:
    from loopback import FaultProxy, LLMServer

PROMPT = "The capital of France is"
LABELS = [" Paris", " London"]
WRITERS, KEYS_PER_WRITER = 4, 200


def with_cache(cfg: DictConfig, path: Path, **changes: Any) -> DictConfig:
    return OmegaConf.merge(cfg, {"cache_path": str(path), **changes})


def test_the_same_request_twice_is_a_hit_the_second_time(
    local_llm_cfg: DictConfig, tmp_path: Path
) -> None:
    backend = make_backend(with_cache(local_llm_cfg, tmp_path / "cache.sqlite"))
    (first,) = backend.score([ScoreRequest(PROMPT, LABELS)])
    (second,) = backend.score([ScoreRequest(PROMPT, LABELS)])
    assert first.usage.requests == 1 and first.usage.cache_hits == 0
    assert second.usage.cache_hits == 1
    assert second.usage.requests == 0
    assert second.usage.prompt_tokens == 0 and second.usage.usd == 0.0
    assert second.usage.llm_seconds == 0.0
    # ... yet it says what computing it cost, so a rerun from the cache still has a cost
    assert second.usage.costed_cache_hits == 1
    assert second.usage.cached_llm_seconds == pytest.approx(first.usage.llm_seconds)
    assert first.usage.llm_seconds > 0 and second.usage.cached_usd == first.usage.usd
    assert second.probs == first.probs
    assert (second.method, second.valid) == (first.method, first.valid)
    backend.close()


def test_entries_written_before_costs_were_kept_are_hits_without_a_cost(
    local_llm_cfg: DictConfig, tmp_path: Path
) -> None:
    path = tmp_path / "cache.sqlite"
    backend = make_backend(with_cache(local_llm_cfg, path))
    backend.score([ScoreRequest(PROMPT, LABELS)])
    backend.generate([GenerateRequest(PROMPT, max_tokens=4)])
    backend.close()
    cache = RequestCache(path)
    connection = cache._connection()
    for key, value in connection.execute("SELECT key, value FROM responses").fetchall():
        old = json.loads(value)
        old.pop("cost")
        cache.put(key, old)  # as an entry written by the previous version
    again = make_backend(with_cache(local_llm_cfg, path))
    (scored,) = again.score([ScoreRequest(PROMPT, LABELS)])
    (generated,) = again.generate([GenerateRequest(PROMPT, max_tokens=4)])
    for usage in (scored.usage, generated.usage):
        assert (usage.cache_hits, usage.costed_cache_hits, usage.cached_llm_seconds) == (1, 0, 0.0)
    again.close()


def test_a_hit_survives_a_new_backend_and_process_state(
    local_llm_cfg: DictConfig, tmp_path: Path
) -> None:
    cfg = with_cache(local_llm_cfg, tmp_path / "cache.sqlite")
    first = make_backend(cfg)
    (answer,) = first.score([ScoreRequest(PROMPT, LABELS)])
    first.close()
    (again,) = make_backend(cfg).score([ScoreRequest(PROMPT, LABELS)])
    assert again.usage.cache_hits == 1 and again.probs == answer.probs


def test_each_answer_is_passed_on_as_it_arrives(local_llm_cfg: DictConfig, tmp_path: Path) -> None:
    """Hits are passed on at once and each computed answer when it arrives, not after the whole
    batch: a caller's progress moves while a long batch is being answered."""
    backend = make_backend(with_cache(local_llm_cfg, tmp_path / "cache.sqlite"))
    backend.score([ScoreRequest(PROMPT, LABELS)])  # request 1 below is then a hit
    prompts = ["The capital of Spain is", PROMPT, "The capital of Italy is"]
    seen: list[tuple[int, int]] = []  # (index, answers stored in the cache at that moment)
    results = backend.score(
        [ScoreRequest(p, LABELS) for p in prompts],
        on_result=lambda i, _result: seen.append((i, len(backend.cache))),
    )
    assert [i for i, _ in seen] == [1, 0, 2]  # the hit first, then the misses in turn
    assert [stored for _, stored in seen] == [1, 2, 3]  # each as soon as it was stored
    assert [r.usage.cache_hits for r in results] == [0, 1, 0]
    backend.close()


def test_a_different_request_is_a_miss(local_llm_cfg: DictConfig, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    make_backend(with_cache(local_llm_cfg, path)).score([ScoreRequest(PROMPT, LABELS)])
    misses = {
        "other labels": (with_cache(local_llm_cfg, path), [PROMPT], [" Paris", " Rome"]),
        "label order": (with_cache(local_llm_cfg, path), [PROMPT], LABELS[::-1]),
        "other prompt": (with_cache(local_llm_cfg, path), [PROMPT + " a"], LABELS),
        "other model": (with_cache(local_llm_cfg, path, model="other"), [PROMPT], LABELS),
        "top_logprobs": (with_cache(local_llm_cfg, path, top_logprobs=5), [PROMPT], LABELS),
    }
    for what, (cfg, prompts, labels) in misses.items():
        (result,) = make_backend(cfg).score([ScoreRequest(r, labels) for r in prompts])
        assert (result.usage.requests, result.usage.cache_hits) == (1, 0), what
    assert len(RequestCache(path)) == 1 + len(misses)


def test_generation_is_cached_by_its_decoding_parameters(
    local_llm_cfg: DictConfig, tmp_path: Path
) -> None:
    backend = make_backend(with_cache(local_llm_cfg, tmp_path / "cache.sqlite"))
    messages = [{"role": "user", "content": "Say hello."}]
    first = backend.generate(
        [GenerateRequest("Once upon a time", max_tokens=4), GenerateRequest(messages, max_tokens=4)]
    )
    second = backend.generate(
        [GenerateRequest("Once upon a time", max_tokens=4), GenerateRequest(messages, max_tokens=4)]
    )
    assert [r.text for r in second] == [r.text for r in first]
    assert [r.usage.cache_hits for r in second] == [1, 1]
    assert [r.usage.requests for r in second] == [0, 0]
    for changed in (
        {"max_tokens": 5},
        {"max_tokens": 4, "temperature": 0.5},
        {"max_tokens": 4, "stop": ["."]},
    ):
        (result,) = backend.generate([GenerateRequest("Once upon a time", **changed)])
        assert (result.usage.requests, result.usage.cache_hits) == (1, 0), changed


def test_cache_off_never_hits(local_llm_cfg: DictConfig, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    for backend in (
        make_backend(with_cache(local_llm_cfg, path, cache=False)),
        make_backend(with_cache(local_llm_cfg, path), use_cache=False),
    ):
        for _ in range(2):
            (result,) = backend.score([ScoreRequest(PROMPT, LABELS)])
            assert (result.usage.requests, result.usage.cache_hits) == (1, 0)
    assert not path.exists()


def test_the_cache_file_is_in_wal_mode(local_llm_cfg: DictConfig, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    make_backend(with_cache(local_llm_cfg, path)).score([ScoreRequest(PROMPT, LABELS)])
    with sqlite3.connect(path) as conn:  # a separate connection reads the file's own mode
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 1


def _put_keys(path: str, writer: int, barrier: Any) -> None:
    """One writer process: wait for the others, then put its keys one commit at a time."""
    cache = RequestCache(path)
    barrier.wait(timeout=60)
    for i in range(KEYS_PER_WRITER):
        cache.put(RequestCache.key(writer=writer, i=i), {"writer": writer, "i": i})
    cache.close()


@pytest.mark.e2e
def test_several_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "cache.sqlite"
    first = RequestCache(path)  # the cache as an earlier job left it
    first.put(RequestCache.key(writer=-1), {"writer": -1})
    first.close()
    context = multiprocessing.get_context("spawn")  # fresh processes, as the joblib launcher's
    barrier = context.Barrier(WRITERS)
    workers = [
        context.Process(target=_put_keys, args=(str(path), w, barrier)) for w in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * WRITERS  # nobody raised (e.g. "locked")

    cache = RequestCache(path)
    assert len(cache) == 1 + WRITERS * KEYS_PER_WRITER
    for w in range(WRITERS):
        for i in (0, KEYS_PER_WRITER // 2, KEYS_PER_WRITER - 1):
            assert cache.get(RequestCache.key(writer=w, i=i)) == {"writer": w, "i": i}


def test_opening_a_new_cache_while_another_process_creates_it_waits(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    # Another process half-way through creating the file: a write transaction, not yet WAL.
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT, created REAL)")
    commit = threading.Timer(0.5, other.execute, args=("COMMIT",))
    commit.start()
    try:
        cache = RequestCache(path)
        cache.put("key", {"answer": 1})  # should wait the half second, as any writer does
        assert cache.get("key") == {"answer": 1}
        cache.close()
    finally:
        commit.join(timeout=5)
        other.close()


@pytest.mark.e2e
def test_the_api_key_never_reaches_the_cache_file(
    llm_server: LLMServer,
    openai_llm: Callable[..., DictConfig],
    fault_proxy: Callable[..., FaultProxy],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    key = "sk-bench-SECRET-7f3a9c1e5b"
    monkeypatch.setenv("BENCH_TEST_API_KEY", key)
    proxy = fault_proxy(llm_server)
    cfg = openai_llm(proxy.url, "llm.api_key_env=BENCH_TEST_API_KEY", model=llm_server.model)
    backend = make_backend(cfg)
    backend.score([ScoreRequest(PROMPT, LABELS)])
    backend.generate([GenerateRequest([{"role": "user", "content": "Hi"}], max_tokens=2)])
    assert {a.authorization for a in proxy.attempts} == {f"Bearer {key}"}  # it was used
    backend.close()

    files = list(Path(cfg.cache_path).parent.glob("cache.sqlite*"))  # the WAL file too
    assert Path(cfg.cache_path) in files
    for file in files:
        data = file.read_bytes()
        assert key.encode() not in data, file
        assert b"SECRET" not in data, file


@pytest.mark.e2e
def test_the_endpoint_is_part_of_the_key(
    llm_server: LLMServer,
    openai_llm: Callable[..., DictConfig],
    fault_proxy: Callable[..., FaultProxy],
) -> None:
    direct = openai_llm(llm_server.base_url, "llm.api=completions", model=llm_server.model)
    (first,) = make_backend(direct).score([ScoreRequest(PROMPT, LABELS)])
    (again,) = make_backend(direct).score([ScoreRequest(PROMPT, LABELS)])
    assert (first.usage.requests, again.usage.cache_hits) == (1, 1)

    proxy = fault_proxy(llm_server)
    elsewhere = openai_llm(proxy.url, "llm.api=completions", model=llm_server.model)
    (other,) = make_backend(elsewhere).score([ScoreRequest(PROMPT, LABELS)])
    assert (other.usage.requests, other.usage.cache_hits) == (1, 0)
    assert len(proxy.attempts) == 1
    chat = openai_llm(llm_server.base_url, "llm.api=chat", model=llm_server.model)
    (via_chat,) = make_backend(chat).score([ScoreRequest(PROMPT, LABELS)])
    assert via_chat.usage.cache_hits == 0

"""A persistent request cache (SQLite in WAL mode) and the backend wrapper that uses it.

The key holds everything that determines an answer: backend kind, base_url, model, for an
in-process model the identity of its weights file (bench/llm/weights.py), the full prompt,
messages or text to embed, the decoding parameters and the label set (never an API key). Several
processes (the joblib launcher's workers) may read and write at once: WAL lets readers go on
while one writer commits, and a busy timeout makes writers wait their turn instead of failing.
A hit is returned with `Usage(cache_hits=1)`: counted, not billed; an entry keeps what computing
its answer cost (LLM seconds, USD), and a hit carries it as `cached_llm_seconds` / `cached_usd`
so the report can still cost a rerun answered from the cache.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.llm.protocol import (
    EmbedResult,
    GenerateResult,
    LLMBackend,
    Messages,
    OnResult,
    ScoreResult,
    Usage,
)
from bench.llm.weights import resolve_model_path, weights_identity

__all__ = ["CACHE_VERSION", "EMBED_POOLING", "CachedBackend", "RequestCache"]

log = logging.getLogger("bench")

CACHE_VERSION = 1  # bump when the meaning of a stored answer changes
# How the backends pool a text's token states into one vector (in the key of every embedding).
EMBED_POOLING = "mean"


class RequestCache:
    """key -> JSON value, in one SQLite file shared by processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # never share a connection across fork
            try:
                self._conn = self._open()
            except sqlite3.DatabaseError as error:
                if "not a database" not in str(error) and "malformed" not in str(error):
                    raise
                self._move_aside(error)
                self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _move_aside(self, error: Exception) -> None:
        """A corrupt cache file is kept for inspection under a new name; a fresh one starts.
        Losing the cache costs only repeated LLM calls, never a result."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        log.warning(
            "The LLM request cache %s is not a readable SQLite database (%s): moved it to %s "
            "and started a fresh cache (llm.cache_path); earlier answers will be asked again.",
            self.path,
            error,
            aside,
        )
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):  # another process moved it first
                os.rename(f"{self.path}{suffix}", f"{aside}{suffix}")

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=60000")
        # Switching a new file to WAL needs a moment of exclusive access; SQLite answers
        # "locked" at once (no busy wait) while another process is creating the same file.
        _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        _retry_locked(
            lambda: conn.execute(
                "CREATE TABLE IF NOT EXISTS responses "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
        )
        conn.execute("SELECT COUNT(*) FROM responses LIMIT 1").fetchone()
        return conn

    @staticmethod
    def key(**parts: Any) -> str:
        text = json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        row = (
            self._connection()
            .execute("SELECT value FROM responses WHERE key = ?", (key,))
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._connection().execute(
            "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
            (key, json.dumps(value), time.time()),
        )

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _cost(usage: Usage) -> dict[str, float]:
    """What computing an answer cost, kept with it so that a hit can say so."""
    return {"llm_seconds": usage.llm_seconds, "usd": usage.usd}


def _hit_usage(cost: dict[str, float] | None) -> Usage:
    """A hit is counted, not billed; it carries its original cost when the entry recorded it
    (entries written before costs were kept have none)."""
    if not cost:
        return Usage(cache_hits=1)
    return Usage(
        cache_hits=1,
        cached_llm_seconds=float(cost.get("llm_seconds", 0.0)),
        cached_usd=float(cost.get("usd", 0.0)),
        costed_cache_hits=1,
    )


def _pack(vector: Sequence[float]) -> str:
    """A vector as base64 float32: what llama.cpp computes, at a fifth of its JSON size."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _unpack(text: str) -> list[float]:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(float).tolist()


def _retry_locked(statement: Callable[[], object], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class CachedBackend:
    """Any backend, answering repeated requests from a RequestCache."""

    def __init__(self, backend: LLMBackend, cache: RequestCache) -> None:
        self.backend = backend
        self.cache = cache
        self.config = backend.config
        self._known_identity: dict[str, Any] | None = None

    def _identity(self) -> dict[str, Any]:
        if self._known_identity is None:  # once per backend: the weights file is stat()ed here
            self._known_identity = self._compute_identity()
        return self._known_identity

    def _compute_identity(self) -> dict[str, Any]:
        cfg = self.config
        identity = {
            "backend": cfg.backend,
            "base_url": cfg.base_url,
            "model": cfg.model,
            "api": cfg.api,
            # A smaller window turns an answer into "prompt too long": never serve it from cache.
            "context": [cfg.context_length, cfg.n_ctx],
        }
        if cfg.backend == "llamacpp":  # the weights themselves, not the config's name for them
            identity["weights"] = weights_identity(resolve_model_path(cfg.model_path, cfg.name))
        return identity

    def score_many(
        self,
        prompts: Sequence[str],
        labels: Sequence[str],
        on_result: OnResult | None = None,
    ) -> list[ScoreResult]:
        params = {"op": "score", "labels": list(labels), "top_logprobs": self.config.top_logprobs}
        keys = [self.cache.key(**self._identity(), **params, prompt=p) for p in prompts]
        results: list[ScoreResult | None] = [self._cached_score(k) for k in keys]
        missing = [i for i, r in enumerate(results) if r is None]

        def store(j: int, result: ScoreResult) -> None:  # as each answer arrives
            self.cache.put(
                keys[missing[j]], {**asdict(result), "usage": None, "cost": _cost(result.usage)}
            )
            results[missing[j]] = result

        if missing:
            self.backend.score_many([prompts[i] for i in missing], labels, on_result=store)
        if on_result is not None:
            for i, result in enumerate(results):
                on_result(i, result)
        return results  # type: ignore[return-value]

    def _cached_score(self, key: str) -> ScoreResult | None:
        hit = self.cache.get(key)
        if hit is None:
            return None
        cost = hit.pop("cost", None)
        return ScoreResult(**{**hit, "usage": _hit_usage(cost)})

    def generate_many(
        self,
        requests: Sequence[str | Messages],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        on_result: OnResult | None = None,
        seed: int | None = None,
    ) -> list[GenerateResult]:
        params: dict[str, Any] = {
            "op": "generate",
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stop": list(stop or []),
        }
        if seed is not None:  # (absent otherwise, so answers cached before seeds stay valid)
            params["seed"] = seed
        keys = [self.cache.key(**self._identity(), **params, request=r) for r in requests]
        results: list[GenerateResult | None] = []
        for key in keys:
            hit = self.cache.get(key)
            results.append(
                None if hit is None else GenerateResult(hit["text"], _hit_usage(hit.get("cost")))
            )
        missing = [i for i, r in enumerate(results) if r is None]

        def store(j: int, result: GenerateResult) -> None:  # as each answer arrives
            self.cache.put(keys[missing[j]], {"text": result.text, "cost": _cost(result.usage)})
            results[missing[j]] = result

        if missing:
            self.backend.generate_many(
                [requests[i] for i in missing],
                max_tokens,
                temperature,
                stop,
                on_result=store,
                seed=seed,
            )
        if on_result is not None:
            for i, result in enumerate(results):
                on_result(i, result)
        return results  # type: ignore[return-value]

    def embed_many(
        self, texts: Sequence[str], on_result: OnResult | None = None
    ) -> list[EmbedResult]:
        """Embeddings cached per text, like scores per prompt: a text embedded before (in any
        batch) is a hit; the rest go to the backend in one call."""
        params = {"op": "embed", "pooling": EMBED_POOLING}
        keys = [self.cache.key(**self._identity(), **params, text=t) for t in texts]
        results: list[EmbedResult | None] = []
        for key in keys:
            hit = self.cache.get(key)
            results.append(
                None
                if hit is None
                else EmbedResult(_unpack(hit["vector_f32"]), _hit_usage(hit.get("cost")))
            )
        missing = [i for i, r in enumerate(results) if r is None]

        def store(j: int, result: EmbedResult) -> None:  # as each answer arrives
            self.cache.put(
                keys[missing[j]], {"vector_f32": _pack(result.vector), "cost": _cost(result.usage)}
            )
            results[missing[j]] = result

        if missing:
            self.backend.embed_many([texts[i] for i in missing], on_result=store)
        if on_result is not None:
            for i, result in enumerate(results):
                on_result(i, result)
        return results  # type: ignore[return-value]

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def __getattr__(self, name: str) -> Any:
        # Optional extras of the wrapped backend (e.g. first_token) pass through.
        if name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    def close(self) -> None:
        self.backend.close()
        self.cache.close()

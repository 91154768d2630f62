"""A persistent request cache (SQLite in WAL mode) and the backend wrapper that uses it.

The key holds everything that determines an answer (bench/llm/cache_key.py): every ANSWER
setting of the llm config (bench/llm/identity.py), for an in-process model the identity of its
weights file (bench/llm/weights.py), and every field of the request: the full prompt, messages
or text to embed, the decoding parameters and the label set (never an API key). Several
processes (the joblib launcher's workers) may read and write at once: WAL lets readers go on
while one writer commits, and a busy timeout makes writers wait their turn instead of failing.
A hit is returned with `Usage(cache_hits=1)`: counted, not billed; an entry keeps what computing
its answer cost (LLM seconds, USD), and a hit carries it as `cached_llm_seconds` / `cached_usd`
so the report can still cost a rerun answered from the cache.

A damaged cache file costs only repeated LLM calls, never a run: a file that is not a database
is found when it is opened, damaged pages behind a valid header only when a lookup or a store
reads them (SQLite reads pages as it needs them). Either way the file is moved aside (kept, as
``<name>.corrupt-<time>``), a warning names both paths, and a fresh cache takes its place.

While the runner collects a run's keys (`collecting_keys`), every key a CachedBackend looks up
or stores is noted in the run's `CacheKeys`, saved as ``artifacts/<run stem>/cache_keys.txt``:
exactly the entries `bench-bundle export` copies (bench/bundle.py). Under `llm.replay` a lookup
that finds nothing is a `ReplayMissError` (bench/llm/replay.py), noted there too, so the run
fails even where a method caught the error (a prompt search's candidate).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bench.llm.cache_key import (
    CACHE_VERSION,
    EMBED_POOLING,
    hash_key,
    legacy_llm_identity,
    llm_identity,
    request_part,
)
from bench.llm.protocol import (
    EmbedResult,
    GenerateResult,
    LLMBackend,
    OnResult,
    ScoreResult,
    Usage,
)
from bench.llm.requests import LLMRequest
from bench.llm.wrapper import Answer, BackendWrapper

__all__ = [
    "CACHE_KEYS_FILE",
    "CACHE_VERSION",
    "EMBED_POOLING",
    "CacheKeys",
    "CachedBackend",
    "ReplayMissError",
    "RequestCache",
    "active_keys",
    "collecting_keys",
]

log = logging.getLogger("bench")
T = TypeVar("T")
# How SQLite says a file is not a (sound) database, at open or when it reads a damaged page.
_DAMAGED = ("not a database", "malformed", "file is encrypted")
CACHE_KEYS_FILE = "cache_keys.txt"  # a run's artifact: the cache keys it used, one a line


class ReplayMissError(LookupError):
    """`llm.replay` asked for an answer the request cache does not hold."""


@dataclass
class CacheKeys:
    """The request-cache keys one run read or wrote, in first-use order, and the replay misses
    it met (a message each)."""

    keys: dict[str, None] = field(default_factory=dict)  # an ordered set
    missed: list[str] = field(default_factory=list)

    def add(self, keys: Sequence[str]) -> None:
        self.keys.update(dict.fromkeys(keys))

    def files(self) -> dict[str, str]:
        """The run's artifact (`CACHE_KEYS_FILE`), or nothing for a run that used no cache."""
        return {CACHE_KEYS_FILE: "".join(f"{key}\n" for key in self.keys)} if self.keys else {}

    def check(self) -> None:
        """Raise the first replay miss, if any: a method that caught it (a search candidate
        that 'failed') would otherwise finish with answers the original run never had."""
        if self.missed:
            more = f" ({len(self.missed) - 1} more missing)" if len(self.missed) > 1 else ""
            raise ReplayMissError(self.missed[0] + more)


_ACTIVE_KEYS: ContextVar[CacheKeys | None] = ContextVar("bench_cache_keys", default=None)


def active_keys() -> CacheKeys | None:
    """The keys of the run being executed, while the runner collects them."""
    return _ACTIVE_KEYS.get()


@contextlib.contextmanager
def collecting_keys(keys: CacheKeys) -> Iterator[CacheKeys]:
    """Note in `keys` every cache key used inside the block (the runner's fit and predict)."""
    token = _ACTIVE_KEYS.set(keys)
    try:
        yield keys
    finally:
        _ACTIVE_KEYS.reset(token)


class RequestCache:
    """key -> JSON value, in one SQLite file shared by processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._inode: int | None = None  # of the file the connection opened

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # never share a connection across fork
            try:
                self._conn = self._open()
            except sqlite3.DatabaseError as error:
                if not _damaged(error):
                    raise
                self._move_aside(error)
                self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _use(self, statement: Callable[[sqlite3.Connection], T]) -> T:
        """`statement` on the cache; a cache found damaged now is moved aside and `statement`
        runs again on a fresh one."""
        try:
            return statement(self._connection())
        except sqlite3.DatabaseError as error:
            if not _damaged(error):
                raise  # "database is locked" and the like are not damage
            opened = self._inode
            self.close()
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino != opened:  # another process moved it already
                    return statement(self._connection())
            self._move_aside(error)
            return statement(self._connection())

    def _move_aside(self, error: Exception) -> None:
        """A corrupt cache file is kept for inspection under a new name; a fresh one starts.
        Losing the cache costs only repeated LLM calls, never a result."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        log.warning(
            "The LLM request cache %s is damaged or not an SQLite database (%s): moved it to %s "
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
        self._inode = os.stat(self.path).st_ino
        return conn

    key = staticmethod(hash_key)

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._use(
            lambda conn: conn.execute(
                "SELECT value FROM responses WHERE key = ?", (key,)
            ).fetchone()
        )
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value)
        self._use(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                (key, text, time.time()),
            )
        )

    def __len__(self) -> int:
        return self._use(lambda conn: conn.execute("SELECT COUNT(*) FROM responses").fetchone())[0]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _damaged(error: sqlite3.DatabaseError) -> bool:
    """Whether SQLite says the file is not a sound database (not: busy, locked, read-only)."""
    return any(words in str(error) for words in _DAMAGED)


def _cost(usage: Usage) -> dict[str, float]:
    """What computing an answer cost, kept with it so that a hit can say so."""
    return {
        "llm_seconds": usage.llm_seconds,
        "llm_wall_seconds": usage.llm_wall_seconds,
        "usd": usage.usd,
    }


def _hit_usage(cost: dict[str, float] | None) -> Usage:
    """A hit is counted, not billed; it carries its original cost when the entry recorded it
    (entries written before costs were kept have none; entries written before wall time was
    kept count their latency as wall time)."""
    if not cost:
        return Usage(cache_hits=1)
    latency = float(cost.get("llm_seconds", 0.0))
    return Usage(
        cache_hits=1,
        cached_llm_seconds=latency,
        cached_llm_wall_seconds=float(cost.get("llm_wall_seconds", latency)),
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


class CachedBackend(BackendWrapper):
    """Any backend, answering repeated requests from a RequestCache.

    One method for every request kind: each request is looked up under (LLM identity, request)
    (bench/llm/cache_key.py); the rest go to the backend in one call and are stored as each
    answer arrives, so a crash mid-batch loses none that were paid for.
    """

    def __init__(self, backend: LLMBackend, cache: RequestCache) -> None:
        super().__init__(backend)
        self.cache = cache
        self._identities: dict[str, dict[str, Any]] = {}
        self._legacy: dict[str, dict[str, Any] | None] = {}

    def key(self, request: LLMRequest) -> str:
        """The cache key of `request` asked of this backend's LLM."""
        if request.op not in self._identities:  # once per kind: the weights file is stat()ed
            self._identities[request.op] = llm_identity(self.config, request.op)
        return self.cache.key(**self._identities[request.op], **request_part(request))

    def legacy_key(self, request: LLMRequest) -> str | None:
        """The key `request` had before keys became portable (an in-process model's weights by
        path and mtime too), None where it is today's."""
        if request.op not in self._legacy:
            self._legacy[request.op] = legacy_llm_identity(self.config, request.op)
        identity = self._legacy[request.op]
        return None if identity is None else self.cache.key(**identity, **request_part(request))

    def remember(
        self, request: LLMRequest, result: ScoreResult | GenerateResult | EmbedResult
    ) -> None:
        """Store `result` as the answer to `request` (a reply kept from elsewhere, a test's)."""
        self.cache.put(self.key(request), _stored(result))

    def _answer(
        self, requests: Sequence[LLMRequest], answer: Answer, on_result: OnResult | None
    ) -> list[Any]:
        keys = [self.key(request) for request in requests]
        used = active_keys()
        if used is not None:  # noted here, in the caller's context (answers may come on threads)
            used.add(keys)
        results = [self._cached(request, key) for request, key in zip(requests, keys, strict=True)]
        missing = [i for i, r in enumerate(results) if r is None]
        if on_result is not None:  # hits at once, the rest as they arrive (progress, callers)
            for i, result in enumerate(results):
                if result is not None:
                    on_result(i, result)

        def store(j: int, result: Any) -> None:  # as each answer arrives
            self.cache.put(keys[missing[j]], _stored(result))
            results[missing[j]] = result
            if on_result is not None:
                on_result(missing[j], result)

        if missing:
            answer([requests[i] for i in missing], on_result=store)
        return results

    def _cached(self, request: LLMRequest, key: str) -> Any:
        hit = self.cache.get(key)
        if hit is None and (legacy := self.legacy_key(request)) is not None:
            # an answer paid for before keys became portable: found, and kept under today's key
            # too, so that a bundle of this run replays on any machine
            hit = self.cache.get(legacy)
            if hit is not None:
                self.cache.put(key, hit)
        return None if hit is None else _restored(request.op, hit)

    def close(self) -> None:
        super().close()
        self.cache.close()


_RESULT_TYPES = {"score": ScoreResult, "generate": GenerateResult, "embed": EmbedResult}


def _stored(result: ScoreResult | GenerateResult | EmbedResult) -> dict[str, Any]:
    """A result as a cache entry: its fields without the usage, plus what it cost."""
    value = {k: v for k, v in asdict(result).items() if k != "usage"}
    if "vector" in value:
        value["vector_f32"] = _pack(value.pop("vector"))
    return {**value, "cost": _cost(result.usage)}


def _restored(op: str, hit: dict[str, Any]) -> ScoreResult | GenerateResult | EmbedResult:
    """A cache entry as a result, counted as a hit (entries of any age: early score entries
    hold `usage: null`, entries written before costs were kept have no `cost`)."""
    cost = hit.pop("cost", None)
    hit.pop("usage", None)
    if "vector_f32" in hit:
        hit["vector"] = _unpack(hit.pop("vector_f32"))
    return _RESULT_TYPES[op](**hit, usage=_hit_usage(cost))

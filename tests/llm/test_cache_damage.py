"""A request cache with a valid header and damaged pages: found when a lookup or a store reads
them, moved aside with a warning naming both paths, and the run goes on with a fresh cache."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from omegaconf import DictConfig

from bench.llm.cache import RequestCache

if TYPE_CHECKING:
    from loopback import LLMServer


def damaged_cache(path: Path, entries: int = 300) -> None:
    """A real cache with `entries` answers whose table pages are overwritten after the file's
    header: SQLite still opens it and counts its rows (from the key index), but reading or
    storing an answer hits the damage."""
    cache = RequestCache(path)
    for i in range(entries):
        cache.put(hashlib.sha256(str(i).encode()).hexdigest(), {"text": "x" * 1000, "i": i})
    cache.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='responses'").fetchone()
    conn.close()
    with path.open("r+b") as file:  # the table's root page, in the middle of the b-tree
        file.seek((root - 1) * page_size)
        file.write(bytes((i * 97 + 13) % 256 for i in range(page_size)))
    check = sqlite3.connect(path)
    assert check.execute("SELECT COUNT(*) FROM responses").fetchone() == (entries,)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        key = hashlib.sha256(b"7").hexdigest()
        check.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
    check.close()


def test_damage_found_on_use_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite"
    damaged_cache(path)
    cache = RequestCache(path)
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert cache.get(hashlib.sha256(b"7").hexdigest()) is None  # damaged: a fresh cache
        cache.put("k", {"text": "yes"})
    assert cache.get("k") == {"text": "yes"} and len(cache) == 1
    (aside,) = tmp_path.glob("cache.sqlite.corrupt-*")
    assert str(path) in caplog.text and str(aside) in caplog.text
    assert aside.stat().st_size > 300 * 1000  # kept whole, for inspection


@pytest.mark.e2e
def test_an_llm_run_with_a_damaged_cache_succeeds(
    llm_server: LLMServer,
    compose_run: Callable[..., DictConfig],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bench.job import run_job
    from bench.results import ResultsStore

    path = tmp_path / "llm_cache.sqlite"
    damaged_cache(path)
    cfg = compose_run(
        "dataset=callcenter",
        "method=llm_icl",
        "llm=openai_compatible",
        f"llm.base_url={llm_server.base_url}",
        f"llm.model={llm_server.model}",
        "llm.api=completions",
        f"llm.cache_path={path}",
        "split.max_test_rows=4",
        "seeds=[0]",
        "n_train=[4]",
    )
    with caplog.at_level(logging.WARNING, logger="bench"):
        run_job(cfg)
    (record,) = ResultsStore(cfg.results_dir).records()
    assert record["status"] == "ok", record["error"]
    (aside,) = tmp_path.glob("llm_cache.sqlite.corrupt-*")
    assert f"The LLM request cache {path} is damaged" in caplog.text
    assert f"moved it to {aside}" in caplog.text
    assert len(RequestCache(path)) == 4  # the run's answers, in a fresh cache

"""Four jobs at once, writing to one results folder and one LLM request cache: every run is
recorded exactly once and whole, the cache stays sound, and a rerun is served from it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.config import compose_config
from bench.llm import make_backend
from bench.results import ResultsStore, load_results

BENCH_RUN = Path(sys.executable).with_name("bench-run")
SERIALIZERS = ("list", "csv", "csv_table", "json")  # one Hydra job each
TEST_ROWS = 2


def multirun(args: tuple[str, ...] | list[str]) -> list[str]:
    """The arguments with `-m` first when they sweep a comma list (no experiment does it now)."""
    sweeps = any(
        "," in value and not value.startswith("[")
        for value in (a.partition("=")[2] for a in args if "=" in a)
    )
    return ["-m", *args] if sweeps and "-m" not in args else list(args)


def bench_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BENCH_RUN), *multirun(args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def assert_each_run_recorded_once(results: Path, expected: set[tuple[Any, ...]], key) -> None:
    """One whole record per run: every runs/*.json parses, no duplicates, nothing left over."""
    files = sorted((results / "runs").glob("*.json"))
    records = [json.loads(path.read_text()) for path in files]
    assert sorted(key(r) for r in records) == sorted(expected)
    assert [path.stem for path in files] == sorted(r["run_stem"] for r in records)
    assert {r["status"] for r in records} == {"ok"}, [r["error"] for r in records]
    assert {r["attempts"] for r in records} == {1}
    for record in records:
        assert (results / record["predictions_file"]).is_file()
    leftovers = [p.name for p in results.rglob("*.tmp")]
    assert leftovers == []  # every atomic write completed its rename
    assert not (results / "failures").exists()
    assert len(load_results(results)) == len(expected)


def test_four_classical_jobs_share_one_results_folder(tmp_path: Path) -> None:
    results = tmp_path / "results"
    methods, seeds, sizes = ("majority", "logreg", "xgboost", "random_forest"), range(3), (16, 64)
    done = bench_run(
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        "dataset=callcenter",
        f"method={','.join(methods)}",
        f"seeds=[{','.join(map(str, seeds))}]",
        f"n_train=[{','.join(map(str, sizes))}]",
        "split.max_test_rows=50",
        "report=false",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    expected = {(m, s, n) for m in methods for s in seeds for n in sizes}
    assert_each_run_recorded_once(
        results, expected, key=lambda r: (r["method"], r["seed"], r["n_train"])
    )
    total = len(expected)
    assert f"Executed {total} new run(s) ({total} ok)" in done.stdout
    assert f"[sweep {total}/{total} runs, 100%]" in done.stdout + done.stderr


@dataclass(frozen=True)
class SharedCache:
    first: Path
    second: Path
    cache: Path
    first_output: str
    rows_after_first: int


def cache_state(path: Path) -> tuple[str, str, int]:
    """(integrity check, journal mode, rows), read by a fresh connection as another tool would."""
    conn = sqlite3.connect(path)
    try:
        return (
            conn.execute("PRAGMA integrity_check").fetchone()[0],
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0],
        )
    finally:
        conn.close()


@pytest.fixture(scope="module")
def llm_sweeps(tmp_path_factory: pytest.TempPathFactory) -> SharedCache:
    """Four llm_icl jobs (one per serializer) at once on the embedded model, then the same
    sweep into a new results folder with the same request cache."""
    work = tmp_path_factory.mktemp("llm_concurrency")
    cache = work / "cache.sqlite"

    def sweep(results: str) -> subprocess.CompletedProcess[str]:
        return bench_run(
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=4",
            "dataset=callcenter",
            "method=llm_icl",
            f"serializer={','.join(SERIALIZERS)}",
            "seeds=[0]",
            "n_train=[2]",
            f"split.max_test_rows={TEST_ROWS}",
            "llm=local_smollm2_135m",
            f"llm.cache_path={cache}",
            "report=false",
            f"results_dir={work / results}",
            cwd=work,
        )

    first = sweep("first")
    rows_after_first = cache_state(cache)[2]
    sweep("second")
    return SharedCache(work / "first", work / "second", cache, first.stdout, rows_after_first)


def by_serializer(results: Path) -> dict[str, dict[str, Any]]:
    return {r["serializer"]: r for r in ResultsStore(results).records()}


@pytest.mark.e2e
def test_four_llm_jobs_record_every_run_once(llm_sweeps: SharedCache) -> None:
    assert_each_run_recorded_once(
        llm_sweeps.first, {(s,) for s in SERIALIZERS}, key=lambda r: (r["serializer"],)
    )
    assert f"Executed {len(SERIALIZERS)} new run(s)" in llm_sweeps.first_output
    for record in by_serializer(llm_sweeps.first).values():
        assert record["usage"]["requests"] == TEST_ROWS
        assert record["usage"]["cache_hits"] == 0


@pytest.mark.e2e
def test_the_shared_cache_is_sound_and_holds_every_answer(llm_sweeps: SharedCache) -> None:
    integrity, mode, rows = cache_state(llm_sweeps.cache)
    assert (integrity, mode) == ("ok", "wal")
    billed = sum(r["usage"]["requests"] for r in by_serializer(llm_sweeps.first).values())
    assert rows == llm_sweeps.rows_after_first == billed == len(SERIALIZERS) * TEST_ROWS


@pytest.mark.e2e
def test_a_rerun_is_served_from_the_shared_cache(llm_sweeps: SharedCache) -> None:
    first, second = by_serializer(llm_sweeps.first), by_serializer(llm_sweeps.second)
    assert set(second) == set(SERIALIZERS)
    for serializer, record in second.items():
        usage = record["usage"]
        assert record["status"] == "ok", record["error"]
        assert usage["cache_hits"] == TEST_ROWS  # every query answered from the cache ...
        assert usage["requests"] == 0  # ... and nothing new sent or billed
        assert usage["prompt_tokens"] == usage["completion_tokens"] == 0
        assert usage["usd"] == 0.0 and usage["llm_seconds"] == 0.0
        assert record["run_id"] == first[serializer]["run_id"]
        assert record["metrics"] == first[serializer]["metrics"]
    assert cache_state(llm_sweeps.cache)[2] == llm_sweeps.rows_after_first  # nothing added


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every thread count is right")
def test_the_embedded_model_keeps_to_its_threads_in_a_parallel_job(tmp_path: Path) -> None:
    cfg = compose_config(
        ["llm=local_smollm2_135m", "llm.n_threads=1", f"llm.cache_path={tmp_path / 'c.sqlite'}"]
    ).llm
    model = make_backend(cfg, use_cache=False).llm  # the loaded llama_cpp.Llama
    assert model.n_threads == 1  # generation
    assert model.n_threads_batch == 1  # prompt evaluation: most of the scoring work

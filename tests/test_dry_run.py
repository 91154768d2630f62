"""`bench-run ... dry_run=true` (bench/dry_run.py): the real CLI on real data and the embedded
Gemma model, and an OpenAI-compatible server on loopback that must receive nothing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from loopback import FaultProxy, LLMServer

from bench.config import compose_config
from bench.dry_run import describe_plans, plan_job
from bench.llm.tokens import family_encoding, token_counter

BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
PRICES = ("llm.prices.input_per_m=2.5", "llm.prices.cached_input_per_m=1.25")
# one llm_icl job and one classical job, 6 test rows: the Gemma run takes seconds
SWEEP = (
    "-m",
    "dataset=callcenter",
    "method=llm_icl,logreg",
    "n_train=[8]",
    "split.max_test_rows=6",
    "report=false",
    *PRICES,
)
COLUMNS = ("runs", "done", "requests", "hits", "prompt", "cacheable", "completion")


def bench_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "bench-run"), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def row(output: str, label: str) -> dict[str, float]:
    """The counts of one row of the dry run's table ("total" or a job's label)."""
    line = next(x for x in output.splitlines() if x.startswith(label))
    numbers = re.findall(r"[\d,.:]+", line[len(label) :])
    values = [float(n.replace(",", "")) for n in numbers[: len(COLUMNS) + 1]]
    return {**dict(zip(COLUMNS, values, strict=False)), "usd": values[len(COLUMNS)]}


def files_under(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its SHA-256 (what a dry run must leave alone)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_dry_run_counts_what_the_real_run_then_records(tmp_path: Path) -> None:
    """A dry run writes nothing, counts exactly the prompt tokens and USD the real run then
    records, leaves the run out once it is done, and counts cached answers as free."""
    results, cache = tmp_path / "results", tmp_path / "cache.sqlite"
    where = (f"results_dir={results}", f"llm.cache_path={cache}")
    dry = bench_run(*SWEEP, "seeds=[0]", *where, "dry_run=true", cwd=tmp_path).stdout
    assert "nothing was sent to any model and nothing was written" in dry
    assert not results.exists() and not cache.exists()  # no record, .sweep/, log or cache
    planned = row(dry, "callcenter | llm_icl")
    assert planned["runs"] == 1 and planned["done"] == 0 and planned["requests"] == 6
    assert row(dry, "callcenter | logreg")["requests"] == 0
    assert row(dry, "total")["runs"] == 2
    assert "the model's own tokenizer" in dry and "input $2.5, cached input $1.25" in dry

    bench_run(*SWEEP, "seeds=[0]", *where, cwd=tmp_path)
    (record_file,) = (results / "runs").glob("callcenter__llm_icl__*.json")
    usage = json.loads(record_file.read_text())["usage"]
    assert usage["prompt_tokens"] > 0 and usage["requests"] == 6
    assert abs(planned["prompt"] - usage["prompt_tokens"]) <= 0.05 * usage["prompt_tokens"]
    assert abs(planned["cacheable"] - usage["cached_tokens"]) <= 0.05 * usage["prompt_tokens"]
    assert planned["usd"] == pytest.approx(usage["usd"], rel=0.05, abs=1e-4)

    before = files_under(tmp_path)
    again = bench_run(*SWEEP, "seeds=[0,1]", *where, "dry_run=true", cwd=tmp_path).stdout
    assert files_under(tmp_path) == before  # the request cache is read, never written
    resumed = row(again, "callcenter | llm_icl")
    assert resumed["runs"] == 1 and resumed["done"] == 1  # seed 0 is done: left out
    assert resumed["requests"] == 6 and resumed["hits"] == 0

    # the same runs in another store: not done there, but every answer is in the cache
    other = bench_run(
        *SWEEP,
        "seeds=[0]",
        f"results_dir={tmp_path / 'other'}",
        f"llm.cache_path={cache}",
        "dry_run=true",
        cwd=tmp_path,
    ).stdout
    cached = row(other, "callcenter | llm_icl")
    assert cached["runs"] == 1 and cached["hits"] == 6
    assert cached["requests"] == 0 and cached["prompt"] == 0 and cached["usd"] == 0
    assert files_under(tmp_path) == before


def test_dry_run_sends_nothing_to_an_endpoint(
    llm_server: LLMServer, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    """Against an OpenAI-compatible server behind a counting proxy: no request arrives, and
    the tokens are an estimate that says so (the served model's family is not OpenAI's)."""
    proxy = fault_proxy(llm_server)
    cfg = compose_config(
        [
            "dataset=callcenter",
            "method=llm_icl",
            "llm=openai_compatible",
            f"llm.base_url={proxy.url}",
            f"llm.model={llm_server.model}",
            f"llm.cache_path={tmp_path / 'cache.sqlite'}",
            "llm.requests_per_minute=60",
            f"results_dir={tmp_path / 'results'}",
            "n_train=[8]",
            "seeds=[0]",
            "split.max_test_rows=5",
            "dry_run=true",
        ]
    )
    job = plan_job(cfg)
    assert proxy.attempts == []
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache.sqlite").exists()
    (tally,) = job.tallies.values()
    assert tally.usage.requests == 5 and tally.usage.prompt_tokens > 0
    # a score asks for up to len(' yes') // 3 + 1 = 2 tokens (bench/llm/openai_backend.py)
    assert tally.usage.completion_tokens == 5 * 2
    text = describe_plans([job])
    assert "estimated with o200k_base, one token per digit" in text and "measured error" in text
    assert "60 requests" in text
    assert row(text, "total")["requests"] == 5


def test_a_dry_run_under_replay_reads_the_cache_only_and_says_what_it_assumed(
    llm_server: LLMServer, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    """`llm.replay=true` in a dry run leaves the cache file as it was (replay's own cache layer
    would switch it to WAL mode) and names the requests it does not hold; the output gives the
    estimate as a share of `llm.budget_usd` and says how `llm.scoring=auto` was counted."""
    proxy = fault_proxy(llm_server)
    cache = tmp_path / "imported.sqlite"  # as bench-bundle import writes one: no WAL
    with contextlib.closing(sqlite3.connect(cache)) as conn:
        conn.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT, created REAL)")
    before = files_under(tmp_path)
    overrides = [
        "dataset=callcenter",
        "method=llm_icl",
        "llm=openai_compatible",
        f"llm.base_url={proxy.url}",
        f"llm.model={llm_server.model}",
        f"llm.cache_path={cache}",
        *PRICES,
        "llm.budget_usd=0.01",
        f"results_dir={tmp_path / 'results'}",
        "n_train=[8]",
        "seeds=[0]",
        "split.max_test_rows=5",
        "dry_run=true",
    ]
    job = plan_job(compose_config([*overrides, "llm.replay=true"]))
    assert proxy.attempts == [] and files_under(tmp_path) == before  # nothing written
    (tally,) = job.tallies.values()
    assert tally.usage.requests == 5 and tally.usage.usd > 0
    text = describe_plans([job])
    assert "seed=0 n_train=8: 5 request(s) not in the request cache, which llm.replay=true" in text
    share = f"{100 * tally.usage.usd / 0.01:.1f}%"
    assert f"budget $0.01 (llm.budget_usd): this estimate is {share} of it." in text
    auto = (
        "llm.scoring=auto is counted as logprobs; a model without logprobs costs what "
        "llm.scoring=verbalized shows."
    )
    assert auto in text
    verbalized = plan_job(compose_config([*overrides, "llm.scoring=verbalized"]))
    assert auto not in describe_plans([verbalized]) and "llm.replay" not in str(verbalized.notes)
    (asked,) = verbalized.tallies.values()
    assert asked.usage.completion_tokens > tally.usage.completion_tokens


def test_offline_tokenizers_count_as_openai_does() -> None:
    """OpenAI's families map to their encodings; a chat request adds the chat format's tokens
    (3 per message, the role, 3 for the reply: OpenAI's published rule)."""
    assert family_encoding("gpt-4o-mini") == "o200k_base"
    assert family_encoding("openai/gpt-4.1-nano") == "o200k_base"
    assert family_encoding("gpt-4-turbo") == "cl100k_base"
    assert family_encoding("gpt-3.5-turbo") == "cl100k_base"
    assert family_encoding("Qwen/Qwen2.5-7B-Instruct") is None
    counter = token_counter("gpt-4o")
    assert counter.exact and counter.encode("Hello world") == [13225, 2375]
    assert len(counter.request_tokens("Hello world", chat=True)) == 3 + 1 + 2 + 3
    assert len(counter.request_tokens("Hello world", chat=False)) == 2
    estimate = token_counter("gemma-3-27b")  # no offline tokenizer: a token per digit
    assert not estimate.exact
    assert len(estimate.encode("x=12345")) == len(counter.encode("x=")) + 5
    # data that looks like a control token is counted as text
    assert len(counter.encode("<|endoftext|>")) > 1


def test_counting_tokens_does_not_reverify_the_model_file() -> None:
    """count_tokens loads the tokenizer once per process and weights file: a new backend on
    the same file counts at once (it took 0.16 s per call when the GGUF was re-verified)."""
    from bench.llm.llamacpp_backend import LlamaCppBackend

    gemma = compose_config(["llm=local_gemma3_270m"]).llm
    LlamaCppBackend(gemma).count_tokens("warm up")
    started = time.perf_counter()
    for i in range(50):
        assert LlamaCppBackend(gemma).count_tokens(f"row {i}: age=42, plan=basic") > 5
    assert time.perf_counter() - started < 2.0  # was 50 x 0.16 s = 8 s


def test_help_names_the_dry_run(tmp_path: Path) -> None:
    done = bench_run("--help", cwd=tmp_path)
    assert "dry_run=true" in done.stdout and "nothing is sent" in done.stdout

"""The sweep budget end to end (`llm.budget_usd`, bench/llm/budget.py): bench-run against the
loopback server (tests/loopback.py) with dear token prices, behind a proxy that counts the
requests the server answered and adds up the usage it reported for them.

1. One LLM job and one classical job: the LLM run that meets the budget is recorded failed with
   "budget of $X for this sweep reached ($Y spent)", the next LLM run is not attempted (no
   request), the classical runs are ok, bench-run exits 1; a rerun with a higher budget
   finishes every run, and the answers paid for the first time come from the request cache.
2. Two jobs at once (the joblib launcher): the server's total spend stays within the budget
   plus what the requests in flight may use; the overshoot is measured and printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from loopback import UsageTap

if TYPE_CHECKING:
    from loopback import FaultProxy, LLMServer

pytestmark = pytest.mark.e2e

BENCH_RUN = Path(sys.executable).with_name("bench-run")
INPUT_PER_M, OUTPUT_PER_M = 10_000.0, 20_000.0  # $0.01 a prompt token, $0.02 a completion token
# Requests in flight per job. The llama.cpp server answers one at a time and the proxy gives up
# on an answer after 60 s (then the client sends it again): on a loaded machine a longer queue
# would count retries as requests.
CONCURRENCY = 1
MESSAGE = "budget of ${budget} for this sweep reached ($"


def bench_run(
    server: LLMServer, proxy: FaultProxy, work: Path, budget: float, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BENCH_RUN),
            "-m",
            *args,
            "llm=openai_compatible",
            f"llm.base_url={proxy.url}",
            f"llm.model={server.model}",
            f"llm.cache_path={work / 'cache.sqlite'}",
            f"llm.prices.input_per_m={INPUT_PER_M}",
            f"llm.prices.output_per_m={OUTPUT_PER_M}",
            f"llm.budget_usd={budget}",
            "llm.timeout_s=600",  # a loaded machine: no request times out and is sent again
            "n_train=[4]",
            "report=false",
            f"results_dir={work / 'results'}",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )


def records(work: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((work / "results" / "runs").glob("*.json"))]


def ledger_spent(work: Path) -> float:
    import sqlite3

    db = sqlite3.connect(work / "results" / ".sweep" / "budget.sqlite")
    try:
        sweep = json.loads((work / "results" / ".sweep" / "plan.json").read_text())["id"]
        (spent,) = db.execute("SELECT TOTAL(spent) FROM spend WHERE sweep = ?", (sweep,)).fetchone()
        return float(spent)
    finally:
        db.close()


def test_the_budget_fails_one_run_skips_the_next_and_a_rerun_goes_on(
    llm_server: LLMServer, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    tap = UsageTap()
    proxy = fault_proxy(llm_server, rewrite=tap)
    sweep = ("dataset=callcenter", "method=llm_icl,logreg", "seeds=[0,1]", "split.max_test_rows=6")
    budget = 12.0
    done = bench_run(llm_server, proxy, tmp_path, budget, *sweep)
    output = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 1, output
    runs = {(r["method"], r["seed"]): r for r in records(tmp_path)}
    assert {m: runs[(m, 0)]["status"] for m in ("llm_icl", "logreg")} == {
        "llm_icl": "failed",
        "logreg": "ok",
    }, output
    assert runs[("logreg", 1)]["status"] == "ok"  # classical runs go on
    met, skipped = runs[("llm_icl", 0)], runs[("llm_icl", 1)]
    assert met["error"].startswith("BudgetReached: " + MESSAGE.format(budget="12.00")), met
    assert "llm.budget_usd=12" in met["error"]
    assert skipped["status"] == "failed" and skipped["usage"]["requests"] == 0
    assert skipped["error"].startswith("not attempted: " + MESSAGE.format(budget="12.00"))
    paid = len(tap.answers)
    assert 0 < paid < 6  # the first run was cut; nothing was sent for the second
    assert len(proxy.attempts) == paid
    assert met["usage"]["requests"] == paid  # the cut run records what its answers used
    spend = tap.usd(INPUT_PER_M, OUTPUT_PER_M)
    assert spend <= budget  # one job: its worst-case reservations leave no overshoot
    assert ledger_spent(tmp_path) == pytest.approx(spend)  # every answer was charged

    rerun = bench_run(llm_server, proxy, tmp_path, 1000.0, *sweep)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    runs = {(r["method"], r["seed"]): r for r in records(tmp_path)}
    assert {r["status"] for r in runs.values()} == {"ok"}
    assert len(proxy.attempts) == 12  # 2 runs x 6 rows, each asked of the server once
    assert runs[("llm_icl", 0)]["usage"]["cache_hits"] == paid  # paid for, not paid again
    assert ledger_spent(tmp_path) == pytest.approx(
        tap.usd(INPUT_PER_M, OUTPUT_PER_M, tap.answers[paid:])
    )


def test_parallel_jobs_stay_within_the_budget_plus_the_requests_in_flight(
    llm_server: LLMServer, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    """Two jobs in two worker processes, each with a request in flight at most: what the server
    answered costs at most the budget plus what the requests in flight used beyond their
    reservations; every answer is charged once in the ledger."""
    tap = UsageTap()
    proxy = fault_proxy(llm_server, rewrite=tap)
    budget = 30.0
    done = bench_run(
        llm_server,
        proxy,
        tmp_path,
        budget,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "dataset=callcenter,credit_data",
        "method=llm_icl",
        "seeds=[0,1]",
        "split.max_test_rows=6",
        f"llm.max_concurrency={CONCURRENCY}",
    )
    output = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 1, output
    runs = records(tmp_path)
    assert len(runs) == 4
    errors = [r["error"] for r in runs if r["status"] == "failed"]
    assert any(e.startswith("BudgetReached: " + MESSAGE.format(budget="30.00")) for e in errors)
    assert all(MESSAGE.format(budget="30.00") in e for e in errors), errors
    spend, requests = tap.usd(INPUT_PER_M, OUTPUT_PER_M), len(tap.answers)
    assert requests == len(proxy.attempts) < 4 * 6  # the budget stopped the sweep
    assert ledger_spent(tmp_path) == pytest.approx(spend)
    costs = sorted(tap.usd(INPUT_PER_M, OUTPUT_PER_M, [u]) for u in tap.answers)
    in_flight = 2 * CONCURRENCY  # jobs x llm.max_concurrency
    overshoot = max(0.0, spend - budget)
    assert overshoot <= sum(costs[-in_flight:]), (spend, budget)
    print(
        f"\nbudget ${budget:.2f}: the server answered {requests} requests costing ${spend:.2f}; "
        f"overshoot ${overshoot:.2f} ({overshoot / max(costs):.2f} of the dearest request, "
        f"${max(costs):.2f}; bound: {in_flight} requests in flight, "
        f"${sum(costs[-in_flight:]):.2f})"
    )

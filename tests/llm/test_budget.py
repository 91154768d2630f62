"""The sweep budget (`llm.budget_usd`, bench/llm/budget.py): a batch is cut where the budget
ends, every answered request is charged what the endpoint reports, a refused sweep contacts the
endpoint no more, the request cache keeps what was paid for, the ledger's total is shared by
processes without a lost update, a dead worker's reservations count, and `usd_per_hour` is
charged after the fact. Against the real loopback server (tests/loopback.py), through a proxy
that counts the requests and reads the usage the server reports. The sweep end to end:
tests/test_budget_sweep.py."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from loopback import UsageTap
from omegaconf import DictConfig, OmegaConf

from bench.config import compose_config
from bench.llm import budget as budget_module
from bench.llm import make_backend
from bench.llm.budget import BudgetLedger, BudgetReached, budget_message
from bench.llm.requests import GenerateRequest

if TYPE_CHECKING:
    from loopback import FaultProxy, LLMServer

Compose = Callable[..., DictConfig]
StartProxy = Callable[..., "FaultProxy"]

# Dear tokens, so that a dozen short requests cross a budget of a few dollars: $1 a prompt
# token, $2 a completion token.
INPUT_PER_M, OUTPUT_PER_M = 1_000_000.0, 2_000_000.0
PRICES = (f"llm.prices.input_per_m={INPUT_PER_M}", f"llm.prices.output_per_m={OUTPUT_PER_M}")
ENDPOINT_LLM = {"name": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "model": "m"}


@pytest.fixture(autouse=True)
def no_ledger_left_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's ledgers are its own: the module's active and per-process ones are restored."""
    monkeypatch.setattr(budget_module, "_ACTIVE", None)
    monkeypatch.setattr(budget_module, "_PROCESS", None)
    monkeypatch.setattr(budget_module, "_NO_USAGE", set())  # warnings said once per process
    monkeypatch.setattr(budget_module, "_UNPRICED", set())


def plan(results: Path, sweep_id: str) -> None:
    """What bench-run writes when a sweep starts (bench/progress.py)."""
    (results / ".sweep").mkdir(parents=True, exist_ok=True)
    (results / ".sweep" / "plan.json").write_text(json.dumps({"id": sweep_id, "total": 1}))


def requests(n: int) -> list[GenerateRequest]:
    return [GenerateRequest(f"Count from {i} to {i + 5}:", max_tokens=6) for i in range(n)]


def layers(backend: Any) -> list[str]:
    """The classes of a backend's layers, outermost first."""
    names = []
    while backend is not None:
        names.append(type(backend).__name__)
        backend = getattr(backend, "backend", None)
    return names


def test_the_budget_is_a_layer_inside_the_cache_only_when_set(openai_llm: Compose) -> None:
    plain = layers(make_backend(openai_llm("http://127.0.0.1:9/v1")))
    assert "BudgetedBackend" not in plain and plain[-1] == "OpenAIBackend"
    budgeted = layers(make_backend(openai_llm("http://127.0.0.1:9/v1", "llm.budget_usd=1")))
    assert budgeted[-3:] == ["CachedBackend", "BudgetedBackend", "OpenAIBackend"]


def test_the_message_names_the_budget_the_spend_and_the_setting() -> None:
    message = budget_message(20.0, 19.5)
    assert message.startswith("budget of $20.00 for this sweep reached ($19.50 spent)")
    assert "llm.budget_usd=20" in message and "request cache" in message
    assert budget_message(0.002, 0.0019873).startswith(
        "budget of $0.002 for this sweep reached ($0.001987 spent)"
    )


@pytest.mark.e2e
def test_a_batch_is_cut_where_the_budget_ends_and_the_cache_keeps_what_was_paid(
    llm_server: LLMServer, openai_llm: Compose, fault_proxy: StartProxy, tmp_path: Path
) -> None:
    """Twelve requests of about $25 each against $100: the batch is cut, nothing past the
    budget is sent, the ledger charges exactly what the server reported, a refused sweep asks
    nothing more; the next sweep, with a higher budget, sends only what was not answered."""
    tap = UsageTap()
    proxy = fault_proxy(llm_server, rewrite=tap)
    cfg = openai_llm(
        proxy.url, *PRICES, "llm.budget_usd=100", "llm.max_concurrency=2", model=llm_server.model
    )
    results = tmp_path / "results"
    plan(results, "sweep-1")
    ledger = BudgetLedger(results)
    backend = make_backend(cfg)
    with pytest.raises(BudgetReached) as refused:
        backend.generate(requests(12))
    sent = len(proxy.attempts)
    assert 0 < sent < 12
    state = ledger.state(budget_module.endpoint_key(cfg))
    assert state["spent"] == pytest.approx(
        tap.usd(INPUT_PER_M, OUTPUT_PER_M)
    )  # every answer charged what it used
    assert state["requests"] == sent and state["held"] == 0
    assert state["spent"] <= 100  # reserved at worst case: nothing in flight overshot
    assert str(refused.value).startswith("budget of $100.00 for this sweep reached ($")
    assert f"(${state['spent']:,.2f} spent)" in str(refused.value)
    # the sweep is refused from now on, without contacting the endpoint
    with pytest.raises(BudgetReached):
        backend.generate([GenerateRequest("A new question:", max_tokens=2)])
    assert len(proxy.attempts) == sent
    assert ledger.refusal(OmegaConf.to_container(cfg)).startswith("not attempted: budget of $100")
    # the next sweep with a higher budget goes on where this one stopped
    plan(results, "sweep-2")
    BudgetLedger(results)
    cfg.budget_usd = 1000
    answers = make_backend(cfg).generate(requests(12))
    assert len(proxy.attempts) == 12  # the answers paid for in sweep-1 came from the cache
    assert sum(a.usage.cache_hits for a in answers) == sent


@pytest.mark.e2e
def test_a_request_held_back_by_others_waits_instead_of_failing(
    llm_server: LLMServer, openai_llm: Compose, fault_proxy: StartProxy, tmp_path: Path
) -> None:
    """Another worker's reservation leaves no room now, but the spend leaves room: the request
    waits until that reservation is settled, then goes out."""
    proxy = fault_proxy(llm_server)
    cfg = openai_llm(proxy.url, *PRICES, "llm.budget_usd=60", model=llm_server.model)
    plan(tmp_path, "sweep-1")
    ledger = BudgetLedger(tmp_path)
    key = budget_module.endpoint_key(cfg)
    (hold,) = ledger.reserve(key, [55.0], budget=60)  # another worker's request in flight
    timer = threading.Timer(1.0, ledger.settle, (key, hold, 3.0, None))
    timer.start()
    (answer,) = make_backend(cfg, use_cache=False).generate(requests(1))
    timer.join()
    assert answer.usage.requests == 1 and len(proxy.attempts) == 1
    assert ledger.state(key)["spent"] == pytest.approx(3.0 + answer.usage.usd)


class NoUsage(UsageTap):
    """A FaultProxy `rewrite` that keeps the usage the server reported, then deletes it from
    the answer, as some proxies and OpenAI-compatible servers send none."""

    def __call__(self, answer: dict[str, Any]) -> dict[str, Any]:
        super().__call__(answer)
        answer.pop("usage", None)
        return answer


def budgeted(backend: Any) -> budget_module.BudgetedBackend:
    """The budget layer of `make_backend`'s stack."""
    while not isinstance(backend, budget_module.BudgetedBackend):
        backend = backend.backend
    return backend


@pytest.mark.e2e
def test_an_answer_without_usage_is_charged_its_reserved_worst_case(
    llm_server: LLMServer,
    openai_llm: Compose,
    fault_proxy: StartProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An endpoint that reports no usage would cost $0 and the budget would stop nothing: each
    answer is charged the worst case reserved for it, the batch is still cut, and the log says
    so once, naming the endpoint."""
    tap = NoUsage()
    proxy = fault_proxy(llm_server, rewrite=tap)
    cfg = openai_llm(proxy.url, *PRICES, "llm.budget_usd=100", model=llm_server.model)
    plan(tmp_path, "sweep-1")
    ledger = BudgetLedger(tmp_path)
    backend = make_backend(cfg, use_cache=False)
    asked = requests(12)
    with caplog.at_level("WARNING", logger="bench"), pytest.raises(BudgetReached):
        backend.generate(asked)
    sent = len(proxy.attempts)
    assert 0 < sent < 12 and all(u.get("prompt_tokens") for u in tap.answers)  # stripped here
    layer = budgeted(backend)
    worst = [layer._worst_case(*layer.estimate(r), 1.0) for r in asked[:sent]]
    state = ledger.state(budget_module.endpoint_key(cfg))
    assert state["requests"] == sent and state["held"] == 0
    assert state["spent"] == pytest.approx(sum(worst)) and 0 < state["spent"] <= 100
    said = [r.getMessage() for r in caplog.records if "reported no token usage" in r.getMessage()]
    assert len(said) == 1 and proxy.url in said[0]
    assert "llm.budget_usd charges each answer its reserved worst case" in said[0]


def test_a_budget_with_every_price_zero_is_said_to_stop_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """bench-run's preflight warns, once, that such a budget has no effect (a warning: the
    sweep still runs)."""
    from bench.preflight import job_problems

    free = compose_config(["method=llm_icl", "llm=openai_compatible", "llm.budget_usd=5"])
    assert budget_module.unpriced_budget(free.llm) == (
        "llm 'openai_compatible': llm.budget_usd=5 has no effect: llm.prices are all 0 "
        "(set llm.prices.input_per_m / output_per_m)"
    )
    priced = compose_config(["llm=openai_compatible", "llm.budget_usd=5", PRICES[0]]).llm
    assert budget_module.unpriced_budget(priced) is None
    assert budget_module.unpriced_budget(compose_config(["llm=openai_compatible"]).llm) is None
    with caplog.at_level("WARNING", logger="bench"):
        assert job_problems(free) == [] and job_problems(free) == []
    said = [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]
    assert said == [budget_module.unpriced_budget(free.llm)]


def _spend(results: str, times: int, usd: float) -> None:
    ledger = BudgetLedger(Path(results))
    for _ in range(times):
        holds = ledger.reserve("endpoint", [usd], budget=1e9)
        ledger.settle("endpoint", holds[0], usd, None)


def test_processes_share_one_total_and_lose_no_update(tmp_path: Path) -> None:
    plan(tmp_path, "sweep-1")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_spend, args=(str(tmp_path), 25, 0.5)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0] * 4
    state = BudgetLedger(tmp_path).state("endpoint")
    assert state["spent"] == pytest.approx(50.0) and state["requests"] == 100
    assert (tmp_path / ".sweep" / "budget.sqlite").is_file()
    plan(tmp_path, "sweep-2")  # a new sweep starts from zero
    assert BudgetLedger(tmp_path).state("endpoint")["spent"] == 0


def test_a_dead_workers_reservations_count_as_spent(tmp_path: Path) -> None:
    """A worker killed with requests in flight may have been billed for them: its holds are
    charged in full, never left to block the sweep, never forgotten."""
    plan(tmp_path, "sweep-1")
    code = (
        "import os, sys; from pathlib import Path; from bench.llm.budget import BudgetLedger; "
        "BudgetLedger(Path(sys.argv[1])).reserve('endpoint', [4.0, 3.0], budget=10); "
        "os._exit(9)"
    )
    dead = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=120)
    assert dead.returncode == 9
    ledger = BudgetLedger(tmp_path)
    assert ledger.reserve("endpoint", [2.0], budget=10)  # 7 + 2 fits
    state = ledger.state("endpoint")
    assert state["spent"] == pytest.approx(7.0) and state["held"] == pytest.approx(2.0)
    with pytest.raises(BudgetReached, match=r"budget of \$10.00 for this sweep reached"):
        ledger.reserve("endpoint", [3.5], budget=10)  # 7 spent + 3.5 > 10 whatever settles


def test_a_run_with_no_llm_or_no_budget_is_never_refused(tmp_path: Path) -> None:
    plan(tmp_path, "sweep-1")
    ledger = BudgetLedger(tmp_path)
    key = budget_module.endpoint_key(ENDPOINT_LLM)
    with pytest.raises(BudgetReached):
        ledger.reserve(key, [2.0], budget=1)
    assert ledger.refusal(None) is None
    assert ledger.refusal({**ENDPOINT_LLM, "budget_usd": None}) is None
    assert ledger.refusal({**ENDPOINT_LLM, "budget_usd": 1}).startswith("not attempted: budget")
    assert ledger.refusal({**ENDPOINT_LLM, "budget_usd": 5}) is None  # a higher one goes on
    other = {**ENDPOINT_LLM, "model": "another", "budget_usd": 1}
    assert ledger.refusal(other) is None  # the budget is per endpoint
    assert ledger.refusal({**other, "budget_usd": 0}) is None  # nothing refused yet: free runs go


@pytest.mark.e2e
def test_usd_per_hour_is_charged_after_the_fact(tmp_path: Path) -> None:
    """An in-process model priced by the hour only: nothing can be reserved before a request,
    so a batch goes out one request at a time, each charged its wall time; once that reaches
    the budget the rest of the batch is not sent."""
    from loopback import LOCAL_LLM

    cfg = compose_config(
        [
            f"llm={LOCAL_LLM}",
            f"llm.cache_path={tmp_path / 'cache.sqlite'}",
            "llm.prices.usd_per_hour=3600000",  # $1 a millisecond: any request passes $0.01
            "llm.budget_usd=1",
        ]
    ).llm
    ledger = BudgetLedger(None)  # a job without a sweep plan: its ledger in memory
    key = budget_module.endpoint_key(cfg)
    ledger.settle(key, None, 0.99, None)  # what earlier requests of the sweep were charged
    backend = make_backend(cfg, use_cache=False)
    with pytest.raises(BudgetReached) as refused:
        backend.generate(requests(3))
    state = ledger.state(key)
    assert state["requests"] == 2  # one more request went out, the other two did not
    assert state["spent"] > 1 and state["held"] == 0  # charged after the fact
    assert f"(${state['spent']:,.2f} spent)" in str(refused.value)

"""A sweep's spending cap on an endpoint (`llm.budget_usd`), shared by all its jobs and workers.

`with_budget` wraps the model or endpoint backend inside the request cache (bench/llm/backend.py),
so only requests actually sent are paid for. Before a batch goes out, each request's worst case is
reserved in the sweep's ledger: its prompt tokens (the backend's `count_tokens`, scaled up by the
most the endpoint's own counts have exceeded that estimate so far in this sweep) plus its whole
completion allowance, priced at `llm.prices` (bench/llm/cost.py). The longest prefix of the batch
that fits is sent; each answer settles its reservation to the usage the endpoint reports (to the
reservation itself where it reports no prompt tokens: some proxies and servers send no `usage`, and
$0 would never stop anything); the rest of the batch is reserved again once that room is back. A
request that would take the sweep past the budget even with nothing in flight is not sent: the run
fails with `BudgetReached` ("budget of $X for this sweep reached ($Y spent)"), the ledger remembers
it, and every later LLM run of the sweep on that endpoint fails at once (`BudgetLedger.refusal`,
checked by bench/job.py); classical runs go on, and bench-run exits 1 as for any failed run.

The ledger lives beside the results store, ``<results_dir>/.sweep/budget.sqlite``: one row per
sweep and endpoint (the sweep id of ``.sweep/plan.json`` and the endpoint key of the breaker,
bench/endpoint.py), changed in ``BEGIN IMMEDIATE`` transactions, so the jobs of a parallel sweep
(other processes) share one total. A new sweep starts from zero: the budget caps what one
bench-run spends. A rerun (with a higher budget, or the same one) goes on where the last one
stopped because what was paid for is answered from the request cache, free, and never charged
again. A job without a sweep plan (`run_job` from Python) keeps its ledger in memory; outside
any job (an estimator used directly) one in-memory ledger holds per process.

Overshoot: only requests already in flight can take the spend past the budget, by what they used
beyond their reservation: an endpoint's tokenizer counting more prompt tokens than the estimate
by more than it did so far (the first request to an endpoint goes out alone, to learn that).
`usd_per_hour` (a rented GPU) is charged after the fact: wall time cannot be known before a
request, so nothing of it is reserved, each answer adds its share, and no request is sent once
the spend has reached the budget.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.endpoint import endpoint_key, sweep_id
from bench.llm.cost import priced
from bench.llm.protocol import LLMBackend, OnResult, Usage
from bench.llm.requests import EmbedRequest, GenerateRequest, LLMRequest, ScoreRequest
from bench.llm.wrapper import Answer, BackendWrapper

__all__ = [
    "BUDGET_FILE",
    "BudgetLedger",
    "BudgetReached",
    "BudgetedBackend",
    "active_ledger",
    "budget_message",
    "unpriced_budget",
    "warn_unpriced_budget",
    "with_budget",
]

log = logging.getLogger("bench")

BUDGET_FILE = "budget.sqlite"  # in <results_dir>/.sweep/
# Tokens a chat template adds around each message (role markers, turn ends) beyond its text.
CHAT_OVERHEAD_TOKENS = 8
# An endpoint's prompt-token count above the estimate is learnt up to this factor (a larger one
# is taken as a bad usage report, not as the tokenizer).
MAX_RATIO = 8.0
WAIT_S = 0.1  # how often a request held back by other workers' reservations looks again

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    sweep TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    spent REAL NOT NULL DEFAULT 0,      -- USD settled: what answered requests used
    requests INTEGER NOT NULL DEFAULT 0,  -- answered requests charged
    ratio REAL NOT NULL DEFAULT 1,      -- most endpoint prompt tokens per estimated token
    reached REAL,                       -- the budget a refused request met (NULL: none yet)
    PRIMARY KEY (sweep, endpoint)
);
CREATE TABLE IF NOT EXISTS holds (      -- reservations of requests in flight
    id INTEGER PRIMARY KEY,
    sweep TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    host TEXT NOT NULL,                 -- a worker's host and process: a dead one's holds are
    pid INTEGER NOT NULL,               -- charged (only a worker on this host can be checked)
    usd REAL NOT NULL
);
"""


class BudgetReached(RuntimeError):
    """A request was not sent: it would take the sweep past `llm.budget_usd`."""

    def __init__(self, budget: float, spent: float) -> None:
        super().__init__(budget_message(budget, spent))
        self.budget, self.spent = budget, spent


def _usd(value: float) -> str:
    """USD as people read it: cents for dollars, four significant digits below one."""
    return f"{value:,.2f}" if value >= 1 else f"{value:.4g}"


def budget_message(budget: float, spent: float) -> str:
    """The error a run meets when the sweep's budget is reached."""
    return (
        f"budget of ${_usd(budget)} for this sweep reached (${_usd(spent)} spent): no LLM "
        f"request that could cross llm.budget_usd={budget:g} is sent. Rerun the sweep with a "
        "higher llm.budget_usd to go on: answers already paid for come from the request cache"
    )


class BudgetLedger:
    """What a sweep has spent and holds in reserve on each endpoint, in one SQLite database.

    `results_dir` with a sweep plan: the shared file ``.sweep/budget.sqlite`` (a read-only store
    falls back to memory, with a warning); without one, memory, for this ledger's users.
    Created by a job, it becomes the ledger its backends charge (`active_ledger`).
    """

    def __init__(self, results_dir: Path | None = None, activate: bool = True) -> None:
        self._lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        self._ready = False  # the file is made at first use: a job with no budget makes none
        self.sweep = sweep_id(results_dir) if results_dir is not None else None
        self.path = (
            results_dir / ".sweep" / BUDGET_FILE
            if results_dir is not None and self.sweep is not None
            else None
        )
        if activate:
            global _ACTIVE
            _ACTIVE = self

    def _connect(self) -> sqlite3.Connection:
        """The shared file (its tables made at first use), or the in-memory database."""
        if self._memory is None and self.path is not None and not self._ready:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=120, isolation_level=None)
                try:
                    db.executescript(_SCHEMA)
                finally:
                    db.close()
                self._ready = True
            except (OSError, sqlite3.Error) as error:  # a read-only store: this job's own
                log.warning(
                    "budget ledger %s cannot be written (%s): kept in memory", self.path, error
                )
                self.path = None
        if self._memory is None and self.path is None:
            self.sweep = self.sweep or "memory"
            self._memory = sqlite3.connect(":memory:", check_same_thread=False)
            self._memory.isolation_level = None  # transactions are ours (BEGIN IMMEDIATE)
            self._memory.executescript(_SCHEMA)
        if self._memory is not None:
            return self._memory
        return sqlite3.connect(self.path, timeout=120, isolation_level=None)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One writer at a time: threads by the lock, processes by SQLite's write lock."""
        with self._lock:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                if db is not self._memory:
                    db.close()

    def _row(self, db: sqlite3.Connection, endpoint: str) -> tuple[float, int, float, float | None]:
        db.execute(
            "INSERT OR IGNORE INTO spend (sweep, endpoint) VALUES (?, ?)", (self.sweep, endpoint)
        )
        return db.execute(
            "SELECT spent, requests, ratio, reached FROM spend WHERE sweep = ? AND endpoint = ?",
            (self.sweep, endpoint),
        ).fetchone()

    def _held(self, db: sqlite3.Connection, endpoint: str) -> float:
        """USD reserved by requests in flight; a dead worker's reservations become spent (it
        may have been billed for them: the safe side)."""
        pids = db.execute(
            "SELECT DISTINCT pid FROM holds WHERE sweep = ? AND endpoint = ? AND host = ?",
            (self.sweep, endpoint, _HOST),
        ).fetchall()
        for (pid,) in pids:
            if self._memory is None and not _alive(pid):
                where = "sweep = ? AND endpoint = ? AND host = ? AND pid = ?"
                mine = (self.sweep, endpoint, _HOST, pid)
                (lost,) = db.execute(f"SELECT TOTAL(usd) FROM holds WHERE {where}", mine).fetchone()
                db.execute(
                    "UPDATE spend SET spent = spent + ? WHERE sweep = ? AND endpoint = ?",
                    (lost, self.sweep, endpoint),
                )
                db.execute(f"DELETE FROM holds WHERE {where}", mine)
        (held,) = db.execute(
            "SELECT TOTAL(usd) FROM holds WHERE sweep = ? AND endpoint = ?", (self.sweep, endpoint)
        ).fetchone()
        return float(held)

    # -- the backend's side -----------------------------------------------------------------
    def reserve(
        self, endpoint: str, costs: Sequence[float], budget: float, hourly: bool = False
    ) -> list[int]:
        """Reserve the longest prefix of `costs` (worst-case USD per request) that fits under
        `budget` with what is spent and held; their hold ids, in order. An empty list: the
        first waits for other workers' reservations to settle. Raises `BudgetReached` when it
        would not fit even with nothing held (and remembers that, for the sweep's later runs).
        `hourly`: the endpoint is also charged by the hour, after the fact, so nothing is sent
        once the spend plus reservations has reached the budget."""
        with self._transaction() as db:
            spent, _, _, reached = self._row(db, endpoint)
            if reached is not None and budget <= reached:
                raise BudgetReached(budget, spent)
            held = self._held(db, endpoint)
            spent = self._row(db, endpoint)[0]  # with a dead worker's holds counted
            total = spent + held
            ids: list[int] = []
            for usd in costs:
                if total + usd > budget or (hourly and total >= budget):
                    break
                cursor = db.execute(
                    "INSERT INTO holds (sweep, endpoint, host, pid, usd) VALUES (?, ?, ?, ?, ?)",
                    (self.sweep, endpoint, _HOST, os.getpid(), usd),
                )
                ids.append(int(cursor.lastrowid or 0))
                total += usd
            refused = not ids and bool(costs)
            refused = refused and (spent + costs[0] > budget or (hourly and spent >= budget))
            if refused:  # remembered for the sweep's later runs
                db.execute(
                    "UPDATE spend SET reached = MAX(COALESCE(reached, 0), ?) "
                    "WHERE sweep = ? AND endpoint = ?",
                    (budget, self.sweep, endpoint),
                )
        if refused:  # raised after the commit, so the mark stays
            raise _Refused(budget, spent)
        return ids

    def settle(self, endpoint: str, hold: int | None, usd: float, ratio: float | None) -> None:
        """A request was answered: its reservation becomes what it used (`usd`), and the
        endpoint's prompt tokens per estimated token (`ratio`) are learnt."""
        with self._transaction() as db:
            self._row(db, endpoint)
            if hold is not None:
                gone = db.execute("DELETE FROM holds WHERE id = ?", (hold,)).rowcount == 0
                usd = 0.0 if gone else usd  # charged already, in full, as a dead worker's
            learnt = min(max(ratio or 1.0, 1.0), MAX_RATIO)
            db.execute(
                "UPDATE spend SET spent = spent + ?, requests = requests + 1, "
                "ratio = MAX(ratio, ?) WHERE sweep = ? AND endpoint = ?",
                (usd, learnt, self.sweep, endpoint),
            )

    def release(self, holds: Sequence[int]) -> None:
        """Requests not answered (failed, or never sent): nothing to charge for them."""
        if holds:
            with self._transaction() as db:
                db.executemany("DELETE FROM holds WHERE id = ?", [(h,) for h in holds])

    # -- reading ------------------------------------------------------------------------------
    def state(self, endpoint: str) -> dict[str, Any]:
        """spent, requests (charged), held (in flight), ratio and reached, for `endpoint`."""
        with self._transaction() as db:
            spent, requests, ratio, reached = self._row(db, endpoint)
            held = self._held(db, endpoint)
        return {
            "spent": spent,
            "requests": requests,
            "held": held,
            "ratio": ratio,
            "reached": reached,
        }

    def refusal(self, llm: Mapping[str, Any] | None) -> str | None:
        """Why an LLM run on `llm` is not attempted: this sweep reached its budget on that
        endpoint (None: go ahead; always for a run with no LLM or no budget)."""
        budget = (llm or {}).get("budget_usd")
        if not llm or budget is None:
            return None
        state = self.state(endpoint_key(llm))
        # a request was refused under this budget, or requests in flight went past it (a
        # budget of 0 still lets free requests through: there is nothing to refuse yet)
        if (state["reached"] is not None and budget <= state["reached"]) or (
            state["spent"] > budget
        ):
            return f"not attempted: {budget_message(float(budget), state['spent'])}"
        return None


class _Refused(BudgetReached):
    """The refusal that marked the sweep's budget reached (raised once that is committed)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


_HOST = socket.gethostname()
_ACTIVE: BudgetLedger | None = None  # the current job's ledger (bench/job.py creates it)
_NO_USAGE: set[str] = set()  # endpoints warned of for reporting no usage, in this process
_PROCESS: BudgetLedger | None = None  # outside any job: one per process


def active_ledger() -> BudgetLedger:
    """The ledger backends charge: the current job's, else this process's own."""
    global _PROCESS
    if _ACTIVE is not None:
        return _ACTIVE
    if _PROCESS is None:
        _PROCESS = BudgetLedger(None, activate=False)
    return _PROCESS


class BudgetedBackend(BackendWrapper):
    """Sends only the requests that fit the sweep's budget (`llm.budget_usd`)."""

    def __init__(self, backend: LLMBackend, ledger: BudgetLedger) -> None:
        super().__init__(backend)
        self.ledger = ledger
        self.budget = float(self.config.budget_usd)
        self.endpoint = endpoint_key(self.config)
        self.hourly = float(self.config.prices.usd_per_hour or 0) > 0
        # Wall time is charged after the fact, so by the hour a batch goes out as many requests
        # at a time as run at once (one in process): the spend is looked at between them.
        at_once = 1 if self.config.backend == "llamacpp" else int(self.config.max_concurrency)
        self.at_once = max(1, at_once) if self.hourly else None

    def _answer(
        self, requests: Sequence[LLMRequest], answer: Answer, on_result: OnResult | None
    ) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        estimates = [self.estimate(request) for request in requests]
        todo = list(range(len(requests)))
        while todo:
            state = self.ledger.state(self.endpoint)
            # Until the endpoint has answered once this sweep, its tokenizer's count against
            # the estimate is unknown: one request at a time teaches it (`ratio`).
            ahead = todo[: self.at_once] if state["requests"] else todo[:1]
            costs = [self._worst_case(*estimates[i], float(state["ratio"])) for i in ahead]
            try:
                holds = self.ledger.reserve(self.endpoint, costs, self.budget, self.hourly)
            except _Refused as refused:  # the first refusal of the sweep says it in the log
                log.warning("LLM budget: %s", refused)
                raise BudgetReached(refused.budget, refused.spent) from None
            if not holds:  # other workers' requests in flight hold the room: wait for them
                time.sleep(WAIT_S)
                continue
            batch, todo = todo[: len(holds)], todo[len(holds) :]
            reserved = list(zip(holds, costs, strict=False))  # each hold with its worst case
            self._send(requests, batch, reserved, estimates, answer, on_result, results)
        return results

    def _send(
        self,
        requests: Sequence[LLMRequest],
        batch: list[int],
        reserved: list[tuple[int, float]],
        estimates: list[tuple[int, int]],
        answer: Answer,
        on_result: OnResult | None,
        results: list[Any],
    ) -> None:
        """Send the `batch` (`reserved`: each request's hold and worst-case USD); each answer
        settles its hold as it arrives."""
        unsettled = dict(enumerate(reserved))

        def settle(j: int, result: Any) -> None:
            index = batch[j]
            if j in unsettled:
                hold, worst = unsettled.pop(j)
                usage: Usage = result.usage
                prompt = estimates[index][0]
                ratio = usage.prompt_tokens / prompt if prompt and usage.prompt_tokens else None
                self.ledger.settle(self.endpoint, hold, self._charge(usage, prompt, worst), ratio)
            results[index] = result
            if on_result is not None:
                on_result(index, result)

        try:
            answered = answer([requests[i] for i in batch], on_result=settle)
            for j, result in enumerate(answered):  # a backend that reported none as it went
                if j in unsettled:
                    settle(j, result)
        finally:
            self.ledger.release([hold for hold, _ in unsettled.values()])

    def _charge(self, usage: Usage, prompt: int, worst: float) -> float:
        """What an answer costs the budget: its reported usage, or, when the endpoint reported
        no prompt tokens for a prompt (a proxy or server that sends no `usage`), the worst case
        reserved for it (plus its wall time by the hour): $0 would let the spend never grow."""
        if not prompt or usage.prompt_tokens:
            return usage.usd
        if self.endpoint not in _NO_USAGE:  # once per endpoint and process
            _NO_USAGE.add(self.endpoint)
            where = f"{self.config.get('base_url') or self.config.name} ({self.config.model})"
            log.warning(
                "LLM budget: %s reported no token usage; llm.budget_usd charges each answer its "
                "reserved worst case",
                where,
            )
        hourly = usage.llm_wall_seconds * float(self.config.prices.usd_per_hour or 0) / 3600.0
        return worst + hourly

    def estimate(self, request: LLMRequest) -> tuple[int, int]:
        """(prompt tokens as the backend counts them, most completion tokens) of a request."""
        if isinstance(request, GenerateRequest):
            if isinstance(request.prompt, str):
                prompt = self.count_tokens(request.prompt)
            else:
                prompt = sum(
                    self.count_tokens(content) + CHAT_OVERHEAD_TOKENS
                    for _, content in request.prompt
                )
            return prompt, request.max_tokens
        if isinstance(request, ScoreRequest):
            # A label's continuation takes at most one token per character (the openai
            # backend asks for fewer), one more for slack.
            longest = max((len(label) for label in request.labels), default=0)
            return self.count_tokens(request.prompt), longest + 1
        if isinstance(request, EmbedRequest):
            return self.count_tokens(request.text), 0
        raise TypeError(f"no worst case for a {type(request).__name__}")

    def _worst_case(self, prompt: int, completion: int, ratio: float) -> float:
        """USD of a request using `prompt` x `ratio` uncached prompt tokens and `completion`
        tokens, at the llm's prices (bench/llm/cost.py); by the hour nothing is known yet."""
        usage = Usage(prompt_tokens=int(prompt * ratio + 0.999), completion_tokens=completion)
        return priced(usage, self.config.prices).usd


def with_budget(backend: LLMBackend) -> LLMBackend:
    """`backend`, refusing any request that would take the sweep past `llm.budget_usd`
    (itself when no budget is set)."""
    if backend.config.get("budget_usd") is None:
        return backend
    return BudgetedBackend(backend, active_ledger())


def unpriced_budget(llm: Mapping[str, Any]) -> str | None:
    """Why `llm.budget_usd` can stop nothing: it is set and every `llm.prices` is 0, so every
    request costs $0 (None: no budget, or something is priced)."""
    budget = llm.get("budget_usd")
    prices = llm.get("prices") or {}
    if budget is None or any(float(value or 0) for value in prices.values()):
        return None
    return (
        f"llm '{llm.get('name')}': llm.budget_usd={float(budget):g} has no effect: llm.prices "
        "are all 0 (set llm.prices.input_per_m / output_per_m)"
    )


_UNPRICED: set[str] = set()  # warnings said, in this process


def warn_unpriced_budget(llm: Mapping[str, Any]) -> None:
    """Log `unpriced_budget`'s warning, once per process (bench-run's preflight calls this for
    every job of the sweep)."""
    message = unpriced_budget(llm)
    if message is not None and message not in _UNPRICED:
        _UNPRICED.add(message)
        log.warning("%s", message)

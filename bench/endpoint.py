"""Stop calling an endpoint that keeps failing, across the jobs of a sweep.

A dead or silent endpoint would otherwise cost every LLM run of every job its full retry budget
(`llm.timeout_s` x (`llm.max_retries` + 1), minutes) before failing. A request that got no usable
answer after every retry (refused, timed out or dropped to the end, an answer that is not JSON)
counts as a failure to reach the endpoint; after `llm.max_consecutive_failures` of them in a row
the requests not yet sent fail at once, and so does every later run of the sweep on the same
endpoint (`llm.base_url` and `llm.model`), in this job and in the others.

The count is shared by the jobs of a sweep, also when they run in other processes: it lives
beside the results store, in ``<results_dir>/.sweep/endpoint-<hash>.json``, updated under a file
lock and replaced atomically. It belongs to the sweep that wrote it (the id in
``.sweep/plan.json`` that bench-run writes when a sweep starts, bench/progress.py), so a new
sweep starts from zero; an answered request resets it. A job with no sweep plan (`run_job`
called from Python) keeps its count in memory, for that job.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["EndpointBreaker", "active_breaker", "endpoint_key", "sweep_id"]

# The breaker of each endpoint the current job calls, by `endpoint_key`: the job creates it,
# the backend (built inside the run from the same llm config) counts its requests on it.
_ACTIVE: dict[str, EndpointBreaker] = {}


def endpoint_key(llm: Mapping[str, Any]) -> str:
    where = f"{llm.get('base_url') or llm.get('name')}\n{llm.get('model')}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def active_breaker(llm: Mapping[str, Any]) -> EndpointBreaker | None:
    """The breaker the current job keeps for this llm's endpoint (None outside a job: a backend
    used from a notebook retries each request and never gives up for good)."""
    return _ACTIVE.get(endpoint_key(llm))


class EndpointBreaker:
    """Counts requests in a row that could not reach an endpoint; `open` once there were
    `llm.max_consecutive_failures` of them (0: never).

    Created by a job for its llm config (`results_dir`: the results store, whose sweep plan
    makes the count shared by the sweep's jobs); it becomes the breaker the job's backends
    count on (`active_breaker`).
    """

    def __init__(self, llm: Mapping[str, Any] | None, results_dir: Path | None = None) -> None:
        llm = llm or {}
        self.limit = int(llm.get("max_consecutive_failures") or 0)
        self.where = llm.get("base_url") or llm.get("name")
        self.llm_name, self.model = llm.get("name"), llm.get("model")
        self._lock = threading.Lock()
        self._memory: dict[str, Any] = {"failures": 0, "last_error": ""}
        self.sweep = sweep_id(results_dir) if results_dir is not None else None
        self.path = (
            results_dir / ".sweep" / f"endpoint-{endpoint_key(llm)}.json"
            if results_dir is not None and self.sweep is not None
            else None
        )
        if llm:  # replaces an earlier job's breaker for the same endpoint
            _ACTIVE[endpoint_key(llm)] = self

    # -- reading --------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        if self.path is None:
            return dict(self._memory)
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):  # none yet, or unreadable: nothing counted
            return {"failures": 0, "last_error": ""}
        if not isinstance(state, dict) or state.get("sweep") != self.sweep:
            return {"failures": 0, "last_error": ""}  # an earlier sweep's count
        return state

    @property
    def in_a_row(self) -> int:
        """Requests in a row (this sweep) that could not reach the endpoint."""
        return int(self._state().get("failures") or 0)

    @property
    def open(self) -> bool:
        return self.limit > 0 and self.in_a_row >= self.limit

    @property
    def reason(self) -> str:
        """Why a run is not attempted (its record's error)."""
        return f"not attempted: {self.cause}"

    @property
    def cause(self) -> str:
        """Why requests are not sent: the endpoint, the llm config, the setting, the error."""
        state = self._state()
        return (
            f"{state.get('failures', 0)} requests in a row could not reach the LLM endpoint "
            f"{self.where} (llm '{self.llm_name}', model '{self.model}'; "
            f"llm.max_consecutive_failures={self.limit}); last error: "
            f"{state.get('last_error') or 'none recorded'}. Rerun the sweep once the endpoint "
            "answers (a new sweep tries it again), or set llm.max_consecutive_failures=0 to "
            "never give up."
        )

    # -- counting ---------------------------------------------------------------------------
    def failure(self, error: BaseException | str) -> None:
        """A request got no usable answer after every retry."""
        if self.limit <= 0:
            return
        text = " ".join(str(error).split())[:300]
        first = f"{type(error).__name__}: {text}" if isinstance(error, BaseException) else text
        with self._update() as state:
            state["failures"] = int(state.get("failures") or 0) + 1
            state["last_error"] = first

    def success(self) -> None:
        """A request was answered: the endpoint is reachable."""
        if self.limit <= 0 or self.in_a_row == 0:  # the common case: no lock, no write
            return
        with self._update() as state:
            state["failures"], state["last_error"] = 0, ""

    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        """Read, change and write the state, one writer at a time (threads and processes)."""
        with self._lock:
            if self.path is None:
                yield self._memory
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:  # a read-only store: count in memory, for this job
                yield self._memory
                return
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                state = self._state()
                yield state
                state["sweep"] = self.sweep
                _write_atomic(self.path, json.dumps(state))
            finally:
                os.close(lock)  # releases the lock


def sweep_id(results_dir: Path) -> str | None:
    """The id of the sweep bench-run started on this store (None when none was planned)."""
    try:
        plan = json.loads((results_dir / ".sweep" / "plan.json").read_text())
    except (OSError, ValueError):
        return None
    return str(plan.get("id")) if isinstance(plan, dict) and plan.get("id") else None


def _write_atomic(path: Path, text: str) -> None:
    """Readers see the old state or the new one, never a part (write aside, then rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError:  # a full disk: the count is a courtesy, the runs go on
        with contextlib.suppress(OSError):
            temporary.unlink()

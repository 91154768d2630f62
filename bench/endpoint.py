"""Stop calling an endpoint that keeps failing: runs in a row that could not reach it.

A dead endpoint would otherwise cost every remaining LLM run of a job its full retry budget
(minutes each) before failing. After `llm.max_consecutive_failures` such runs the job records
the rest as failed at once, with the endpoint and the last error.
"""

from __future__ import annotations

from typing import Any

from bench.llm.backend import LLMUnavailableError
from bench.record import RunRecord

__all__ = ["EndpointBreaker"]


class EndpointBreaker:
    """Counts runs in a row whose LLM endpoint could not be reached (`LLMUnavailableError`
    after every retry); at `llm.max_consecutive_failures` the job's remaining runs fail at
    once with the reason, rather than each retrying for minutes against a dead endpoint."""

    def __init__(self, llm: dict[str, Any] | None) -> None:
        self.limit = int((llm or {}).get("max_consecutive_failures") or 0)
        self.where = (llm or {}).get("base_url") or (llm or {}).get("name")
        self.in_a_row, self.last_error = 0, ""

    @property
    def open(self) -> bool:
        return self.limit > 0 and self.in_a_row >= self.limit

    @property
    def reason(self) -> str:
        return (
            f"not attempted: {self.in_a_row} runs in a row could not reach the LLM endpoint "
            f"{self.where} (llm.max_consecutive_failures={self.limit}); last error: "
            f"{self.last_error}. Rerun the sweep once the endpoint answers."
        )

    def note(self, record: RunRecord) -> None:
        """Count a run just executed: one that could not reach the endpoint, or a finished one
        (which resets the count)."""
        error = record.error or ""
        if record.status == "failed" and error.startswith(LLMUnavailableError.__name__):
            self.in_a_row, self.last_error = self.in_a_row + 1, error.splitlines()[0][:300]
        elif record.done:
            self.in_a_row = 0

"""Exceptions that tell the runner how to record a run that did not produce predictions.

Any other exception records the run as `failed`. `RunSkipped` and `RunUnavailable` carry a
different status: `skipped` (the run cannot be done by design, e.g. its prompt does not fit the
model's context) and `unavailable` (something outside the harness is missing, e.g. model
weights). `MethodFailed` is a failure that carries the method's report (what it tried and spent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.methods.base import MethodReport

__all__ = ["MethodFailed", "RunSkipped", "RunUnavailable", "describe"]


class RunSkipped(Exception):
    """The run cannot be done as configured; recorded as `skipped` with this message."""

    status = "skipped"


class RunUnavailable(Exception):
    """A resource the run needs is missing; recorded as `unavailable` with instructions."""

    status = "unavailable"


class MethodFailed(RuntimeError):
    """The method could not produce a model; the record keeps `report` (details, usage)."""

    def __init__(self, message: str, report: MethodReport | None = None, **_: Any) -> None:
        from bench.methods.base import MethodReport

        super().__init__(message)
        self.report = report or MethodReport()


def describe(error: BaseException) -> str:
    """An error as a record states it: `TypeName: message`."""
    return f"{type(error).__name__}: {error}"

"""Exceptions that tell the runner how to record a run that did not produce predictions.

Any other exception records the run as `failed`. These two carry a different status:
`skipped` (the run cannot be done by design, e.g. its prompt does not fit the model's context)
and `unavailable` (something outside the harness is missing, e.g. model weights).
"""

from __future__ import annotations

__all__ = ["RunSkipped", "RunUnavailable"]


class RunSkipped(Exception):
    """The run cannot be done as configured; recorded as `skipped` with this message."""

    status = "skipped"


class RunUnavailable(Exception):
    """A resource the run needs is missing; recorded as `unavailable` with instructions."""

    status = "unavailable"

"""The report's "Unreadable answers": ok runs in which some LLM answers named no class.

Why: such an answer is scored as a uniform guess, so a run that guessed often looks like a weak
model when it is a model that did not answer. Runs above ``llm.max_invalid_share`` are failed
(bench/methods/llm_base.py); this section lists the ok runs that stayed below it, with how many
answers were guessed, so a reader weighs their scores. The counts come from the records'
details: ``invalid_answers`` and ``scoring`` (of the run, or of a distillation's teacher).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from bench.report.doc import Block, Bullets, Heading, Paragraph

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = ["ANSWERS_NOTE", "ANSWERS_TITLE", "guessed_answers", "unreadable_blocks"]

ANSWERS_TITLE = "Unreadable answers"
ANSWERS_NOTE = (
    "An LLM answer that names no class (a refusal, a word where a letter was asked) is scored "
    "as a uniform guess over the classes. A run with more than llm.max_invalid_share of such "
    "answers (default 0.2) is failed, not listed here."
)


def unreadable_blocks(section: DatasetSection) -> list[Block]:
    """The section (nothing when every answer of every ok run named a class)."""
    lines = guessed_answers(section.runs)
    if not lines:
        return []
    return [Heading(ANSWERS_TITLE, 3), Bullets(tuple(lines)), Paragraph(ANSWERS_NOTE, note=True)]


def guessed_answers(runs: pd.DataFrame) -> list[str]:
    """One line per ok run with guessed answers: its label, size, seed and the counts."""
    if "details" not in runs.columns or runs.empty:
        return []
    lines = []
    for run in runs[runs["status"].eq("ok")].itertuples(index=False):
        invalid, total = _counts(run.details)
        if invalid:
            label = getattr(run, "label", None) or getattr(run, "method", "?")
            lines.append(
                f"{label}, n_train={run.n_train}, seed={run.seed}: {invalid} of {total} "
                f"answers guessed ({invalid / total:.0%})"
            )
    return lines


def _counts(details: Any) -> tuple[int, int]:
    """(invalid answers, answers) of a run's details, or of its teacher's (llm_distill)."""
    if not isinstance(details, Mapping):
        return 0, 0
    for part in (details, details.get("teacher")):
        if isinstance(part, Mapping) and isinstance(part.get("scoring"), Mapping):
            invalid = int(part.get("invalid_answers") or 0)
            total = int(sum(v for v in part["scoring"].values() if isinstance(v, int | float)))
            return (invalid, total) if total else (0, 0)
    return 0, 0

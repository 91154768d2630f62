"""The report's "Probabilities without logprobs": how trustworthy a † number is.

Why: a run whose class probabilities were not read from next-token logprobs (`llm.scoring`:
verbalized, sampled, or a logprob-less endpoint's parsed answer) ranks rows by a coarser
score, so its AUC is a different quantity from a logprob run's. Its label carries the scoring
and a † (bench/report/runs.py), so tables and verdicts never pool it with a logprob run of the
same LLM; this section sets its ECE and Brier score next to its headline metric, beside the
logprob runs of the same LLM where there are some, with how many answers could not be parsed
(``details.unparsed_answers``) and how many rows were scored as a uniform guess
(``details.invalid_answers``). Nothing is shown when every LLM run used logprobs, so reports
of logprob runs are unchanged.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from bench.llm.scoring import NOT_LOGPROBS, scored_by
from bench.report.doc import Block, Heading, Paragraph, Table
from bench.report.runs import metric_name, uses_llm

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = ["CALIBRATION_NOTE", "CALIBRATION_TITLE", "calibration_blocks", "calibration_rows"]

CALIBRATION_TITLE = "Probabilities without logprobs"
CALIBRATION_NOTE = (
    f"{NOT_LOGPROBS} marks a method whose probabilities were not read from next-token "
    "log-probabilities (llm.scoring): verbalized = the model's stated probability (0-100) that "
    "its answer is correct; sampled = add-one smoothed frequencies of llm.scoring_samples "
    "answers drawn at llm.scoring_temperature; generation = the parsed answer itself (0 or 1). "
    "Its scores rank rows more coarsely, so compare it with a logprob run by ECE and Brier "
    "(lower is better) as well as by its headline metric; the verdicts treat it as a method of "
    "its own. Unparsed: generated answers that named no class or no probability (a sampled row "
    "counts each draw); uniform: rows scored as a uniform guess because nothing was parsed."
)
HEADER = ("method", "n_train", "scoring", "ECE", "Brier", "unparsed", "uniform rows", "seeds")


def calibration_blocks(section: DatasetSection) -> list[Block]:
    """The section (nothing when every ok LLM run of the dataset used logprobs)."""
    rows = calibration_rows(section.runs, section.metric)
    if not rows:
        return []
    header = (*HEADER[:3], metric_name(section.metric), *HEADER[3:])
    return [
        Heading(CALIBRATION_TITLE, 3),
        Table(header, tuple(rows), align="lrlrrrrrr"),
        Paragraph(CALIBRATION_NOTE, note=True),
    ]


def calibration_rows(runs: pd.DataFrame, metric: str) -> list[tuple[str, ...]]:
    """One row per label x n_train of the LLMs with a run not scored by logprobs: the mean of
    the metric, ECE and Brier over seeds, the parse counts summed."""
    if runs.empty or "details" not in runs.columns:
        return []
    ok = runs[runs["status"].eq("ok") & uses_llm(runs)].copy()
    if ok.empty:
        return []
    ok["_scoring"] = ok["details"].map(scored_by)
    marked = set(ok.loc[ok["_scoring"].ne("logprobs"), "llm"])
    if not marked:
        return []
    shown = ok[ok["llm"].isin(marked)]
    rows = []
    for (label, n_train), group in shown.groupby(["label", "n_train"], sort=True):
        details = list(group["details"])
        scoring = scored_by(_pooled_counts(details))
        mark = "" if scoring == "logprobs" else NOT_LOGPROBS
        rows.append(
            (
                str(label),
                str(int(n_train)),
                f"{scoring}{mark}",
                _mean(group, metric),
                _mean(group, "ece"),
                _mean(group, "brier"),
                _count(details, "unparsed_answers", scoring, of_rows=False),
                _count(details, "invalid_answers", scoring, of_rows=True),
                str(group["seed"].nunique()),
            )
        )
    return rows


def _pooled_counts(details: list[Any]) -> dict[str, Any]:
    """The `scoring` counts of several runs' details, added up."""
    counts: dict[str, float] = {}
    for detail in details:
        scoring = detail.get("scoring") if isinstance(detail, dict) else None
        for mode, n in (scoring or {}).items():
            if isinstance(n, int | float):
                counts[mode] = counts.get(mode, 0) + n
    return {"scoring": counts}


def _mean(group: pd.DataFrame, column: str) -> str:
    if column not in group.columns:
        return "-"
    values = pd.to_numeric(group[column], errors="coerce").dropna()
    return f"{values.mean():.3f}" if len(values) and math.isfinite(values.mean()) else "-"


def _count(details: list[Any], key: str, scoring: str, of_rows: bool) -> str:
    """The sum of `key` over the runs' details (`of_rows`: "n of <rows scored>"); "-" for
    logprob runs."""
    if scoring == "logprobs":
        return "-"
    found = sum(int(d.get(key) or 0) for d in details if isinstance(d, dict))
    if not of_rows:
        return str(found)
    answers = sum(
        int(sum(v for v in (d.get("scoring") or {}).values() if isinstance(v, int | float)))
        for d in details
        if isinstance(d, dict)
    )
    return f"{found} of {answers}" if answers else str(found)

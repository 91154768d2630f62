"""The run summary: how many runs finished, which were skipped or failed and why, LLM usage.

It describes every record in runs/, including those a newer record of the same cell replaced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["RunSummary", "merge_reasons", "reason_key", "summarize_runs"]

MAX_LISTED = 50  # failures listed one by one; the rest are counted
REASON_CHARS = 300  # a listed reason is cut here

# A number standing alone (9,315 or 0.25 or 8192), not one inside a name (qwen2.5-1.5b, n_ctx).
_NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\w|\.\w)")


@dataclass
class RunSummary:
    counts: dict[str, int]  # status -> runs
    skipped: list[tuple[str, int, str]]  # (reason, runs, datasets/methods affected)
    failed: list[dict[str, object]]  # dataset, method, n_train, seed, status, error
    failed_unlisted: int
    totals: dict[str, float]  # requests, tokens, cached tokens, cache hits, usd, seconds
    superseded: int = 0
    notes: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, why) in runs/

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _sum(runs: pd.DataFrame, column: str) -> float:
    if column not in runs.columns:
        return 0.0
    return float(pd.to_numeric(runs[column], errors="coerce").fillna(0).sum())


def _first_line(error: object, limit: int | None = REASON_CHARS) -> str:
    text = str(error).strip().splitlines()[0] if isinstance(error, str) and error.strip() else ""
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def reason_key(reason: str) -> str:
    """What a skip reason says with its numbers left out: the key skipped runs group by.

    >>> reason_key("prompt of 9,315 tokens exceeds the context window of 8,192 tokens")
    'prompt of # tokens exceeds the context window of # tokens'
    """
    return _NUMBER.sub("#", reason)


def merge_reasons(reasons: list[str]) -> str:
    """One reason for several that share a `reason_key`: the first, each number that differs
    between them shown as the range it spans.

    >>> merge_reasons(["9,315 tokens (limit 8,192)", "35,120 tokens (limit 8,192)"])
    '9,315–35,120 tokens (limit 8,192)'
    """
    numbers = [_NUMBER.findall(reason) for reason in reasons]
    slots = iter(zip(*numbers, strict=True))

    def span(_: re.Match[str]) -> str:
        # Each value as first written (8192 and 8,192 are one value); smallest to largest.
        values = {float(text.replace(",", "")): text for text in reversed(next(slots))}
        low, high = values[min(values)], values[max(values)]
        return low if len(values) == 1 else f"{low}–{high}"

    return _NUMBER.sub(span, reasons[0])


def _skip_reasons(skipped_runs: pd.DataFrame) -> list[tuple[str, int, str]]:
    """(reason, runs, datasets/methods) per reason, reasons that differ only in numbers as one.

    A prompt too long by 9,315 tokens and one too long by 35,120 have the same cause and fix;
    listed apart they bury the other reasons.
    """
    reasons = skipped_runs["error"].map(lambda error: _first_line(error, None))
    skipped = []
    for _, group in skipped_runs.groupby(reasons.map(reason_key), sort=False):
        texts = list(dict.fromkeys(reasons[group.index]))  # distinct, in order
        reason = merge_reasons(texts)
        if len(reason) > REASON_CHARS:
            reason = reason[: REASON_CHARS - 1] + "…"
        where = ", ".join(
            sorted({f"{d}/{m}" for d, m in zip(group["dataset"], group["method"], strict=True)})
        )
        skipped.append((reason or "(no reason recorded)", len(group), where))
    skipped.sort(key=lambda item: (-item[1], item[0]))
    return skipped


def summarize_runs(
    runs: pd.DataFrame, superseded: int = 0, unreadable: list[tuple[str, str]] | None = None
) -> RunSummary:
    """Counts per status, skip reasons (grouped), failures (listed), and usage totals."""
    counts = {s: int(n) for s, n in runs["status"].value_counts().sort_index().items()}
    skipped = _skip_reasons(runs[runs["status"].eq("skipped")])
    bad = runs[runs["status"].isin(["failed", "unavailable"])]
    failed = [
        {
            "dataset": row.dataset,
            "method": row.method,
            "n_train": None if pd.isna(row.n_train) else int(row.n_train),
            "seed": None if pd.isna(row.seed) else int(row.seed),
            "status": row.status,
            "error": _first_line(row.error) or "(no error recorded)",
        }
        for row in bad.head(MAX_LISTED).itertuples()
    ]
    totals = {
        "requests": _sum(runs, "requests"),
        "prompt_tokens": _sum(runs, "prompt_tokens"),
        "completion_tokens": _sum(runs, "completion_tokens"),
        "cached_tokens": _sum(runs, "cached_tokens"),
        "cache_hits": _sum(runs, "cache_hits"),
        "usd": _sum(runs, "usd"),
        "llm_seconds": _sum(runs, "llm_seconds"),
        "wall_s": _sum(runs, "wall_s"),
    }
    return RunSummary(
        counts,
        skipped,
        failed,
        max(0, len(bad) - MAX_LISTED),
        totals,
        superseded,
        unreadable=list(unreadable or []),
    )

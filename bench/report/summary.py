"""The run summary: how many runs finished, which were skipped or failed and why, LLM usage.

It describes every record in runs/, including those a newer record of the same cell replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["RunSummary", "summarize_runs"]

MAX_LISTED = 50  # failures listed one by one; the rest are counted


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


def _first_line(error: object, limit: int = 300) -> str:
    text = str(error).strip().splitlines()[0] if isinstance(error, str) and error.strip() else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize_runs(
    runs: pd.DataFrame, superseded: int = 0, unreadable: list[tuple[str, str]] | None = None
) -> RunSummary:
    """Counts per status, skip reasons (grouped), failures (listed), and usage totals."""
    counts = {s: int(n) for s, n in runs["status"].value_counts().sort_index().items()}
    skipped_runs = runs[runs["status"].eq("skipped")]
    skipped = []
    for reason, group in skipped_runs.groupby(skipped_runs["error"].map(_first_line), sort=False):
        where = ", ".join(
            sorted({f"{d}/{m}" for d, m in zip(group["dataset"], group["method"], strict=True)})
        )
        skipped.append((reason or "(no reason recorded)", len(group), where))
    skipped.sort(key=lambda item: (-item[1], item[0]))
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

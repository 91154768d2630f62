"""The report's "Run summary": run counts, LLM usage, replaced and unreadable records, skip
reasons and the runs that did not finish (bench/report/summary.py computes them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.report.doc import Block, Bullets, Counts, Heading, Paragraph, Table
from bench.report.summary import RunSummary

if TYPE_CHECKING:
    from bench.report.content import ReportContent

__all__ = ["details_blocks", "usage_line"]

FAILED_COLUMNS = ("dataset", "method", "n_train", "seed", "status", "error")


def details_blocks(content: ReportContent) -> list[Block]:
    """The section, last on the page before the notes."""
    summary = content.summary
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    blocks: list[Block] = [
        Heading("Run summary", 2, anchor="summary", nav="Run summary"),
        Counts(f"Runs: {summary.total} ({counts}).", tuple(summary.counts.items())),
        Paragraph(usage_line(summary)),
    ]
    if summary.superseded:
        blocks.append(
            Paragraph(
                f"{summary.superseded} older run record(s) of a cell (same dataset, method, "
                "n_train and seed, different settings such as method parameters or the split) "
                "were replaced by the newest finished one in the tables.",
                note=True,
            )
        )
    if summary.unreadable:
        blocks += [
            Paragraph(
                f"{len(summary.unreadable)} unreadable file(s) in runs/ were skipped:", note=True
            ),
            Bullets(tuple(f"`{path}`: {why}" for path, why in summary.unreadable), note=True),
        ]
    if summary.skipped:
        blocks += [
            Heading("Skipped runs by reason", 3),
            Table(
                ("runs", "reason", "dataset/method"),
                tuple((str(n), reason, where) for reason, n, where in summary.skipped),
                align="rll",
                plain=True,
            ),
        ]
    if summary.failed:
        rows = tuple(
            tuple("-" if f[k] is None else str(f[k]) for k in FAILED_COLUMNS)
            for f in summary.failed
        )
        blocks += [
            Heading("Runs that did not finish", 3),
            Table(FAILED_COLUMNS, rows, align="llrrll", plain=True),
        ]
        if summary.failed_unlisted:
            blocks.append(
                Paragraph(
                    f"... and {summary.failed_unlisted} more (see their `error` in runs/).",
                    note=True,
                )
            )
    return blocks


def usage_line(summary: RunSummary) -> str:
    """Totals of LLM usage and compute over all runs, in one sentence."""
    t = summary.totals
    tokens = int(t["prompt_tokens"] + t["completion_tokens"])
    return (
        f"LLM usage: {int(t['requests']):,} requests, {tokens:,} tokens "
        f"({int(t['prompt_tokens']):,} prompt, {int(t['completion_tokens']):,} completion, "
        f"{int(t['cached_tokens']):,} prompt tokens from a prefix cache), "
        f"{int(t['cache_hits']):,} answers from the request cache, "
        f"${t['usd']:.4f} in total, {t['llm_seconds']:.1f} s in LLM calls. "
        f"Wall time of all runs: {t['wall_s']:.1f} s."
    )

"""What a prompt search chose and how optimistic its validation score was (`llm_icl_tuned`).

A search picks the prompt with the best score on validation rows held out of the training rows;
the same prompt then scores on the test rows. The gap, validation - test, is the search's
optimism: the price of choosing on a few rows. Both are in the search's metric
(`details.search.metric`), so the gap compares like with like.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from bench.report.doc import Block, Code, Heading, Paragraph, Table
from bench.report.verdict import format_score

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = ["SEARCH_NOTE", "search_blocks", "search_header", "search_rows", "search_table"]

SEARCH_NOTE = (
    "Prompt search: each run held out validation rows from its own training rows, scored the "
    "candidate prompts on them, refitted the best on all training rows and scored it once on "
    "the test rows. Optimism = validation - test score of the chosen prompt, in the search's "
    "metric; the test rows never influenced the choice."
)


def search_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A row per ok run whose details hold a prompt search: label, n_train, seed, the chosen
    candidate, candidates scored, validation and test score, optimism, the instruction."""
    columns = [
        "label",
        "n_train",
        "seed",
        "metric",
        "chosen",
        "scored",
        "validation",
        "test",
        "optimism",
        "instruction",
    ]
    rows = []
    if "details" not in runs.columns:
        return pd.DataFrame(columns=columns)
    ok = runs[runs["status"].eq("ok")]
    for run in ok.itertuples(index=False):
        details = run.details if isinstance(run.details, dict) else {}
        search = details.get("search")
        if not isinstance(search, dict) or "chosen" not in search:
            continue
        metric = str(search.get("metric", ""))
        test = getattr(run, metric, float("nan")) if metric else float("nan")
        test = float(test) if test is not None else float("nan")
        validation = float(search.get("validation_score", float("nan")))
        scored = sum(1 for c in search.get("candidates", []) if c.get("llm_calls", 0) > 0)
        rows.append(
            {
                "label": run.label,
                "n_train": int(run.n_train),
                "seed": int(run.seed),
                "metric": metric,
                "chosen": str(search["chosen"]),
                "scored": scored,
                "validation": validation,
                "test": test,
                "optimism": validation - test,
                "instruction": str(search.get("instruction", "")),
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["label", "n_train", "seed"]).reset_index(drop=True)


def search_blocks(section: DatasetSection) -> list[Block]:
    """The searches' table, then the instruction each chose (its first seed's)."""
    table = search_table(section.runs)
    if not len(table):
        return []
    blocks: list[Block] = [
        Heading("Prompt search", 3),
        Table(tuple(search_header()), tuple(map(tuple, search_rows(table)))),
        Paragraph(SEARCH_NOTE, note=True),
    ]
    for row in table.drop_duplicates(["label", "n_train"]).itertuples(index=False):
        blocks += [
            Paragraph(
                f"Chosen instruction of {row.label} at {row.n_train} rows (seed {row.seed}):"
            ),
            Code(str(row.instruction)),
        ]
    return blocks


def search_header() -> list[str]:
    return [
        "method",
        "n_train",
        "seed",
        "chosen prompt",
        "scored",
        "validation",
        "test",
        "optimism",
    ]


def search_rows(table: pd.DataFrame) -> list[list[str]]:
    return [
        [
            str(row.label),
            str(row.n_train),
            str(row.seed),
            str(row.chosen),
            str(row.scored),
            f"{format_score(row.validation)} {row.metric}",
            format_score(row.test),
            "-" if math.isnan(row.optimism) else f"{row.optimism:+.3f}",
        ]
        for row in table.itertuples(index=False)
    ]

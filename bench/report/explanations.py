"""Whether an LLM's explanations are faithful (`method.params.explain_rows`).

Each explained row has two measured effects (bench/methods/explain.py): how much the probability
of the model's answer moved when the columns its reason named were replaced by other training
rows' values, and when as many columns it did not name were. A faithful explainer moves more
through the named ones. Per method and n_train, the difference (named - unnamed) is averaged over
the measured rows of each seed, then over seeds, with the verdict's two-level bootstrap
(`bench.report.levels.mean_bootstrap`: seeds resampled with the between-seed rescaling, then
rows within each seed). The rows of one seed share its prompt (its shots, its fitted explainer),
so they are not independent: a t-interval over all rows as if they were misses the seed-to-seed
spread (tests/test_report_explanations.py measures both).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.report.doc import Block, Bullets, Heading, Paragraph, Table
from bench.report.levels import mean_bootstrap
from bench.report.verdict import format_score

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = [
    "EXPLANATIONS_NOTE",
    "example_line",
    "explanation_blocks",
    "explanation_examples",
    "explanation_header",
    "explanation_rows",
    "explanation_table",
]

EXPLANATIONS_NOTE = (
    "Explanations: for the first test rows the LLM was asked which two columns mattered most for "
    "its answer. Effect = mean absolute change in the probability of its answer when those "
    "columns (named) or as many other columns (unnamed) take other training rows' values. "
    "Faithful reasons: named > unnamed; the 95% interval resamples seeds, then the explained rows "
    "within each seed (rows of one seed share its prompt), as the verdict does. "
    "Most often named: the set of columns named most often, and in how many of the reasons that "
    "named any; one set for every row is a general belief about the table rather than a reason "
    "about each row."
)
EXAMPLES = 3  # reasons shown per method and n_train


def explanation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A row per (method, n_train) whose ok runs explained rows: rows explained, how many named
    a column, the mean named and unnamed effects, their difference and its interval."""
    columns = [
        "label",
        "n_train",
        "seeds",
        "explained",
        "naming",
        "measured",
        "named",
        "unnamed",
        "difference",
        "low",
        "high",
        "top_set",
        "top_count",
    ]
    found = _explaining_runs(runs)
    rows = []
    for (label, n_train), group in found.groupby(["label", "n_train"], sort=True):
        named, unnamed, per_seed = [], [], []
        sets: Counter[str] = Counter()
        for details in group["explanations"]:
            a = np.asarray(details.get("named_effect", []), dtype=float)
            b = np.asarray(details.get("unnamed_effect", []), dtype=float)
            named += list(a)
            unnamed += list(b)
            if len(a):
                per_seed.append(a - b)
            sets.update(details.get("named_sets", {}))
        top_set, top_count = sets.most_common(1)[0] if sets else ("", 0)
        mean, low, high = _interval(per_seed)
        rows.append(
            {
                "label": label,
                "n_train": int(n_train),
                "seeds": int(group["seed"].nunique()),
                "explained": sum(int(d.get("rows", 0)) for d in group["explanations"]),
                "naming": sum(int(d.get("naming_a_column", 0)) for d in group["explanations"]),
                "measured": sum(len(d) for d in per_seed),
                "named": float(np.mean(named)) if named else float("nan"),
                "unnamed": float(np.mean(unnamed)) if unnamed else float("nan"),
                "difference": mean,
                "low": low,
                "high": high,
                "top_set": top_set,
                "top_count": top_count,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _interval(per_seed: list[np.ndarray]) -> tuple[float, float, float]:
    """(mean over seeds of the seed's mean difference, 95% low, high); no interval from 1 row."""
    if not per_seed:
        return float("nan"), float("nan"), float("nan")
    if sum(len(d) for d in per_seed) < 2:
        return float(per_seed[0].mean()), float("nan"), float("nan")
    iv = mean_bootstrap(per_seed)
    return iv.estimate, iv.low, iv.high


def explanation_blocks(section: DatasetSection) -> list[Block]:
    """Whether the LLM's reasons were faithful, and a few of them."""
    table = explanation_table(section.runs)
    if not len(table):
        return []
    examples = tuple(example_line(*e) for e in explanation_examples(section.runs))
    return [
        Heading("Explanations", 3),
        Table(
            tuple(explanation_header()),
            tuple(map(tuple, explanation_rows(table))),
            align="lrrrrrrw",
        ),
        Paragraph(EXPLANATIONS_NOTE, note=True),
        *([Bullets(examples)] if examples else []),
    ]


def explanation_examples(runs: pd.DataFrame) -> list[tuple[str, int, dict]]:
    """(method, n_train, example) for the first few reasons of each method's first seed."""
    found = _explaining_runs(runs).sort_values(["label", "n_train", "seed"])
    examples = []
    for (label, n_train), group in found.groupby(["label", "n_train"], sort=True):
        first = group.iloc[0]["explanations"]
        examples += [(str(label), int(n_train), e) for e in first.get("examples", [])[:EXAMPLES]]
    return examples


def explanation_header() -> list[str]:
    return [
        "method",
        "n_train",
        "seeds",
        "naming a column",
        "named",
        "unnamed",
        "named - unnamed (95% CI)",
        "most often named",
    ]


def explanation_rows(table: pd.DataFrame) -> list[list[str]]:
    return [
        [
            str(row.label),
            str(row.n_train),
            str(row.seeds),
            f"{row.naming} of {row.explained}",
            format_score(row.named),
            format_score(row.unnamed),
            _difference(row.difference, row.low, row.high, row.measured, row.naming),
            f"{row.top_set} ({row.top_count} of {row.naming})" if row.top_count else "-",
        ]
        for row in table.itertuples(index=False)
    ]


def example_line(label: str, n_train: int, example: dict) -> str:
    named = ", ".join(example.get("named", [])) or "no column"
    return (
        f"{label} at {n_train} rows, row {example.get('row')}, answered "
        f'{example.get("answer")}: "{example.get("reason", "")}" (names: {named})'
    )


def _explaining_runs(runs: pd.DataFrame) -> pd.DataFrame:
    if "details" not in runs.columns or runs.empty:
        return pd.DataFrame(columns=["label", "n_train", "seed", "explanations"])
    ok = runs[runs["status"].eq("ok")]
    if ok.empty:  # nothing finished (failed runs have no label column to group by)
        return pd.DataFrame(columns=["label", "n_train", "seed", "explanations"])
    found = ok.assign(
        explanations=[d.get("explanations") if isinstance(d, dict) else None for d in ok["details"]]
    )
    found = found[[isinstance(e, dict) for e in found["explanations"]]]
    return found[["label", "n_train", "seed", "explanations"]]


def _difference(mean: float, low: float, high: float, measured: int, naming: int) -> str:
    if math.isnan(mean):
        if naming:  # nothing left to compare with: every named reason named every column
            return "- (the reasons named every column)"
        return "- (no reason named a column)"
    if math.isnan(low):
        return f"{mean:+.3f} (1 row: no interval)"
    if measured < naming:  # some reasons named every column: nothing to compare them with
        return f"{mean:+.3f} ({low:+.3f} to {high:+.3f}; {measured} rows)"
    return f"{mean:+.3f} ({low:+.3f} to {high:+.3f})"

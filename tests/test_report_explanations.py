"""The report's explanations table: named vs unnamed effects pooled over rows and seeds, with a
t-interval that covers the true difference about 95% of the time."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bench.report.explanations import (
    example_line,
    explanation_examples,
    explanation_rows,
    explanation_table,
)


def _run(seed: int, named: list[float], unnamed: list[float], **extra: object) -> dict:
    explanations = {
        "rows": len(named) + 1,
        "naming_a_column": len(named),
        "named_effect": named,
        "unnamed_effect": unnamed,
        "examples": [{"row": 7 + seed, "answer": "yes", "reason": "Short wait.", "named": ["w"]}],
    }
    return {
        "label": "llm_icl (gemma)",
        "n_train": 64,
        "seed": seed,
        "status": "ok",
        "details": {"explanations": explanations},
        **extra,
    }


def test_effects_are_pooled_over_the_rows_of_every_seed() -> None:
    runs = pd.DataFrame(
        [
            _run(0, [0.3, 0.1], [0.1, 0.1]),
            _run(1, [0.2], [0.0]),
            _run(2, [0.9], [0.0], status="failed"),  # a failed run is left out
            {"label": "logreg", "n_train": 64, "seed": 0, "status": "ok", "details": {}},
        ]
    )
    table = explanation_table(runs)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.seeds, row.explained, row.naming, row.measured) == (2, 5, 3, 3)
    diffs = np.array([0.2, 0.0, 0.2])
    assert row.difference == np.float64(diffs.mean())
    expected = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
    assert abs(row.half_width - expected) < 1e-12
    cells = explanation_rows(table)[0]
    assert cells[:4] == ["llm_icl (gemma)", "64", "2", "3 of 5"]
    assert cells[6].startswith("+0.133 (")
    assert cells[6].endswith(")") and "rows" not in cells[6]  # every naming reason measured


def test_no_reason_naming_a_column_says_so() -> None:
    table = explanation_table(pd.DataFrame([_run(0, [], [])]))
    assert explanation_rows(table)[0][6] == "- (no reason named a column)"


def test_the_set_named_most_often_is_counted_over_seeds() -> None:
    """Reasons that name the same columns for every row are a global belief: the table says so."""
    runs = pd.DataFrame(
        [
            {**_run(0, [0.1, 0.1], [0.0, 0.0])},
            {**_run(1, [0.1], [0.0])},
        ]
    )
    runs.loc[0, "details"]["explanations"]["named_sets"] = {"w + c": 1, "c": 1}
    runs.loc[1, "details"]["explanations"]["named_sets"] = {"w + c": 1}
    table = explanation_table(runs)
    assert (table.iloc[0].top_set, table.iloc[0].top_count) == ("w + c", 2)
    assert explanation_rows(table)[0][7] == "w + c (2 of 3)"
    # records written before the sets were kept show none
    assert explanation_rows(explanation_table(pd.DataFrame([_run(0, [0.1], [0.0])])))[0][7] == "-"


def test_examples_come_from_the_first_seed() -> None:
    runs = pd.DataFrame([_run(1, [0.1], [0.0]), _run(0, [0.1], [0.0])])
    [(label, n_train, example)] = explanation_examples(runs)
    assert example["row"] == 7
    assert example_line(label, n_train, example) == (
        'llm_icl (gemma) at 64 rows, row 7, answered yes: "Short wait." (names: w)'
    )


def test_runs_without_explanations_give_an_empty_table() -> None:
    runs = pd.DataFrame([{"label": "logreg", "n_train": 8, "seed": 0, "status": "ok"}])
    assert explanation_table(runs).empty
    assert explanation_examples(runs) == []


def test_the_interval_covers_the_true_difference_95_percent_of_the_time() -> None:
    """Simulated explainers whose named columns move the answer by 0.05 more on average."""
    rng = np.random.default_rng(0)
    truth, covered, trials = 0.05, 0, 2000
    for _ in range(trials):
        unnamed = rng.gamma(2.0, 0.03, size=30)
        named = unnamed + truth + rng.normal(0, 0.08, size=30)
        row = explanation_table(pd.DataFrame([_run(0, list(named), list(unnamed))])).iloc[0]
        covered += abs(row.difference - truth) <= row.half_width
    assert 0.93 <= covered / trials <= 0.97

"""The report's explanations table: named vs unnamed effects averaged over rows and seeds, with the
verdict's two-level bootstrap (seeds, then rows within a seed); its coverage measured where the
rows of one seed share an effect (they share a prompt), against the old t-interval over rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.report.explanations import (
    example_line,
    explanation_examples,
    explanation_rows,
    explanation_table,
)
from bench.report.levels import mean_bootstrap


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
    # seed 0: differences 0.2 and 0.0 (mean 0.1); seed 1: 0.2. Seeds weigh alike.
    expected = mean_bootstrap([np.array([0.2, 0.0]), np.array([0.2])])
    assert row.difference == pytest.approx(0.15) == expected.estimate
    assert (row.low, row.high) == pytest.approx((expected.low, expected.high))
    cells = explanation_rows(table)[0]
    assert cells[:4] == ["llm_icl (gemma)", "64", "2", "3 of 5"]
    assert cells[6] == f"+0.150 ({expected.low:+.3f} to {expected.high:+.3f})"
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


def _coverage(seeds: int, rows: int, seed_sd: float, trials: int) -> tuple[float, float]:
    """Share of simulated explainers whose interval holds the true difference 0.05: the
    report's (explanation_table) and a t-interval over all rows as if they were independent.

    Each seed's rows share an effect drawn once per seed, N(0, seed_sd^2), as rows explained
    through one prompt do; a row's own noise is N(0, 0.08^2) on gamma-distributed effects.
    """
    rng = np.random.default_rng(seeds * 100 + rows)
    truth, report, pooled = 0.05, 0, 0
    for _ in range(trials):
        runs, diffs = [], []
        for seed in range(seeds):
            unnamed = rng.gamma(2.0, 0.03, size=rows)
            named = unnamed + truth + seed_sd * rng.normal() + rng.normal(0, 0.08, size=rows)
            runs.append(_run(seed, list(named), list(unnamed)))
            diffs.append(named - unnamed)
        row = explanation_table(pd.DataFrame(runs)).iloc[0]
        report += row.low <= truth <= row.high
        d = np.concatenate(diffs)
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        pooled += abs(d.mean() - truth) <= half
    return report / trials, pooled / trials


def test_the_interval_covers_the_true_difference_from_one_seed() -> None:
    report, pooled = _coverage(seeds=1, rows=30, seed_sd=0.0, trials=600)
    # the percentile bootstrap of 30 rows runs a little short of the t-interval (~93% here)
    assert 0.91 <= report <= 0.97 and 0.93 <= pooled <= 0.97


def test_rows_that_share_a_seed_effect_need_the_seeds_resampled() -> None:
    # Three seeds of 20 rows whose seed effects spread about as much as one seed's row mean:
    # the rows-as-independent t-interval covers about 81%, the two-level bootstrap about 88%
    # (3 seeds estimate the spread with 2 degrees of freedom; bench/report/paired.py).
    report, pooled = _coverage(seeds=3, rows=20, seed_sd=0.02, trials=800)
    assert pooled <= 0.86
    assert report >= 0.85 and report >= pooled + 0.04

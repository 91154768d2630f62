"""The report's prompt-search table: the chosen prompt's validation score next to its test score."""

from __future__ import annotations

import pandas as pd

from bench.report.search import search_rows, search_table


def _run(seed: int, validation: float, test: float, **extra: object) -> dict[str, object]:
    search = {
        "metric": "roc_auc",
        "chosen": "explicit_instruction",
        "validation_score": validation,
        "instruction": "Predict `resolved`.",
        "candidates": [
            {"name": "configured", "llm_calls": 16},
            {"name": "explicit_instruction", "llm_calls": 16},
            {"name": "balanced_shots", "llm_calls": 0, "error": "the same prompt as configured"},
        ],
    }
    return {
        "label": "llm_icl_tuned (gemma)",
        "n_train": 64,
        "seed": seed,
        "status": "ok",
        "roc_auc": test,
        "details": {"search": search},
        **extra,
    }


def test_validation_test_and_optimism_per_run() -> None:
    runs = pd.DataFrame(
        [
            _run(1, 0.9, 0.75),
            _run(0, 0.8, 0.85),
            {
                "label": "logreg",
                "n_train": 64,
                "seed": 0,
                "status": "ok",
                "roc_auc": 0.8,
                "details": {},
            },
            _run(2, 0.7, 0.6, status="failed"),
        ]
    )
    table = search_table(runs)
    assert table["seed"].tolist() == [0, 1]  # sorted; the failed run and logreg are left out
    assert table["optimism"].round(6).tolist() == [-0.05, 0.15]
    assert table["scored"].tolist() == [2, 2]  # a candidate not scored is not counted
    assert search_rows(table)[1] == [
        "llm_icl_tuned (gemma)",
        "64",
        "1",
        "explicit_instruction",
        "2",
        "0.900 roc_auc",
        "0.750",
        "+0.150",
    ]


def test_runs_without_a_search_give_an_empty_table() -> None:
    runs = pd.DataFrame([{"label": "logreg", "n_train": 16, "seed": 0, "status": "ok"}])
    assert search_table(runs).empty

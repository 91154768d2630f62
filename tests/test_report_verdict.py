"""Verdict categories, margins and "how much data would decide it", on hand-built predictions.

A store holds per-row predictions that make each comparison's answer known by construction:
an LLM whose scores equal the classical model's (difference exactly 0: good enough), one that
ranks every row right (better), one that scores noise (worse), and one a little worse on few
rows (inconclusive, with the rows that would decide it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.config import ReportConfig
from bench.report.compare import Interval, PredictionReader, compare_runs
from bench.report.content import collect
from bench.report.paired import paired_bootstrap, rows_to_decide
from bench.report.runs import prepare_runs
from bench.report.verdict import (
    Comparison,
    _headline,
    categorize,
    classical_better_from,
    dataset_verdict,
)
from bench.results import ResultsStore, load_results

SEEDS = (0, 1, 2)
LABELS = ["no", "yes"]


def _interval(low: float, high: float, higher: bool = True) -> Interval:
    return Interval((low + high) / 2, low, high, 3, 300, "rows", higher)


@pytest.mark.parametrize(
    ("low", "high", "category"),
    [
        (0.001, 0.05, "better"),
        (-0.019, 0.05, "good enough"),  # lower end above -margin
        (-0.019, -0.001, "good enough"),  # significantly worse, yet by less than the margin
        (-0.08, -0.001, "worse"),
        (-0.08, -0.03, "worse"),
        (-0.021, 0.001, "inconclusive"),
        (-0.3, 0.2, "inconclusive"),
        (float("nan"), float("nan"), "untested"),
    ],
)
def test_categories_with_a_margin_of_0_02(low: float, high: float, category: str) -> None:
    assert categorize(_interval(low, high), 0.02) == category


def test_lower_is_better_metrics_turn_the_interval_around() -> None:
    # log loss LLM - classical in (-0.05, -0.01): the LLM's loss is lower, so it is better
    assert categorize(_interval(-0.05, -0.01, higher=False), 0.02) == "better"
    # loss higher by 0.001..0.015: worse, but within the margin
    assert categorize(_interval(0.001, 0.015, higher=False), 0.02) == "good enough"
    assert categorize(_interval(0.03, 0.09, higher=False), 0.02) == "worse"


def _comparison(n: int, category: str) -> Comparison:
    return Comparison(n, "llm", "rf", 0.8, 0.8, _interval(-0.1, 0.1), category)


def test_headline_names_every_size_once_and_the_size_from_which_classical_is_better() -> None:
    comparisons = [
        _comparison(16, "better"),
        _comparison(32, "good enough"),
        _comparison(64, "worse"),
        _comparison(128, "inconclusive"),
        _comparison(256, "worse"),
        _comparison(1024, "worse"),
    ]
    from_n, text = _headline(comparisons, "roc_auc", 0.02)
    assert from_n == 256 == classical_better_from(comparisons)
    assert text == (
        "With a margin of 0.02 AUC, the LLM is good enough at 16 and 32 rows (better at 16 "
        "rows); classical models are better from 256 rows on and at 64 rows; undecided at 128 "
        "rows (see below)."
    )


def test_headline_when_classical_is_better_everywhere_or_nowhere() -> None:
    everywhere = [_comparison(16, "worse"), _comparison(64, "worse")]
    assert _headline(everywhere, "accuracy", 0.05) == (
        16,
        "With a margin of 0.05 accuracy, classical models are better at every training size "
        "tested (16 and 64 rows).",
    )
    nowhere = [_comparison(16, "good enough"), _comparison(64, "untested")]
    assert _headline(nowhere, "roc_auc", 0.02) == (
        None,
        "With a margin of 0.02 AUC, the LLM is good enough at 16 rows; too few matched seeds to "
        "compare at 64 rows.",
    )


# --- a store with per-row predictions -------------------------------------------------------


def _scores(kind: str, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Probabilities of "yes" for a model of the given kind."""
    base = 1 / (1 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(size=len(y)))))
    if kind == "classical":
        return base
    if kind == "same":
        return base.copy()
    if kind == "perfect":
        return np.where(y == 1, 0.9, 0.1) + rng.uniform(-0.05, 0.05, len(y))
    if kind == "noise":
        return rng.uniform(size=len(y))
    if kind == "blurred":  # the classical model's scores with extra noise: a little worse
        blurred = base + rng.normal(scale=0.15, size=len(y))
        return np.clip(blurred, 0.01, 0.99)
    raise ValueError(kind)


def _record(dataset: str, method: str, seed: int, n_test: int) -> dict[str, Any]:
    llm = method.startswith("llm")
    return {
        "experiment": "verdict",
        "dataset": dataset,
        "method": "llm_icl" if llm else method,
        "family": "llm_icl" if llm else "classical",
        "serializer": "list" if llm else None,
        "llm": method if llm else None,  # one label per kind: `llm_icl (<kind>)`
        "n_train": 64,
        "seed": seed,
        "status": "ok",
        "error": None,
        "metrics": {},
        "timing": {"fit_s": 0.1, "predict_s": 0.1, "wall_s": 0.3, "cpu_s": 0.2},
        "usage": {"requests": 0, "cache_hits": 0, "usd": 0.0, "llm_seconds": 0.0},
        "n_test": n_test,
        "class_labels": LABELS,
        "positive_label": "yes",
        "details": {},
        "finished_at": "2026-01-01T00:00:00+00:00",
        "run_stem": f"{dataset}__{method}__s{seed}",
    }


def _store(path: Path, dataset: str, llm_kind: str, n_test: int = 200) -> Path:
    from sklearn.metrics import roc_auc_score

    store = ResultsStore(path)
    for seed in SEEDS:
        y = np.r_[np.ones(n_test // 2, int), np.zeros(n_test - n_test // 2, int)]
        for method, kind in (("random_forest", "classical"), (f"llm_{llm_kind}", llm_kind)):
            # every method sees the same rows; each kind draws its own noise but "same" copies
            # "same" and "blurred" start from the classical model's draw, the others from their own
            own = kind not in ("classical", "same", "blurred")
            p = _scores(kind, y, np.random.default_rng(seed + 7 if own else seed))
            frame = pd.DataFrame(
                {
                    "row": np.arange(n_test) + 1000 * seed,
                    "y_true": np.array(LABELS, dtype=object)[y],
                    "y_pred": np.where(p >= 0.5, "yes", "no"),
                    "proba_no": 1 - p,
                    "proba_yes": p,
                }
            )
            record = _record(dataset, method, seed, n_test)
            record["metrics"] = {
                "roc_auc": roc_auc_score(y, p),
                "accuracy": float(((p >= 0.5) == (y == 1)).mean()),
                "log_loss": float(-np.mean(np.where(y == 1, np.log(p), np.log(1 - p)))),
            }
            store.save(record, frame)
    return path


def _verdict(path: Path, **settings: Any):
    runs = prepare_runs(load_results(path)).runs
    return dataset_verdict(runs, "roc_auc", "d", ReportConfig(**settings), PredictionReader(path))


@pytest.mark.parametrize(
    ("kind", "category"),
    [("same", "good enough"), ("perfect", "better"), ("noise", "worse")],
)
def test_row_level_verdicts_on_predictions_with_known_answers(
    tmp_path: Path, kind: str, category: str
) -> None:
    verdict = _verdict(_store(tmp_path, "d", kind))
    (comparison,) = verdict.comparisons
    assert comparison.category == category
    assert comparison.interval.method == "rows"
    assert comparison.interval.n_rows == 600
    assert "paired over 600 test rows of 3 seeds" in verdict.lines[0]
    if kind == "same":  # identical scores: every replicate's difference is exactly 0
        assert (comparison.interval.low, comparison.interval.high) == (0.0, 0.0)


def _stored_groups(path: Path, llm: pd.DataFrame, rf: pd.DataFrame) -> list[tuple[Any, ...]]:
    """(y, LLM score, classical score) per seed, read straight from the stored Parquet files."""
    groups = []
    for seed in SEEDS:
        a = pd.read_parquet(path / llm[llm["seed"].eq(seed)]["predictions_file"].iloc[0])
        b = pd.read_parquet(path / rf[rf["seed"].eq(seed)]["predictions_file"].iloc[0])
        groups.append(
            ((a["y_true"] == "yes").astype(int).to_numpy(), a["proba_yes"], b["proba_yes"])
        )
    return groups


def test_the_row_level_interval_is_the_paired_bootstrap_of_the_stored_rows(tmp_path: Path) -> None:
    path = _store(tmp_path, "d", "noise")
    runs = prepare_runs(load_results(path)).runs
    llm, rf = runs[runs["family"].eq("llm_icl")], runs[runs["family"].eq("classical")]
    interval = compare_runs(llm, rf, "roc_auc", ["seed"], PredictionReader(path))
    groups = _stored_groups(path, llm, rf)
    expected = paired_bootstrap(groups, "roc_auc", n_boot=2000)
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high))
    assert interval.estimate == pytest.approx(float(llm["roc_auc"].mean() - rf["roc_auc"].mean()))


def test_an_undecided_comparison_says_how_many_rows_would_decide_it(tmp_path: Path) -> None:
    # The classical scores blurred by noise, 20 rows a seed: about 0.02 AUC worse, and 20 rows
    # cannot tell whether by more than the margin.
    verdict = _verdict(_store(tmp_path, "d", "blurred", n_test=20), margin=0.02)
    (comparison,) = verdict.comparisons
    iv = comparison.interval
    assert comparison.category == "inconclusive"
    assert iv.low < -0.02 < 0 < iv.high
    assert iv.rows_needed is not None and iv.rows_needed > 20
    assert iv.seeds_needed is not None and iv.seeds_needed > 3
    assert (
        f"about {iv.rows_needed:,} test rows per seed (now 20) would decide whether the LLM is "
        f"worse, or about {iv.seeds_needed} seeds of 20 rows"
    ) in verdict.lines[0]
    assert "undecided at 64 rows" in verdict.headline


def test_rows_needed_follows_rows_to_decide(tmp_path: Path) -> None:
    path = _store(tmp_path, "d", "blurred", n_test=20)
    runs = prepare_runs(load_results(path)).runs
    llm, rf = runs[runs["family"].eq("llm_icl")], runs[runs["family"].eq("classical")]
    interval = compare_runs(llm, rf, "roc_auc", ["seed"], PredictionReader(path), margin=0.02)
    groups = _stored_groups(path, llm, rf)
    paired = paired_bootstrap(groups, "roc_auc", n_boot=2000)
    threshold = 0.02 if paired.estimate > -0.02 else 0.0  # the nearer decision
    total = rows_to_decide(paired, threshold)
    assert interval.rows_needed == (None if total is None else -(-total // 3))


def test_stats_seeds_uses_the_t_interval_over_seeds(tmp_path: Path) -> None:
    verdict = _verdict(_store(tmp_path, "d", "noise"), stats="seeds")
    (comparison,) = verdict.comparisons
    assert comparison.interval.method == "seeds"
    assert "t-interval over 3 seeds" in verdict.lines[0]


def test_a_store_without_predictions_falls_back_to_seeds_and_says_so(tmp_path: Path) -> None:
    path = _store(tmp_path, "d", "noise")
    for file in (path / "predictions").iterdir():
        file.unlink()
    verdict = _verdict(path)
    assert verdict.comparisons[0].interval.method == "seeds"
    assert "per-row predictions are missing or unreadable" in verdict.lines[0]


def test_collect_refuses_bad_settings_naming_the_key(tmp_path: Path) -> None:
    path = _store(tmp_path, "d", "same")
    with pytest.raises(ValueError, match=r"report\.stats='rowz'"):
        collect(path, ReportConfig(stats="rowz"))
    with pytest.raises(ValueError, match=r"report\.margin=-0\.1"):
        collect(path, ReportConfig(margin=-0.1))


def test_one_dataset_has_no_rank_table_and_the_answer_comes_first(tmp_path: Path) -> None:
    from bench.report import write_report

    out = write_report(_store(tmp_path, "d", "same"))
    content = collect(tmp_path)
    assert content.rank_grid is None
    markdown = (out / "report.md").read_text()
    assert (
        markdown.index("## The answer") < markdown.index("## d") < markdown.index("## Run summary")
    )
    assert "Mean rank" not in markdown
    html = (out / "report.html").read_text()
    assert html.index('id="answer"') < html.index('id="ds-d"') < html.index('id="summary"')
    assert "good enough at 64 rows" in markdown.split("## d")[0]


def test_a_damaged_predictions_file_falls_back_to_seeds_and_the_report_is_written(
    tmp_path: Path,
) -> None:
    from bench.report import write_report

    path = _store(tmp_path, "d", "noise")
    next((path / "predictions").iterdir()).write_bytes(b"not parquet")
    verdict = _verdict(path)
    assert verdict.comparisons[0].interval.method == "seeds"
    assert "per-row predictions are missing or unreadable" in verdict.lines[0]
    assert (write_report(path) / "report.md").is_file()

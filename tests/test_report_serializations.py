"""The report's "Serializations compared" table, on stored runs whose answers are known.

One store holds llm_icl runs (one LLM, 3 seeds, the same 200 test rows per seed) under several
serializers: `list` (the reference), `list_words` whose scores are the reference's with a strong
push towards the true label (better), and `list_copy` whose predictions are the reference's
exactly (difference 0). A second LLM ran one serializer only, and a classical method none: neither
is compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from test_report_pages import assert_same_content

from bench.report import write_report
from bench.report.compare import PredictionReader
from bench.report.content import collect
from bench.report.doc import Table
from bench.report.runs import prepare_runs
from bench.report.serializations import (
    reference_serializer,
    serializer_blocks,
    serializer_header,
    serializer_rows,
    serializer_table,
)
from bench.results import ResultsStore, load_results

SEEDS = (0, 1, 2)
LABELS = ["no", "yes"]
N_TEST = 200


def _scores(kind: str, y: np.ndarray, seed: int) -> np.ndarray:
    """P("yes") per row: every kind starts from one seed's noisy base scorer."""
    rng = np.random.default_rng(seed)
    logit = 0.8 * (2 * y - 1) + rng.normal(size=len(y))
    if kind == "signal":  # the same scores pushed hard towards the true label
        logit = logit + 2.0 * (2 * y - 1)
    return 1 / (1 + np.exp(-logit))


def _save(
    store: ResultsStore,
    method: str,
    llm: str | None,
    serializer: str | None,
    seed: int,
    p: np.ndarray,
    y: np.ndarray,
    n_train: int = 64,
) -> None:
    family = "classical" if llm is None else "llm_icl"
    record: dict[str, Any] = {
        "experiment": "number_formats",
        "dataset": "d",
        "method": method,
        "family": family,
        "serializer": serializer,
        "llm": llm,
        "n_train": n_train,
        "seed": seed,
        "status": "ok",
        "error": None,
        "metrics": {
            "roc_auc": float(roc_auc_score(y, p)),
            "accuracy": float(((p >= 0.5) == (y == 1)).mean()),
            "log_loss": float(-np.mean(np.where(y == 1, np.log(p), np.log(1 - p)))),
        },
        "timing": {"fit_s": 0.1, "predict_s": 0.1, "wall_s": 0.3, "cpu_s": 0.2},
        "usage": {"requests": 0, "cache_hits": 0, "usd": 0.0, "llm_seconds": 0.0},
        "n_test": len(y),
        "class_labels": LABELS,
        "positive_label": "yes",
        "details": {},
        "finished_at": "2026-01-01T00:00:00+00:00",
        "run_stem": f"d__{method}__{llm}__{serializer}__n{n_train}__s{seed}",
    }
    frame = pd.DataFrame(
        {
            "row": np.arange(len(y)) + 1000 * seed,
            "y_true": np.array(LABELS, dtype=object)[y],
            "y_pred": np.where(p >= 0.5, "yes", "no"),
            "proba_no": 1 - p,
            "proba_yes": p,
        }
    )
    store.save(record, frame)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serializations")
    store = ResultsStore(path)
    for seed in SEEDS:
        y = np.r_[np.ones(N_TEST // 2, int), np.zeros(N_TEST - N_TEST // 2, int)]
        base = _scores("base", y, seed)
        for serializer, p in (
            ("list", base),
            ("list_words", _scores("signal", y, seed)),
            ("list_copy", base.copy()),
        ):
            _save(store, "llm_icl", "gemma", serializer, seed, p, y)
        # one serializer only: at another n_train, and with another LLM
        _save(store, "llm_icl", "gemma", "list_words", seed, base, y, n_train=16)
        _save(store, "llm_icl", "qwen", "list", seed, base, y)
        _save(store, "logreg", None, None, seed, base, y)
    return path


def _table(path: Path, metric: str = "roc_auc", **kwargs: Any) -> pd.DataFrame:
    runs = prepare_runs(load_results(path)).runs
    return serializer_table(runs, metric, PredictionReader(path), **kwargs)


def _row(table: pd.DataFrame, serializer: str) -> pd.Series:
    (index,) = table.index[table["serializer"].eq(serializer)]
    return table.loc[index]


def test_a_serializer_with_strong_signal_is_better_with_an_interval_excluding_0(
    store: Path,
) -> None:
    row = _row(_table(store), "list_words")
    assert (row["label"], row["n_train"], row["reference"], row["seeds"]) == (
        "llm_icl (gemma)",
        64,
        "list",
        3,
    )
    assert row["basis"] == "rows" and row["n_rows"] == 3 * N_TEST
    assert row["difference"] == pytest.approx(row["mean"] - row["reference_mean"])
    assert row["mean"] > row["reference_mean"] + 0.05
    assert 0 < row["low"] < row["difference"] < row["high"]


def test_identical_predictions_differ_by_exactly_0(store: Path) -> None:
    row = _row(_table(store), "list_copy")
    assert (row["difference"], row["low"], row["high"]) == (0.0, 0.0, 0.0)
    assert row["mean"] == row["reference_mean"]


def test_only_groups_with_two_serializers_are_compared_and_classical_never(store: Path) -> None:
    table = _table(store)
    # llm_icl (gemma) at 64 rows: list_words and list_copy against list; nothing else
    assert table[["label", "n_train", "serializer"]].values.tolist() == [
        ["llm_icl (gemma)", 64, "list_copy"],
        ["llm_icl (gemma)", 64, "list_words"],
    ]
    assert not table["method"].eq("logreg").any()


def test_lower_is_better_metrics_are_oriented_so_positive_is_better(store: Path) -> None:
    row = _row(_table(store, "log_loss"), "list_words")
    assert row["mean"] < row["reference_mean"]  # lower log loss: better
    assert row["difference"] == pytest.approx(row["reference_mean"] - row["mean"])
    assert row["low"] > 0


def test_without_predictions_the_interval_is_over_seeds(store: Path) -> None:
    runs = prepare_runs(load_results(store)).runs
    table = serializer_table(runs, "roc_auc", PredictionReader(None))
    row = _row(table, "list_words")
    assert row["basis"] == "seeds" and row["n_rows"] == 0
    assert row["why_seeds"] == "per-row predictions are missing or unreadable"
    assert row["difference"] == pytest.approx(row["mean"] - row["reference_mean"])
    cell = serializer_rows(table)[list(table["serializer"]).index("list_words")][6]
    assert "t over 3 seeds: per-row predictions are missing" in cell
    assert _row(_table(store, stats="seeds"), "list_words")["basis"] == "seeds"


def test_the_reference_is_list_else_the_first_by_name() -> None:
    assert reference_serializer(["list_words", "list", "json"]) == "list"
    assert reference_serializer(["list_words", "json"]) == "json"
    runs = pd.DataFrame(
        {
            "status": ["ok"] * 4,
            "label": ["x"] * 4,
            "method": ["llm_icl"] * 4,
            "llm": ["m"] * 4,
            "n_train": [8] * 4,
            "seed": [0, 1, 0, 1],
            "serializer": ["text", "text", "json", "json"],
            "roc_auc": [0.7, 0.8, 0.6, 0.7],
        }
    )
    (row,) = serializer_table(runs, "roc_auc", PredictionReader(None)).itertuples()
    assert (row.serializer, row.reference) == ("text", "json")
    assert row.difference == pytest.approx(0.1)


def test_rows_read_as_a_table(store: Path) -> None:
    table = _table(store)
    header = serializer_header("roc_auc")
    rows = serializer_rows(table)
    assert all(len(r) == len(header) for r in rows)
    words = rows[list(table["serializer"]).index("list_words")]
    assert words[:4] == ["llm_icl (gemma)", "64", "3", "list_words"]
    assert words[5].startswith("list: ")
    assert words[6].endswith(", 600 rows)") and words[7] == "better"
    copy = rows[list(table["serializer"]).index("list_copy")]
    assert copy[6] == "+0.000 (+0.000 to +0.000, 600 rows)"
    assert copy[7] == "no clear difference"


def test_the_section_is_in_the_markdown_and_html_reports(store: Path) -> None:
    section = collect(store).datasets[0]
    (table,) = [b for b in serializer_blocks(section) if isinstance(b, Table)]
    assert len(table.rows) == 2
    out = write_report(store)
    markdown = (out / "report.md").read_text()
    assert "### Serializations compared" in markdown
    part = markdown.split("### Serializations compared")[1].split("###")[0]
    assert "| llm_icl (gemma) | 64 | 3 | list_words |" in part
    assert "logreg" not in part and "qwen" not in part
    assert markdown.index("### Serializations compared") < markdown.index("### Cost to deploy")
    html = (out / "report.html").read_text()
    assert "<h3>Serializations compared</h3>" in html
    assert "<td>list_words</td>" in html
    assert_same_content(out)


def test_no_section_without_two_serializers(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    y = np.r_[np.ones(20, int), np.zeros(20, int)]
    for seed in SEEDS:
        p = _scores("base", y, seed)
        _save(store, "llm_icl", "gemma", "list", seed, p, y)
        _save(store, "logreg", None, None, seed, p, y)
    assert serializer_blocks(collect(tmp_path).datasets[0]) == []
    out = write_report(tmp_path)
    assert "Serializations compared" not in (out / "report.md").read_text()
    assert "Serializations compared" not in (out / "report.html").read_text()

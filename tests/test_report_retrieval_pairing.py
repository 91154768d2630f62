"""Which seeds the retrieval control pairs, where no per-row predictions are stored: the
t-interval over seeds cannot see that two runs scored different test rows, so the records'
row hashes decide (the row-level bootstrap would merge on row ids instead)."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.report.compare import PredictionReader
from bench.report.retrieval import retrieval_table

SEEDS = (0, 1, 2)


def _runs(test_hash_of_knn: dict[int, str]) -> pd.DataFrame:
    """llm_icl_knn (16 shots) and knn (k = 16) on three seeds, the same training rows; the kNN's
    test rows as `test_hash_of_knn` says (else the LLM's)."""
    llm = {"method": "llm_icl_knn", "llm": "m", "details": {"selection": "knn", "shots": 16}}
    vote = {"method": "knn", "llm": None, "details": {"k": 16, "vote": "distance_weighted"}}
    rows = []
    for seed in SEEDS:
        same = {"seed": seed, "train_rows_hash": f"train{seed}"}
        rows.append({**llm, **same, "test_rows_hash": f"test{seed}", "roc_auc": 0.8 + seed / 100})
        knn_test = test_hash_of_knn.get(seed, f"test{seed}")
        rows.append({**vote, **same, "test_rows_hash": knn_test, "roc_auc": 0.7 + seed / 50})
    return pd.DataFrame(rows).assign(dataset="d", status="ok", n_train=64, serializer=None)


def _table(runs: pd.DataFrame) -> list[dict]:
    """The retrieval rows without stored predictions: the seeds' t-interval decides."""
    return retrieval_table(runs, "roc_auc", PredictionReader(None)).to_dict("records")


def test_seeds_scored_on_other_test_rows_are_named_not_paired() -> None:
    (row,) = _table(_runs({1: "another draw"}))
    assert row["unpaired"] == "seed 1: other test rows"
    assert row["seeds"] == 2 and row["basis"] == "seeds"
    # the difference is over seeds 0 and 2 only
    assert row["difference"] == pytest.approx(((0.8 - 0.7) + (0.82 - 0.74)) / 2)
    (same,) = _table(_runs({}))
    assert same["seeds"] == 3 and same["unpaired"] == ""


def test_old_records_without_the_hash_still_pair() -> None:
    runs = _runs({1: "another draw"})
    runs["test_rows_hash"] = runs["test_rows_hash"].where(runs["method"].ne("knn"), None)
    (row,) = _table(runs)
    assert row["seeds"] == 3 and row["unpaired"] == ""

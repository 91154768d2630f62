"""The learning curve and the two choices it draws from: which method of a family is bold, and
how far each method is from the best classical one. Tables are built by hand, so every expected
value can be checked in the comments.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

from bench.report.plots import (
    _difference_limits,
    differences_to_best_classical,
    family_bests,
    learning_curve,
)

Row = tuple[str, str, int, float]  # family, method, n_train, mean


def _table(rows: list[Row], x: dict[tuple[str, int], float] | None = None) -> pd.DataFrame:
    """A `summary_table`-shaped frame (ci 0.02, 3 seeds); `x` overrides shot positions."""
    frame = pd.DataFrame(rows, columns=["family", "method", "n_train", "mean"])
    frame["ci"], frame["seeds"] = 0.02, 3
    frame["x"] = [
        (x or {}).get((m, n), float(n))
        for m, n in zip(frame["method"], frame["n_train"], strict=True)
    ]
    return frame


# AUC: logreg is best classical at 16, lightgbm at 64 and 256; llm_icl also ran zero-shot and is
# capped at 64 shots for n_train=256; tabpfn ran only at 16 and 64.
AUC_ROWS: list[Row] = [
    ("classical", "majority", 16, 0.50),
    ("classical", "majority", 64, 0.50),
    ("classical", "majority", 256, 0.50),
    ("classical", "logreg", 16, 0.70),
    ("classical", "logreg", 64, 0.75),
    ("classical", "logreg", 256, 0.80),
    ("classical", "lightgbm", 16, 0.60),
    ("classical", "lightgbm", 64, 0.80),
    ("classical", "lightgbm", 256, 0.90),
    ("tabpfn", "tabpfn", 16, 0.78),
    ("tabpfn", "tabpfn", 64, 0.82),
    ("llm_icl", "icl_big", 0, 0.65),
    ("llm_icl", "icl_big", 16, 0.72),
    ("llm_icl", "icl_big", 256, 0.74),
    ("llm_icl", "icl_small", 16, 0.60),
    ("llm_icl", "icl_small", 256, 0.62),
]
AUC_SHOTS = {("icl_big", 256): 64.0, ("icl_small", 256): 64.0}


@pytest.fixture
def auc_table() -> pd.DataFrame:
    return _table(AUC_ROWS, AUC_SHOTS)


def test_family_bests_pick_the_best_mean_over_the_n_train_each_ran(
    auc_table: pd.DataFrame,
) -> None:
    # classical: logreg (0.70+0.75+0.80)/3 = 0.75 < lightgbm (0.60+0.80+0.90)/3 = 0.7667;
    # llm_icl: icl_big (0.65+0.72+0.74)/3 = 0.7033 > icl_small 0.61; tabpfn alone.
    assert family_bests(auc_table, "roc_auc") == {"lightgbm", "tabpfn", "icl_big"}


def test_family_bests_for_a_lower_is_better_metric() -> None:
    table = _table(
        [
            ("classical", "majority", 16, 0.10),  # never a best, even with the lowest Brier
            ("classical", "logreg", 16, 0.20),
            ("classical", "lightgbm", 16, 0.25),
            ("llm_icl", "icl", 16, 0.30),
        ]
    )
    assert family_bests(table, "brier") == {"logreg", "icl"}
    assert family_bests(table, "roc_auc") == {"lightgbm", "icl"}


def test_family_bests_break_ties_by_label_whatever_the_row_order() -> None:
    rows: list[Row] = [
        ("classical", "xgboost", 16, 0.7),
        ("classical", "logreg", 16, 0.7),
        ("classical", "lightgbm", 16, 0.6),
    ]
    assert family_bests(_table(rows), "roc_auc") == {"logreg"}
    assert family_bests(_table(rows[::-1]), "roc_auc") == {"logreg"}


def test_differences_to_best_classical(auc_table: pd.DataFrame) -> None:
    diffs = differences_to_best_classical(auc_table, "roc_auc")
    assert list(diffs.columns) == ["family", "method", "n_train", "x", "difference", "reference"]
    got = {(r.method, r.n_train): (r.difference, r.reference, r.x) for r in diffs.itertuples()}
    # n_train=0: no classical method ran there, so icl_big's zero-shot point has no difference.
    expected = {
        ("majority", 16): (0.50 - 0.70, "logreg", 16.0),
        ("majority", 64): (0.50 - 0.80, "lightgbm", 64.0),
        ("majority", 256): (0.50 - 0.90, "lightgbm", 256.0),
        ("logreg", 16): (0.0, "logreg", 16.0),
        ("logreg", 64): (0.75 - 0.80, "lightgbm", 64.0),
        ("logreg", 256): (0.80 - 0.90, "lightgbm", 256.0),
        ("lightgbm", 16): (0.60 - 0.70, "logreg", 16.0),
        ("lightgbm", 64): (0.0, "lightgbm", 64.0),
        ("lightgbm", 256): (0.0, "lightgbm", 256.0),
        ("tabpfn", 16): (0.78 - 0.70, "logreg", 16.0),
        ("tabpfn", 64): (0.82 - 0.80, "lightgbm", 64.0),
        ("icl_big", 16): (0.72 - 0.70, "logreg", 16.0),
        # compared at its n_train (256), placed at its shot count (64)
        ("icl_big", 256): (0.74 - 0.90, "lightgbm", 64.0),
        ("icl_small", 16): (0.60 - 0.70, "logreg", 16.0),
        ("icl_small", 256): (0.62 - 0.90, "lightgbm", 64.0),
    }
    assert got.keys() == expected.keys()
    for key, (difference, reference, x) in expected.items():
        assert got[key][0] == pytest.approx(difference, abs=1e-12), key
        assert got[key][1:] == (reference, x), key


def test_differences_for_a_lower_is_better_metric_are_negated() -> None:
    table = _table(
        [
            ("classical", "majority", 16, 0.05),  # not a reference, though lowest
            ("classical", "logreg", 16, 0.20),
            ("classical", "lightgbm", 16, 0.25),
            ("llm_icl", "icl", 16, 0.15),
            ("llm_icl", "icl", 64, 0.10),  # no classical method at 64
        ]
    )
    table = table.drop(columns="x")  # n_train stands in for x
    diffs = differences_to_best_classical(table, "brier").set_index("method")
    assert (diffs["reference"] == "logreg").all()
    # positive = better: icl's Brier 0.15 is 0.05 below logreg's 0.20
    assert diffs["difference"].to_dict() == pytest.approx(
        {"majority": 0.15, "logreg": 0.0, "lightgbm": -0.05, "icl": 0.05}
    )
    assert diffs.loc["icl", "x"] == 16.0


def test_differences_without_classical_methods_are_empty() -> None:
    only_baseline = _table([("classical", "majority", 16, 0.5), ("llm_icl", "icl", 16, 0.7)])
    for table in (only_baseline, only_baseline[only_baseline["family"] != "classical"]):
        diffs = differences_to_best_classical(table, "roc_auc")
        assert diffs.empty
        assert "difference" in diffs.columns


def _height(path: Path) -> int:
    return int(mpimg.imread(path).shape[0])


def test_learning_curve_writes_a_png(auc_table: pd.DataFrame, tmp_path: Path) -> None:
    both = learning_curve(auc_table, "roc_auc", "two panels", tmp_path / "both.png", margin=0.02)
    assert both == tmp_path / "both.png"
    assert both.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # no margin, no x column (n_train stands in), a lower-is-better metric
    plain = learning_curve(auc_table.drop(columns="x"), "brier", "no margin", tmp_path / "p.png")
    assert plain.stat().st_size > 0
    # no classical method: the top panel alone, so a shorter figure
    no_classical = auc_table[auc_table["family"] != "classical"]
    top_only = learning_curve(no_classical, "roc_auc", "top only", tmp_path / "top.png", 0.02)
    assert _height(top_only) < 0.8 * _height(both)


def test_an_outlier_does_not_flatten_the_difference_panel(
    auc_table: pd.DataFrame, tmp_path: Path
) -> None:
    # codegen failed at 16 rows (0.05 - 0.70 = -0.65): the panel keeps the bulk, 0 and the
    # margin in view and draws that point on its lower edge.
    table = pd.concat(
        [
            auc_table,
            _table([("llm_codegen", "codegen", 16, 0.05), ("llm_codegen", "codegen", 64, 0.8)]),
        ],
        ignore_index=True,
    )
    diffs = differences_to_best_classical(table, "roc_auc")
    diffs = diffs[diffs["method"] != "majority"]
    low, high = _difference_limits(diffs, margin=0.02)
    assert -0.65 < low < -0.28  # icl_small at 256 (-0.28) still in view
    assert high >= 0.08  # tabpfn at 16
    # all on 0: the margin's ±1.5 x 0.02 in view, padded by 7% of that range
    zeros = pd.DataFrame({"difference": [0.0, 0.0]})
    assert _difference_limits(zeros, margin=0.02) == pytest.approx((-0.0342, 0.0342))
    path = learning_curve(table, "roc_auc", "outlier", tmp_path / "o.png", margin=0.02)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_retrieval_runs_stay_at_n_train_and_capped_shots_move_to_k() -> None:
    from bench.report.plots import shot_positions

    table = pd.DataFrame(
        {"family": ["llm_icl", "llm_icl"], "method": ["knn", "capped"], "n_train": [50000, 256]}
    )
    runs = pd.DataFrame(
        {
            "label": ["knn", "capped"],
            "n_train": [50000, 256],
            "details": [{"shots": 16, "selection": "knn"}, {"shots": 64, "selection": "first"}],
        }
    )
    assert shot_positions(table, runs)["x"].tolist() == [50000.0, 64.0]

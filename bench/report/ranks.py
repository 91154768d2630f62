"""The cross-dataset table: each method's mean rank and win rate per n_train.

Ranks compare means within one dataset and n_train, so datasets scored with different metrics
(AUC for binary, accuracy for multiclass) can be pooled. Significance against the best-ranked
method is a Wilcoxon signed-rank test over its (dataset, seed) pairs, Holm-corrected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from bench.metrics import higher_is_better
from bench.report.grid import Cell, Grid
from bench.report.runs import ok_runs
from bench.report.stats import ALPHA, holm, wilcoxon_p
from bench.report.tables import method_grid

__all__ = ["RANK_NOTE", "oriented_scores", "rank_grid", "rank_table"]

RANK_NOTE = (
    "Cells: mean rank / win rate over datasets. Rank 1 is the best mean on a dataset at that "
    "n_train (ties share the average rank); the win rate is the share of pairwise comparisons "
    "with the other methods on the same dataset and n_train that the method wins (ties count "
    "half). (k/N): the method has results on k of the N datasets with results at that n_train. "
    "Bold: best mean rank. †: not significantly worse than the best-ranked method — Wilcoxon "
    "signed-rank test on the paired per-seed differences over datasets x seeds, Holm-corrected "
    "within the column, α = 0.05. A Wilcoxon test needs at least 6 non-zero pairs to reach "
    "p < 0.05: with fewer, every method is marked, as are methods with no pair to test."
)


def oriented_scores(runs: pd.DataFrame, metrics: Mapping[str, str]) -> pd.DataFrame:
    """One row per ok run: dataset, family, label, n_train, seed, score (higher is better).

    `metrics` maps each dataset to its metric; lower-is-better metrics are negated.
    """
    frames = []
    for dataset, metric in metrics.items():
        ok = ok_runs(runs[runs["dataset"].eq(dataset)], metric)
        sign = 1.0 if higher_is_better(metric) else -1.0
        frames.append(
            ok[["dataset", "family", "label", "n_train", "seed"]].assign(score=sign * ok[metric])
        )
    columns = ["dataset", "family", "label", "n_train", "seed", "score"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def rank_table(runs: pd.DataFrame, metrics: Mapping[str, str]) -> pd.DataFrame:
    """One row per (family, method label, n_train) over all datasets in `metrics`.

    Columns: family, method, n_train, mean_rank, win_rate, datasets, datasets_total, best,
    tied, p_holm, pairs.
    """
    scores = oriented_scores(runs, metrics)
    if scores.empty:
        return pd.DataFrame(
            columns=["family", "method", "n_train", "mean_rank", "win_rate", "datasets"]
        )
    means = scores.groupby(["n_train", "dataset", "family", "label"], as_index=False)[
        "score"
    ].mean()
    means["rank"] = means.groupby(["n_train", "dataset"])["score"].rank(
        ascending=False, method="average"
    )
    # Wins against each other method of the same cell: (rank from the bottom - 1) counts the
    # methods below, with ties counted half, exactly as an average rank does.
    size = means.groupby(["n_train", "dataset"])["score"].transform("size")
    means["wins"] = size - means["rank"]
    means["comparisons"] = size - 1
    rows = []
    for n_train, cell in means.groupby("n_train"):
        total = cell["dataset"].nunique()
        agg = cell.groupby(["family", "label"]).agg(
            mean_rank=("rank", "mean"),
            wins=("wins", "sum"),
            comparisons=("comparisons", "sum"),
            datasets=("dataset", "nunique"),
        )
        top = agg["mean_rank"].min()
        best = {k for k, r in agg["mean_rank"].items() if math.isclose(r, top, abs_tol=1e-12)}
        reference = _pairs(scores, n_train, min(best))
        diffs = {}
        for key in agg.index:
            if key in best:
                continue
            joined = pd.concat([reference, _pairs(scores, n_train, key)], axis=1, join="inner")
            diffs[key] = joined.iloc[:, 0] - joined.iloc[:, 1]
        adjusted = holm({key: wilcoxon_p(d) for key, d in diffs.items()})
        for key, row in agg.iterrows():
            p = adjusted.get(key, float("nan"))
            rows.append(
                {
                    "family": key[0],
                    "method": key[1],
                    "n_train": int(n_train),
                    "mean_rank": float(row["mean_rank"]),
                    "win_rate": (
                        float(row["wins"] / row["comparisons"])
                        if row["comparisons"]
                        else float("nan")
                    ),
                    "datasets": int(row["datasets"]),
                    "datasets_total": int(total),
                    "best": key in best,
                    "tied": key not in best and (math.isnan(p) or p >= ALPHA),
                    "p_holm": p,
                    "pairs": len(diffs[key]) if key in diffs else 0,
                }
            )
    return pd.DataFrame(rows)


def _pairs(scores: pd.DataFrame, n_train: int, key: tuple[str, str]) -> pd.Series:
    rows = scores[
        scores["n_train"].eq(n_train) & scores["family"].eq(key[0]) & scores["label"].eq(key[1])
    ]
    return rows.set_index(["dataset", "seed"])["score"]


def rank_grid(table: pd.DataFrame) -> Grid:
    """The `rank_table` as a grouped grid: `mean rank / win rate` per n_train."""

    def cell(row: pd.Series) -> Cell:
        text = f"{row['mean_rank']:.2f} / {_percent(row['win_rate'])}"
        if row["datasets"] < row["datasets_total"]:
            text += f" ({row['datasets']}/{row['datasets_total']})"
        return Cell(text, bool(row["best"]), bool(row["tied"]))

    return method_grid(table, cell)


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.0f}%"

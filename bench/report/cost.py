"""Cost per 1,000 predictions and the cost-quality Pareto front.

Every ok run gets two costs per 1,000 test predictions:

- `usd_per_1k`: the run's `usage.usd` (API fees, or `usd_per_hour` x LLM time) per test row;
- `seconds_per_1k`: compute seconds per test row. Classical methods: CPU seconds of fit +
  predict (`timing.cpu_s`, else `fit_s + predict_s`); LLM methods: `usage.llm_seconds`, the
  time spent in LLM calls during fit and predict (wall time of a request for remote models),
  else `fit_s + predict_s`; other families (TabPFN, possibly on a GPU): `fit_s + predict_s`.

Fitting is amortised over the test rows, so a classical cost is fit + predict per prediction.
The number of test rows is the run's `n_test`; older records without it fall back to the row
count of the run's predictions file.

Answers served from the request cache are not billed (their usage is zero), so a cost would
shrink with every rerun. The cost of the answers that were computed is therefore scaled to all
answers, (requests + cache_hits) / requests; a run answered entirely from the cache has no cost
measurement (NaN) and is left out of cost figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.runs import uses_llm

__all__ = [
    "COST_NOTE",
    "COST_UNITS",
    "cost_per_1k",
    "cost_points",
    "cost_unit",
    "n_test_rows",
    "pareto_front",
    "with_pareto",
]

COST_NOTE = (
    "Cost per 1,000 predictions: the run's fit + predict cost divided by its test rows. In USD "
    "where any run paid (API fees, or usd_per_hour x LLM time); otherwise compute seconds: CPU "
    "seconds for classical methods, time in LLM calls for LLM-based methods, wall seconds for "
    "others. Answers from the request cache are costed like the computed ones; runs answered "
    "entirely from the cache have no cost and are not plotted. Points are means over seeds per "
    "method and n_train; the Pareto front holds the points no other point beats on both cost "
    "and quality."
)
COST_UNITS = {
    "usd": "USD per 1,000 predictions",
    "seconds": "compute seconds per 1,000 predictions",
}


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    if name in runs.columns:
        return pd.to_numeric(runs[name], errors="coerce")
    return pd.Series(np.nan, index=runs.index, dtype=float)


def n_test_rows(runs: pd.DataFrame, root: Path | None = None) -> pd.Series:
    """Test rows per run: `n_test`, else the row count of its predictions Parquet file."""
    n_test = _column(runs, "n_test")
    if root is None or "predictions_file" not in runs.columns:
        return n_test
    import pyarrow.parquet as pq

    for index in n_test.index[n_test.isna()]:
        name = runs.at[index, "predictions_file"]
        if isinstance(name, str) and (root / name).is_file():
            n_test.at[index] = pq.read_metadata(root / name).num_rows
    return n_test


def cost_per_1k(runs: pd.DataFrame, root: Path | None = None) -> pd.DataFrame:
    """`runs` with `usd_per_1k` and `seconds_per_1k` added (NaN where unknown)."""
    n_test = n_test_rows(runs, root).where(lambda n: n > 0)
    requests = _column(runs, "requests").fillna(0)
    hits = _column(runs, "cache_hits").fillna(0)
    # Scale what the computed answers cost to all answers; unknown when all came from the cache.
    scale = pd.Series(1.0, index=runs.index)
    scale[requests > 0] = (requests + hits)[requests > 0] / requests[requests > 0]
    scale[(requests == 0) & (hits > 0)] = np.nan

    wall = _column(runs, "fit_s").fillna(0) + _column(runs, "predict_s").fillna(0)
    cpu = _column(runs, "cpu_s")
    llm = _column(runs, "llm_seconds").fillna(0)
    family = runs["family"].astype(str)
    llm_family = uses_llm(runs)
    seconds = wall.copy()
    classical = family.eq("classical") & cpu.notna()
    seconds[classical] = cpu[classical]
    called_llm = llm_family & (llm > 0)
    seconds[called_llm] = llm[called_llm]

    usd = _column(runs, "usd").fillna(0)
    return runs.assign(
        usd_per_1k=usd * scale / n_test * 1000, seconds_per_1k=seconds * scale / n_test * 1000
    )


def cost_points(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean metric and mean costs per (family, label, n_train) over ok runs with `cost_per_1k`.

    Costs average over the seeds whose cost is known.
    """
    ok = runs[runs["status"].eq("ok")].dropna(subset=[metric, "n_train"])
    columns = ["family", "label", "n_train", metric, "usd_per_1k", "seconds_per_1k"]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    ok = ok.assign(n_train=ok["n_train"].astype(int))
    points = ok.groupby(["family", "label", "n_train"], as_index=False)[columns[3:]].mean()
    return points


def cost_unit(points: pd.DataFrame) -> str:
    """USD when any run paid something, else compute seconds."""
    usd = points.get("usd_per_1k", pd.Series(dtype=float))
    return "usd" if bool((usd.fillna(0) > 0).any()) else "seconds"


def pareto_front(cost: np.ndarray, quality: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Mask of the points no other point beats: at most the cost and at least the quality,
    strictly better in one. NaN points are never on the front.

    >>> pareto_front(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.9, 0.8]), True).tolist()
    [True, True, False]
    """
    c = np.asarray(cost, dtype=float)
    q = np.asarray(quality, dtype=float) * (1.0 if higher_is_better else -1.0)
    valid = ~(np.isnan(c) | np.isnan(q))
    front = np.zeros(len(c), dtype=bool)
    for i in np.flatnonzero(valid):
        others = valid & (c <= c[i]) & (q >= q[i]) & ((c < c[i]) | (q > q[i]))
        front[i] = not others.any()
    return front


def with_pareto(points: pd.DataFrame, metric: str, unit: str) -> pd.DataFrame:
    """`cost_points` with `cost` (in `unit`) and `pareto` (on the cost-quality front) added."""
    from bench.metrics import higher_is_better

    cost = points["usd_per_1k" if unit == "usd" else "seconds_per_1k"].astype(float)
    front = pareto_front(cost.to_numpy(), points[metric].to_numpy(), higher_is_better(metric))
    return points.assign(cost=cost, pareto=front)

"""One comparison of two methods' runs: a paired interval of their difference, and what decides it.

Runs of the two methods are matched on (dataset, seed) at one n_train. With `stats="rows"` the
interval is the two-level paired bootstrap of `bench.report.paired` over the stored per-row
predictions: every matched seed is a group whose test rows both methods predicted, so the test
rows' noise and the seed-to-seed spread are both in it. Where a matched run has no predictions
file (stores written before they were kept, hand-built stores) or with `stats="seeds"`, the
interval is the paired t-interval over the matched seeds (`bench.report.stats`).

The interval is of `a - b` in the metric's units; `advantage` orients it so that positive means
`a` is better (log loss and Brier are lower-is-better).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.metrics import get_metric, higher_is_better
from bench.report.paired import PairedInterval, paired_bootstrap, rows_to_decide, seeds_to_decide
from bench.report.stats import ALPHA, paired_difference

log = logging.getLogger("bench")

__all__ = [
    "Interval",
    "PredictionReader",
    "accuracy_group",
    "compare_runs",
    "seeds_for_t_interval",
]

# Named metrics with a vectorised bootstrap on one positive-class score (binary tasks).
_FAST = {"roc_auc", "accuracy", "log_loss", "brier"}
N_BOOT = 2000


@dataclass(frozen=True)
class Interval:
    """`a - b` (metric units) with its 95% interval, how it was made, and what would decide it.

    `rows_needed` is the number of test rows per seed at which an interval of the same centre
    and variance would decide the comparison at `margin` (None: more rows alone cannot, or it
    is decided already); `seeds_needed` the number of seeds with today's rows per seed.
    """

    estimate: float
    low: float
    high: float
    n_seeds: int
    n_rows: int  # test rows over all matched seeds (0 for a seed-level interval)
    method: str  # "rows" (paired bootstrap over test rows and seeds) | "seeds" (t over seeds)
    higher_is_better: bool
    rows_needed: int | None = None
    seeds_needed: int | None = None
    why_seeds: str = ""  # why a seed-level interval was used where rows were asked for

    @property
    def testable(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def advantage(self) -> tuple[float, float, float]:
        """(estimate, low, high) oriented so that positive means `a` is better."""
        if self.higher_is_better:
            return self.estimate, self.low, self.high
        return -self.estimate, -self.high, -self.low


class PredictionReader:
    """Per-row predictions of runs under a results directory, read once each."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._cache: dict[str, pd.DataFrame | None] = {}

    def read(self, run: pd.Series) -> pd.DataFrame | None:
        name = run.get("predictions_file")
        if self.root is None or not isinstance(name, str):
            return None
        if name not in self._cache:
            path = self.root / name
            try:
                self._cache[name] = pd.read_parquet(path) if path.is_file() else None
            except Exception as error:  # a damaged file: this comparison falls back to seeds
                log.warning(
                    "report: cannot read %s (%s); using the seed-level interval", path, error
                )
                self._cache[name] = None
        return self._cache[name]


def compare_runs(
    a: pd.DataFrame,
    b: pd.DataFrame,
    metric: str,
    keys: list[str],
    reader: PredictionReader,
    stats: str = "rows",
    margin: float = 0.0,
) -> Interval:
    """The paired interval of `metric(a) - metric(b)` over the `keys` (e.g. seed) both ran.

    `a` and `b` are the ok runs of one method each (one row per key). The interval is the
    row-level bootstrap when every matched run has predictions and `stats="rows"`, else the
    seed-level t-interval.
    """
    left, right = a.set_index(keys), b.set_index(keys)
    shared = left.index.intersection(right.index)
    left, right = left.loc[shared], right.loc[shared]
    better = higher_is_better(metric)
    if stats == "rows":
        groups, why = _row_groups(left, right, metric, reader)
        if groups is not None:
            interval = paired_bootstrap(groups[0], groups[1], n_boot=N_BOOT, alpha=ALPHA)
            return _from_paired(interval, better, margin)
    else:
        why = ""
    return _seed_level(left[metric], right[metric], better, margin, why)


def _from_paired(interval: PairedInterval, better: bool, margin: float) -> Interval:
    oriented = _orient(interval, better)
    threshold = margin if oriented.estimate > -margin else 0.0  # the nearer decision
    rows = rows_to_decide(oriented, threshold)
    seeds = seeds_to_decide(oriented, threshold)
    per_seed = None if rows is None else math.ceil(rows / interval.n_seeds)
    return Interval(
        interval.estimate,
        interval.low,
        interval.high,
        interval.n_seeds,
        interval.n_rows,
        "rows",
        better,
        rows_needed=per_seed,
        seeds_needed=seeds,
    )


def _orient(interval: PairedInterval, better: bool) -> PairedInterval:
    if better:
        return interval
    return PairedInterval(
        -interval.estimate,
        -interval.high,
        -interval.low,
        interval.se,
        interval.alpha,
        interval.n_seeds,
        interval.n_rows,
        interval.method,
        interval.var_rows,
        interval.var_seeds,
    )


def _seed_level(a: pd.Series, b: pd.Series, better: bool, margin: float, why: str) -> Interval:
    diff = paired_difference(a, b)
    sign = 1.0 if better else -1.0
    seeds = None
    if diff.testable:
        oriented = sign * diff.mean
        threshold = margin if oriented > -margin else 0.0
        paired = pd.concat([a, b], axis=1, join="inner").dropna()
        sd = float((paired.iloc[:, 0] - paired.iloc[:, 1]).std(ddof=1))
        seeds = seeds_for_t_interval(abs(oriented + threshold), sd)
    return Interval(
        diff.mean,
        diff.low,
        diff.high,
        diff.n,
        0,
        "seeds",
        better,
        seeds_needed=seeds,
        why_seeds=why,
    )


def seeds_for_t_interval(distance: float, sd: float, limit: int = 1000) -> int | None:
    """Smallest n whose 95% t-interval half-width t(n-1) sd / sqrt(n) is below `distance`.

    >>> seeds_for_t_interval(0.05, 0.05)
    7
    """
    from scipy import stats

    if distance <= 0 or math.isnan(distance) or math.isnan(sd):
        return None
    if sd == 0:
        return 2
    for n in range(2, limit + 1):
        if stats.t.ppf(1 - ALPHA / 2, n - 1) * sd / math.sqrt(n) < distance:
            return n
    return None


# ---- per-row groups ---------------------------------------------------------------------------


Groups = tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], str | Callable]


def _row_groups(
    left: pd.DataFrame, right: pd.DataFrame, metric: str, reader: PredictionReader
) -> tuple[Groups | None, str]:
    """((y, score_a, score_b) per matched seed, metric for paired_bootstrap), or the reason
    the rows cannot be used."""
    if len(left) == 0:
        return None, "no matched seeds"
    groups = []
    generic: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
    for key in left.index:
        run_a, run_b = left.loc[key], right.loc[key]
        pa, pb = reader.read(run_a), reader.read(run_b)
        if pa is None or pb is None:
            return None, "per-row predictions are missing or unreadable"
        labels = [str(x) for x in run_a.get("class_labels", [])] or _labels_of(pa)
        merged = pa.merge(pb, on="row", suffixes=("_a", "_b"))
        if len(merged) != len(pa) or len(merged) != len(pb):
            return None, "the two runs predicted different test rows"
        codes = merged["y_true_a"].astype(str).map({c: i for i, c in enumerate(labels)})
        if codes.isna().any():
            return None, "a test label is not among the run's class labels"
        y = codes.to_numpy(dtype=int)
        proba_a = merged[[f"proba_{c}_a" for c in labels]].to_numpy(dtype=float)
        proba_b = merged[[f"proba_{c}_b" for c in labels]].to_numpy(dtype=float)
        positive = _positive(run_a, labels)
        if len(np.unique(y)) < 2:
            return None, "a seed's test rows hold one class only"
        groups.append((y, proba_a, proba_b))
        generic.append((y, proba_a, proba_b, positive))
    if all(p.shape[1] == 2 for _, p, _ in groups) and metric in _FAST:
        return ([(y, pa[:, 1], pb[:, 1]) for y, pa, pb in groups], metric), ""
    if metric == "accuracy":
        return ([accuracy_group(y, pa, pb) for y, pa, pb in groups], "accuracy"), ""
    return _generic_groups(generic, metric), ""


def _positive(run: pd.Series, labels: list[str]) -> int:
    """The class binary metrics score: the dataset's positive label, else the last class (as
    the runner does)."""
    declared = run.get("positive_label")
    return (
        labels.index(declared)
        if isinstance(declared, str) and declared in labels
        else len(labels) - 1
    )


def _labels_of(predictions: pd.DataFrame) -> list[str]:
    return [c.removeprefix("proba_") for c in predictions.columns if c.startswith("proba_")]


def accuracy_group(
    y: np.ndarray, pa: np.ndarray, pb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multiclass accuracy through the binary fast path: a score s with (s >= 0.5) == (y == 1)
    exactly when the row is predicted right; rows are stratified by majority class or not."""
    strata = (y == np.bincount(y).argmax()).astype(int)
    right_a = (pa.argmax(axis=1) == y).astype(float)
    right_b = (pb.argmax(axis=1) == y).astype(float)
    return (
        strata,
        np.where(strata == 1, right_a, 1 - right_a),
        np.where(strata == 1, right_b, 1 - right_b),
    )


def _generic_groups(
    groups: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]], metric: str
) -> Groups:
    """Any metric of the probability matrices. The bootstrap hands the callable resampled
    "scores"; here they are row positions: seed i's rows of a sit at offset_i + (0..n-1), its
    rows of b at offset_i + n + (0..n-1), so one callable knows whose rows of which seed it
    scores (slow: two metric calls per replicate and seed)."""
    scorer = get_metric(metric)
    offsets = np.cumsum([0] + [2 * len(y) for y, _, _, _ in groups])
    prepared = []
    for (y, _, _, positive), offset in zip(groups, offsets, strict=False):
        strata = (y == positive).astype(int) if len(np.unique(y)) == 2 else _majority(y)
        positions = np.arange(len(y), dtype=float) + offset
        prepared.append((strata, positions, positions + len(y)))

    def score(_: np.ndarray, positions: np.ndarray) -> float:
        i = int(np.searchsorted(offsets, positions[0], side="right")) - 1
        y, pa, pb, positive = groups[i]
        local = positions.astype(int) - int(offsets[i])
        n = len(y)
        proba = pa if local[0] < n else pb
        return scorer(y[local % n], proba[local % n], positive)

    return prepared, score


def _majority(y: np.ndarray) -> np.ndarray:
    return (y == np.bincount(y).argmax()).astype(int)

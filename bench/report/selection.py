"""The best of each side, picked on the test rows, with an interval that survives the pick.

The verdict's "best on the test rows" line picks the best of k LLM-based methods and of m
classical ones by their mean on the very rows it then compares them on. The maximum of several
noisy scores is biased upwards (the winner's curse), more so for the side with more methods, so
the plain paired interval of the two picks is too optimistic about the choice.

Cross-fitting removes the choice from the rows it is judged on (the sample-splitting remedy for
selection, e.g. Cox 1975; cross-fitted as in Chernozhukov et al. 2018): each seed's test rows are
split into two halves, stratified by class (alternate rows of each class, by row id). The best
method of each side is picked on half 0 (mean over seeds) and the two picks are compared on half
1; then the halves swap. The adjusted difference is the mean of the two held-out differences,
and its interval is the report's own two-level paired bootstrap (bench/report/paired.py) with the
two halves of a seed resampled together as one seed (`clusters`).

What it covers: the true difference between the methods picked on the other half, averaged over
the two halves. When one method of a side is clearly best, both halves pick it and that is the
true best-vs-best difference; when several are equally good, any pick has the same true score,
so again it is. scripts/bench_coverage.py measures it against the plain interval.

How much the choice flatters a side: its best mean on all rows minus the held-out score of the
halves' picks (each scored on the half it was not picked on).

>>> rng = np.random.default_rng(0)
>>> y = np.r_[np.ones(40, int), np.zeros(60, int)]
>>> llm = y + rng.normal(size=(5, 100))  # five equally good LLM variants
>>> classical = 1.5 * y + rng.normal(size=(1, 100))  # one better classical method
>>> fit = cross_fit([(y, llm, classical)], "roc_auc", n_boot=500)
>>> fit.interval.high < 0, fit.llm.flattery > 0
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.report.paired import PairedInterval, metric_values, paired_bootstrap

__all__ = ["CrossFit", "Side", "cross_fit", "halves", "pick"]

Sweep = tuple[np.ndarray, np.ndarray, np.ndarray]  # one seed: y, LLM scores (k x n), classical


@dataclass(frozen=True)
class Side:
    """One side's choice: the best on all rows, the picks of the two halves, what it flatters."""

    best: int  # index of the method with the best mean on all rows
    best_score: float  # that mean
    picks: tuple[int, int]  # picked on half 0 (scored on half 1), picked on half 1
    held_out: float  # the picks' scores on the half they were not picked on, averaged
    higher_is_better: bool = True

    @property
    def flattery(self) -> float:
        """How much better the best on all rows looks than the held-out picks (>= 0 expected)."""
        sign = 1.0 if self.higher_is_better else -1.0
        return sign * (self.best_score - self.held_out)


@dataclass(frozen=True)
class CrossFit:
    """The adjusted comparison: `interval` is LLM - classical over the cross-fitted picks."""

    interval: PairedInterval
    llm: Side
    classical: Side
    per_seed: np.ndarray  # each seed's held-out difference (mean over its two halves)


def halves(y: np.ndarray) -> np.ndarray:
    """0/1 per row: alternate rows of each class (in the given order), so both halves keep the
    class counts within one row of each other."""
    y = np.asarray(y)
    half = np.zeros(len(y), dtype=int)
    for value in np.unique(y):
        rows = np.flatnonzero(y == value)
        half[rows[1::2]] = 1
    return half


def pick(means: np.ndarray, higher_is_better: bool = True) -> int:
    """The index of the best mean; ties go to the first (callers order methods by name)."""
    means = np.asarray(means, dtype=float)
    return int(np.argmax(means) if higher_is_better else np.argmin(means))


def _side_means(sweep: Sequence[Sweep], metric: str, which: int, mask: list[np.ndarray | None]):
    """Each method of side `which` (0 LLM, 1 classical): its metric averaged over seeds, on
    the rows `mask` keeps (None: all)."""
    values = []
    for (y, *scores), keep in zip(sweep, mask, strict=True):
        rows = slice(None) if keep is None else keep
        values.append(metric_values(metric, y[rows], scores[which][:, rows]))
    return np.mean(values, axis=0)


def cross_fit(
    sweep: Sequence[Sweep],
    metric: str,
    higher_is_better: bool = True,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> CrossFit:
    """Pick the best of each side on one half of every seed's test rows, compare on the other.

    `sweep` holds one (y, LLM scores k x n, classical scores m x n) per seed, rows in the same
    order for every method; `metric` is a name the paired bootstrap vectorises (METRIC_NAMES).
    Each seed needs at least 2 rows of each class (both halves hold both classes).
    """
    sweep = [(np.asarray(y, int), np.atleast_2d(a), np.atleast_2d(b)) for y, a, b in sweep]
    split = [halves(y) for y, _, _ in sweep]
    for y, _, _ in sweep:
        if min(int((y == 1).sum()), int((y == 0).sum())) < 2:
            raise ValueError("cross-fitting needs at least 2 test rows of each class per seed")
    sides = []
    picks: list[tuple[int, int]] = []
    for which in (0, 1):
        chosen = tuple(
            pick(_side_means(sweep, metric, which, [h == half for h in split]), higher_is_better)
            for half in (0, 1)
        )
        picks.append(chosen)  # type: ignore[arg-type]
    groups, clusters = [], []
    for s, ((y, llm, classical), h) in enumerate(zip(sweep, split, strict=True)):
        for half in (0, 1):
            held = h != half  # picked on `half`, scored on the other
            groups.append((y[held], llm[picks[0][half]][held], classical[picks[1][half]][held]))
            clusters.append(s)
    interval = paired_bootstrap(groups, metric, n_boot, alpha, seed, clusters=clusters)
    scored = [
        [metric_values(metric, g[0], np.vstack([g[1], g[2]])) for g in groups[i : i + 2]]
        for i in range(0, len(groups), 2)
    ]
    scores = np.asarray(scored)  # seeds x halves x (LLM, classical)
    for which, chosen in zip((0, 1), picks, strict=True):
        means = _side_means(sweep, metric, which, [None] * len(sweep))
        best = pick(means, higher_is_better)
        score = float(scores[:, :, which].mean())
        sides.append(Side(best, float(means[best]), chosen, score, higher_is_better))
    per_seed = (scores[:, :, 0] - scores[:, :, 1]).mean(axis=1)
    return CrossFit(interval, sides[0], sides[1], per_seed)

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

How much the choice flatters a side: on each half, the score of the best on all rows (chosen
with that half's rows among them) minus the score of the pick made on the other half, averaged
over halves and seeds; 0 for a side with one method.

>>> rng = np.random.default_rng(0)
>>> y = np.r_[np.ones(40, int), np.zeros(60, int)]
>>> llm = y + rng.normal(size=(5, 100))  # five equally good LLM variants
>>> classical = 3 * y + rng.normal(size=(1, 100))  # one far better classical method
>>> fit = cross_fit([(y, llm, classical)], "roc_auc", n_boot=500)
>>> fit.interval.high < 0, fit.llm.flattery > 0
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.report.levels import PairedInterval, combine_levels, counts
from bench.report.paired import metric_from_counts, metric_values

__all__ = ["MIN_CLASS_ROWS", "CrossFit", "Side", "cross_fit", "halves", "pick", "too_few_rows"]

# Test rows of each class a seed needs: each half then holds at least 2 of each class, as the
# variance correction sqrt(c / (c - 1)) of a half's smaller class count c needs.
MIN_CLASS_ROWS = 4

Sweep = tuple[np.ndarray, np.ndarray, np.ndarray]  # one seed: y, LLM scores (k x n), classical


@dataclass(frozen=True)
class Side:
    """One side's choice: the best on all rows, the picks of the two halves, what it flatters."""

    best: int  # index of the method with the best mean on all rows
    best_score: float  # that mean
    picks: tuple[int, int]  # picked on half 0 (scored on half 1), picked on half 1
    held_out: float  # the picks' scores on the half they were not picked on, averaged
    best_on_halves: float  # the best's scores on the same halves, averaged
    higher_is_better: bool = True

    @property
    def flattery(self) -> float:
        """How much better the best on all rows looks than the held-out picks on the same rows
        (>= 0 expected)."""
        sign = 1.0 if self.higher_is_better else -1.0
        return sign * (self.best_on_halves - self.held_out)


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


def too_few_rows(y: np.ndarray) -> str:
    """Why one seed's labels `y` (0/1) are too few to cross-fit ('' when they are enough)."""
    fewest = int(np.bincount(np.asarray(y, dtype=int), minlength=2).min())
    if fewest >= MIN_CLASS_ROWS:
        return ""
    return (
        f"a seed has only {fewest} test row{'s' if fewest != 1 else ''} of a class; "
        f"cross-fitting needs at least {MIN_CLASS_ROWS} ({MIN_CLASS_ROWS // 2} in each half)"
    )


def pick(means: np.ndarray, higher_is_better: bool = True) -> int:
    """The index of the best mean; ties go to the first (callers order methods by name)."""
    means = np.asarray(means, dtype=float)
    return int(np.argmax(means) if higher_is_better else np.argmin(means))


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
    Each seed needs at least `MIN_CLASS_ROWS` rows of each class (`too_few_rows`).

    The interval redoes both halves' picks in every replicate: the rows that picked one half's
    winners are the rows the other half's winners are scored on, so the two held-out
    differences are correlated, and a bootstrap with the picks fixed misses it (it covered
    about 92% with 12 and 9 equal methods; scripts/bench_coverage.py). Each replicate's
    deviation is its picks' held-out difference on the resampled rows minus the same picks'
    on the observed rows (centring on the observed picks instead adds the spread between
    pairs and covered 100%). Rows are resampled within each half and class, each half's
    deviations scaled by sqrt(c / (c - 1)) (c its smaller class count: resampling gives the
    plug-in variance); seeds as in `paired_bootstrap`.
    """
    sweep = [(np.asarray(y, int), np.atleast_2d(a), np.atleast_2d(b)) for y, a, b in sweep]
    for y, _, _ in sweep:
        if why := too_few_rows(y):
            raise ValueError(why)
    k = sweep[0][1].shape[0]
    rng = np.random.default_rng(seed)
    n_seeds = len(sweep)
    resample_seeds = n_seeds >= 2
    if resample_seeds:
        chosen = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    else:
        chosen = np.zeros((n_boot, 1), dtype=int)
    observed = np.empty((n_seeds, 2, k + sweep[0][2].shape[0]))  # seeds x halves x methods
    replicated = np.empty((n_boot, *observed.shape))
    for s, (y, llm, classical) in enumerate(sweep):
        split = halves(y)
        scores = np.vstack([llm, classical])
        for half in (0, 1):
            rows = split == half
            yh = y[rows]
            n_pos = int(yh.sum())
            u, w = counts(rng, n_boot, n_pos), counts(rng, n_boot, len(yh) - n_pos)
            observed[s, half] = metric_values(metric, yh, scores[:, rows])
            dev = metric_from_counts(metric, yh, scores[:, rows], u, w) - observed[s, half]
            smaller = min(n_pos, len(yh) - n_pos)
            replicated[:, s, half] = observed[s, half] + dev * math.sqrt(smaller / (smaller - 1))
    picks = _picks(observed[None], k, higher_is_better)
    per_seed = _held_out(observed[None], k, picks)[0]
    # Each replicate's picks, scored on its resampled rows, against the same picks scored on
    # the observed rows: the row noise of whatever pair is picked, with the two halves'
    # dependence (one half's rows pick what the other half's picks are scored against).
    again = _picks(replicated, k, higher_is_better)
    centre = _held_out(np.broadcast_to(observed, replicated.shape), k, again)
    row_dev = _held_out(replicated, k, again) - centre
    n_rows = sum(len(y) for y, _, _ in sweep)
    interval = combine_levels(
        per_seed,
        row_dev.mean(axis=1),
        row_dev.var(axis=0, ddof=1),
        chosen,
        resample_seeds,
        alpha,
        n_rows,
    )
    sides = []
    for which, offset in ((0, 0), (1, k)):
        # the best on all rows, as the ceiling line picks it
        full = np.mean([metric_values(metric, y, sw[which]) for y, *sw in sweep], axis=0)
        best = pick(full, higher_is_better)
        side_picks = (int(picks[which][0, 0]), int(picks[which][0, 1]))
        # each half's pick scored on the other half
        score = float(np.mean([observed[:, 1 - h, offset + side_picks[h]] for h in (0, 1)]))
        on_halves = float(observed[:, :, offset + best].mean())
        sides.append(Side(best, float(full[best]), side_picks, score, on_halves, higher_is_better))
    return CrossFit(interval, sides[0], sides[1], per_seed)


def _picks(values: np.ndarray, k: int, higher_is_better: bool) -> list[np.ndarray]:
    """Each half's pick of each side by its mean over seeds: [LLM, classical], each
    replicates x halves. `values`: replicates x seeds x halves x methods, the first k LLM."""
    picks = []
    for methods in (slice(0, k), slice(k, None)):
        means = values[:, :, :, methods].mean(axis=1)  # replicates x halves x methods
        picks.append(means.argmax(axis=2) if higher_is_better else means.argmin(axis=2))
    return picks


def _held_out(values: np.ndarray, k: int, picks: list[np.ndarray]) -> np.ndarray:
    """Per replicate and seed: each half's picks scored on the other half, LLM - classical,
    the two halves averaged (replicates x seeds)."""
    reps = np.arange(values.shape[0])[:, None]
    diff = np.zeros(values.shape[:2])
    for half in (0, 1):
        other = values[:, :, 1 - half]  # replicates x seeds x methods
        llm = other[reps, :, picks[0][:, half][:, None]][:, 0]
        classical = other[reps, :, k + picks[1][:, half][:, None]][:, 0]
        diff += (llm - classical) / 2
    return diff

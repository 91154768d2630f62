"""The two levels of a verdict's bootstrap: seeds, then rows within each seed.

A seed-averaged value (a paired difference, a mean of per-row values) varies with the test rows
and with the seeds. `two_level` resamples the seeds with replacement and, for every time a seed
is chosen, its rows (by a caller's `draw`); `combine_levels` adds the seed level only as the
between-seed variance left after the rows' share (bench/report/paired.py explains why), and
reads the percentile interval off the replicates. `paired_bootstrap` (bench/report/paired.py),
`mean_bootstrap` below and the cross-fitted comparison (bench/report/selection.py) share them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["PairedInterval", "combine_levels", "counts", "mean_bootstrap", "two_level"]


@dataclass(frozen=True)
class PairedInterval:
    """`metric(a) - metric(b)` averaged over seeds, with its (1 - alpha) interval.

    `se` is the standard error of the estimate; `var_rows` and `var_seeds` split `se**2` into
    the test-row part (scales as 1 / n_rows) and the between-seed part (scales as 1 / n_seeds).
    """

    estimate: float
    low: float
    high: float
    se: float
    alpha: float
    n_seeds: int
    n_rows: int  # test rows over all seeds
    method: Literal["bootstrap", "delong"]
    var_rows: float
    var_seeds: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def counts(rng: np.random.Generator, reps: int, n: int) -> np.ndarray:
    """How often each of n rows is drawn in each of `reps` resamples of n rows."""
    draws = rng.integers(0, n, size=(reps, n)) + n * np.arange(reps)[:, None]
    return np.bincount(draws.ravel(), minlength=reps * n).reshape(reps, n)


def mean_bootstrap(
    groups: Sequence[np.ndarray],
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    between_seeds: bool = True,
) -> PairedInterval:
    """The same two-level bootstrap for the mean of per-row values (one array per seed).

    For paired per-row differences that are not a metric of scores, such as an explanation's
    named - unnamed effect (bench/report/explanations.py): rows are resampled within their seed
    (no classes; each seed's row deviations scaled by sqrt(n / (n - 1)): resampling n rows
    gives the plug-in variance), seeds with the between-seed rescaling of `paired_bootstrap`.

    >>> iv = mean_bootstrap([np.array([0.1, 0.2, 0.3]), np.array([0.2, 0.3, 0.4])], 500)
    >>> round(iv.estimate, 3), iv.low > 0
    (0.25, True)
    """
    if n_boot < 2 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 2 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    values = [np.asarray(g, dtype=float) for g in groups]
    if not values or any(v.ndim != 1 or len(v) == 0 for v in values):
        raise ValueError("mean_bootstrap needs one non-empty 1-d array of row values per seed")
    if not all(np.isfinite(v).all() for v in values):
        raise ValueError("mean_bootstrap: values must be finite (NaN or inf found)")
    observed = np.array([v.mean() for v in values])

    def draw(g: int, reps: int, rng: np.random.Generator) -> np.ndarray:
        v, n = values[g], len(values[g])
        dev = counts(rng, reps, n) @ v / n - observed[g]
        return dev * math.sqrt(n / (n - 1)) if n > 1 else dev  # plug-in -> unbiased variance

    n_rows = sum(len(v) for v in values)
    return two_level(observed, draw, n_boot, alpha, seed, between_seeds, n_rows)


def two_level(
    observed: np.ndarray,
    draw: Callable[[int, int, np.random.Generator], np.ndarray],
    n_boot: int,
    alpha: float,
    seed: int,
    between_seeds: bool,
    n_rows: int,
) -> PairedInterval:
    """Seeds resampled with the between-seed rescaling (`combine_levels`), rows by `draw`.

    `observed` holds each seed's value; `draw(s, reps, rng)` returns `reps` row-resampled
    deviations of seed s from it, one set for each time a replicate chose that seed.
    """
    rng = np.random.default_rng(seed)
    k = len(observed)
    resample_seeds = between_seeds and k >= 2
    if resample_seeds:
        chosen = rng.integers(0, k, size=(n_boot, k))
    else:
        chosen = np.broadcast_to(np.arange(k), (n_boot, k))
    row_dev = np.empty(chosen.shape)  # resampled minus observed value, per slot
    row_var = np.empty(k)
    for s in range(k):
        slots = chosen == s
        used = int(slots.sum())
        reps = max(used, 2)  # at least 2, for this seed's row variance
        dev = draw(s, reps, rng)
        row_dev[slots] = dev[:used]
        row_var[s] = dev.var(ddof=1)
    return combine_levels(
        observed, row_dev.mean(axis=1), row_var, chosen, resample_seeds, alpha, n_rows
    )


def combine_levels(
    seed_values: np.ndarray,
    row_part: np.ndarray,
    row_var: np.ndarray,
    chosen: np.ndarray,
    resample_seeds: bool,
    alpha: float,
    n_rows: int,
) -> PairedInterval:
    """The replicates of a seed-averaged value and their percentile interval.

    `seed_values` are the observed per-seed values, `row_part` each replicate's row-level
    deviation of their mean, `row_var` each seed's row-level variance, `chosen` the seeds each
    replicate resampled (replicates x seeds). The seed level adds the between-seed variance
    left after the rows' share (method of moments, never below 0), by rescaling the resampled
    seeds' deviations.
    """
    k = len(seed_values)
    estimate = float(seed_values.mean())
    if resample_seeds:
        spread = float(seed_values.var(ddof=1))
        between = max(0.0, spread - float(row_var.mean()))
        # Resampling k centred values has variance mean(e^2) / k = (k-1)/k * spread / k; the
        # scale makes that between / k, the between-seed share of the mean's variance.
        scale = math.sqrt(between / ((k - 1) / k * spread)) if spread > 0 else 0.0
        seed_part = scale * (seed_values[chosen] - estimate).mean(axis=1)
    else:
        seed_part = np.zeros(len(row_part))
    replicates = estimate + seed_part + row_part
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return PairedInterval(
        estimate=estimate,
        low=float(low),
        high=float(high),
        se=float(replicates.std(ddof=1)),
        alpha=alpha,
        n_seeds=k,
        n_rows=n_rows,
        method="bootstrap",
        var_rows=float(row_part.var(ddof=1)),
        var_seeds=float(seed_part.var(ddof=1)),
    )

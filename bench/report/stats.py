"""Uncertainty for the report: t-intervals over seeds, paired differences, Holm, Wilcoxon.

With the usual 3-5 seeds a rank test cannot reach p < 0.05 (a two-sided Wilcoxon signed-rank
test needs at least 6 pairs), so comparisons of two methods on one dataset use a paired
t-interval over seeds: the seeds share their train/test split, which removes the split-to-split
variation both methods see. Several comparisons against one reference are Holm-corrected.

>>> d = paired_difference(pd.Series([0.8, 0.81, 0.82]), pd.Series([0.7, 0.72, 0.74]))
>>> round(d.mean, 3), d.n, d.significant
(0.09, 3, True)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

__all__ = [
    "ALPHA",
    "PairedDifference",
    "holm",
    "joint_factor",
    "mean_ci",
    "paired_difference",
    "t_half_width",
    "wilcoxon_p",
]

K = TypeVar("K", bound=Hashable)

ALPHA = 0.05  # every interval in the report is a 95% interval, every test at 5%


def t_half_width(values: np.ndarray | pd.Series, alpha: float = ALPHA) -> float:
    """Half-width of the two-sided t-interval for the mean; NaN with fewer than 2 values."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float("nan")
    return float(stats.t.ppf(1 - alpha / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def mean_ci(values: np.ndarray | pd.Series, alpha: float = ALPHA) -> tuple[float, float]:
    """(mean, half-width of its 95% t-interval); the half-width is NaN for a single value."""
    x = np.asarray(values, dtype=float)
    return float(x.mean()), t_half_width(x, alpha)


@dataclass(frozen=True)
class PairedDifference:
    """`a - b` over matched pairs: mean, 95% t-interval, number of pairs, two-sided p-value.

    With fewer than 2 pairs nothing can be said: the interval and the p-value are NaN.
    """

    mean: float
    low: float
    high: float
    n: int
    p_value: float

    @property
    def testable(self) -> bool:
        return self.n >= 2 and not math.isnan(self.p_value)

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (equivalently p < alpha)."""
        return self.testable and (self.low > 0 or self.high < 0)


def paired_difference(a: pd.Series, b: pd.Series, alpha: float = ALPHA) -> PairedDifference:
    """Paired t-interval of `a - b` over the index labels both have (seeds, or dataset x seed).

    Pairs with a missing value on either side are dropped. Identical differences (zero spread)
    give a zero-width interval: p = 1 when they are all 0, else 0.
    """
    from scipy import stats

    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    diffs = (joined["a"] - joined["b"]).to_numpy(dtype=float)
    n = len(diffs)
    if n == 0:
        return PairedDifference(float("nan"), float("nan"), float("nan"), 0, float("nan"))
    mean = float(diffs.mean())
    if n < 2:
        return PairedDifference(mean, float("nan"), float("nan"), n, float("nan"))
    sd = float(diffs.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # the t statistic is undefined; the data are not
        return PairedDifference(mean, mean, mean, n, 1.0 if mean == 0 else 0.0)
    half = float(stats.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n))
    t_stat = mean / (sd / math.sqrt(n))
    p_value = float(2 * stats.t.sf(abs(t_stat), n - 1))
    return PairedDifference(mean, mean - half, mean + half, n, p_value)


def holm(p_values: Mapping[K, float]) -> dict[K, float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN.

    >>> holm({"a": 0.01, "b": 0.04, "c": 0.03})
    {'a': 0.03, 'b': 0.06, 'c': 0.06}
    """
    tested = sorted(
        ((p, key) for key, p in p_values.items() if not math.isnan(p)), key=lambda x: x[0]
    )
    m = len(tested)
    adjusted: dict[K, float] = {key: float("nan") for key in p_values}
    running = 0.0
    for i, (p, key) in enumerate(tested):
        running = max(running, min(1.0, (m - i) * p))
        adjusted[key] = round(running, 12)  # drop float noise such as 0.06000000000000001
    return adjusted


def joint_factor(count: int, df: int | None = None, alpha: float = ALPHA) -> float:
    """How much wider a two-sided interval gets when `count` of them must hold together.

    Bonferroni: each interval at level 1 - alpha / count, so all hold with probability at
    least 1 - alpha. The factor is the ratio of the quantiles, normal (df None, for bootstrap
    and DeLong intervals) or Student's t with `df` degrees of freedom (a t-interval over seeds);
    a percentile interval's two half-widths are each scaled by it.

    >>> round(joint_factor(4), 3), round(joint_factor(3, df=2), 2), joint_factor(1)
    (1.274, 1.78, 1.0)
    """
    from scipy import stats

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if count == 1:
        return 1.0
    dist = stats.norm if df is None else stats.t(df)
    return float(dist.ppf(1 - alpha / (2 * count)) / dist.ppf(1 - alpha / 2))


def wilcoxon_p(diffs: np.ndarray | pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (exact for small samples).

    Zero differences are dropped; with none left the p-value is 1; with no pairs it is NaN.
    """
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    if len(d) == 0:
        return float("nan")
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)

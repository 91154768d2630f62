"""Row-level paired comparisons of two methods: a two-level bootstrap and DeLong's AUC test.

Every method of one (dataset, seed, n_train) predicts the same test rows, so two methods can
be compared row by row: the test rows' noise is shared and cancels in the difference. Each
seed has its own stratified test set and training rows, so the seeds are independent groups.

The difference is `metric(a) - metric(b)` in the metric's own units (a = the method of
interest, b = the reference), averaged over seeds with equal weight. Its variance has two
parts: the test rows (shrinks with more rows) and the seed-to-seed spread of the true gap (the
models differ by seed; shrinks only with more seeds). Both intervals estimate the second part
by the method of moments, as random-effects meta-analysis does: the spread of the per-seed
differences beyond what the test rows explain, `max(0, s^2 - mean row variance)`.

What that buys, measured in tests/test_report_paired.py (binormal scores, 100 rows a seed):
- seeds that share one true gap: about 95% coverage from one seed; from 3 seeds about 96-97%
  (the truncated between-seed estimate is never below 0; 96.3% in theory), 95% with
  `between_seeds=False`;
- seeds whose true gaps differ by about one seed's row-level sd: about 89% from 3 seeds (79%
  without the between-seed term). With 3 seeds the between-seed variance has 2 degrees of
  freedom; no interval that uses the rows can be honest about it, and where it dominates only
  the seed-level t-interval (bench/report/stats.py, multiplier 4.3) is.
So a decisive row-level interval says: the rows settle it, and the seeds agree as closely as
their rows allow; it is no protection against a few unlucky training draws.

>>> rng = np.random.default_rng(0)
>>> y = np.r_[np.ones(40), np.zeros(60)]
>>> ref = rng.normal(size=100) + y
>>> better = ref + y  # the same rows, pulled further apart
>>> d = paired_bootstrap([(y, better, ref)], "roc_auc")
>>> d.estimate > 0 and d.low > 0
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "METRIC_NAMES",
    "PairedInterval",
    "combine_levels",
    "counts",
    "delong_difference",
    "delong_over_seeds",
    "mean_bootstrap",
    "metric_from_counts",
    "metric_values",
    "paired_bootstrap",
    "rows_to_decide",
    "seeds_to_decide",
]

MetricFn = Callable[[np.ndarray, np.ndarray], float]
Group = tuple[np.ndarray, np.ndarray, np.ndarray]  # (y_true, score_a, score_b) of one seed

METRIC_NAMES = ("roc_auc", "accuracy", "log_loss", "brier")
_EPS = np.finfo(float).eps  # log-loss clipping, as scikit-learn's log_loss does for float64


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


# ---- input checks ---------------------------------------------------------------------------


def _check_group(group: Group, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, a, b = (np.asarray(x) for x in group)
    for name, x in (("y_true", y), ("score_a", a), ("score_b", b)):
        if x.ndim != 1:
            raise ValueError(f"{where}: {name} must be 1-d, got shape {x.shape}")
    if not len(y) == len(a) == len(b):
        raise ValueError(
            f"{where}: mismatched lengths: y_true has {len(y)} rows, score_a {len(a)}, "
            f"score_b {len(b)}; all three must describe the same test rows"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{where}: y_true must hold only 0 and 1 (the positive class is 1)")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(
            f"{where}: y_true has one class only ({len(y)} rows of class {int(y[0])}); "
            "a paired comparison needs both classes"
        )
    a, b = a.astype(float), b.astype(float)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{where}: scores must be finite (NaN or inf found)")
    return y.astype(int), a, b


def _check_groups(groups: Sequence[Group]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    if len(groups) == 0:
        raise ValueError("no seeds given: groups must hold one (y_true, score_a, score_b) per seed")
    return [_check_group(g, f"seed {i}") for i, g in enumerate(groups)]


# ---- metrics on resampled rows, from per-row counts ---------------------------------------
#
# A stratified resample of one seed is how often each positive row is drawn, u (replicates x
# n_pos), and each negative row, w (replicates x n_neg). Every metric below is a function of
# those counts, so 2000 replicates are a few array operations instead of 2000 calls.


def _auc_from_counts(pos: np.ndarray, neg: np.ndarray, u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per replicate: sum_i u_i (negatives below pos_i + half the ties)."""
    order = np.argsort(neg, kind="stable")
    neg_sorted = neg[order]
    cum = np.zeros((w.shape[0], len(neg) + 1), dtype=w.dtype)  # weighted negatives below
    cum[:, 1:] = np.cumsum(w[:, order], axis=1)
    left = np.searchsorted(neg_sorted, pos, side="left")
    right = np.searchsorted(neg_sorted, pos, side="right")
    # below + half the ties = (cum[left] + cum[right]) / 2, in integers until the end
    twice = (u * (cum[:, left] + cum[:, right])).sum(axis=1)
    return twice / (2 * len(pos) * len(neg))


def _row_loss(name: str, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Per-row values whose mean is the metric (accuracy thresholds the score at 0.5)."""
    if name == "accuracy":
        return ((s >= 0.5) == (y == 1)).astype(float)
    if name in ("log_loss", "brier") and ((s < 0) | (s > 1)).any():
        raise ValueError(f"{name} needs probabilities of the positive class in [0, 1]")
    if name == "brier":
        return (s - y) ** 2
    p = np.clip(s, _EPS, 1 - _EPS)
    return -np.where(y == 1, np.log(p), np.log1p(-p))


def _diff_from_counts(
    name: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, u: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """metric(a) - metric(b) on each resample described by counts `u` (positives), `w`."""
    pos = y == 1
    if name == "roc_auc":
        return _auc_from_counts(a[pos], a[~pos], u, w) - _auc_from_counts(b[pos], b[~pos], u, w)
    d = _row_loss(name, y, a) - _row_loss(name, y, b)
    return (u @ d[pos] + w @ d[~pos]) / len(y)


def _diff_by_calls(
    fn: MetricFn, y: np.ndarray, a: np.ndarray, b: np.ndarray, u: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """The same for any callable, one call per replicate (slow; names are vectorised)."""
    pos_rows, neg_rows = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    out = np.empty(u.shape[0])
    for r in range(u.shape[0]):
        rows = np.r_[np.repeat(pos_rows, u[r]), np.repeat(neg_rows, w[r])]
        out[r] = fn(y[rows], a[rows]) - fn(y[rows], b[rows])
    return out


def metric_from_counts(
    name: str, y: np.ndarray, scores: np.ndarray, u: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """`name` of each row of `scores` (methods x rows) on each resample given by counts `u`
    (replicates x positives) and `w` (negatives): replicates x methods."""
    y = np.asarray(y, dtype=int)
    pos = y == 1
    if name == "roc_auc":
        return np.stack([_auc_from_counts(s[pos], s[~pos], u, w) for s in scores], axis=1)
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; use one of {', '.join(METRIC_NAMES)}")
    losses = np.stack([_row_loss(name, y, s) for s in scores])  # methods x rows
    return (u @ losses[:, pos].T + w @ losses[:, ~pos].T) / len(y)


def metric_values(name: str, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """`name` (in METRIC_NAMES) of each row of `scores` (methods x rows) on labels `y`, by the
    same per-row counts the bootstrap uses (each row drawn once).

    >>> metric_values("accuracy", np.array([1, 0]), np.array([[0.9, 0.2], [0.1, 0.2]]))
    array([1. , 0.5])
    """
    y = np.asarray(y, dtype=int)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    n_pos = int(y.sum())
    u, w = np.ones((1, n_pos), int), np.ones((1, len(y) - n_pos), int)
    return metric_from_counts(name, y, scores, u, w)[0]


def _resolve_metric(metric: str | MetricFn) -> str | MetricFn:
    if isinstance(metric, str):
        if metric not in METRIC_NAMES:
            raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRIC_NAMES)}")
        return metric
    from sklearn import metrics as skm

    # scikit-learn's own functions take the vectorised path (same values).
    known = {skm.roc_auc_score: "roc_auc", skm.brier_score_loss: "brier", skm.log_loss: "log_loss"}
    return known.get(metric, metric)


def counts(rng: np.random.Generator, reps: int, n: int) -> np.ndarray:
    """How often each of n rows is drawn in each of `reps` resamples of n rows."""
    draws = rng.integers(0, n, size=(reps, n)) + n * np.arange(reps)[:, None]
    return np.bincount(draws.ravel(), minlength=reps * n).reshape(reps, n)


def _seed_diffs(
    metric: str | MetricFn,
    group: tuple[np.ndarray, np.ndarray, np.ndarray],
    u: np.ndarray,
    w: np.ndarray,
) -> np.ndarray:
    y, a, b = group
    if isinstance(metric, str):
        return _diff_from_counts(metric, y, a, b, u, w)
    return _diff_by_calls(metric, y, a, b, u, w)


# ---- the bootstrap --------------------------------------------------------------------------


def paired_bootstrap(
    groups: Sequence[Group],
    metric: str | MetricFn,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    between_seeds: bool = True,
) -> PairedInterval:
    """Two-level paired bootstrap of `metric(a) - metric(b)` averaged over seeds.

    Each replicate resamples the seeds with replacement (with 2 or more seeds), then the rows of
    each chosen seed with replacement within each class (class counts stay fixed, as in the
    stratified test split, so AUC is always defined), the same rows for a and b. A resampled
    seed contributes its observed difference's deviation from the mean *rescaled* so that the
    seed level adds only the between-seed variance left after the rows' share: the plain
    two-level bootstrap counts the row noise twice, once in the seeds' scatter and once in the
    row resampling (Davison & Hinkley 1997, sec. 3.8), and over-covers (98% where 95% is due,
    tests/test_report_paired.py). Percentile interval; `seed` seeds the resampling.

    `between_seeds=False` keeps the seeds fixed and resamples rows only: the interval is then
    about these seeds' fitted models, not about the training draw. `metric` is a name in
    METRIC_NAMES (vectorised; scikit-learn's roc_auc_score, brier_score_loss and log_loss map
    to them) or any callable (y_true, score) -> float, called twice per replicate and seed.
    """
    if n_boot < 2 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 2 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    checked = _check_groups(groups)
    fn = _resolve_metric(metric)
    sizes = [(int(y.sum()), int(len(y) - y.sum())) for y, _, _ in checked]  # positives, negatives
    observed = np.array(
        [
            _seed_diffs(fn, g, np.ones((1, n_pos), int), np.ones((1, n_neg), int))[0]
            for g, (n_pos, n_neg) in zip(checked, sizes, strict=True)
        ]
    )

    def draw(g: int, reps: int, rng: np.random.Generator) -> np.ndarray:
        n_pos, n_neg = sizes[g]
        u, w = counts(rng, reps, n_pos), counts(rng, reps, n_neg)
        return _seed_diffs(fn, checked[g], u, w) - observed[g]

    n_rows = sum(len(y) for y, _, _ in checked)
    return _two_level(observed, draw, n_boot, alpha, seed, between_seeds, n_rows)


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
    return _two_level(observed, draw, n_boot, alpha, seed, between_seeds, n_rows)


def _two_level(
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


# ---- DeLong ---------------------------------------------------------------------------------


def _delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """AUC(a) - AUC(b) and DeLong's variance of it (midranks as in Sun & Xu 2014)."""
    from scipy.stats import rankdata

    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    if m < 2 or n < 2:
        raise ValueError(
            f"DeLong's variance needs at least 2 rows of each class, got {m} positive, {n} negative"
        )
    scores = np.vstack([a, b])
    x, z = scores[:, pos], scores[:, ~pos]
    t_all = rankdata(np.hstack([x, z]), axis=1)
    t_x, t_z = rankdata(x, axis=1), rankdata(z, axis=1)
    auc = (t_all[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (t_all[:, :m] - t_x) / n  # per positive: share of negatives scored below it
    v01 = 1 - (t_all[:, m:] - t_z) / m  # per negative: share of positives scored above it
    cov = np.cov(v10) / m + np.cov(v01) / n
    return float(auc[0] - auc[1]), float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])


def _normal_interval(
    estimate: float, var_rows: float, var_seeds: float, alpha: float, k: int, n_rows: int
) -> PairedInterval:
    from scipy.stats import norm

    se = math.sqrt(var_rows + var_seeds)
    half = float(norm.ppf(1 - alpha / 2)) * se
    return PairedInterval(
        estimate,
        estimate - half,
        estimate + half,
        se,
        alpha,
        k,
        n_rows,
        "delong",
        var_rows,
        var_seeds,
    )


def delong_difference(
    y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, alpha: float = 0.05
) -> PairedInterval:
    """AUC(a) - AUC(b) on one seed's test rows with DeLong's paired normal interval."""
    y, a, b = _check_group((y_true, score_a, score_b), "delong_difference")
    diff, var = _delong(y, a, b)
    return _normal_interval(diff, var, 0.0, alpha, 1, len(y))


def delong_over_seeds(
    groups: Sequence[Group], alpha: float = 0.05, between_seeds: bool = True
) -> PairedInterval:
    """Mean over seeds of DeLong differences; variance (v + between) / k, normal interval.

    v is the mean per-seed DeLong variance; `between` = max(0, s^2 - v) with s^2 the sample
    variance of the per-seed differences (random-effects method of moments, DerSimonian &
    Laird). So the variance is max(v, s^2) / k: the row-level variance when the seeds agree as
    closely as their rows allow, else the seeds' own scatter. With few seeds the second case
    uses a variance with k - 1 degrees of freedom under a normal quantile, hence the caveat in
    the module docstring. `between_seeds=False` drops the between-seed term (these seeds'
    models only).
    """
    checked = _check_groups(groups)
    k = len(checked)
    parts = np.array([_delong(*g) for g in checked])
    diffs, variances = parts[:, 0], parts[:, 1]
    var_rows = float(variances.sum()) / k**2
    between = 0.0
    if between_seeds and k >= 2:
        between = max(0.0, float(diffs.var(ddof=1)) - float(variances.mean()))
    n_rows = sum(len(g[0]) for g in checked)
    return _normal_interval(float(diffs.mean()), var_rows, between / k, alpha, k, n_rows)


# ---- how much more data would decide ----------------------------------------------------


def _half_width_towards(interval: PairedInterval, margin: float) -> tuple[float, float] | None:
    """(distance from the estimate to -margin, the interval's half-width on that side)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (the tolerated loss of a), got {margin}")
    distance = interval.estimate + margin
    if distance == 0 or math.isnan(distance) or math.isnan(interval.low + interval.high):
        return None  # on the boundary (or no interval): no amount of data moves it off
    half = interval.estimate - interval.low if distance > 0 else interval.high - interval.estimate
    return abs(distance), half


def _smallest_above(x: float) -> int:
    """The smallest integer n > x (x computed in floats: a hair of slack for exact ties)."""
    return math.floor(x * (1 + 1e-12)) + 1


def rows_to_decide(interval: PairedInterval, margin: float = 0.0) -> int | None:
    """Total test rows (same seeds) at which the interval would exclude -margin, estimate fixed.

    Excluding -margin decides a question: above it, a is non-inferior (margin > 0) or better
    (margin = 0); below it, a is worse by more than the margin. Being better than 0 is never
    reached first (0 >= -margin), so this is the smallest n for any of the three decisions.
    The row share of the variance (`var_rows`) scales as 1 / n_rows, the between-seed share
    stays; each half-width keeps its own side (bootstrap intervals may be skewed). Returns
    None when the estimate sits on -margin, or when the between-seed share alone keeps the
    interval across it (more seeds are needed: `seeds_to_decide`); a zero-width interval
    decides with 1 row. The answer may be below `interval.n_rows` (already decided).

    >>> iv = PairedInterval(0.03, 0.01, 0.05, 0.0102, 0.05, 1, 100, "delong", 1.04e-4, 0.0)
    >>> rows_to_decide(iv), rows_to_decide(iv, margin=0.03)
    (45, 12)
    """
    side = _half_width_towards(interval, margin)
    if side is None:
        return None
    distance, half = side
    total = interval.var_rows + interval.var_seeds
    if half <= 0 or total <= 0:
        return 1
    # half * sqrt(var(n) / total) < distance, var(n) = var_rows * n_rows / n + var_seeds
    allowed = total * (distance / half) ** 2 - interval.var_seeds
    if allowed <= 0:
        return None
    return _smallest_above(interval.var_rows * interval.n_rows / allowed)


def seeds_to_decide(interval: PairedInterval, margin: float = 0.0) -> int | None:
    """Seeds (each with as many test rows as now) at which the interval would exclude -margin.

    Both variance shares scale as 1 / n_seeds, so n > n_seeds * (half-width / distance)^2.
    From one seed the between-seed share is unknown (taken as 0), so the answer is a lower
    bound. None when the estimate sits on -margin.

    >>> iv = PairedInterval(0.03, 0.01, 0.05, 0.0102, 0.05, 3, 300, "delong", 0.5e-4, 0.54e-4)
    >>> seeds_to_decide(iv)
    2
    """
    side = _half_width_towards(interval, margin)
    if side is None:
        return None
    distance, half = side
    return _smallest_above(interval.n_seeds * (half / distance) ** 2)

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

import numpy as np

from bench.report.levels import PairedInterval, counts, two_level

__all__ = [
    "METRIC_NAMES",
    "PairedInterval",
    "delong_difference",
    "delong_over_seeds",
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
    return two_level(observed, draw, n_boot, alpha, seed, between_seeds, n_rows)


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

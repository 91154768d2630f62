"""Row-level paired intervals: coverage proven by simulation, then values worked out by hand.

The simulation is binormal: positives score N(mu, 1), negatives N(0, 1), so AUC = Phi(mu / sqrt 2)
exactly. Methods a and b share a latent effect per row (correlation 0.5), so the comparison is
truly paired. Each seed draws fresh test rows, 100 per seed with 40 positives (the test split is
stratified, so class counts are fixed). 1,000 comparisons per case (2,000 for one seed, which is
cheap) put the Monte Carlo standard error of a 95% coverage at 0.7 points (0.5); the bootstrap
uses 1,000 replicates, enough for its 2.5% and 97.5% quantiles to move coverage by well under
that (the replicates' own noise only widens the interval's jitter, not its average width).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from bench.report.paired import (
    PairedInterval,
    delong_difference,
    delong_over_seeds,
    paired_bootstrap,
    rows_to_decide,
    seeds_to_decide,
)

MU_A, MU_B, RHO = 1.2, 0.9, 0.5  # AUC 0.802 against 0.738
ROWS, POSITIVES, SIMS, N_BOOT = 100, 40, 1000, 1000
Z = float(stats.norm.ppf(0.975))


def _draw(rng: np.random.Generator, mu_a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One seed's test rows: labels and two correlated binormal scorers."""
    y = np.r_[np.ones(POSITIVES, int), np.zeros(ROWS - POSITIVES, int)]
    shared = math.sqrt(RHO) * rng.normal(size=ROWS)
    noise = math.sqrt(1 - RHO) * rng.normal(size=(2, ROWS))
    return y, mu_a * y + shared + noise[0], MU_B * y + shared + noise[1]


def _true_gap(tau: float) -> float:
    """E[AUC_a] - AUC_b when a's separation varies by seed, mu_a + N(0, tau^2)."""
    return float(stats.norm.cdf(MU_A / math.sqrt(2 + tau**2)) - stats.norm.cdf(MU_B / math.sqrt(2)))


@functools.cache
def _coverage(k: int, tau: float = 0.0, bootstrap: bool = True) -> dict[str, float]:
    """Share of the comparisons of k seeds whose 95% interval holds the true gap, per method."""
    rng = np.random.default_rng(20240 + k)
    sims = 2 * SIMS if k == 1 else SIMS
    truth = _true_gap(tau)
    hits: dict[str, int] = {}
    for i in range(sims):
        groups = [_draw(rng, MU_A + tau * rng.normal()) for _ in range(k)]
        intervals = {
            "delong": delong_over_seeds(groups),
            "delong_rows": delong_over_seeds(groups, between_seeds=False),
        }
        if k == 1:
            intervals["delong_one"] = delong_difference(*groups[0])
        if bootstrap:
            intervals["bootstrap"] = paired_bootstrap(groups, "roc_auc", N_BOOT, seed=i)
            if k > 1:
                intervals["bootstrap_rows"] = paired_bootstrap(
                    groups, "roc_auc", N_BOOT, seed=i, between_seeds=False
                )
        for name, iv in intervals.items():
            hits[name] = hits.get(name, 0) + int(iv.low <= truth <= iv.high)
    return {name: n / sims for name, n in hits.items()}


def _expected_with_between_term(k: int) -> float:
    """Coverage of the mean +- z sqrt(max(v, s^2) / k) when the seeds share one true gap.

    s^2 / v ~ chi2(k-1) / (k-1) independently of the mean: where s^2 <= v the interval is the
    exact one (95%), elsewhere it is wider. The truncated between-seed estimate costs this
    over-coverage (0.963 for 3 seeds) as the price of including seed-to-seed variation.
    """
    df = k - 1
    density = lambda w: stats.chi2.pdf(w * df, df) * df  # noqa: E731
    wider = integrate.quad(lambda w: (2 * stats.norm.cdf(Z * math.sqrt(w)) - 1) * density(w), 1, 99)
    return float(stats.chi2.cdf(df, df) * 0.95 + wider[0])


# ---- coverage ---------------------------------------------------------------------------------


def test_one_seed_bootstrap_and_delong_cover_the_true_gap() -> None:
    cover = _coverage(1)
    for name in ("bootstrap", "delong_one", "delong"):
        assert 0.93 <= cover[name] <= 0.97, (name, cover)


def test_three_seeds_row_level_intervals_cover_the_common_gap() -> None:
    # The seeds share one true gap, so the rows are the only noise: nominal coverage.
    cover = _coverage(3)
    for name in ("bootstrap_rows", "delong_rows"):
        assert 0.93 <= cover[name] <= 0.97, (name, cover)


def test_three_seeds_with_between_seed_term_cover_as_theory_says() -> None:
    # Including the between-seed term (estimated 0 or more) over-covers a little when there is
    # none; a plain two-level bootstrap, counting the rows twice, measured 0.98 - 0.985 here.
    expected = _expected_with_between_term(3)
    assert expected == pytest.approx(0.963, abs=0.001)
    cover = _coverage(3)
    for name in ("bootstrap", "delong"):
        assert 0.95 <= cover[name] <= 0.98, (name, cover)
        assert cover[name] == pytest.approx(expected, abs=0.015), (name, cover)


def test_seeds_that_differ_in_true_gap_make_every_interval_too_narrow() -> None:
    # The caveat, measured: a between-seed sd about the size of one seed's row-level sd
    # (tau = 0.3). Rows-only intervals miss the seed-averaged gap badly; the between-seed term
    # recovers much, but 3 seeds estimate it with 2 degrees of freedom.
    cover = _coverage(3, tau=0.3, bootstrap=False)
    assert 0.83 <= cover["delong"] <= 0.92, cover
    assert cover["delong_rows"] < cover["delong"] - 0.05, cover


# ---- hand-built cases -------------------------------------------------------------------------


@pytest.fixture
def seed_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _draw(np.random.default_rng(5), MU_A)


def test_identical_predictions_give_zero_and_a_zero_width_interval(seed_rows) -> None:
    y, a, _ = seed_rows
    for groups in ([(y, a, a)], [(y, a, a)] * 3):
        for metric in ("roc_auc", "accuracy", "log_loss", "brier"):
            scores = stats.norm.cdf(a) if metric in ("log_loss", "brier") else a
            iv = paired_bootstrap([(g[0], scores, scores) for g in groups], metric, 200)
            assert iv.estimate == iv.low == iv.high == 0.0 and iv.se == 0.0, metric
    dl = delong_difference(y, a, a)
    assert dl.estimate == dl.low == dl.high == dl.se == 0.0


def test_perfect_ranker_against_random_is_half_an_auc_better() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(40, int), np.zeros(60, int)]
    perfect, coin = y + rng.random(100) * 0.5, rng.random(100)
    boot = paired_bootstrap([(y, perfect, coin)], "roc_auc")
    dl = delong_difference(y, perfect, coin)
    for iv in (boot, dl):
        assert iv.estimate == pytest.approx(1 - roc_auc_score(y, coin))
        assert iv.estimate == pytest.approx(0.5, abs=0.1) and iv.low > 0.3
    assert (boot.method, dl.method, boot.n_rows, boot.n_seeds) == ("bootstrap", "delong", 100, 1)


def test_sign_convention_a_better_is_positive_and_swapping_mirrors(seed_rows) -> None:
    y, a, _ = seed_rows
    sharper = a + y  # the same rows, classes pulled further apart
    ab = paired_bootstrap([(y, sharper, a)], "roc_auc", seed=3)
    ba = paired_bootstrap([(y, a, sharper)], "roc_auc", seed=3)
    assert ab.estimate > 0 and ab.low > 0
    assert (ba.estimate, ba.low, ba.high) == pytest.approx((-ab.estimate, -ab.high, -ab.low))
    assert delong_difference(y, sharper, a).estimate == pytest.approx(ab.estimate)


def test_stratified_resampling_keeps_class_counts_with_three_positives() -> None:
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(3, int), np.zeros(57, int)]
    a, b = rng.normal(size=60) + y, rng.normal(size=60)
    positives_seen: set[int] = set()

    def auc_counting_positives(y_true: np.ndarray, score: np.ndarray) -> float:
        positives_seen.add(int(y_true.sum()))
        assert len(y_true) == 60
        return roc_auc_score(y_true, score)  # raises if a resample lost a class

    slow = paired_bootstrap([(y, a, b)] * 2, auc_counting_positives, n_boot=100, seed=4)
    assert positives_seen == {3}
    # The vectorised rank computation sees the very same resamples (same seed): same interval.
    fast = paired_bootstrap([(y, a, b)] * 2, "roc_auc", n_boot=100, seed=4)
    assert (fast.estimate, fast.low, fast.high, fast.se) == pytest.approx(
        (slow.estimate, slow.low, slow.high, slow.se)
    )
    assert all(math.isfinite(x) for x in (fast.low, fast.high))


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("roc_auc", roc_auc_score),
        ("accuracy", lambda y, p: accuracy_score(y, p >= 0.5)),
        ("log_loss", lambda y, p: log_loss(y, p, labels=[0, 1])),
        ("brier", brier_score_loss),
    ],
)
def test_metric_names_match_scikit_learn_on_the_same_resamples(seed_rows, name, reference) -> None:
    y, a, b = seed_rows
    pa, pb = stats.norm.cdf(a - 0.5), stats.norm.cdf(b - 0.5)
    groups = [(y, pa, pb), (y[::-1], pb[::-1], pa[::-1])]
    named = paired_bootstrap(groups, name, n_boot=100, seed=6)
    called = paired_bootstrap(groups, lambda yt, s: reference(yt, s), n_boot=100, seed=6)
    assert named.estimate == pytest.approx(
        np.mean([reference(g[0], g[1]) - reference(g[0], g[2]) for g in groups])
    )
    assert (named.low, named.high, named.se) == pytest.approx((called.low, called.high, called.se))
    # scikit-learn's own function takes the vectorised path with the same answer
    if name in ("roc_auc", "brier"):
        direct = paired_bootstrap(groups, reference, n_boot=100, seed=6)
        assert direct.high == pytest.approx(named.high)


def test_seed_level_adds_only_the_spread_the_rows_do_not_explain() -> None:
    rng = np.random.default_rng(8)
    alike = [_draw(rng, MU_A) for _ in range(3)]
    differing = [_draw(rng, mu) for mu in (0.6, 1.2, 2.0)]
    for groups in (alike, differing):
        boot = paired_bootstrap(groups, "roc_auc", n_boot=4000, seed=9)
        rows_only = paired_bootstrap(groups, "roc_auc", n_boot=4000, seed=9, between_seeds=False)
        dl = delong_over_seeds(groups)
        # The row share is the same with or without seed resampling (not counted twice) ...
        assert boot.var_rows == pytest.approx(rows_only.var_rows, rel=0.15)
        assert boot.var_rows == pytest.approx(dl.var_rows, rel=0.2)
        assert boot.se**2 == pytest.approx(boot.var_rows + boot.var_seeds, rel=0.1)
        # ... and the seed share is the method-of-moments between-seed variance over k.
        if dl.var_seeds == 0:
            assert boot.var_seeds <= 0.2 * boot.var_rows
        else:
            assert boot.var_seeds == pytest.approx(dl.var_seeds, rel=0.25)
    assert delong_over_seeds(differing).var_seeds > 2 * delong_over_seeds(differing).var_rows


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda y, a: paired_bootstrap([(y, a, a[:-1])], "roc_auc"), "mismatched lengths"),
        (lambda y, a: delong_difference(y[:-1], a, a), "mismatched lengths"),
        (lambda y, a: paired_bootstrap([(np.ones_like(y), a, a)], "roc_auc"), "one class"),
        (lambda y, a: delong_difference(np.zeros_like(y), a, a), "one class"),
        (lambda y, a: paired_bootstrap([(y * 2, a, a)], "roc_auc"), "only 0 and 1"),
        (lambda y, a: paired_bootstrap([(y, a, a)], "auc"), "unknown metric 'auc'"),
        (lambda y, a: paired_bootstrap([(y, a, a)], "brier"), r"probabilities .* \[0, 1\]"),
        (lambda y, a: paired_bootstrap([], "roc_auc"), "no seeds"),
        (lambda y, a: paired_bootstrap([(y, a * np.nan, a)], "roc_auc"), "finite"),
        (lambda y, a: delong_difference(np.r_[1, np.zeros(9)], a[:10], a[:10]), "at least 2"),
    ],
)
def test_bad_input_says_what_is_wrong(seed_rows, call, message) -> None:
    y, a, _ = seed_rows
    with pytest.raises(ValueError, match=message):
        call(y, a)


def test_bad_input_names_the_seed(seed_rows) -> None:
    y, a, b = seed_rows
    with pytest.raises(ValueError, match="seed 1: mismatched lengths"):
        paired_bootstrap([(y, a, b), (y, a, b[:50])], "roc_auc")


# ---- rows and seeds to decide -----------------------------------------------------------------


def _interval(estimate: float, var_rows: float, var_seeds: float = 0.0, **kw) -> PairedInterval:
    """A normal interval with known variance shares (as delong_over_seeds builds them)."""
    se = math.sqrt(var_rows + var_seeds)
    fields = {"alpha": 0.05, "n_seeds": 3, "n_rows": 300, "method": "delong"} | kw
    return PairedInterval(
        estimate,
        estimate - Z * se,
        estimate + Z * se,
        se,
        var_rows=var_rows,
        var_seeds=var_seeds,
        **fields,
    )


def test_rows_to_decide_by_hand() -> None:
    iv = _interval(0.02, 1e-4)  # se 0.01, half-width 0.0196
    # better: 0.0196 * sqrt(300 / n) < 0.02  <=>  n > 300 * 0.98^2 = 288.1
    assert rows_to_decide(iv) == 289
    # non-inferior by 0.01: 0.0196 * sqrt(300 / n) < 0.03  <=>  n > 128.05
    assert rows_to_decide(iv, margin=0.01) == 129
    # worse by more than 0.01: the upper side, 0.02 from -0.01 again
    assert rows_to_decide(_interval(-0.03, 1e-4), margin=0.01) == 289
    # already decided: fewer rows than it has would have done
    assert rows_to_decide(iv, margin=0.05) == math.floor(300 * (Z * 0.01 / 0.07) ** 2) + 1 == 24


def test_rows_to_decide_keeps_the_between_seed_share() -> None:
    # A quarter of the variance is between seeds: rows only shrink the rest.
    iv = _interval(0.02, 0.75e-4, 0.25e-4)
    allowed = 1e-4 * (0.02 / (Z * 0.01)) ** 2 - 0.25e-4  # 0.7912e-4 left for the rows
    assert rows_to_decide(iv) == math.floor(0.75e-4 * 300 / allowed) + 1 == 285
    # All of it between seeds: no number of rows decides, seeds do: 3 * (0.0392 / 0.02)^2 = 11.5
    seeds_only = _interval(0.02, 0.0, 4e-4)
    assert rows_to_decide(seeds_only) is None
    assert seeds_to_decide(seeds_only) == 12
    assert seeds_to_decide(iv) == math.floor(3 * (Z * 0.01 / 0.02) ** 2) + 1 == 3


def test_rows_to_decide_uses_the_side_facing_the_boundary() -> None:
    skewed = PairedInterval(0.02, 0.0, 0.1, 0.025, 0.05, 1, 100, "bootstrap", 6.25e-4, 0.0)
    assert rows_to_decide(skewed) == 101  # lower half-width 0.02 = distance: just over 100


def test_rows_to_decide_edge_cases(seed_rows) -> None:
    assert rows_to_decide(_interval(0.0, 1e-4)) is None  # on the boundary 0
    assert rows_to_decide(_interval(-0.01, 1e-4), margin=0.01) is None  # on -margin
    assert seeds_to_decide(_interval(0.0, 1e-4)) is None
    # on 0 but not on -margin: non-inferiority is decidable
    assert rows_to_decide(_interval(0.0, 1e-4), margin=0.01) == math.floor(300 * Z**2) + 1
    y, a, _ = seed_rows
    same = paired_bootstrap([(y, a, a)], "roc_auc", 100)
    assert rows_to_decide(same) is None
    assert rows_to_decide(same, margin=0.01) == 1  # no noise at all: one row decides
    with pytest.raises(ValueError, match="margin must be >= 0"):
        rows_to_decide(same, margin=-0.01)


def test_metric_values_match_scikit_learn(seed_rows) -> None:
    from bench.report.paired import metric_values

    y, a, b = seed_rows
    pa, pb = stats.norm.cdf(a), stats.norm.cdf(b)
    got = {m: metric_values(m, y, np.vstack([pa, pb])) for m in ("roc_auc", "log_loss", "brier")}
    assert got["roc_auc"] == pytest.approx([roc_auc_score(y, pa), roc_auc_score(y, pb)])
    assert got["log_loss"] == pytest.approx([log_loss(y, pa), log_loss(y, pb)])
    assert got["brier"] == pytest.approx([brier_score_loss(y, pa), brier_score_loss(y, pb)])
    assert metric_values("accuracy", y, pa[None])[0] == pytest.approx(accuracy_score(y, pa >= 0.5))

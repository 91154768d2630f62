"""Report statistics against values worked out by hand (t quantiles from tables)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.report.cost import pareto_front
from bench.report.stats import holm, mean_ci, paired_difference, t_half_width, wilcoxon_p

T_975_DF2 = 4.302652729911275  # two-sided 95% t quantile, 2 degrees of freedom


def test_t_interval_over_three_seeds() -> None:
    mean, half = mean_ci([0.70, 0.72, 0.74])
    assert mean == pytest.approx(0.72)
    assert half == pytest.approx(T_975_DF2 * 0.02 / math.sqrt(3))  # = 0.0497
    assert math.isnan(t_half_width([0.7]))  # one seed: no interval


def test_paired_difference_matches_seeds_and_ignores_unpaired() -> None:
    a = pd.Series([0.80, 0.81, 0.82, 0.99], index=[0, 1, 2, 3])
    b = pd.Series([0.70, 0.72, 0.74], index=[0, 1, 2])  # seed 3 has no partner
    d = paired_difference(a, b)
    assert d.n == 3
    assert d.mean == pytest.approx(0.09)
    half = T_975_DF2 * 0.01 / math.sqrt(3)
    assert (d.low, d.high) == (pytest.approx(0.09 - half), pytest.approx(0.09 + half))
    # t = 0.09 / (0.01 / sqrt 3) = 9 sqrt 3; with 2 df the two-sided p is 1 - t / sqrt(t^2 + 2)
    t = 9 * math.sqrt(3)
    assert d.p_value == pytest.approx(1 - t / math.sqrt(t**2 + 2), rel=1e-6)
    assert d.significant


def test_paired_difference_whose_interval_contains_zero_is_not_significant() -> None:
    d = paired_difference(pd.Series([0.80, 0.81, 0.82]), pd.Series([0.78, 0.82, 0.80]))
    assert d.mean == pytest.approx(0.01)
    assert d.low < 0 < d.high
    assert not d.significant and d.testable


def test_paired_difference_degenerate_cases() -> None:
    one = paired_difference(pd.Series([0.8]), pd.Series([0.7]))
    assert one.n == 1 and not one.testable and not one.significant
    assert math.isnan(one.low)
    none = paired_difference(pd.Series([0.8], index=[0]), pd.Series([0.7], index=[1]))
    assert none.n == 0 and not none.testable
    # Identical differences: zero-width interval, p = 0 (a constant gap) or 1 (no gap).
    constant = paired_difference(pd.Series([0.6, 0.7, 0.8]), pd.Series([0.5, 0.6, 0.7]))
    assert constant.low == constant.high == pytest.approx(0.1) and constant.p_value == 0.0
    same = paired_difference(pd.Series([0.5, 0.5]), pd.Series([0.5, 0.5]))
    assert same.p_value == 1.0 and not same.significant


def test_holm_step_down() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == {"a": 0.03, "b": 0.06, "c": 0.06}
    assert holm({"a": 0.5, "b": 0.9}) == {"a": 1.0, "b": 1.0}  # capped at 1
    adjusted = holm({"a": float("nan"), "b": 0.02})
    assert math.isnan(adjusted["a"]) and adjusted["b"] == 0.02  # untested: not in the family


def test_wilcoxon_needs_six_pairs_for_five_percent() -> None:
    # Exact two-sided p with every difference positive: 2 / 2^n.
    assert wilcoxon_p(np.array([0.1, 0.2, 0.3])) == pytest.approx(0.25)
    assert wilcoxon_p(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == pytest.approx(0.0625)
    assert wilcoxon_p(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])) == pytest.approx(0.03125)
    assert wilcoxon_p(np.array([0.0, 0.0])) == 1.0
    assert math.isnan(wilcoxon_p(np.array([])))


def test_pareto_front_lower_and_higher_is_better() -> None:
    cost = np.array([1.0, 2.0, 3.0, 2.0, np.nan, 0.0])
    auc = np.array([0.60, 0.80, 0.90, 0.70, 0.99, 0.50])
    # 2.0/0.70 is beaten by 2.0/0.80 (same cost, better); NaN cost is never on the front.
    assert pareto_front(cost, auc, True).tolist() == [True, True, True, False, False, True]
    loss = np.array([0.4, 0.3, 0.3, 0.2, 0.1, 0.5])
    # Lower is better: 2.0/0.2 beats 2.0/0.3 (same cost) and 3.0/0.3 (cheaper and better).
    assert pareto_front(cost, loss, False).tolist() == [True, False, False, True, False, True]

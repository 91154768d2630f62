"""Metrics from class probabilities, checked against scikit-learn and their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from bench.metrics import (
    METRICS,
    Metric,
    compute_metrics,
    expected_calibration_error,
    get_metric,
    higher_is_better,
    metric_label,
)
from bench.registry import UnknownNameError
from bench.results import METRIC_COLUMNS


def random_proba(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    raw = rng.uniform(0.05, 1.0, size=(n, k))
    return raw / raw.sum(axis=1, keepdims=True)


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    # Informative but imperfect scores.
    p1 = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, len(y)), 0.02, 0.98)
    return y, np.column_stack([1 - p1, p1])


def test_binary_metrics_match_scikit_learn(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = binary
    pred = proba.argmax(axis=1)
    got = compute_metrics(y, proba, positive=1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, proba[:, 1]))
    assert 0 <= got["ece"] <= 1


def test_binary_auc_and_brier_do_not_depend_on_which_class_is_positive(
    binary: tuple[np.ndarray, np.ndarray],
) -> None:
    y, proba = binary
    as_one, as_zero = compute_metrics(y, proba, 1), compute_metrics(y, proba, 0)
    assert as_zero["roc_auc"] == pytest.approx(as_one["roc_auc"])
    assert as_zero["brier"] == pytest.approx(as_one["brier"])


def test_multiclass_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], [50, 30, 20])
    proba = random_proba(rng, len(y), 3)
    proba[np.arange(len(y)), y] += 0.5  # make the scores informative
    proba /= proba.sum(axis=1, keepdims=True)
    got = compute_metrics(y, proba, positive=2)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(axis=1)))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    onehot = np.eye(3)[y]
    assert got["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    assert 0.5 < got["roc_auc"] <= 1


def test_perfect_multiclass_scores_give_auc_one() -> None:
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    proba = np.eye(3)[y] * 0.8 + 0.2 / 3
    got = compute_metrics(y, proba, positive=0)
    assert got["roc_auc"] == pytest.approx(1.0)
    assert got["accuracy"] == 1.0
    assert got["f1_macro"] == pytest.approx(1.0)


def test_class_never_predicted_still_counts_in_macro_scores() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([[0.9, 0.1, 0.0]] * 3 + [[0.1, 0.9, 0.0]] * 3)
    got = compute_metrics(y, proba, positive=0)
    pred = proba.argmax(axis=1)
    expected = skm.f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0)
    assert got["f1_macro"] == pytest.approx(expected)


def test_ece_is_zero_for_confident_correct_predictions() -> None:
    y = np.array([0, 1, 2, 1, 0])
    assert expected_calibration_error(y, np.eye(3)[y]) == 0.0
    assert compute_metrics(y, np.eye(3)[y], positive=0)["ece"] == pytest.approx(0, abs=1e-9)


def test_ece_measures_the_gap_between_confidence_and_accuracy() -> None:
    y = np.array([1] * 7 + [0] * 3)
    calibrated = np.tile([0.3, 0.7], (10, 1))  # 70% confident, 70% right
    assert expected_calibration_error(y, calibrated) == pytest.approx(0.0)
    overconfident = np.tile([0.1, 0.9], (10, 1))  # 90% confident, 70% right
    assert expected_calibration_error(y, overconfident) == pytest.approx(0.2)


def test_zero_probabilities_give_a_finite_log_loss() -> None:
    y = np.array([0, 1])
    got = compute_metrics(y, np.array([[0.0, 1.0], [1.0, 0.0]]), positive=1)
    assert np.isfinite(got["log_loss"]) and got["log_loss"] > 10
    assert got["accuracy"] == 0.0


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn warns about the one label
def test_auc_of_a_single_class_test_set_is_nan() -> None:
    got = compute_metrics(np.array([1, 1, 1]), np.tile([0.4, 0.6], (3, 1)), positive=1)
    assert np.isnan(got["roc_auc"])
    assert got["accuracy"] == 1.0


def test_constant_scores_have_chance_auc() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    got = compute_metrics(y, np.tile([0.55, 0.45], (6, 1)), positive=1)
    assert got["roc_auc"] == pytest.approx(0.5)
    assert got["balanced_accuracy"] == pytest.approx(0.5)


def test_every_metric_is_listed_once_declares_its_direction_and_is_stored() -> None:
    names = [m.name for m in METRICS]
    assert len(set(names)) == len(names)
    assert names == METRIC_COLUMNS  # the results frame's metric columns are the same list
    for metric in METRICS:
        assert isinstance(metric, Metric)
        assert get_metric(metric.name) is metric
        assert metric_label(metric.name) == metric.label
    assert metric_label("roc_auc") == "AUC"
    assert higher_is_better("accuracy") and higher_is_better("roc_auc")
    assert not higher_is_better("log_loss")
    assert not higher_is_better("brier")
    assert not higher_is_better("ece")


def test_an_unknown_metric_names_the_option_and_the_closest_name() -> None:
    with pytest.raises(UnknownNameError, match=r"--metric.*Did you mean 'roc_auc'"):
        get_metric("roc_acu", key="--metric")

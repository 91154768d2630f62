"""Classification metrics computed from class probabilities: the one list of metrics.

Every metric takes integer class codes `y_true` (indices into the task's class labels), a
probability matrix `proba` (rows x classes, same order) and the index of the positive class
(binary tasks), and declares its name, how it reads in prose and whether higher is better.
`METRICS` is the only list: the run record, the results frame and the report derive from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from bench.registry import UnknownNameError, unknown_name_message

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "Metric",
    "compute_metrics",
    "expected_calibration_error",
    "get_metric",
    "higher_is_better",
    "metric_label",
]


@dataclass(frozen=True)
class Metric:
    name: str  # the key in a run record's `metrics`
    label: str  # how it reads in prose and on axes
    higher_is_better: bool
    fn: Callable[[np.ndarray, np.ndarray, int], float]

    def __call__(self, y_true: np.ndarray, proba: np.ndarray, positive: int) -> float:
        return float(self.fn(y_true, proba, positive))


def _labels(proba: np.ndarray) -> np.ndarray:
    return np.arange(proba.shape[1])


def _roc_auc(y: np.ndarray, proba: np.ndarray, positive: int) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return skm.roc_auc_score(y == positive, proba[:, positive])
    return skm.roc_auc_score(y, proba, multi_class="ovr", labels=_labels(proba))


def _brier(y: np.ndarray, proba: np.ndarray, positive: int) -> float:
    if proba.shape[1] == 2:
        return skm.brier_score_loss(y == positive, proba[:, positive])
    onehot = np.eye(proba.shape[1])[y]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: |accuracy - confidence| averaged over equal-width confidence bins."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "accuracy", True, lambda y, p, _: skm.accuracy_score(y, p.argmax(axis=1))),
    Metric(
        "balanced_accuracy",
        "balanced accuracy",
        True,
        lambda y, p, _: skm.balanced_accuracy_score(y, p.argmax(axis=1)),
    ),
    Metric(
        "f1_macro",
        "macro F1",
        True,
        lambda y, p, _: skm.f1_score(y, p.argmax(axis=1), average="macro", labels=_labels(p)),
    ),
    Metric("roc_auc", "AUC", True, _roc_auc),
    Metric("log_loss", "log loss", False, lambda y, p, _: skm.log_loss(y, p, labels=_labels(p))),
    Metric("brier", "Brier score", False, _brier),
    Metric("ece", "ECE", False, lambda y, p, _: expected_calibration_error(y, p)),
)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
_BY_NAME = {m.name: m for m in METRICS}


def get_metric(name: str, key: str | None = None) -> Metric:
    """The metric called `name`; an unknown name lists the valid ones (`key`: the option)."""
    if name not in _BY_NAME:
        raise UnknownNameError(unknown_name_message("metric", name, list(METRIC_NAMES), key))
    return _BY_NAME[name]


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, positive: int) -> dict[str, float]:
    """Every metric; probabilities are clipped and renormalised first."""
    proba = np.clip(np.asarray(proba, dtype=float), 1e-15, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return {m.name: m(y_true, proba, positive) for m in METRICS}


def higher_is_better(name: str) -> bool:
    return get_metric(name).higher_is_better


def metric_label(name: str) -> str:
    """How a metric reads in prose: `roc_auc` -> `AUC` (an unknown name reads as itself)."""
    return _BY_NAME[name].label if name in _BY_NAME else name

"""Classification metrics computed from class probabilities.

Every metric takes integer class codes `y_true` (indices into the task's class labels), a
probability matrix `proba` (rows x classes, same order) and the index of the positive class
(binary tasks), and declares whether higher is better.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from bench.registry import METRICS

__all__ = ["Metric", "compute_metrics", "expected_calibration_error"]


@dataclass(frozen=True)
class Metric:
    name: str
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


accuracy = Metric("accuracy", True, lambda y, p, _: skm.accuracy_score(y, p.argmax(axis=1)))
balanced_accuracy = Metric(
    "balanced_accuracy", True, lambda y, p, _: skm.balanced_accuracy_score(y, p.argmax(axis=1))
)
f1_macro = Metric(
    "f1_macro",
    True,
    lambda y, p, _: skm.f1_score(y, p.argmax(axis=1), average="macro", labels=_labels(p)),
)
roc_auc = Metric("roc_auc", True, _roc_auc)
log_loss = Metric("log_loss", False, lambda y, p, _: skm.log_loss(y, p, labels=_labels(p)))
brier = Metric("brier", False, _brier)
ece = Metric("ece", False, lambda y, p, _: expected_calibration_error(y, p))


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, positive: int) -> dict[str, float]:
    """All registered metrics; probabilities are clipped and renormalised first."""
    proba = np.clip(np.asarray(proba, dtype=float), 1e-15, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return {name: METRICS.get(name)(y_true, proba, positive) for name in METRICS.names()}


def higher_is_better(name: str) -> bool:
    return METRICS.get(name).higher_is_better

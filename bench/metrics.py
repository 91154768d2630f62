"""Classification metrics computed from class probabilities: the one list of metrics.

Every metric takes integer class codes `y_true` (indices into the task's class labels), a
probability matrix `proba` (rows x classes, same order) and the index of the positive class
(binary tasks), and declares its name, how it reads in prose, whether higher is better and its
range. `METRICS` is the only list: the run record, the results frame and the report derive
from it.

Binary metrics of one class (ROC AUC, Brier, precision, recall, average precision) score the
positive class; multiclass ones are macro averages over one-vs-rest problems. Precision and
recall are taken at the predicted label (the most probable class, what `predict` returns), with
a ratio whose denominator is empty (no row predicted, or no row truly, of a class) counted as 0.

>>> y, proba = np.array([0, 1, 1]), np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
>>> round(get_metric("precision")(y, proba, 1), 3), round(get_metric("recall")(y, proba, 1), 3)
(1.0, 0.5)
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
    bounds: tuple[float | None, float | None] = (0.0, 1.0)  # the range; None: unbounded

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


def _precision_recall(
    score: Callable[..., float],
) -> Callable[[np.ndarray, np.ndarray, int], float]:
    """`score` (precision or recall) at the argmax label: the positive class's, else macro.

    zero_division=0: a class never predicted has precision 0 and a class absent from the test
    labels recall 0, without sklearn's warning; every class counts in the macro mean, like
    `f1_macro` (so multiclass macro recall is balanced accuracy when every class is present).
    """

    def fn(y: np.ndarray, proba: np.ndarray, positive: int) -> float:
        pred = proba.argmax(axis=1)
        if proba.shape[1] == 2:
            return score(y == positive, pred == positive, zero_division=0)
        return score(y, pred, labels=_labels(proba), average="macro", zero_division=0)

    return fn


def _average_precision(y: np.ndarray, proba: np.ndarray, positive: int) -> float:
    """PR AUC of the positive class; multiclass: the macro mean over the classes present.

    Like AUC it is NaN for a single-class test set; a class absent from the test labels has no
    precision-recall curve (sklearn would score it 0 with a warning), so it is left out.
    """
    if len(np.unique(y)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return skm.average_precision_score(y == positive, proba[:, positive])
    present = np.unique(y)
    onehot = np.eye(proba.shape[1])[y][:, present]
    return skm.average_precision_score(onehot, proba[:, present], average="macro")


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
    Metric("precision", "precision", True, _precision_recall(skm.precision_score)),
    Metric("recall", "recall", True, _precision_recall(skm.recall_score)),
    Metric("roc_auc", "AUC", True, _roc_auc),
    Metric("average_precision", "average precision", True, _average_precision),
    Metric(
        "log_loss",
        "log loss",
        False,
        lambda y, p, _: skm.log_loss(y, p, labels=_labels(p)),
        bounds=(0.0, None),
    ),
    # Multiclass Brier sums squared errors over classes: a sure wrong answer scores 2.
    Metric("brier", "Brier score", False, _brier, bounds=(0.0, 2.0)),
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

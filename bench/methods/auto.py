"""The practitioner's pick on the training rows: `classical_auto`, and the rule every pick shares.

A practitioner (or an AutoML tool) does not report the best classical model on the test rows;
they pick one by cross-validation on the rows they train on, refit it and ship it.
`classical_auto` does exactly that: every candidate (a classical method of conf/method, built
by its own builder from its own config) is cross-validated on the same stratified folds of the
run's training rows, the best is refitted on all of them and predicts the test rows once. The
test rows never reach the choice: the runner hands a method its training rows only.

A tuned variant (`tune: true`) takes part as the points of its grid, each an untuned config
scored on the same folds: the variant's score is its best point's, and a win refits that
point (`picked_params`). One level of CV over every configuration, as AutoML tools choose,
rather than the variant's own search inside each fold, which costs about five times the fits
(measured on callcenter: conf/method/classical_auto.yaml).

The rule of a pick, shared with the LLM side (`llm_icl_tuned`, `llm_icl_auto`):

* the metric is ROC AUC for two classes, accuracy otherwise (`selection_metric`), or any
  metric name the config sets;
* a candidate's score is that metric over its validation predictions of every fold together
  (`validation_score`);
* a later candidate wins only by a strictly better score (`better`), so ties go to the earlier,
  simpler one (logreg is listed first).

With too few rows of some class to cross-validate (fewer than 2), no choice is possible: the
`fallback` method is fitted as its own method and the record says why. The run's `details`
hold `picked` (the winning method's name), `picked_params` (the parameters refitted),
`cv_scores` (name -> score), the metric, the folds, each candidate's seconds or error, and the
winner's own details under `winner`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import ParameterGrid, StratifiedKFold

from bench.config import MethodConfig
from bench.llm.budget import BudgetReached
from bench.methods.base import (
    Choice,
    MethodContext,
    MethodKind,
    MethodReport,
    Range,
    build_method,
    keep_params,
    method_report,
)
from bench.methods.classical import MAX_FOLDS, cv_folds
from bench.methods.llm_base import aligned_proba
from bench.metrics import METRIC_NAMES

__all__ = [
    "CLASSICAL_AUTO",
    "CLASSICAL_NAMES",
    "ChoiceList",
    "ClassicalAutoClassifier",
    "better",
    "pool_names",
    "selection_metric",
    "validation_score",
]

# The classical methods a pick may choose from (conf/method/NAME.yaml, family classical);
# tests/methods/test_classical_auto.py holds this list to the configs.
CLASSICAL_NAMES = (
    "majority",
    "logreg",
    "logreg_tuned",
    "random_forest",
    "random_forest_tuned",
    "xgboost",
    "xgboost_tuned",
    "lightgbm",
    "lightgbm_tuned",
    "knn",
)


# -- the rule every pick shares ------------------------------------------------------------------
def selection_metric(requested: str, y: pd.Series) -> str:
    """The metric a pick compares candidates by: `requested`, or for "auto" ROC AUC with two
    classes and accuracy otherwise."""
    if requested != "auto":
        return requested
    return "roc_auc" if pd.Series(y).nunique() == 2 else "accuracy"


def validation_score(
    metric: str, y: pd.Series, proba: np.ndarray, classes: np.ndarray, positive_label: str | None
) -> float:
    """`metric` on validation rows (labels `y`, probabilities `proba` in the order of
    `classes`); binary metrics score the dataset's positive class (else the last class, as the
    runner does)."""
    from bench.metrics import get_metric

    codes = {str(c): i for i, c in enumerate(classes)}
    y_codes = np.array([codes[str(v)] for v in y])
    positive = codes.get(str(positive_label), len(classes) - 1)
    return float(get_metric(metric)(y_codes, np.clip(proba, 1e-15, 1.0), positive))


def pool_names(pool: dict[str, Any] | None, names: Sequence[str] | None, setting: str) -> list[str]:
    """The entries of `method.params.pool` a pick chooses from: `names` (the setting
    `method.params.<setting>`), or the whole pool; refused, naming both, if empty or unknown."""
    pool = dict(pool or {})
    chosen = list(names) if names is not None else list(pool)
    missing = [name for name in chosen if name not in pool]
    if not chosen or missing:
        raise ValueError(
            f"method.params.{setting} names {missing or 'nothing'}: each must be an entry of "
            f"method.params.pool ({', '.join(pool) or 'empty'})"
        )
    return chosen


def better(score: float, best: float, metric: str) -> bool:
    """Whether `score` beats `best` strictly (a NaN score never wins; anything beats NaN)."""
    from bench.metrics import higher_is_better

    if math.isnan(score):
        return False
    if math.isnan(best):
        return True
    return score > best if higher_is_better(metric) else score < best


@dataclasses.dataclass(frozen=True)
class ChoiceList(Choice):
    """A list of values, each one of `values`, none twice (`method.params.candidates`)."""

    def problem(self, key: str, value: Any) -> str | None:
        if value is None:
            return None if self.allow_none else f"{key} must be set, not null ({self.describe()})"
        if isinstance(value, str) or not isinstance(value, Sequence | ListConfig) or not value:
            return f"{key}={value!r} is not a non-empty list of {self.describe()}"
        for i, item in enumerate(value):
            if (problem := super().problem(f"{key}[{i}]", item)) is not None:
                return problem
        if len(set(value)) < len(value):
            return f"{key}={list(value)!r} names a value twice"
        return None


# -- classical_auto ------------------------------------------------------------------------------
class ClassicalAutoClassifier(ClassifierMixin, BaseEstimator):
    """The classical method that cross-validates best on the training rows, refitted on all.

    `pool` maps method names to their method configs (conf/method/NAME.yaml as dicts);
    `candidates` names those tried, in order (None: all of the pool); `context` is the run's
    `MethodContext`, with which every candidate is built by its own registered builder (the
    seed and threads are this estimator's `random_state` and `n_jobs`).
    """

    def __init__(
        self,
        pool: dict[str, dict[str, Any]] | None = None,
        candidates: list[str] | None = None,
        metric: str = "auto",
        max_folds: int = MAX_FOLDS,
        fallback: str = "logreg",
        positive_label: str | None = None,
        context: MethodContext | None = None,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        keep_params(self, locals())

    def fit(self, X: pd.DataFrame, y: Any) -> ClassicalAutoClassifier:
        labels = pd.Series([str(v) for v in np.asarray(y)], index=X.index, dtype=object)
        self.classes_ = np.array(sorted(set(labels)), dtype=object)
        names = self._names()
        codes = np.searchsorted(self.classes_, labels.to_numpy())
        folds = cv_folds(codes, self.max_folds)
        metric = selection_metric(self.metric, labels)
        self.fit_info_: dict[str, Any] = {"metric": metric, "cv_folds": folds}
        if folds == 0 or len(names) == 1:
            picked = self.fallback if folds == 0 and self.fallback in names else names[0]
            config = self._config(picked)  # as its own method: a tuned one tunes itself
            self.fit_info_["why"] = (
                f"too few rows of some class to cross-validate ({labels.value_counts().to_dict()}):"
                f" {picked} without a choice"
                if folds == 0
                else "one candidate: nothing to choose"
            )
        else:
            picked, config = self._cross_validate(X, labels, names, folds, metric)
        self.picked_ = picked
        self.model_ = self._build(config).fit(X, labels)
        self.fit_info_["picked"] = picked
        self.fit_info_["picked_params"] = config["params"]
        self.fit_info_["winner"] = method_report(self.model_).details
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return aligned_proba(self.model_.predict_proba(X), self.model_.classes_, self.classes_)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def run_report(self) -> MethodReport:
        """The pick (`picked`, `cv_scores`, each candidate) and the winner's own details."""
        return MethodReport(details=dict(getattr(self, "fit_info_", {})))

    def _names(self) -> list[str]:
        return pool_names(self.pool, self.candidates, "candidates")

    def _config(self, name: str) -> dict[str, Any]:
        """The candidate's method config, the schema's defaults filled in."""
        node = OmegaConf.merge(OmegaConf.structured(MethodConfig), dict(self.pool or {})[name])
        return OmegaConf.to_container(node, resolve=True)

    def _configurations(self, name: str) -> list[dict[str, Any]]:
        """What cross-validation scores for a candidate: its config, or for a tuned variant one
        untuned config per point of its grid. A tuned variant is the best point of its grid on
        the folds every candidate shares: one level of CV over every configuration, as an AutoML
        tool chooses, instead of a search inside each fold (5x the fits)."""
        config = self._config(name)
        if not (config["tune"] and config["search"]):
            return [config]
        return [
            {**config, "tune": False, "search": {}, "params": {**config["params"], **point}}
            for point in ParameterGrid(config["search"])
        ]

    def _build(self, config: dict[str, Any]) -> Any:
        """An unfitted estimator for `config`, by its kind's own registered builder."""
        if self.context is None:
            raise ValueError("ClassicalAutoClassifier needs the run's context to build candidates")
        context = dataclasses.replace(self.context, seed=self.random_state, n_jobs=self.n_jobs)
        return build_method(OmegaConf.create(config), context)

    def _cross_validate(
        self, X: pd.DataFrame, labels: pd.Series, names: list[str], folds: int, metric: str
    ) -> tuple[str, dict[str, Any]]:
        """Every configuration scored on the same folds; the best candidate's name and its
        configuration (the first, on a tie: candidates and grid points in order)."""
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
        splits = list(splitter.split(X, labels))
        tried: list[dict[str, Any]] = []
        best_score, best = float("nan"), (names[0], self._config(names[0]))
        for name in names:
            start, entry = time.perf_counter(), {"name": name, "score": float("nan")}
            try:
                configurations = self._configurations(name)
                for config in configurations:
                    score = self._score(config, X, labels, splits, metric)
                    if better(score, entry["score"], metric):
                        entry["score"], entry["params"] = score, config["params"]
                    if better(score, best_score, metric):
                        best_score, best = score, (name, config)
                entry["configurations"] = len(configurations)
            except BudgetReached:
                raise  # llm.budget_usd refused a call: no pick among what could be afforded
            except Exception as error:  # a candidate that cannot fit loses; the pick goes on
                entry["error"] = f"{type(error).__name__}: {error}"
            entry["seconds"] = round(time.perf_counter() - start, 3)
            tried.append(entry)
        self.fit_info_["cv_scores"] = {e["name"]: e["score"] for e in tried}
        self.fit_info_["candidates"] = tried
        return best

    def _score(
        self,
        config: dict[str, Any],
        X: pd.DataFrame,
        labels: pd.Series,
        splits: list[tuple[np.ndarray, np.ndarray]],
        metric: str,
    ) -> float:
        """`metric` over the out-of-fold predictions of `config` on every fold together."""
        proba = np.zeros((len(X), len(self.classes_)))
        for train, val in splits:
            fitted = self._build(config).fit(X.iloc[train], labels.iloc[train])
            proba[val] = aligned_proba(
                fitted.predict_proba(X.iloc[val]), fitted.classes_, self.classes_
            )
        return validation_score(metric, labels, proba, self.classes_, self.positive_label)


def build_classical_auto(cfg: DictConfig, context: MethodContext) -> ClassicalAutoClassifier:
    """METHODS registry entry for `kind: classical_auto`."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    return ClassicalAutoClassifier(
        **params,
        positive_label=context.positive_label,
        context=context,
        random_state=context.seed,
        n_jobs=context.n_jobs,
    )


CLASSICAL_AUTO = MethodKind(
    build=build_classical_auto,
    param_ranges={
        "candidates": ChoiceList(CLASSICAL_NAMES, allow_none=True),
        "fallback": Choice(CLASSICAL_NAMES),
        "metric": Choice(("auto", *METRIC_NAMES)),
        "max_folds": Range(low=2),
    },
)

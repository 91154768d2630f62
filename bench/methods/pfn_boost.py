"""PFN-Boost (arXiv 2502.02672): trees that start from TabPFN's prediction.

As LLM-Boost (bench/methods/llm_boost.py) with TabPFN (bench/methods/tabpfn.py) as the prior:
each training row's margin is TabPFN's *out-of-fold* prediction (a TabPFN fitted on the other
`score_folds` stratified folds; TabPFN fitted on a row predicts that row from its own label),
each test row's is that of a TabPFN fitted on all training rows. `s` and the trees' settings are
chosen by cross-validation on the training rows (bench/methods/boost.py), s = 0 and s = inf
always among them. Without TabPFN's weights the run is `unavailable` with TabPFN's instructions.

Recorded in ``details``: the chosen ``scale`` and ``trees``, the CV AUC of both extremes and of
the choice, ``prior_train_auc`` (TabPFN's out-of-fold AUC on the training rows) and TabPFN's own
details under ``tabpfn``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.preprocessing import LabelEncoder

from bench.methods.base import MethodContext, MethodKind, MethodReport, Range, keep_params
from bench.methods.boost import (
    BOOST_PARAM_RANGES,
    DEFAULT_TREES,
    BoostedPrior,
    check_grid,
    out_of_fold,
    prior_auc,
)
from bench.methods.llm_base import aligned_proba
from bench.methods.tabpfn import TabPFNMethod

__all__ = ["PFN_BOOST", "PFNBoostClassifier", "build_pfn_boost"]


class PFNBoostClassifier(ClassifierMixin, BaseEstimator):
    """XGBoost/LightGBM started from TabPFN's per-row margin (see the module docstring).

    `tabpfn` is an unfitted `TabPFNMethod`, cloned for every fold.
    """

    def __init__(
        self,
        tabpfn: TabPFNMethod | None = None,
        score_folds: int = 5,
        booster: str = "xgboost",
        scales: tuple[float, ...] | list[float] = (0.3, 1.0, 3.0, 10.0),
        trees: tuple[dict[str, Any], ...] | list[dict[str, Any]] = DEFAULT_TREES,
        cv_folds: int = 5,
        cv_repeats: int = 2,
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        keep_params(self, locals())

    def fit(self, X: pd.DataFrame, y: Any) -> PFNBoostClassifier:
        check_grid(self.scales, self.trees)
        X = pd.DataFrame(X).reset_index(drop=True)
        labels = LabelEncoder().fit(np.asarray(y, dtype=object))
        self.classes_ = labels.classes_
        codes = labels.transform(np.asarray(y, dtype=object))
        prior = self.tabpfn if self.tabpfn is not None else TabPFNMethod()
        # The test rows' TabPFN first: without weights this is `unavailable` before any fold.
        self.tabpfn_ = clone(prior).fit(X, self.classes_[codes])

        def fold_proba(train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
            fold = clone(prior).fit(X.iloc[train], self.classes_[codes[train]])
            return aligned_proba(fold.predict_proba(X.iloc[held_out]), fold.classes_, self.classes_)

        train_proba, folds = out_of_fold(
            fold_proba, codes, self.score_folds, self.seed, len(self.classes_)
        )
        self.boosted_ = BoostedPrior.fit(X, codes, train_proba, self)
        self.scale_ = self.boosted_.scale
        self.fit_info_: dict[str, Any] = {
            "booster": self.booster,
            "scores_from": f"TabPFN out of fold ({folds} folds)",
            "prior_train_auc": prior_auc(codes, train_proba),
            **self.boosted_.selection.details(),
            "tabpfn": self.tabpfn_.fit_info_,
        }
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The boosted probabilities; TabPFN predicts the rows unless s = 0 was chosen."""
        return self.boosted_.predict_proba(pd.DataFrame(X), self.tabpfn_.predict_proba)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def run_report(self) -> MethodReport:
        """The chosen scale and trees, the CV scores, TabPFN's details."""
        return MethodReport(details=dict(getattr(self, "fit_info_", {})))


def build_pfn_boost(cfg: DictConfig, context: MethodContext) -> PFNBoostClassifier:
    """METHODS registry entry for `kind: pfn_boost`: TabPFN takes its own settings."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    tabpfn = TabPFNMethod(
        n_estimators=params.pop("n_estimators", 8),
        model_path=params.pop("model_path", None),
        max_train_rows=params.pop("max_train_rows", None),
        device=params.pop("device", "auto"),
        random_state=context.seed,
        n_jobs=context.n_jobs,
    )
    return PFNBoostClassifier(tabpfn=tabpfn, seed=context.seed, n_jobs=context.n_jobs, **params)


PFN_BOOST = MethodKind(
    build=build_pfn_boost,
    param_ranges={
        **BOOST_PARAM_RANGES,
        "n_estimators": Range(low=1),
        "max_train_rows": Range(low=1, allow_none=True),
    },
)

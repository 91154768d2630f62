"""Classical models on the raw task DataFrame: majority, logistic regression, random forest,
XGBoost, LightGBM, each optionally tuned by a small cross-validated grid search; and `knn`,
the retrieval LLM's control: its neighbours' labels, voted (bench/methods/neighbours.py).

`ClassicalClassifier` owns its preprocessing, so every classical method takes the same
DataFrame the LLM methods see: numeric columns are median-imputed (and scaled for the linear
model), categorical ones one-hot encoded (linear model) or ordinal encoded (trees).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, OrdinalEncoder, StandardScaler

from bench.methods.base import (
    MethodContext,
    MethodKind,
    MethodReport,
    Range,
    keep_params,
    method_report,
)

__all__ = [
    "CLASSICAL",
    "KNN",
    "MODELS",
    "ClassicalClassifier",
    "build_classical",
    "build_knn",
    "cv_folds",
    "linear_preprocessor",
]

MODELS = ("majority", "logreg", "random_forest", "xgboost", "lightgbm", "knn")
MAX_FOLDS = 5


def cv_folds(y: np.ndarray, max_folds: int = MAX_FOLDS) -> int:
    """Folds for tuning: as many as the rarest class allows, at most `max_folds`; 0 = no search."""
    smallest = int(np.bincount(y).min()) if len(y) else 0
    folds = min(max_folds, smallest)
    return folds if folds >= 2 else 0


class ClassicalClassifier(ClassifierMixin, BaseEstimator):
    """A classical model with built-in preprocessing for mixed-type DataFrames.

    >>> from bench.data.callcenter import generate_callcenter
    >>> frame = generate_callcenter(rows=300, seed=0)
    >>> X, y = frame.drop(columns=["resolved", "handle_time_s"]), frame["resolved"]
    >>> model = ClassicalClassifier(model="logreg").fit(X, y)
    >>> model.predict_proba(X).shape
    (300, 2)
    """

    def __init__(
        self,
        model: str = "logreg",
        params: dict[str, Any] | None = None,
        tune: bool = False,
        search: dict[str, list[Any]] | None = None,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        keep_params(self, locals())

    def fit(self, X: pd.DataFrame, y: Any) -> ClassicalClassifier:
        if self.model not in MODELS:
            raise ValueError(f"Unknown classical model '{self.model}'; valid: {', '.join(MODELS)}")
        self._encoder = LabelEncoder().fit(np.asarray(y))
        self.classes_ = self._encoder.classes_
        codes = self._encoder.transform(np.asarray(y))
        pipeline = self._pipeline()
        self.fit_info_: dict[str, Any] = {}
        folds = cv_folds(codes) if self.tune and self.search else 0
        if folds:
            fold_rows = len(codes) * (folds - 1) // folds
            search_space, dropped = _splittable_grid(self.search, fold_rows, self.params or {})
            grid = {f"model__{key}": list(values) for key, values in search_space.items()}
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
            search = GridSearchCV(pipeline, grid, cv=cv, scoring="neg_log_loss", error_score=np.nan)
            search.fit(X, codes)
            self.pipeline_ = search.best_estimator_
            best = {k.removeprefix("model__"): _plain(v) for k, v in search.best_params_.items()}
            self.fit_info_ = {"cv_folds": folds, "best_params": best}
            if dropped:
                self.fit_info_["dropped_from_grid"] = dropped
        else:
            if self.tune:
                self.fit_info_ = {"cv_folds": 0, "note": "too few rows per class to tune; defaults"}
            self.pipeline_ = pipeline.fit(X, codes)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        proba = self.pipeline_.predict_proba(X)
        # A fitted model may have seen fewer classes than classes_ (e.g. a CV fold); pad them.
        seen = self.pipeline_.classes_
        if len(seen) == len(self.classes_):
            return proba
        full = np.zeros((len(X), len(self.classes_)))
        full[:, seen] = proba
        return full

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def run_report(self) -> MethodReport:
        """The tuning outcome (folds, best parameters), if any, and what the fitted model says
        of itself (knn: its k and vote, which the report pairs on)."""
        details = dict(getattr(self, "fit_info_", {}))
        if hasattr(self, "pipeline_"):
            details.update(method_report(self.pipeline_[-1]).details)
        return MethodReport(details=details)

    def _pipeline(self) -> Pipeline:
        params = dict(self.params or {})
        if self.model == "majority":
            return Pipeline([("model", DummyClassifier(strategy="prior"))])
        if self.model == "knn":  # encodes the rows itself, as the retrieval LLM's shots are found
            from bench.methods.neighbours import NeighbourVoteClassifier  # it imports this module

            return Pipeline([("model", NeighbourVoteClassifier(**params))])
        if self.model == "logreg":
            return Pipeline(
                [
                    ("prep", linear_preprocessor()),
                    ("model", LogisticRegression(**{"max_iter": 2000, **params})),
                ]
            )
        seeded = {"random_state": self.random_state, "n_jobs": self.n_jobs, **params}
        if self.model == "random_forest":
            estimator = RandomForestClassifier(**seeded)
        elif self.model == "xgboost":
            from xgboost import XGBClassifier

            estimator = XGBClassifier(**{"tree_method": "hist", "verbosity": 0, **seeded})
        else:
            from lightgbm import LGBMClassifier

            estimator = LGBMClassifier(**{"verbose": -1, **seeded})
        return Pipeline([("prep", _tree_preprocessor()), ("model", estimator)])


# Minimum rows per leaf: a value above half a fold's training rows leaves a tree that cannot
# split at all, i.e. a constant model, which a log-loss search on a tiny set may well prefer.
MIN_LEAF_PARAMS = ("min_child_samples", "min_samples_leaf", "min_data_in_leaf")
# What each library uses when the method's params leave a leaf size unset.
LIBRARY_LEAF_DEFAULTS = {"min_child_samples": 20, "min_samples_leaf": 1, "min_data_in_leaf": 20}


def _splittable_grid(
    search: dict[str, list[Any]], fold_rows: int, params: dict[str, Any]
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """The grid without leaf sizes that make every tree a stump on `fold_rows` rows, and what
    was dropped. When no grid value fits, the untuned model's own value (`params`, else the
    library's default) is used if smaller: a tuned variant never splits less than its default."""
    kept, dropped = {}, {}
    for key, values in search.items():
        values = list(values)
        if key in MIN_LEAF_PARAMS and all(isinstance(v, int) for v in values):
            own = params.get(key, LIBRARY_LEAF_DEFAULTS.get(key))
            fallback = min([*values, *([own] if isinstance(own, int) else [])])
            fits = [v for v in values if 2 * v <= fold_rows] or [fallback]
            if fits != values:
                dropped[key] = [v for v in values if v not in fits]
            values = fits
        kept[key] = values
    return kept, dropped


def _numeric() -> Any:
    return make_column_selector(dtype_include="number")


def _categorical() -> Any:
    return make_column_selector(dtype_exclude="number")


def linear_preprocessor() -> ColumnTransformer:
    return ColumnTransformer(
        [
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                ),
                _numeric(),
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                _categorical(),
            ),
        ]
    )


def _tree_preprocessor() -> ColumnTransformer:
    # Trees split on NaN themselves (RF since scikit-learn 1.4; XGBoost and LightGBM natively).
    return ColumnTransformer(
        [
            ("num", "passthrough", _numeric()),
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2
                ),
                _categorical(),
            ),
        ]
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def build_classical(
    cfg: DictConfig, context: MethodContext, model: str | None = None
) -> ClassicalClassifier:
    """METHODS registry entry for every classical kind (`model`: the model, if not cfg.kind)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    return ClassicalClassifier(
        model=model or cfg.kind,
        params=container["params"],
        tune=cfg.tune,
        search=container["search"],
        random_state=context.seed,
        n_jobs=context.n_jobs,
    )


CLASSICAL = MethodKind(build=build_classical)


def build_knn(cfg: DictConfig, context: MethodContext) -> ClassicalClassifier:
    """The `knn` method (conf/method/knn.yaml): the k training rows nearest to each test row,
    found as `llm_icl`'s retrieval finds its shots, voting their labels
    (bench.methods.neighbours.NeighbourVoteClassifier)."""
    return build_classical(cfg, context, model="knn")


KNN = MethodKind(
    build=build_knn,
    param_ranges={"k": Range(low=1), "prior_weight": Range(low=0, integer=False)},
)

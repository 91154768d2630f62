"""LLM-Boost (Jayawardhana et al., arXiv 2502.02672): trees that start from the LLM's score.

The LLM scores every training and test row (the in-context classifier of
bench/methods/llm_icl.py: class probabilities from the answer words' log-probabilities); the
log-odds (per-class log-probabilities for more than two classes) times a scale `s` are the
starting margin of XGBoost or LightGBM, in training and in prediction, so the trees learn what
the LLM gets wrong. `s` and the trees' settings are chosen by cross-validation on the training
rows, with s = 0 (the trees alone) and s = inf (the LLM alone) always among the candidates
(bench/methods/boost.py).

**No label reaches the score of the row it belongs to.** ``shots: 0`` (the default, as in the
paper's zero-shot setting) scores every row with a zero-shot prompt: the task, the column
descriptions and the row, no labelled row at all; its prompts are the same at every training
size and seed, so the request cache answers a row once. ``shots: k`` scores each training row
with k shots drawn from the *other* folds (`score_folds` stratified folds), and the test rows with
k shots from all training rows. tests/test_protocol_boost.py checks every saved prompt for it.

Cost: scoring the training rows is one-off (``fit_*`` usage); scoring the test rows is marginal,
and skipped when cross-validation chose s = 0 (the trees alone need no LLM).

Recorded in ``details``: the chosen ``scale`` and ``trees``, the CV AUC of both extremes
(``cv_auc_trees_alone``, ``cv_auc_prior_alone``) and of the choice, ``llm_train_auc`` (the
LLM's own AUC on the training rows) and ``scores_from`` (how the training rows were scored).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone

from bench.llm.prompts import PROMPT_VERSION
from bench.methods.base import Choice, MethodContext, MethodKind, MethodTags, Range, keep_params
from bench.methods.boost import (
    BOOST_PARAM_RANGES,
    DEFAULT_TREES,
    BoostedPrior,
    check_grid,
    class_codes,
    out_of_fold,
    prior_auc,
)
from bench.methods.llm_base import LLMEstimator
from bench.methods.llm_icl import LLMICLClassifier, prompt_context
from bench.methods.shots import SELECTIONS

__all__ = ["LLM_BOOST", "LLMBoostClassifier", "build_llm_boost"]


class LLMBoostClassifier(LLMEstimator):
    """XGBoost/LightGBM started from an LLM's per-row margin (see the module docstring).

    `scorer` is an unfitted in-context classifier (`LLMICLClassifier`); `fit` clones it with
    ``max_shots=shots``, so the estimator's parameters are never changed by fitting.
    """

    def __init__(
        self,
        scorer: LLMICLClassifier | None = None,
        shots: int = 0,
        selection: str = "stratified",
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

    def _check_params(self) -> None:
        if self.scorer is None:
            raise ValueError("LLMBoostClassifier needs a scorer (an LLMICLClassifier)")
        if self.shots < 0:
            raise ValueError(f"method.params.shots must be >= 0, not {self.shots}")
        check_grid(self.scales, self.trees)

    def _declared_classes(self) -> tuple[str, ...]:
        return self.scorer.class_labels

    def _fit(self, X: pd.DataFrame, labels: pd.Series) -> None:
        codes = class_codes(labels, self.classes_)
        if len(np.unique(codes)) < len(self.classes_):
            missing = sorted(set(map(str, self.classes_)) - set(labels))
            raise ValueError(f"llm_boost needs training rows of every class; none of {missing}")
        ledger = self.run_ledger()
        X = X.reset_index(drop=True)
        labels = labels.reset_index(drop=True)
        train_proba = self._score_training_rows(X, labels)  # one-off cost
        self.llm_train_auc_ = prior_auc(codes, train_proba)
        self.boosted_ = BoostedPrior.fit(X, codes, train_proba, self)
        self.scale_ = self.boosted_.scale
        ledger.details.update(
            booster=self.booster,
            scores_from=self.scores_from_,
            llm_train_auc=self.llm_train_auc_,
            **self.boosted_.selection.details(),
        )

    def _score_training_rows(self, X: pd.DataFrame, labels: pd.Series) -> np.ndarray:
        """Each training row's LLM probabilities from a prompt without that row's label; the
        scorer for the test rows is fitted here too (`scorer_`)."""
        ledger = self.run_ledger()
        self.scorer_ = clone(self.scorer).set_params(max_shots=self.shots, selection=self.selection)
        self.scorer_.fit(X, labels)  # zero-shot: no row of X is written with its label
        ledger.parts["scorer"] = self.scorer_.run_ledger()  # every LLM call is counted
        if self.shots == 0:
            self.scores_from_ = "zero-shot prompts (no labelled rows)"
            return self.scorer_.predict_proba(X)
        codes = class_codes(labels, self.classes_)

        def fold_scores(train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
            fold = clone(self.scorer_).fit(X.iloc[train], labels.iloc[train])
            ledger.parts[f"scorer_fold_{len(ledger.parts)}"] = fold.run_ledger()
            return fold.predict_proba(X.iloc[held_out])

        proba, folds = out_of_fold(
            fold_scores, codes, self.score_folds, self.seed, len(self.classes_)
        )
        self.scores_from_ = f"{self.shots} shots from the other {folds - 1} of {folds} folds"
        return proba

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The boosted probabilities; the LLM scores the rows (marginal cost) unless s = 0 was
        chosen."""
        return self.boosted_.predict_proba(X, self.scorer_.predict_proba)

    def prompts(self, X: pd.DataFrame) -> list[str]:
        """The test-row prompts (for inspection and tests)."""
        return self.scorer_.prompts(X)


def build_llm_boost(cfg: DictConfig, context: MethodContext) -> LLMBoostClassifier:
    """METHODS registry entry for `kind: llm_boost`: the scorer takes the prompt settings."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    scorer = LLMICLClassifier(**prompt_context(context))
    return LLMBoostClassifier(scorer=scorer, seed=context.seed, n_jobs=context.n_jobs, **params)


LLM_BOOST = MethodKind(
    build=build_llm_boost,
    tags=MethodTags(uses_llm=True, serializes_rows=True, prompt_version=PROMPT_VERSION),
    param_ranges={
        **BOOST_PARAM_RANGES,
        "shots": Range(low=0),
        "selection": Choice(tuple(s for s in SELECTIONS if s != "knn")),
    },
)

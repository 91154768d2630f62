"""Boosting from a prior's margin, the core of LLM-Boost and PFN-Boost (arXiv 2502.02672).

A gradient-boosted model usually starts every row at one constant. Here it starts each row at
``s * score``, a prior model's per-row margin (an LLM's or TabPFN's log-odds, or per-class
log-probabilities), so the trees learn only what the prior gets wrong. The scale `s` says how
much the prior counts:

* ``s = 0``: plain boosting, the prior ignored (the trees alone);
* ``s = inf``: the prior alone. A finite huge `s` would push the probabilities to exactly 0 or 1
  and turn the prior's ranking into ties, so the limit is taken as what it means: the trees'
  correction vanishes next to the margin and the prediction is the prior's own probability.

`s` and the trees' settings are chosen together by stratified cross-validation on the training
rows only (`choose`), with both extremes always among the candidates, so the method can fall back
to either part. Both methods hand `choose` margins that no row's own label reached
(bench/methods/llm_boost.py, bench/methods/pfn_boost.py).

>>> proba = np.array([[0.8, 0.2], [0.25, 0.75]])
>>> np.round(prior_margin(proba), 3).tolist()  # binary: the log-odds of the second class
[-1.386, 1.099]
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from bench.methods.base import Choice, Range
from bench.methods.classical import _tree_preprocessor, cv_folds

__all__ = [
    "BOOSTERS",
    "BOOST_PARAM_RANGES",
    "DEFAULT_TREES",
    "PRIOR_ALONE",
    "BoostedPrior",
    "Candidate",
    "MarginBooster",
    "Selection",
    "candidates",
    "check_grid",
    "choose",
    "class_codes",
    "encoder",
    "out_of_fold",
    "prior_auc",
    "prior_margin",
    "scale_label",
]

BOOSTERS = ("xgboost", "lightgbm")
PRIOR_ALONE = math.inf  # the scale that means "the prior alone" (module docstring)
DEFAULT_TREES = ({"n_estimators": 200, "learning_rate": 0.1, "max_depth": 4},)
_CLIP = 1e-6  # probabilities are clipped before the log: a 0 would be an infinite margin
# Parameter ranges both methods declare (bench/methods/base.py `MethodKind.param_ranges`).
BOOST_PARAM_RANGES: dict[str, Range | Choice] = {
    "booster": Choice(BOOSTERS),
    "cv_folds": Range(low=2),
    "cv_repeats": Range(low=1),
    "score_folds": Range(low=2),
}


def check_grid(scales: Sequence[float], trees: Sequence[dict[str, Any]]) -> None:
    """Refuse a grid that cannot work, naming the setting (before any row is paid for)."""
    bad = [
        s
        for s in scales
        if isinstance(s, bool) or not isinstance(s, int | float) or math.isnan(s) or s < 0
    ]
    if bad:
        raise ValueError(f"method.params.scales must be numbers >= 0 (inf is always tried): {bad}")
    if not trees or not all(isinstance(t, dict) for t in trees):
        raise ValueError("method.params.trees must be a non-empty list of tree settings (dicts)")


def prior_margin(proba: np.ndarray) -> np.ndarray:
    """A prior's probabilities as a boosting margin: the log-odds of the second class for two
    classes (shape (n,)), else the per-class log-probabilities, centred per row (shape (n, K);
    softmax ignores the centring)."""
    logp = np.log(np.clip(np.asarray(proba, dtype=float), _CLIP, 1.0))
    if logp.shape[1] == 2:
        return logp[:, 1] - logp[:, 0]
    return logp - logp.mean(axis=1, keepdims=True)


def _zero_margin(rows: int, n_classes: int) -> np.ndarray:
    """The margin of rows whose prior is not asked for (s = 0: it would be multiplied by 0)."""
    return np.zeros((rows,) if n_classes == 2 else (rows, n_classes))


def _probabilities(margin: np.ndarray, n_classes: int) -> np.ndarray:
    """The inverse of `prior_margin` for any margin: sigmoid (two classes) or softmax."""
    if n_classes == 2:
        positive = 1.0 / (1.0 + np.exp(-np.clip(margin, -700, 700)))
        return np.column_stack([1.0 - positive, positive])
    shifted = np.exp(margin - margin.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def scale_label(scale: float) -> float | str:
    """A scale as the record stores it: a number, or "inf" for the prior alone (JSON has no
    infinity)."""
    return "inf" if math.isinf(scale) else float(scale)


def encoder() -> ColumnTransformer:
    """The trees' view of the table, as the classical XGBoost/LightGBM methods see it."""
    return _tree_preprocessor()


@dataclass(frozen=True)
class Candidate:
    """One point of the grid: a scale and the trees' settings (unused when s = inf)."""

    scale: float
    trees: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"scale": scale_label(self.scale), "trees": dict(self.trees)}


@dataclass
class MarginBooster:
    """XGBoost or LightGBM whose every row starts at ``scale * margin`` (module docstring)."""

    booster: str = "xgboost"
    trees: dict[str, Any] = field(default_factory=dict)
    scale: float = 0.0
    seed: int = 0
    n_jobs: int = 1

    def fit(self, X: np.ndarray, codes: np.ndarray, margin: np.ndarray) -> MarginBooster:
        """Learn trees on the encoded rows `X` (class codes `codes`) from the start `margin`."""
        self.n_classes_ = int(margin.shape[1]) if margin.ndim == 2 else 2
        if math.isinf(self.scale):
            return self  # the prior alone: nothing to learn
        start = None if self.scale == 0 else self.scale * margin  # s = 0: plain boosting
        if self.booster == "xgboost":
            from xgboost import XGBClassifier

            self.model_ = XGBClassifier(
                **{"tree_method": "hist", "verbosity": 0, **self._seeded()}
            ).fit(X, codes, base_margin=start)
        elif self.booster == "lightgbm":
            from lightgbm import LGBMClassifier

            self.model_ = LGBMClassifier(**{"verbose": -1, **self._seeded()})
            with warnings.catch_warnings():  # feature names: the encoded matrix has none
                warnings.simplefilter("ignore", UserWarning)
                self.model_.fit(X, codes, init_score=start)
        else:
            raise ValueError(f"method.params.booster={self.booster!r}: use one of {BOOSTERS}")
        return self

    def predict_proba(self, X: np.ndarray, margin: np.ndarray) -> np.ndarray:
        """Class probabilities of the encoded rows `X` whose prior margin is `margin`."""
        if math.isinf(self.scale):
            return _probabilities(margin, self.n_classes_)
        start = self.scale * margin
        if self.booster == "xgboost":
            return self.model_.predict_proba(X, base_margin=None if self.scale == 0 else start)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            raw = self.model_.predict(X, raw_score=True)  # LightGBM adds no init score here
        return _probabilities(raw + start if self.scale else raw, self.n_classes_)

    def _seeded(self) -> dict[str, Any]:
        return {"random_state": self.seed, "n_jobs": self.n_jobs, **self.trees}


@dataclass(frozen=True)
class Selection:
    """What cross-validation chose, and the scores that chose it."""

    chosen: Candidate
    folds: int  # 0: too few rows of some class to cross-validate
    repeats: int
    scores: dict[str, dict[str, float]]  # per scale: the best mean fold AUC and its log loss

    def details(self) -> dict[str, Any]:
        """The record's view: chosen scale and trees, both extremes' and the chosen CV AUC."""
        scores = self.scores
        best = scores.get(str(scale_label(self.chosen.scale)), {})
        return {
            "scale": scale_label(self.chosen.scale),
            "trees": dict(self.chosen.trees),
            "cv_folds": self.folds,
            "cv_repeats": self.repeats,
            "cv_auc_trees_alone": scores.get("0.0", {}).get("auc"),  # s = 0
            "cv_auc_prior_alone": scores.get("inf", {}).get("auc"),  # s = inf
            "cv_auc_chosen": best.get("auc"),
            "cv_by_scale": scores,
        }


def candidates(scales: Sequence[float], trees: Sequence[dict[str, Any]]) -> list[Candidate]:
    """The grid: every scale with every trees' setting, 0 always among the scales, and the
    prior alone (s = inf) once (its trees are never used)."""
    finite = sorted({0.0, *(float(s) for s in scales if not math.isinf(float(s)))})
    grid = [Candidate(s, dict(t)) for s, t in itertools.product(finite, trees or [{}])]
    return [*grid, Candidate(PRIOR_ALONE, {})]


def _fold_scores(codes: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """(AUC, log loss) of one validation fold; one-vs-rest AUC for more than two classes."""
    labels = np.arange(proba.shape[1])
    clipped = np.clip(proba, _CLIP, 1.0)
    loss = log_loss(codes, clipped / clipped.sum(axis=1, keepdims=True), labels=labels)
    if proba.shape[1] == 2:
        return float(roc_auc_score(codes, proba[:, 1])), float(loss)
    auc = roc_auc_score(codes, proba, multi_class="ovr", labels=labels)
    return float(auc), float(loss)


def choose(
    X: np.ndarray,
    codes: np.ndarray,
    margin: np.ndarray,
    grid: Sequence[Candidate],
    *,
    booster: str,
    max_folds: int,
    repeats: int,
    seed: int,
    n_jobs: int = 1,
) -> Selection:
    """The candidate with the best mean validation AUC over stratified folds of the training
    rows (ties: the lower log loss, then the earlier candidate). Folds are as many as the rarest
    class allows, at most `max_folds`; with fewer than two, nothing is cross-validated and
    s = 1 with the grid's first trees' setting is used (the prior as it is, corrected by the
    trees), whether or not the grid holds s = 1."""
    folds = cv_folds(codes, max_folds)
    if not folds:
        trees = next((c.trees for c in grid if not math.isinf(c.scale)), {})
        return Selection(Candidate(1.0, dict(trees)), 0, 0, {})
    per: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(grid))}
    for repeat in range(repeats):
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        for train, valid in splitter.split(X, codes):
            for i, candidate in enumerate(grid):
                model = MarginBooster(booster, candidate.trees, candidate.scale, seed, n_jobs)
                model.fit(X[train], codes[train], margin[train])
                proba = model.predict_proba(X[valid], margin[valid])
                per[i].append(_fold_scores(codes[valid], proba))
    means = {i: tuple(float(v) for v in np.mean(s, axis=0)) for i, s in per.items()}
    best = min(means, key=lambda i: (-means[i][0], means[i][1], i))
    scores: dict[str, dict[str, float]] = {}
    for i, (auc, loss) in means.items():  # per scale, its best trees' setting
        key = str(scale_label(grid[i].scale))
        if key not in scores or auc > scores[key]["auc"]:
            scores[key] = {"auc": round(auc, 6), "log_loss": round(loss, 6)}
    return Selection(grid[best], folds, repeats, scores)


def prior_auc(codes: np.ndarray, proba: np.ndarray) -> float | None:
    """The AUC of a prior's probabilities on rows whose class codes are `codes` (None with a
    single class)."""
    if len(np.unique(codes)) < 2:
        return None
    if proba.shape[1] == 2:
        return float(roc_auc_score(codes, proba[:, 1]))
    labels = np.arange(proba.shape[1])
    return float(roc_auc_score(codes, proba, multi_class="ovr", labels=labels))


class BoostSettings(Protocol):
    """The estimator parameters LLM-Boost and PFN-Boost share (their ``__init__``)."""

    booster: str
    scales: Sequence[float]
    trees: Sequence[dict[str, Any]]
    cv_folds: int
    cv_repeats: int
    seed: int
    n_jobs: int


@dataclass(frozen=True)
class BoostedPrior:
    """Trees fitted from a prior's margin at the scale cross-validation chose: the part both
    methods share once the training rows' prior probabilities are known."""

    encoder: ColumnTransformer
    model: MarginBooster
    selection: Selection
    n_classes: int

    @classmethod
    def fit(
        cls, X: pd.DataFrame, codes: np.ndarray, prior_proba: np.ndarray, settings: BoostSettings
    ) -> BoostedPrior:
        """Choose the scale and trees by CV on the rows `X` (their prior probabilities
        `prior_proba`, from prompts or models that never saw the row's label), then refit."""
        table = encoder().fit(X)  # no labels: an ordinal code per category
        matrix = table.transform(X)
        margin = prior_margin(prior_proba)
        selection = choose(
            matrix,
            codes,
            margin,
            candidates(settings.scales, settings.trees),
            booster=settings.booster,
            max_folds=settings.cv_folds,
            repeats=settings.cv_repeats,
            seed=settings.seed,
            n_jobs=settings.n_jobs,
        )
        chosen = selection.chosen
        model = MarginBooster(
            settings.booster, chosen.trees, chosen.scale, settings.seed, settings.n_jobs
        ).fit(matrix, codes, margin)
        return cls(table, model, selection, prior_proba.shape[1])

    @property
    def scale(self) -> float:
        return self.selection.chosen.scale

    def predict_proba(
        self, X: pd.DataFrame, prior_proba: Callable[[pd.DataFrame], np.ndarray]
    ) -> np.ndarray:
        """The boosted probabilities of `X`; the prior (`prior_proba(X)`, an LLM's or TabPFN's
        cost) is asked only when it counts, i.e. unless s = 0 was chosen."""
        matrix = self.encoder.transform(X)
        if self.scale == 0:  # the trees alone: the prior would be multiplied by 0
            margin = _zero_margin(len(X), self.n_classes)
        else:
            margin = prior_margin(prior_proba(X))
        return self.model.predict_proba(matrix, margin)


def out_of_fold(
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    codes: np.ndarray,
    n_folds: int,
    seed: int,
    n_classes: int,
) -> tuple[np.ndarray, int]:
    """Each row's prior probabilities from a model that never saw that row's label.

    ``fit_predict(train_positions, predict_positions)`` fits the prior on the first rows and
    returns its probabilities (columns: every class) for the second. Folds are stratified, at
    most `n_folds` and at most the largest class's rows (scikit-learn splits no class into more
    folds than the largest has rows); returns (probabilities, folds used).
    """
    counts = np.bincount(codes, minlength=n_classes)
    folds = min(max(2, n_folds), int(counts.max()) if len(codes) else 0)
    if folds < 2:
        raise ValueError(
            f"method.params.score_folds={n_folds}: no class has the 2 rows that scoring out of "
            f"fold needs (rows per class: {counts.tolist()})"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = np.zeros((len(codes), n_classes))
    with warnings.catch_warnings():  # a class with fewer rows than folds is still split
        warnings.filterwarnings("ignore", message="The least populated class")
        for train, held_out in splitter.split(np.zeros(len(codes)), codes):
            proba[held_out] = fit_predict(train, held_out)
    return proba, folds


def class_codes(labels: pd.Series, classes: np.ndarray) -> np.ndarray:
    """String labels as positions in `classes`."""
    index = {str(c): i for i, c in enumerate(classes)}
    return np.asarray([index[str(v)] for v in labels], dtype=int)

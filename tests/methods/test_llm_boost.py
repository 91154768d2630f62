"""LLM-Boost: the margin booster on real tables (its extremes are the trees alone and the prior
alone), its cross-validated choice of the scale, and `llm_boost` end to end on the embedded
SmolLM2 (every training row scored once while fitting, every test row once while predicting,
the LLM's AUC on the training rows recorded)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.config import compose_config
from bench.data.dataset import Task
from bench.data.splits import make_split
from bench.methods.base import InvalidParameterError, MethodContext, build_method
from bench.methods.boost import (
    PRIOR_ALONE,
    Candidate,
    MarginBooster,
    candidates,
    check_grid,
    choose,
    class_codes,
    encoder,
    out_of_fold,
    prior_auc,
    prior_margin,
)
from bench.methods.classical import ClassicalClassifier
from bench.methods.llm_boost import LLMBoostClassifier

XGB = {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 4}  # conf/method/xgboost.yaml


def table(task: Task, n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    split = make_split(task.y, task.name, seed, max_test_rows=200)
    rows = split.pool_order[:n]
    return task.X.iloc[rows], task.y.iloc[rows], task.X.iloc[split.test_rows]


def honest_prior(X: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """A real prior without its rows' own labels: out-of-fold logistic regression."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return cross_val_predict(model, np.nan_to_num(X), codes, cv=folds, method="predict_proba")


def test_the_margin_is_the_log_odds_and_inverts_to_the_probabilities() -> None:
    binary = np.array([[0.9, 0.1], [0.5, 0.5], [0.0, 1.0]])
    margin = prior_margin(binary)
    assert margin.shape == (3,)
    np.testing.assert_allclose(margin[:2], [math.log(1 / 9), 0.0])
    assert margin[2] == pytest.approx(math.log(1 / 1e-6))  # a 0 is clipped, not infinite
    three = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    centred = prior_margin(three)
    assert centred.shape == (2, 3)
    np.testing.assert_allclose(centred.sum(axis=1), 0.0, atol=1e-12)
    alone = MarginBooster(scale=PRIOR_ALONE).fit(np.zeros((2, 1)), np.array([2, 0]), centred)
    np.testing.assert_allclose(alone.predict_proba(np.zeros((2, 1)), centred), three)


def test_scale_zero_is_exactly_the_xgboost_method(callcenter_task: Task) -> None:
    """s = 0 ignores the prior: the same probabilities as `method=xgboost` on the same rows."""
    X, y, X_test = table(callcenter_task, 64)
    baseline = ClassicalClassifier(model="xgboost", params=XGB, random_state=3).fit(X, y)
    codes = class_codes(y.astype(str), baseline.classes_)
    prep = encoder().fit(X)
    prior = np.random.default_rng(0).normal(size=len(X))  # anything: multiplied by 0
    trees = MarginBooster("xgboost", XGB, 0.0, seed=3).fit(prep.transform(X), codes, prior)
    mine = trees.predict_proba(prep.transform(X_test), np.ones(len(X_test)))
    np.testing.assert_allclose(mine, baseline.predict_proba(X_test), rtol=1e-6)


@pytest.mark.parametrize("booster", ["xgboost", "lightgbm"])
def test_the_trees_start_from_the_margin(callcenter_task: Task, booster: str) -> None:
    """With s > 0 the prior moves the predictions; shifting a test row's margin shifts its
    log-odds by s times as much (the trees are the same)."""
    X, y, X_test = table(callcenter_task, 256)
    codes = class_codes(y.astype(str), np.array(["no", "yes"], dtype=object))
    prep = encoder().fit(X)
    matrix, test = prep.transform(X), prep.transform(X_test)
    margin = prior_margin(honest_prior(matrix, codes))
    trees = {"n_estimators": 50, "learning_rate": 0.1, "max_depth": 2}
    plain = MarginBooster(booster, trees, 0.0).fit(matrix, codes, margin)
    boosted = MarginBooster(booster, trees, 2.0).fit(matrix, codes, margin)
    zero = np.zeros(len(X_test))
    assert not np.allclose(plain.predict_proba(test, zero), boosted.predict_proba(test, zero))
    p0, p1 = boosted.predict_proba(test, zero)[:, 1], boosted.predict_proba(test, zero + 0.5)[:, 1]
    logit = np.log(p1 / (1 - p1)) - np.log(p0 / (1 - p0))
    np.testing.assert_allclose(logit, 1.0, atol=1e-4)  # 2.0 x 0.5


def test_cross_validation_scores_both_extremes_and_keeps_the_best(
    load_dataset: Callable[[str], Task],
) -> None:
    """The grid holds s = 0 and s = inf; the prior-alone score is the prior's own mean fold AUC
    (recomputed here on the same folds); the choice is the best mean fold AUC."""
    X, y, _ = table(load_dataset("mlc_churn"), 256)
    classes = np.unique(y.astype(str))
    codes = class_codes(y.astype(str), classes)
    matrix = encoder().fit(X).transform(X)
    prior = honest_prior(matrix, codes)
    grid = candidates([1.0], [{"n_estimators": 30, "max_depth": 2}])
    assert [c.scale for c in grid] == [0.0, 1.0, PRIOR_ALONE]
    picked = choose(
        matrix, codes, prior_margin(prior), grid, booster="xgboost", max_folds=3, repeats=2, seed=0
    )
    aucs = [
        roc_auc_score(codes[valid], prior[valid, 1])
        for repeat in range(2)
        for _, valid in StratifiedKFold(3, shuffle=True, random_state=repeat).split(matrix, codes)
    ]
    details = picked.details()
    assert details["cv_auc_prior_alone"] == pytest.approx(np.mean(aucs), abs=1e-6)
    assert details["cv_folds"] == 3 and details["cv_repeats"] == 2
    by_scale = details["cv_by_scale"]
    assert set(by_scale) == {"0.0", "1.0", "inf"}
    assert details["cv_auc_chosen"] == max(v["auc"] for v in by_scale.values())
    assert details["cv_auc_trees_alone"] == by_scale["0.0"]["auc"]


@pytest.mark.parametrize(
    "scales", [[1.0], [0.3, 3.0]], ids=["grid with s = 1", "grid without s = 1"]
)
def test_too_few_rows_of_a_class_skips_cross_validation_for_s_one(scales: list[float]) -> None:
    """One row of a class: no CV; s = 1 with the first trees, even where the grid omits 1."""
    codes = np.array([0, 0, 0, 0, 1])
    grid = candidates(scales, [{"n_estimators": 5}, {"n_estimators": 9}])
    picked = choose(
        np.arange(10.0).reshape(5, 2), codes, np.zeros(5), grid, booster="xgboost",
        max_folds=5, repeats=1, seed=0,
    )  # fmt: skip
    assert picked.folds == 0 and picked.chosen == Candidate(1.0, {"n_estimators": 5})


def test_a_nan_scale_is_refused_naming_the_setting() -> None:
    check_grid([0.3, 1.0], [{}])  # a sound grid passes
    with pytest.raises(ValueError, match=r"method\.params\.scales") as refused:
        check_grid([1.0, math.nan], [{}])
    assert "nan" in str(refused.value)


def test_out_of_fold_needs_no_more_rows_per_class_than_the_largest_class_has() -> None:
    """16 rows, 4 classes of 4, score_folds=5: scikit-learn refuses 5 stratified folds (no class
    has 5 rows), so 4 are used; each row is predicted once, by a prior (the class shares of its
    training rows) that never saw it."""
    codes = np.repeat(np.arange(4), 4)
    seen: dict[int, np.ndarray] = {}

    def class_prior(train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
        for row in held_out:
            assert row not in seen, "a row predicted twice"
            seen[int(row)] = train
        shares = np.bincount(codes[train], minlength=4) / len(train)
        return np.tile(shares, (len(held_out), 1))

    proba, folds = out_of_fold(class_prior, codes, n_folds=5, seed=0, n_classes=4)
    assert folds == 4 and sorted(seen) == list(range(16))
    assert all(row not in train for row, train in seen.items())
    # each training part lacks one row of each class: 3 of every 4
    assert np.allclose(proba, 0.25) and all(len(train) == 12 for train in seen.values())
    with pytest.raises(ValueError, match=r"method\.params\.score_folds=5.*\[1, 1, 1\]"):
        out_of_fold(class_prior, np.arange(3), n_folds=5, seed=0, n_classes=3)


# -- llm_boost on the embedded SmolLM2 --------------------------------------------------------
N_TRAIN, N_TEST = 16, 6


def booster(task: Task, context: Callable[..., MethodContext], cache: Path, *overrides: str):
    """llm_boost as the registry builds it for `task`, on SmolLM2 with one thread."""
    cfg = compose_config(
        [
            "method=llm_boost",
            "llm=local_smollm2_135m",
            "llm.n_threads=1",
            f"llm.cache_path={cache}",
            "method.params.cv_repeats=1",
            *overrides,
        ]
    )
    resolved = context(
        task,
        llm=OmegaConf.to_container(cfg.llm, resolve=True),
        serializer=OmegaConf.to_container(cfg.serializer, resolve=True),
    )
    return build_method(cfg.method, resolved)


def test_llm_boost_scores_every_row_once_and_records_its_choice(
    callcenter_task: Task, method_context: Callable[..., MethodContext], tmp_path: Path
) -> None:
    X, y, X_test = table(callcenter_task, N_TRAIN)
    X_test = X_test.iloc[:N_TEST]
    model = booster(callcenter_task, method_context, tmp_path / "c.sqlite")
    assert isinstance(model, LLMBoostClassifier)
    model.fit(X, y)
    assert not hasattr(model.scorer, "prefix_")  # the parameter stays unfitted
    fit_usage = model.usage_
    assert fit_usage["requests"] == N_TRAIN  # each training row once, zero-shot
    info = model.fit_info_
    assert info["scores_from"] == "zero-shot prompts (no labelled rows)"
    assert info["scorer"]["shots"] == 0
    # the LLM's AUC on the training rows, from the very probabilities it gave them
    train_proba = clone(model.scorer_).fit(X, y).predict_proba(X)  # cached: same prompts
    codes = class_codes(y.astype(str), model.classes_)
    assert info["llm_train_auc"] == pytest.approx(prior_auc(codes, train_proba))
    assert set(info["cv_by_scale"]) == {"0.0", "0.3", "1.0", "3.0", "10.0", "inf"}
    assert info["scale"] in (0.0, 0.3, 1.0, 3.0, 10.0, "inf")
    for key in ("cv_auc_trees_alone", "cv_auc_prior_alone", "cv_auc_chosen"):
        assert 0.0 <= info[key] <= 1.0
    proba = model.predict_proba(X_test)
    assert proba.shape == (N_TEST, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    asked = 0 if info["scale"] == 0.0 else N_TEST  # s = 0: the trees alone need no LLM
    assert model.usage_["requests"] == N_TRAIN + asked
    if info["scale"] == "inf":  # the LLM alone: its own probabilities
        np.testing.assert_allclose(proba, model.scorer_.predict_proba(X_test), atol=1e-6)


def test_llm_boost_out_of_fold_shots_never_hold_the_row(
    callcenter_task: Task, method_context: Callable[..., MethodContext], tmp_path: Path
) -> None:
    """shots > 0: each training row is scored by a prompt whose shots come from other folds."""
    X, y, _ = table(callcenter_task, N_TRAIN)
    model = booster(
        callcenter_task,
        method_context,
        tmp_path / "c.sqlite",
        "method.params.shots=3",
        "method.params.score_folds=2",
    )
    model.fit(X, y)
    info = model.fit_info_
    assert info["scores_from"] == "3 shots from the other 1 of 2 folds"
    folds = [key for key in info if key.startswith("scorer_fold_")]
    assert len(folds) == 2 and all(info[key]["shots"] == 3 for key in folds)
    assert model.usage_["requests"] == N_TRAIN  # each training row scored once


def test_bad_boost_settings_name_the_key(
    callcenter_task: Task, method_context: Callable[..., MethodContext], tmp_path: Path
) -> None:
    for override, key in (
        ("method.params.booster=catboost", "method.params.booster"),
        ("method.params.shots=-1", "method.params.shots"),
        ("method.params.cv_folds=1", "method.params.cv_folds"),
    ):
        with pytest.raises(InvalidParameterError, match=key):
            booster(callcenter_task, method_context, tmp_path / "c.sqlite", override)
    X, y, _ = table(callcenter_task, N_TRAIN)
    for override, key in (
        ("method.params.scales=[1,-2]", "method.params.scales"),
        ("method.params.trees=[]", "method.params.trees"),
    ):
        model = booster(callcenter_task, method_context, tmp_path / "c.sqlite", override)
        with pytest.raises(ValueError, match=key):
            model.fit(X, y)
        assert model.usage_["requests"] == 0  # refused before any row was scored

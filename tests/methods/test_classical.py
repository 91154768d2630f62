"""Classical methods: estimators on mixed-type DataFrames with NaNs, built from their configs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from bench.config import compose_config, config_names
from bench.data.dataset import Task
from bench.data.splits import make_split
from bench.methods.base import MethodContext, build_method
from bench.methods.classical import MAX_FOLDS, ClassicalClassifier, cv_folds

METHODS = [
    name
    for name in config_names("method")
    if compose_config([f"method={name}"]).method.family == "classical"
]
UNTUNED = [name for name in METHODS if not compose_config([f"method={name}"]).method.tune]


def train_test(task: Task, n_train: int = 160, n_test: int = 200, seed: int = 0):
    """A training subset and test rows as the runner would take them."""
    split = make_split(task.y, task.name, seed)
    rows = split.subset(n_train, task.y).rows
    test = split.test_rows[:n_test]
    return task.X.iloc[rows], task.y.iloc[rows], task.X.iloc[test]


@pytest.mark.parametrize("name", METHODS)
def test_every_method_fits_mixed_types_with_missing_values(
    name: str, mixed_task: Task, method_context: Callable[..., MethodContext]
) -> None:
    X_train, y_train, X_test = train_test(mixed_task)
    assert X_train.isna().any().any()  # the point of the test: NaNs reach the method
    assert {"object", "float64"} <= {str(dtype) for dtype in X_train.dtypes}

    cfg = compose_config([f"method={name}"]).method
    model = build_method(cfg, method_context(mixed_task))
    assert model.fit(X_train, y_train) is model
    proba = model.predict_proba(X_test)

    assert list(model.classes_) == list(mixed_task.class_labels)
    assert proba.shape == (len(X_test), mixed_task.n_classes)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(model.predict(X_test), model.classes_[proba.argmax(axis=1)])

    # Columns follow classes_: on its own training rows a model gives each class more
    # probability where that class is the label; the majority baseline gives the priors.
    fitted = model.predict_proba(X_train)
    for j, label in enumerate(model.classes_):
        is_label = (y_train == label).to_numpy()
        if name == "majority":
            np.testing.assert_allclose(fitted[:, j], is_label.mean())
        else:
            assert fitted[is_label, j].mean() > fitted[~is_label, j].mean(), label

    if cfg.tune:
        codes = np.searchsorted(model.classes_, y_train.to_numpy())
        assert model.fit_info_["cv_folds"] == cv_folds(codes) == MAX_FOLDS
        best = model.fit_info_["best_params"]
        assert set(best) == set(cfg.search)
        assert all(best[key] in list(cfg.search[key]) for key in best)
    elif name != "classical_auto":  # the pick records what it chose
        assert model.fit_info_ == {}


@pytest.mark.parametrize("name", UNTUNED)
def test_clone_gives_an_unfitted_copy_that_refits_identically(
    name: str, callcenter_task: Task, method_context: Callable[..., MethodContext]
) -> None:
    X_train, y_train, X_test = train_test(callcenter_task, n_train=64, n_test=100)
    model = build_method(
        compose_config([f"method={name}"]).method, method_context(callcenter_task, seed=4)
    )
    assert model.random_state == 4  # the run's seed reaches the model
    model.fit(X_train, y_train)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "classes_")
    np.testing.assert_array_equal(
        copy.fit(X_train, y_train).predict_proba(X_test), model.predict_proba(X_test)
    )


@pytest.mark.parametrize("flavour", ["numeric_only", "categorical_only"])
@pytest.mark.parametrize("name", UNTUNED)
def test_single_type_tables_fit_too(
    name: str,
    flavour: str,
    load_dataset: Callable[[str], Task],
    method_context: Callable[..., MethodContext],
) -> None:
    task = load_dataset("breast_cancer" if flavour == "numeric_only" else "callcenter")
    X_train, y_train, X_test = train_test(task, n_train=64, n_test=50)
    if flavour == "categorical_only":
        keep = [f.name for f in task.features if f.type == "categorical"]
        X_train, X_test = X_train[keep], X_test[keep]
    assert X_train.dtypes.nunique() == 1
    model = build_method(compose_config([f"method={name}"]).method, method_context(task))
    proba = model.fit(X_train, y_train).predict_proba(X_test)
    assert proba.shape == (len(X_test), task.n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", ["logreg", "xgboost"])
def test_unseen_categories_and_all_missing_rows_still_predict(
    name: str, load_dataset: Callable[[str], Task], method_context: Callable[..., MethodContext]
) -> None:
    task = load_dataset("credit_data")
    X_train, y_train, X_test = train_test(task, n_train=64, n_test=5)
    X_odd = X_test.copy()
    X_odd["Home"] = "houseboat"  # never seen in training
    X_odd.iloc[0] = np.nan  # nothing known about this applicant
    X_odd = X_odd.astype(X_test.dtypes.to_dict())
    model = build_method(compose_config([f"method={name}"]).method, method_context(task))
    proba = model.fit(X_train, y_train).predict_proba(X_odd)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_tuning_folds_shrink_for_tiny_training_sets(
    callcenter_task: Task, method_context: Callable[..., MethodContext]
) -> None:
    y = callcenter_task.y
    yes, no = np.flatnonzero(y == "yes"), np.flatnonzero(y == "no")
    cfg = compose_config(["method=logreg_tuned"]).method
    for n_yes, folds in ((1, 0), (3, 3), (4, 4), (9, MAX_FOLDS)):
        rows = np.concatenate([yes[:n_yes], no[:12]])
        model = build_method(cfg, method_context(callcenter_task))
        model.fit(callcenter_task.X.iloc[rows], y.iloc[rows])
        assert model.fit_info_["cv_folds"] == folds, n_yes
        if folds == 0:
            assert "too few rows" in model.fit_info_["note"]
            assert "best_params" not in model.fit_info_
        assert model.predict_proba(callcenter_task.X.iloc[:10]).shape == (10, 2)


@pytest.mark.parametrize(
    ("counts", "folds"),
    [((10, 10), MAX_FOLDS), ((2, 50), 2), ((3, 7, 4), 3), ((1, 30), 0), ((0,), 0)],
)
def test_cv_folds_follow_the_rarest_class(counts: tuple[int, ...], folds: int) -> None:
    codes = np.repeat(np.arange(len(counts)), counts)
    assert cv_folds(codes) == folds


def test_cv_folds_of_no_rows_is_zero() -> None:
    assert cv_folds(np.array([], dtype=int)) == 0


def test_init_only_stores_arguments_and_fit_validates() -> None:
    model = ClassicalClassifier(model="gradient_magic", params={"depth": 3})
    assert model.get_params()["model"] == "gradient_magic"
    assert model.get_params()["params"] == {"depth": 3}
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match="Unknown classical model 'gradient_magic'"):
        model.fit(X, ["a", "b", "a", "b"])


def test_invalid_model_parameter_fails_at_fit(callcenter_task: Task) -> None:
    X_train, y_train, _ = train_test(callcenter_task, n_train=32)
    model = ClassicalClassifier(model="random_forest", params={"n_estimators": -5})
    with pytest.raises(ValueError, match="n_estimators"):
        model.fit(X_train, y_train)


TUNED = [name for name in METHODS if name.endswith("_tuned")]  # classical tuned variants


def test_every_tuned_variant_is_checked_below() -> None:
    assert {"lightgbm_tuned", "random_forest_tuned", "xgboost_tuned", "logreg_tuned"} <= set(TUNED)


@pytest.mark.parametrize("base", [name.removesuffix("_tuned") for name in TUNED])
def test_a_tuned_variant_can_split_wherever_its_default_can(
    base: str, compose_run: Callable[..., Any]
) -> None:
    """At 16 rows a grid value such as LightGBM's min_child_samples=20 makes every tree a stump;
    a log-loss search may prefer that constant model. It is dropped from the grid instead."""
    from bench.results import ResultsStore
    from bench.runner import run_job

    spread = {}
    for name in (base, f"{base}_tuned"):
        cfg = compose_run("dataset=callcenter", f"method={name}", "seeds=[0,1,2]", "n_train=[16]")
        run_job(cfg)
        store = ResultsStore(cfg.results_dir)
        spread[name] = [
            float(store.predictions(r)["proba_yes"].std())
            for r in sorted(store.records(), key=lambda r: r["seed"])
            if r["method"] == name
        ]
    for default, tuned in zip(spread[base], spread[f"{base}_tuned"], strict=True):
        if default > 1e-9:
            assert tuned > 1e-9, f"{base}_tuned predicts a constant where {base} does not: {spread}"


def test_a_grid_of_leaf_sizes_too_large_for_the_rows_falls_back_to_the_default(
    callcenter_task: Task,
) -> None:
    """Every grid value makes a stump at 16 rows: the untuned model's own leaf size is searched
    instead (it can split), not the smallest unsplittable one."""
    X_train, y_train, X_test = train_test(callcenter_task, n_train=16)
    params = {"n_estimators": 50, "min_child_samples": 3}
    default = ClassicalClassifier(model="lightgbm", params=params).fit(X_train, y_train)
    assert default.predict_proba(X_test)[:, 1].std() > 1e-9
    tuned = ClassicalClassifier(
        model="lightgbm", params=params, tune=True, search={"min_child_samples": [20, 40]}
    ).fit(X_train, y_train)
    assert tuned.fit_info_["best_params"] == {"min_child_samples": 3}
    assert tuned.fit_info_["dropped_from_grid"] == {"min_child_samples": [20, 40]}
    assert tuned.predict_proba(X_test)[:, 1].std() > 1e-9

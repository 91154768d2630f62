"""classical_auto, the practitioner's pick: the recorded pick is the best cross-validated
candidate, it is made on the training rows only (changing the test labels changes nothing but
the score), tiny training sets fall back with a reason, bad candidate names are refused before
a sweep, and `bench-run method=classical_auto` runs as a user runs it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from bench.config import compose_config, config_names
from bench.data.dataset import Task
from bench.data.splits import make_split
from bench.job import split_or_error
from bench.methods.auto import CLASSICAL_NAMES, ClassicalAutoClassifier
from bench.methods.base import MethodContext, build_method
from bench.preflight import job_problems
from bench.results import ResultsStore
from bench.runner import execute_run, specs_for

# Cheap candidates (one tuned) keep these tests to seconds; the default list is all eight.
FEW = ["logreg", "random_forest", "lightgbm", "logreg_tuned"]


def auto(task: Task, seed: int = 0, *overrides: str) -> ClassicalAutoClassifier:
    """classical_auto built from its config as the runner builds it."""
    cfg = compose_config(["method=classical_auto", *overrides]).method
    return build_method(cfg, MethodContext.for_task(task, seed))


def training_rows(task: Task, n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rows = make_split(task.y, task.name, seed).subset(n, task.y).rows
    return task.X.iloc[rows], task.y.iloc[rows]


def test_the_classical_names_are_the_classical_configs() -> None:
    classical = {
        name
        for name in config_names("method")
        if compose_config([f"method={name}"]).method.family == "classical"
    }
    assert set(CLASSICAL_NAMES) == classical - {"classical_auto"}
    pool = compose_config(["method=classical_auto"]).method.params.pool
    assert set(pool) == set(CLASSICAL_NAMES) - {"majority"}


def test_the_pick_is_the_best_cross_validated_candidate(callcenter_task: Task) -> None:
    X, y = training_rows(callcenter_task, 96)
    model = auto(callcenter_task, 3, f"method.params.candidates=[{','.join(FEW)}]").fit(X, y)
    info = model.run_report().details
    assert (info["metric"], info["cv_folds"]) == ("roc_auc", 5)
    assert list(info["cv_scores"]) == FEW  # every candidate scored, in order
    scores = info["cv_scores"]
    best = max(FEW, key=lambda name: (scores[name], -FEW.index(name)))  # the first on a tie
    assert info["picked"] == model.picked_ == best
    # The recorded score is what it says: out-of-fold AUC over the same 5 stratified folds
    # (the run's seed), computed here with scikit-learn alone for logreg.
    from bench.methods.classical import ClassicalClassifier

    oof = np.zeros(len(y))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    for train, val in folds.split(X, y):
        fitted = ClassicalClassifier("logreg", params={"C": 1.0}).fit(X.iloc[train], y.iloc[train])
        oof[val] = fitted.predict_proba(X.iloc[val])[:, 1]
    assert scores["logreg"] == pytest.approx(roc_auc_score(y == "yes", oof), abs=1e-12)
    # A tuned candidate is the best point of its grid, on the same folds.
    (tuned,) = [c for c in info["candidates"] if c["name"] == "logreg_tuned"]
    assert tuned["configurations"] == 4 and tuned["params"]["C"] in (0.01, 0.1, 1.0, 10.0)
    # The winner is refitted on every training row: its own method with the parameters picked.
    params = [f"++method.params.{key}={value}" for key, value in info["picked_params"].items()]
    alone = build_method(
        compose_config([f"method={best}", "method.tune=false", *params]).method,
        MethodContext.for_task(callcenter_task, 3),
    ).fit(X, y)
    test = callcenter_task.X.iloc[-50:]
    np.testing.assert_allclose(model.predict_proba(test), alone.predict_proba(test))


def test_changing_the_test_labels_changes_neither_the_pick_nor_the_predictions(
    compose_run: Callable[..., Any], callcenter_task: Task
) -> None:
    cfg = compose_run(
        "dataset=callcenter",
        "method=classical_auto",
        f"method.params.candidates=[{','.join(FEW)}]",
        "seeds=[0]",
        "n_train=[64]",
        "split.max_test_rows=60",
    )
    (spec,) = specs_for(cfg)
    split = split_or_error(callcenter_task, spec)
    flipped_y = callcenter_task.y.copy()
    test = flipped_y.index[split.test_rows]
    labels = callcenter_task.class_labels
    flipped_y[test] = flipped_y[test].map(dict(zip(labels, labels[::-1], strict=True)))
    flipped = dataclasses.replace(callcenter_task, y=flipped_y)

    original, original_rows = execute_run(spec, None, callcenter_task, split)
    changed, changed_rows = execute_run(spec, None, flipped, split)
    assert original.status == changed.status == "ok"
    assert original.details["picked"] == changed.details["picked"]
    assert original.details["cv_scores"] == changed.details["cv_scores"]
    proba = [c for c in original_rows.columns if c.startswith("proba_")]
    pd.testing.assert_frame_equal(original_rows[proba], changed_rows[proba])
    # ... while the test score, computed from the flipped labels, does change
    assert original.metrics["accuracy"] + changed.metrics["accuracy"] == pytest.approx(1.0)


def test_too_few_rows_of_a_class_fall_back_and_say_why(callcenter_task: Task) -> None:
    y = callcenter_task.y
    rows = np.concatenate([np.flatnonzero(y == "yes")[:1], np.flatnonzero(y == "no")[:12]])
    model = auto(callcenter_task).fit(callcenter_task.X.iloc[rows], y.iloc[rows])
    info = model.run_report().details
    assert info["picked"] == "logreg" and info["cv_folds"] == 0
    assert "too few rows of some class" in info["why"] and "cv_scores" not in info
    assert model.predict_proba(callcenter_task.X.iloc[:5]).shape == (5, 2)


def test_a_failing_candidate_loses_and_says_why(callcenter_task: Task) -> None:
    X, y = training_rows(callcenter_task, 48)
    model = auto(
        callcenter_task,
        0,
        "method.params.candidates=[random_forest,logreg]",
        "method.params.pool.random_forest.params.n_estimators=-5",
    ).fit(X, y)
    (broken,) = [c for c in model.fit_info_["candidates"] if c["name"] == "random_forest"]
    assert "n_estimators" in broken["error"] and np.isnan(broken["score"])
    assert model.picked_ == "logreg"


def test_a_refused_llm_budget_fails_the_pick(
    callcenter_task: Task, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool entry may be any method config; one whose LLM call `llm.budget_usd` refuses (here
    $1 a prompt token, a budget of $1) is not a candidate that lost: the pick fails with the
    budget's message instead of choosing among what it could afford."""
    from omegaconf import OmegaConf

    from bench.config import load_llm_config
    from bench.llm import budget as budget_module
    from bench.llm.budget import BudgetReached

    monkeypatch.setattr(budget_module, "_ACTIVE", None)  # this test's refusal stays its own
    monkeypatch.setattr(budget_module, "_PROCESS", None)
    llm = load_llm_config("local_gemma3_270m", key="llm")
    llm.cache, llm.budget_usd, llm.prices.input_per_m = False, 1.0, 1e6
    context = MethodContext.for_task(
        callcenter_task, 0, llm=OmegaConf.to_container(llm, resolve=True), serializer={}
    )
    pool = {
        name: OmegaConf.to_container(compose_config([f"method={name}"]).method)
        for name in ("logreg", "llm_icl")
    }
    model = ClassicalAutoClassifier(pool=pool, max_folds=2, context=context)
    X, y = training_rows(callcenter_task, 16)
    with pytest.raises(BudgetReached, match=r"llm\.budget_usd"):
        model.fit(X, y)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.params.candidates=[logreg,xgbost]", "did you mean 'xgboost'?"),
        ("method.params.candidates=[]", "is not a non-empty list"),
        ("method.params.candidates=[logreg,logreg]", "names a value twice"),
        ("method.params.fallback=svm", "method.params.fallback='svm' is not one of"),
    ],
)
def test_bad_candidates_are_refused_before_the_sweep(override: str, message: str) -> None:
    problems = job_problems(compose_config(["method=classical_auto", override]))
    assert any(message in p and "method.params." in p for p in problems), problems


def test_bench_run_picks_in_a_subprocess(tmp_path: Path) -> None:
    """As a user runs it: the real CLI, the default pool narrowed to three candidates."""
    results = tmp_path / "results"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("bench-run")),
            "method=classical_auto",
            "dataset=callcenter",
            "method.params.candidates=[logreg,lightgbm,xgboost_tuned]",
            "seeds=[0]",
            "n_train=[48]",
            "split.max_test_rows=40",
            f"results_dir={results}",
            "report=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (record,) = ResultsStore(results).records()
    assert (record["status"], record["family"], record["method"]) == (
        "ok",
        "classical",
        "classical_auto",
    )
    details = record["details"]
    assert details["picked"] in ("logreg", "lightgbm", "xgboost_tuned")
    assert set(details["cv_scores"]) == {"logreg", "lightgbm", "xgboost_tuned"}
    assert details["picked"] == max(details["cv_scores"], key=details["cv_scores"].get)

"""LLMICLClassifier on the embedded SmolLM2: an estimator like any other, with real answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.base import clone

from bench.config import compose_config
from bench.data.dataset import Task
from bench.methods.base import MethodContext, build_method
from bench.methods.llm_icl import LLMICLClassifier

CAPITALS = {"France": "Paris", "England": "London"}
TASK = "Name the capital city of the country."


@pytest.fixture
def llm(tmp_path: Path) -> dict[str, Any]:
    cfg = compose_config(["llm=local_smollm2_135m", f"llm.cache_path={tmp_path / 'cache.sqlite'}"])
    return OmegaConf.to_container(cfg.llm, resolve=True)


def capitals(countries: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    return pd.DataFrame({"country": countries}), pd.Series([CAPITALS[c] for c in countries])


def test_clone_keeps_the_parameters_and_drops_learned_state(llm: dict[str, Any]) -> None:
    estimator = LLMICLClassifier(llm=llm, class_labels=("no", "yes"), max_shots=4)
    X, y = capitals(["France", "England"])
    estimator.fit(X, y.map({"Paris": "yes", "London": "no"}))
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()
    assert copy.get_params()["llm"] is not llm  # a deep copy, as clone makes
    assert not hasattr(copy, "classes_") and not hasattr(copy, "prefix_")


def test_predict_proba_columns_follow_classes(llm: dict[str, Any]) -> None:
    """Shots teach France -> Paris and England -> London; the sorted classes_ are
    [London, Paris], so a swapped column would show up as wrong predictions."""
    X, y = capitals(["France", "England"] * 4)
    estimator = LLMICLClassifier(llm=llm, task_description=TASK).fit(X, y)
    assert list(estimator.classes_) == ["London", "Paris"]
    assert estimator.prefix_.count("\nAnswer:") == 8

    X_test, y_test = capitals(["England", "France", "France", "England"])
    proba = estimator.predict_proba(X_test)
    assert proba.shape == (4, 2)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(estimator.classes_[proba.argmax(axis=1)]) == list(y_test)
    np.testing.assert_allclose(proba[0], proba[3])  # identical rows, identical answers

    usage = estimator.usage_
    assert usage["requests"] == 4 and usage["cache_hits"] == 0 and usage["prompt_tokens"] > 0
    assert usage["cached_tokens"] > 0  # every query reuses the shots' KV cache
    assert estimator.fit_info_ == {
        "shots": 8,
        "selection": "first",
        "verbalizer": {"London": "London", "Paris": "Paris"},
        "scoring": {"logprobs": 4},
        "invalid_answers": 0,
        "invalid_example": None,
        "prefix_reuse": round(usage["cached_tokens"] / usage["prompt_tokens"], 4),
    }
    assert 0 < estimator.fit_info_["prefix_reuse"] < 1
    assert list(estimator.predict(X_test)) == list(y_test)
    assert estimator.usage_["cache_hits"] == 4  # predict asked the same questions again


def test_zero_shot_with_class_labels_and_no_rows(llm: dict[str, Any]) -> None:
    X, y = capitals(["France"])
    estimator = LLMICLClassifier(llm=llm, class_labels=("Paris", "London"), task_description=TASK)
    estimator.fit(X.iloc[:0], y.iloc[:0])
    assert list(estimator.classes_) == ["London", "Paris"]
    assert "Answer:" not in estimator.prefix_
    proba = estimator.predict_proba(pd.DataFrame({"country": ["France", "England"]}))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert estimator.fit_info_["shots"] == 0


def test_max_shots_caps_the_prompt(llm: dict[str, Any]) -> None:
    X, y = capitals(["France", "England"] * 10)
    estimator = LLMICLClassifier(llm=llm, max_shots=3).fit(X, y)
    assert estimator.prefix_.count("\nAnswer:") == 3


def test_fit_refuses_what_cannot_work(llm: dict[str, Any]) -> None:
    X, y = capitals(["France", "France"])
    with pytest.raises(ValueError, match="llm config"):
        LLMICLClassifier().fit(X, y)
    with pytest.raises(ValueError, match="at least two classes"):
        LLMICLClassifier(llm=llm).fit(X, y)


def test_the_registry_builds_it_from_the_task_metadata(
    callcenter_task: Task, method_context: Callable[..., MethodContext], llm: dict[str, Any]
) -> None:
    cfg = compose_config(["method=llm_icl"]).method
    context = method_context(callcenter_task, llm=llm)
    estimator = build_method(cfg, context)
    assert isinstance(estimator, LLMICLClassifier)
    assert estimator.class_labels == callcenter_task.class_labels
    assert estimator.max_shots == cfg.params.max_shots
    assert set(estimator.feature_descriptions) == {f.name for f in callcenter_task.features}
    assert clone(estimator).get_params() == estimator.get_params()

"""The LLM estimators' base (bench/methods/llm_base.py): the usage rule the runner relies on,
on the real embedded model, and a report that works before, during and after fitting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from bench.config import compose_config
from bench.data.dataset import Task
from bench.methods.llm_base import LLMEstimator, aligned_proba
from bench.methods.llm_embed import LLMEmbedClassifier
from bench.methods.llm_icl import LLMICLClassifier


@pytest.fixture
def gemma(tmp_path: Path) -> dict[str, Any]:
    """The embedded Gemma 3 270M with the request cache off: every call is a real request."""
    cfg = compose_config(
        ["llm=local_gemma3_270m", "llm.cache=false", f"llm.cache_path={tmp_path / 'c.sqlite'}"]
    )
    return OmegaConf.to_container(cfg.llm, resolve=True)


def _icl(llm: dict[str, Any], task: Task) -> LLMEstimator:
    return LLMICLClassifier(llm=llm, class_labels=task.class_labels, max_shots=4)


def _embed(llm: dict[str, Any], task: Task) -> LLMEstimator:
    return LLMEmbedClassifier(llm=llm, class_labels=task.class_labels)


@pytest.mark.parametrize("build", [_icl, _embed], ids=["llm_icl", "llm_embed"])
def test_usage_is_cumulative_from_the_start_of_fit(
    gemma: dict[str, Any], callcenter_task: Task, build: Callable[..., LLMEstimator]
) -> None:
    """The runner reads the report after fit (one-off cost) and after predicting (everything):
    predicting adds to what fit spent and a later predict adds again; only a refit resets."""
    X, y = callcenter_task.X.iloc[:8], callcenter_task.y.iloc[:8]
    test = callcenter_task.X.iloc[100:103]
    model = build(gemma, callcenter_task)
    assert model.run_report().usage == {}  # never fitted: an empty report, no error

    after_fit = model.fit(X, y).run_report().usage["requests"]
    model.predict_proba(test)
    once = model.run_report().usage["requests"]
    model.predict_proba(test)
    twice = model.run_report().usage["requests"]
    assert once == after_fit + len(test)
    assert twice == once + len(test)

    refit = model.fit(X, y).run_report().usage["requests"]
    assert refit == after_fit  # a new fit starts from zero again


def test_a_report_after_a_failed_fit_keeps_what_was_recorded() -> None:
    class Fails(LLMEstimator):
        def _fit(self, X: pd.DataFrame, y: pd.Series) -> None:
            self.run_ledger().details["tried"] = 3
            raise RuntimeError("the endpoint went away")

    model = Fails()
    with pytest.raises(RuntimeError):
        model.fit(pd.DataFrame({"a": [1, 2]}), ["no", "yes"])
    assert model.run_report().details == {"tried": 3}
    assert model.run_report().usage["requests"] == 0


def test_fit_refuses_a_single_class() -> None:
    class Prior(LLMEstimator):
        def _fit(self, X: pd.DataFrame, y: pd.Series) -> None:
            pass

    with pytest.raises(ValueError, match="needs at least two classes"):
        Prior().fit(pd.DataFrame({"a": [1, 2]}), ["yes", "yes"])


def test_a_sub_models_columns_follow_classes() -> None:
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    classes = np.array(["a", "b", "c"], dtype=object)
    np.testing.assert_allclose(
        aligned_proba(proba, ["c", "a"], classes), [[0.8, 0, 0.2], [0.4, 0, 0.6]]
    )
    with pytest.raises(ValueError, match="unknown class 'd'"):
        aligned_proba(proba, ["d", "a"], classes)


def test_a_long_pass_says_how_far_it_got(caplog: pytest.LogCaptureFixture) -> None:
    from bench.methods.llm_base import RowProgress

    progress = RowProgress("llm_icl: %d/%d rows labelled", total=10, every_s=0.0)
    with caplog.at_level("INFO", logger="bench"):
        progress.at(0)  # nothing done yet: no pace to tell
        progress.at(4)
    (line,) = caplog.messages
    assert line.startswith("llm_icl: 4/10 rows labelled, ") and "s to go" in line

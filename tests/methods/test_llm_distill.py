"""LLMDistillClassifier on the embedded SmolLM2: the teacher labels the unlabelled rows, the
LightGBM student learns them, and what it cost per 1,000 labelled rows is recorded."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.base import clone

from bench.config import compose_config
from bench.data.dataset import Task
from bench.data.splits import make_split
from bench.methods.base import MethodContext, build_method, method_kind
from bench.methods.classical import ClassicalClassifier
from bench.methods.llm_distill import LLMDistillClassifier
from bench.methods.llm_icl import LLMICLClassifier

LABELLED, UNLABELLED = 4, 6


def distiller(
    task: Task,
    context: Callable[..., MethodContext],
    cache: Path,
    *overrides: str,
) -> LLMDistillClassifier:
    """llm_distill as the registry builds it for `task`, on SmolLM2 with one thread."""
    cfg = compose_config(
        [
            "method=llm_distill",
            "llm=local_smollm2_135m",
            "llm.n_threads=1",
            f"llm.cache_path={cache}",
            *overrides,
        ]
    )
    resolved = context(
        task,
        llm=OmegaConf.to_container(cfg.llm, resolve=True),
        serializer=OmegaConf.to_container(cfg.serializer, resolve=True),
    )
    return build_method(cfg.method, resolved)


@dataclasses.dataclass(frozen=True)
class Fitted:
    model: LLMDistillClassifier
    X: pd.DataFrame
    X_unlabelled: pd.DataFrame
    X_test: pd.DataFrame


@pytest.fixture(scope="module")
def fitted(
    callcenter_task: Task,
    method_context: Callable[..., MethodContext],
    tmp_path_factory: pytest.TempPathFactory,
) -> Fitted:
    """Four labelled callcenter rows teach the teacher; it labels the next six of the pool."""
    task = callcenter_task
    split = make_split(task.y, task.name, 0, max_test_rows=5)
    labelled = split.pool_order[:LABELLED]
    unlabelled = split.pool_order[LABELLED : LABELLED + UNLABELLED]
    cache = tmp_path_factory.mktemp("distill") / "c.sqlite"
    model = distiller(task, method_context, cache, f"method.params.n_unlabelled={UNLABELLED}")
    X, y = task.X.iloc[labelled], task.y.iloc[labelled]
    model.fit(X, y, X_unlabelled=task.X.iloc[unlabelled])
    return Fitted(model, X, task.X.iloc[unlabelled], task.X.iloc[split.test_rows])


def test_the_teacher_labels_every_unlabelled_row(fitted: Fitted, callcenter_task: Task) -> None:
    model = fitted.model
    assert len(model.silver_labels_) == UNLABELLED
    # Learned state only in fit: the teacher parameter stays unfitted, its clone learned.
    assert not hasattr(model.teacher, "prefix_") and hasattr(model.teacher_, "prefix_")
    assert set(model.silver_labels_) <= set(callcenter_task.class_labels)
    usage = model.usage_
    assert usage["requests"] == UNLABELLED  # one question per unlabelled row
    assert usage["prompt_tokens"] > 0 and usage["llm_seconds"] > 0
    info = model.fit_info_
    assert info["unlabelled_rows"] == UNLABELLED
    assert info["teacher"]["shots"] == LABELLED
    assert info["teacher"]["scoring"] == {"logprobs": UNLABELLED}
    counts = pd.Series(model.silver_labels_).value_counts().to_dict()
    assert info["silver_label_counts"] == counts
    assert sum(info["silver_label_counts"].values()) == UNLABELLED


def test_the_labelling_cost_is_per_thousand_rows(fitted: Fitted) -> None:
    info, usage = fitted.model.fit_info_, fitted.model.usage_
    assert info["labelling_usd_per_1k_rows"] == 0.0  # the embedded model is free
    assert info["labelling_seconds_per_1k_rows"] == pytest.approx(
        usage["llm_seconds"] * 1000 / UNLABELLED
    )


def test_the_student_learns_true_and_silver_labels(fitted: Fitted) -> None:
    model = fitted.model
    assert model.fit_info_["student_rows"] == LABELLED + UNLABELLED
    assert isinstance(model.student_, ClassicalClassifier)
    assert model.student_.model == "lightgbm"
    proba = model.predict_proba(fitted.X_test)
    assert proba.shape == (len(fitted.X_test), len(model.classes_))
    assert list(model.classes_) == ["no", "yes"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # The student, not the LLM, predicts: no further requests.
    assert model.usage_["requests"] == UNLABELLED


def test_predict_gives_the_most_probable_class(fitted: Fitted) -> None:
    model = fitted.model
    expected = model.classes_[model.predict_proba(fitted.X_test).argmax(axis=1)]
    assert list(model.predict(fitted.X_test)) == list(expected)


def test_fit_without_unlabelled_rows_is_a_clear_error(
    callcenter_task: Task, method_context: Callable[..., MethodContext], tmp_path: Path
) -> None:
    model = distiller(callcenter_task, method_context, tmp_path / "c.sqlite")
    X, y = callcenter_task.X.iloc[:8], callcenter_task.y.iloc[:8]
    for unlabelled in (None, X.iloc[:0]):
        with pytest.raises(ValueError, match="needs unlabelled rows") as error:
            model.fit(X, y, X_unlabelled=unlabelled)
        assert "X_unlabelled" in str(error.value)
        assert "method.params.n_unlabelled" in str(error.value)
    with pytest.raises(ValueError, match="needs unlabelled rows"):
        model.fit(X, y)  # a plain fit(X, y), as a generic caller would make
    assert not hasattr(model, "silver_labels_")


def test_a_bad_teacher_shots_setting_names_the_config_key(
    callcenter_task: Task, method_context: Callable[..., MethodContext], tmp_path: Path
) -> None:
    # (bench-run refuses it before the sweep; an estimator built by hand refuses it in fit)
    model = distiller(callcenter_task, method_context, tmp_path / "c.sqlite")
    model.set_params(teacher_shots="all")
    X = callcenter_task.X.iloc[:8]
    with pytest.raises(ValueError, match=r"method\.params\.teacher_shots must be 'train' or"):
        model.fit(X, callcenter_task.y.iloc[:8], X_unlabelled=X)


def test_clone_and_the_registry_build_it_from_the_task_metadata(
    callcenter_task: Task, method_context: Callable[..., MethodContext], tmp_path: Path
) -> None:
    model = distiller(callcenter_task, method_context, tmp_path / "c.sqlite")
    cfg = compose_config(["method=llm_distill"]).method
    assert isinstance(model, LLMDistillClassifier)
    # The teacher is an estimator parameter: the ICL classifier with the shot settings.
    assert isinstance(model.teacher, LLMICLClassifier)
    assert model.teacher.class_labels == callcenter_task.class_labels
    assert model.teacher.max_shots == cfg.params.max_shots
    assert model.teacher.selection == cfg.params.selection
    assert model.teacher.llm["model"] == "SmolLM2-135M-Instruct"
    assert model.n_unlabelled == cfg.params.n_unlabelled
    assert model.student == dict(cfg.params.student)
    assert method_kind("llm_distill").tags.zero_shot
    assert method_kind("llm_distill").tags.wants_unlabelled
    copy = clone(model)
    assert copy.get_params()["teacher"] is not model.teacher  # cloned, not shared
    assert not hasattr(copy, "student_")

"""LLM distillation: the LLM labels unlabelled rows ("silver labels"), a small model learns them.

The runner hands `fit` the run's labelled rows and `n_unlabelled` further rows of the training
pool *without* their labels (``X_unlabelled``). The in-context classifier
(bench/methods/llm_icl.py) labels them, zero-shot or with the labelled rows as shots; a LightGBM
student is trained on the silver labels (plus the true labels of the labelled rows, unless
`include_true_labels` is off) and is what predicts the test rows. This is the workflow "label 1k
rows with an LLM, distil into a cheap model".

Recorded: the silver labels (`silver_labels_`; the runner hands their hidden true labels to
`unlabelled_details` after the run, which reports ``details.silver_accuracy``), the labelling
cost per 1,000 rows, and the LLM usage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone

from bench.llm.prompts import PROMPT_VERSION
from bench.methods.base import Choice, MethodContext, MethodKind, MethodTags, Range, keep_params
from bench.methods.classical import ClassicalClassifier
from bench.methods.llm_base import LLMEstimator, aligned_proba
from bench.methods.llm_icl import LLMICLClassifier, prompt_context
from bench.methods.shots import SELECTIONS

__all__ = ["LLM_DISTILL", "LLMDistillClassifier", "build_llm_distill"]


class LLMDistillClassifier(LLMEstimator):
    """A LightGBM student trained on the labels an LLM teacher gives unlabelled rows.

    `teacher` is an unfitted in-context classifier (`LLMICLClassifier`); `fit` clones it, as
    scikit-learn meta-estimators do, so the estimator's parameters are never changed by fitting.
    """

    def __init__(
        self,
        teacher: LLMICLClassifier | None = None,
        n_unlabelled: int = 200,
        teacher_shots: str = "train",
        include_true_labels: bool = True,
        student: dict[str, Any] | None = None,
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        keep_params(self, locals())

    def fit(
        self, X: pd.DataFrame, y: Any, X_unlabelled: pd.DataFrame | None = None
    ) -> LLMDistillClassifier:
        """Label `X_unlabelled` with the teacher, train the student (see the class docstring)."""
        return super().fit(X, y, X_unlabelled=X_unlabelled)

    def _check_params(self) -> None:
        if self.teacher is None:
            raise ValueError("LLMDistillClassifier needs a teacher (an LLMICLClassifier)")
        if self.teacher_shots not in ("train", "zero"):
            raise ValueError(
                f"method.params.teacher_shots must be 'train' or 'zero', not '{self.teacher_shots}'"
            )

    def _declared_classes(self) -> tuple[str, ...]:
        return self.teacher.class_labels

    def _fit(
        self, X: pd.DataFrame, labels: pd.Series, X_unlabelled: pd.DataFrame | None = None
    ) -> None:
        if X_unlabelled is None or len(X_unlabelled) == 0:
            raise ValueError(
                "LLMDistillClassifier.fit needs unlabelled rows (X_unlabelled); bench-run takes "
                "method.params.n_unlabelled of them from the training pool"
            )
        ledger = self.run_ledger()
        teacher = clone(self.teacher)
        if self.teacher_shots == "zero":
            teacher.set_params(max_shots=0)
        self.teacher_ = teacher.fit(X, labels)
        ledger.parts["teacher"] = teacher.run_ledger()  # its usage is the labelling cost
        silver_proba = teacher.predict_proba(X_unlabelled)  # fails past llm.max_invalid_share
        guessed = teacher.run_ledger().details.get("guessed")
        if guessed:  # shown with the run (log line, report), not only under `teacher`
            ledger.details["guessed"] = f"silver labels: {guessed}"
        self.silver_labels_ = teacher.classes_[silver_proba.argmax(axis=1)]

        train_X, train_y = X_unlabelled, pd.Series(self.silver_labels_, dtype=object)
        if self.include_true_labels and len(X):
            train_X = pd.concat([X, X_unlabelled], ignore_index=True)
            train_y = pd.concat([labels, train_y], ignore_index=True)
        if train_y.nunique() < 2:
            raise ValueError(
                f"the student has a single class to learn ('{train_y.iloc[0]}'): the LLM gave "
                f"every one of {len(X_unlabelled)} unlabelled rows the same label"
            )
        self.student_ = ClassicalClassifier(
            model="lightgbm",
            params={"verbose": -1, **(self.student or {})},
            random_state=self.seed,
            n_jobs=self.n_jobs,
        ).fit(train_X, train_y)
        per_1k = 1000 / len(X_unlabelled)
        counts = pd.Series(self.silver_labels_).value_counts()
        labelling = ledger.total_usage()
        ledger.details.update(
            unlabelled_rows=len(X_unlabelled),
            silver_label_counts={str(k): int(v) for k, v in counts.items()},
            student_rows=len(train_X),
            labelling_usd_per_1k_rows=labelling.usd * per_1k,
            labelling_seconds_per_1k_rows=labelling.llm_seconds * per_1k,
        )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The student's probabilities, with a zero column for a class it never saw."""
        return aligned_proba(self.student_.predict_proba(X), self.student_.classes_, self.classes_)

    def unlabelled_details(self, y_unlabelled: np.ndarray) -> dict[str, Any]:
        """Silver-label accuracy, scored by the runner against labels this method never saw."""
        truth = np.asarray([str(v) for v in y_unlabelled], dtype=object)
        return {"silver_accuracy": float(np.mean(self.silver_labels_ == truth))}


def build_llm_distill(cfg: DictConfig, context: MethodContext) -> LLMDistillClassifier:
    """METHODS registry entry for `kind: llm_distill`: the teacher takes the shot settings."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    teacher = LLMICLClassifier(
        **prompt_context(context),
        max_shots=params.pop("max_shots", 64),
        selection=params.pop("selection", "stratified"),
    )
    return LLMDistillClassifier(teacher=teacher, n_jobs=context.n_jobs, seed=context.seed, **params)


LLM_DISTILL = MethodKind(
    build=build_llm_distill,
    tags=MethodTags(
        zero_shot=True,  # with zero labelled rows the teacher labels zero-shot
        uses_llm=True,
        serializes_rows=True,
        wants_unlabelled=True,
        prompt_version=PROMPT_VERSION,
    ),
    param_ranges={
        "n_unlabelled": Range(low=1),
        "max_shots": Range(low=0, allow_none=True),
        "teacher_shots": Choice(("train", "zero")),
        "selection": Choice(SELECTIONS),
    },
)

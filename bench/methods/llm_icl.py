"""LLM in-context classification: k labelled training rows in the prompt, then the query row.

This is the first consumer of the LLM layer and deliberately plain: rows are written as
``name: value`` lines, the first `max_shots` rows of the (stratified, nested) training subset are
the shots, and each class's probability is the model's probability of ``" <class>"`` after
``Answer:``. The shots come first and the query last, so every query shares the same prompt
prefix and a serving engine (or the in-process KV cache) evaluates it once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.base import BaseEstimator, ClassifierMixin

from bench.llm.backend import Usage, make_backend
from bench.methods.base import MethodContext

__all__ = ["LLMICLClassifier", "build_llm_icl"]


class LLMICLClassifier(ClassifierMixin, BaseEstimator):
    """Few-shot (or zero-shot) classification by an LLM; an estimator like any other.

    `llm` is an llm config (see conf/llm/); `class_labels` fixes the label set so that zero
    training rows (zero-shot) still has classes to score.
    """

    supports_zero_shot = True

    def __init__(
        self,
        llm: dict[str, Any] | None = None,
        class_labels: tuple[str, ...] = (),
        max_shots: int = 32,
        task_description: str = "",
        feature_descriptions: dict[str, str] | None = None,
        batch_size: int = 64,
    ) -> None:
        self.llm = llm
        self.class_labels = class_labels
        self.max_shots = max_shots
        self.task_description = task_description
        self.feature_descriptions = feature_descriptions
        self.batch_size = batch_size

    def fit(self, X: pd.DataFrame, y: Any) -> LLMICLClassifier:
        if not self.llm:
            raise ValueError("LLMICLClassifier needs an llm config (the `llm` parameter)")
        labels = [str(v) for v in np.asarray(y)]
        self.classes_ = np.array(sorted(set(self.class_labels) | set(labels)), dtype=object)
        if len(self.classes_) < 2:
            raise ValueError("LLMICLClassifier needs at least two classes (class_labels or y)")
        shots = X.iloc[: self.max_shots]
        self.prefix_ = self._prefix(shots, labels[: self.max_shots])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        backend = make_backend(self.llm)
        answers = [f" {label}" for label in self.classes_]
        usage, methods, invalid = Usage(), Counter(), 0
        proba = np.zeros((len(X), len(self.classes_)))
        try:
            for start in range(0, len(X), self.batch_size):
                rows = X.iloc[start : start + self.batch_size]
                prompts = [
                    self.prefix_ + _row_text(row) + "\nAnswer:" for _, row in rows.iterrows()
                ]
                for i, result in enumerate(backend.score_many(prompts, answers), start=start):
                    proba[i] = [result.probs[a] for a in answers]
                    usage += result.usage
                    methods[result.method] += 1
                    invalid += not result.valid
        finally:
            backend.close()
        self.usage_ = usage.as_dict()
        self.fit_info_ = {
            "shots": self.prefix_.count("\nAnswer:"),
            "scoring": dict(methods),
            "invalid_answers": invalid,
        }
        return proba

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def _prefix(self, shots: pd.DataFrame, labels: list[str]) -> str:
        parts = []
        if self.task_description:
            parts.append(" ".join(self.task_description.split()))
        if self.feature_descriptions:
            parts.append(
                "Columns:\n"
                + "\n".join(f"- {k}: {v}" for k, v in self.feature_descriptions.items())
            )
        parts.append(f"Possible answers: {', '.join(self.classes_)}.")
        for (_, row), label in zip(shots.iterrows(), labels, strict=True):
            parts.append(_row_text(row) + f"\nAnswer: {label}")
        return "\n\n".join(parts) + "\n\n"


def _row_text(row: pd.Series) -> str:
    return "\n".join(f"{name}: {_value(value)}" for name, value in row.items())


def _value(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def build_llm_icl(cfg: DictConfig, context: MethodContext) -> LLMICLClassifier:
    """METHODS registry entry for `kind: llm_icl`."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    return LLMICLClassifier(
        llm=context.extra["llm"],
        class_labels=context.class_labels,
        task_description=context.description,
        feature_descriptions={f.name: f.description for f in context.features},
        **params,
    )

"""What every method is: a scikit-learn-style classifier built from its config.

A method estimator follows scikit-learn's conventions: ``__init__`` stores keyword arguments,
``fit(X, y)`` takes the task's DataFrame (mixed types, NaNs) and string labels and returns
``self``, ``predict_proba(X)`` returns columns in the order of ``classes_``. Two optional
attributes feed the results store: ``fit_info_`` (a JSON-able dict, e.g. the tuned
hyper-parameters) and ``usage_`` (LLM requests, tokens and cost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from bench.data.dataset import FeatureSpec
from bench.registry import METHODS

__all__ = ["MethodContext", "TabularMethod", "build_method"]


class TabularMethod(Protocol):
    classes_: np.ndarray

    def fit(self, X: pd.DataFrame, y: pd.Series) -> TabularMethod: ...

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class MethodContext:
    """What a method may know besides its own config: the task's metadata, never its data."""

    dataset: str
    features: tuple[FeatureSpec, ...]
    class_labels: tuple[str, ...]
    positive_label: str | None
    description: str
    target: str
    seed: int
    n_jobs: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # llm / serializer configs, later


def build_method(cfg: DictConfig, context: MethodContext) -> TabularMethod:
    """An unfitted estimator for `cfg` (a method config), looked up in the METHODS registry."""
    factory = METHODS.get(cfg.kind, key="method.kind")
    return factory(cfg, context)

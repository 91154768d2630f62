"""The method contract: what a method is, what it can do, and what it reports after a run.

A method is three things, and the runner reads nothing else:

1. **An estimator** following scikit-learn's conventions: ``__init__`` stores keyword arguments,
   ``fit(X, y)`` takes the task's DataFrame (mixed types, NaNs) and string labels and returns
   ``self``, ``predict_proba(X)`` returns columns in the order of ``classes_``.
2. **Tags** (`MethodTags`): what the method *kind* can do, declared as data next to its builder in
   a `MethodKind` -- zero-shot support, whether it calls an LLM, writes rows into prompts, or
   learns from unlabelled rows. Tags decide which configs are part of a run's identity and what the
   runner hands the method, so they are known before any data is loaded.
3. **A report** (`run_report() -> MethodReport`, optional): details (e.g. the tuned
   hyper-parameters), LLM usage and artifacts (files saved next to the run record). The runner
   calls it after predicting, and after a failure too, so that what was spent is recorded; it must
   therefore work on a partly fitted estimator. A method that raises `bench.errors.MethodFailed`
   hands its report with the error instead. **Usage is cumulative from the start of `fit`**:
   `fit` resets it, and each LLM call of `fit` and of every later `predict_proba` adds to it.
   The runner reads the report right after `fit` (the one-off cost, recorded as ``fit_*``) and
   after predicting, and charges the difference to the predictions. The LLM methods share
   this through `bench.methods.llm_base.LLMEstimator`, whose tests hold the rule.

A method whose tags say ``wants_unlabelled`` also gets ``fit(X, y, X_unlabelled=...)``
(``method.params.n_unlabelled`` further rows of the training pool, without labels) and may
implement ``unlabelled_details(y_unlabelled)``: the runner calls it with those rows' true labels
*after* predicting, so that a method can be scored on what it must not see (distillation's
silver-label accuracy) without ever holding the labels while it fits.

Example: a third-party method in one module, registered by ``kind: my_module:MY_PRIOR`` in a
method YAML (README, "Add a method")::

    class ClassPrior(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_, counts = np.unique(np.asarray(y), return_counts=True)
            self.prior_ = counts / counts.sum()
            return self

        def predict_proba(self, X):
            return np.tile(self.prior_, (len(X), 1))

        def run_report(self):
            return MethodReport(details={"prior": self.prior_.tolist()})

    MY_PRIOR = MethodKind(build=lambda cfg, context: ClassPrior(), tags=MethodTags())
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from bench.data.dataset import FeatureSpec, Task
from bench.registry import METHODS

__all__ = [
    "Choice",
    "InvalidParameterError",
    "MethodContext",
    "MethodKind",
    "MethodReport",
    "MethodTags",
    "Range",
    "ReportsRun",
    "TabularMethod",
    "build_method",
    "keep_params",
    "method_kind",
    "method_report",
]


@dataclass(frozen=True)
class MethodTags:
    """What a method kind can do (in the spirit of scikit-learn's estimator tags)."""

    zero_shot: bool = False  # predicts with zero training rows (n_train=0)
    uses_llm: bool = False  # calls an LLM: the `llm` config is part of the run and its context
    serializes_rows: bool = False  # writes rows into prompts: so is the `serializer` config
    wants_unlabelled: bool = False  # fit(X, y, X_unlabelled=...) with method.params.n_unlabelled
    prompt_version: str | None = None  # part of the run id: a new prompt invalidates old runs


@dataclass(frozen=True)
class MethodReport:
    """What a method reports after a run; every value must be JSON-able."""

    details: dict[str, Any] = field(default_factory=dict)  # record's `details`
    usage: dict[str, Any] = field(default_factory=dict)  # LLM usage (bench.llm.backend.Usage)
    artifacts: dict[str, str] = field(default_factory=dict)  # file name -> text, kept by the store
    # (wall, CPU) seconds predict_proba spent on diagnostics that are not predictions (e.g.
    # explanations): the runner takes them out of predict_s, so the cost per prediction is the
    # predictions' own
    diagnostic_seconds: tuple[float, float] = (0.0, 0.0)


class TabularMethod(Protocol):
    """The estimator half of the contract (see the module docstring)."""

    classes_: np.ndarray

    def fit(self, X: pd.DataFrame, y: pd.Series, **fit_params: Any) -> TabularMethod: ...

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


@runtime_checkable
class ReportsRun(Protocol):
    """A method that reports details, usage or artifacts (optional part of the contract)."""

    def run_report(self) -> MethodReport: ...


@runtime_checkable
class ScoresUnlabelled(Protocol):
    """A `wants_unlabelled` method scored on the unlabelled rows' hidden labels after the run."""

    def unlabelled_details(self, y_unlabelled: np.ndarray) -> dict[str, Any]: ...


def keep_params(estimator: object, params: dict[str, Any]) -> None:
    """scikit-learn's `__init__` rule in one place: every keyword argument kept as given, under
    its own name, nothing else (call as `keep_params(self, locals())` first thing in __init__)."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def method_report(estimator: object) -> MethodReport:
    """The estimator's report; an empty one for a method that reports nothing."""
    return estimator.run_report() if isinstance(estimator, ReportsRun) else MethodReport()


def unlabelled_details(estimator: object, y_unlabelled: np.ndarray) -> dict[str, Any]:
    """Details computed from labels the method never saw (empty if it does not ask for them)."""
    if isinstance(estimator, ScoresUnlabelled):
        return dict(estimator.unlabelled_details(y_unlabelled))
    return {}


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
    llm: dict[str, Any] | None = None  # the resolved llm config, for methods tagged uses_llm
    serializer: dict[str, Any] | None = None  # the serializer config, for serializes_rows

    @classmethod
    def for_task(
        cls,
        task: Task,
        seed: int,
        n_jobs: int = 1,
        llm: dict[str, Any] | None = None,
        serializer: dict[str, Any] | None = None,
    ) -> MethodContext:
        """The one way to build a context: from a task's metadata (the runner and tests)."""
        return cls(
            dataset=task.name,
            features=task.features,
            class_labels=task.class_labels,
            positive_label=task.positive_label,
            description=task.description,
            target=task.target,
            seed=seed,
            n_jobs=n_jobs,
            llm=llm,
            serializer=serializer,
        )


MethodBuilder = Callable[[DictConfig, MethodContext], TabularMethod]


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric method parameter (`method.params.KEY`)."""

    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    integer: bool = True
    allow_none: bool = False  # null means "no limit" or "the default"

    def problem(self, key: str, value: Any) -> str | None:
        """Why `value` is not allowed for `key`, or None when it is."""
        if value is None:
            return None if self.allow_none else f"{key} must be set, not null ({self.describe()})"
        number_types = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types):
            return f"{key}={value!r} is not {self.describe()}"
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            return f"{key}={value} is out of range: it must be {self.describe()}"
        return None

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        bounds = []
        if self.low is not None:
            bounds.append(f">= {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        text = f"{kind} {' and '.join(bounds)}".strip()
        return text + (" (or null)" if self.allow_none else "")


@dataclass(frozen=True)
class Choice:
    """The allowed values of a setting with a fixed set of values (`method.params.head`,
    `serializer.numbers`, ...); declared and checked like a `Range`."""

    values: tuple[str, ...]
    allow_none: bool = False  # null means "the default"
    imports: bool = False  # a "module:attr" import path is accepted too (a registry entry)

    def problem(self, key: str, value: Any) -> str | None:
        """Why `value` is not allowed for `key` (with the closest allowed value), or None."""
        if value is None:
            return None if self.allow_none else f"{key} must be set, not null ({self.describe()})"
        if value in self.values or (self.imports and isinstance(value, str) and ":" in value):
            return None
        message = f"{key}={value!r} is not {self.describe()}"
        close = difflib.get_close_matches(str(value), self.values, n=1, cutoff=0.5)
        return message + (f"; did you mean {close[0]!r}?" if close else "")

    def describe(self) -> str:
        text = f"one of {', '.join(self.values)}"
        text += " (or a 'module:attr' import path)" if self.imports else ""
        return text + (" (or null)" if self.allow_none else "")


_ABSENT = object()  # a parameter the config does not set (None is a value: "no limit")


class InvalidParameterError(ValueError):
    """A method parameter outside its declared values; the message names the key."""


@dataclass(frozen=True)
class MethodKind:
    """A registered method kind: how to build its estimator, what it can do, and the allowed
    values of its parameters: numeric ranges and fixed choices (checked before anything runs)."""

    build: MethodBuilder
    tags: MethodTags = field(default_factory=MethodTags)
    param_ranges: dict[str, Range | Choice] = field(default_factory=dict)

    def check_params(self, params: Any) -> list[str]:
        """Problems with `params` (a method config's `params`), each naming its key; a dotted
        key (`search.metric`) names a setting inside a nested group."""
        found = []
        for key, allowed in self.param_ranges.items():
            node: Any = params or {}
            for part in key.split("."):
                node = node.get(part, _ABSENT) if hasattr(node, "get") else _ABSENT
            if node is not _ABSENT:
                problem = allowed.problem(f"method.params.{key}", node)
                found += [problem] if problem is not None else []
        return found


def method_kind(kind: str) -> MethodKind:
    """The `MethodKind` registered as `kind` (or imported from "module:attr").

    A plain builder function ``(cfg, context) -> estimator`` is accepted too, with default tags.
    """
    found = METHODS.get(kind, key="method.kind")
    if isinstance(found, MethodKind):
        return found
    if callable(found):
        return MethodKind(build=found)
    raise TypeError(
        f"method.kind '{kind}' names {type(found).__name__}, not a bench.methods.base.MethodKind "
        "or a builder function (cfg, context) -> estimator"
    )


def build_method(cfg: DictConfig, context: MethodContext) -> TabularMethod:
    """An unfitted estimator for `cfg` (a method config), looked up in the METHODS registry;
    a parameter outside its declared values raises `InvalidParameterError`."""
    kind = method_kind(cfg.kind)
    problems = kind.check_params(cfg.get("params"))
    if problems:
        raise InvalidParameterError("; ".join(problems))
    return kind.build(cfg, context)

"""One base for the estimators that call an LLM: `LLMEstimator` and its `RunLedger`.

`llm_icl`, `llm_icl_tuned`, `llm_codegen`, `llm_embed` and `llm_distill` share what a method
must do besides its own idea (bench/methods/base.py): take string labels, fix ``classes_``,
predict the most probable class, put a sub-model's columns in the order of ``classes_``, and
report what was spent. As TabArena's model wrapper does, the base's `fit` does the common part
and calls the subclass's `_fit` hook:

* ``fit(X, y, **fit_params)`` opens a new `RunLedger` (usage back to zero), checks the
  parameters (`_check_params`), turns the labels into strings, sets ``classes_`` (the declared
  `_declared_classes` together with the labels seen, sorted) and calls ``_fit(X, labels, ...)``;
* ``predict`` is the argmax of ``predict_proba``;
* ``run_report`` is assembled from the ledger alone, so it works on a partly fitted estimator
  (the runner calls it after a failure too) and on one never fitted (an empty report).

**Answers that name no class** (a refusal, a word where a letter was asked) are scored as a
uniform guess and counted in the ledger (`RunLedger.tally`). `LLMEstimator.check_answers` fails
the run, with the count and an example, when their share passes ``llm.max_invalid_share``, so
that a model that answers nothing usable never yields an ``ok`` run of coin flips; below the
limit ``details.guessed`` says how many were guessed and how.

**The usage rule the runner relies on**: the usage an LLM estimator reports is cumulative from
the start of its latest `fit`. `fit` resets it; every LLM call of `fit` and of every later
`predict_proba` adds to it; nothing else resets it. The runner reads the report right after
`fit` (the one-off cost, recorded as ``fit_*``) and after predicting (everything), and takes the
difference as the marginal cost of the predictions.

Learned state (attributes ending in ``_``) is set in `fit` only; `predict_proba` adds to the
ledger (usage, counts of how answers were scored, explanations) and never resets it.

>>> import pandas as pd
>>> class Prior(LLMEstimator):
...     def _fit(self, X, y):
...         self.prior_ = y.value_counts(normalize=True).reindex(self.classes_).to_numpy()
...     def predict_proba(self, X):
...         return np.tile(self.prior_, (len(X), 1))
>>> model = Prior().fit(pd.DataFrame({"a": [1, 2, 3]}), ["no", "yes", "yes"])
>>> list(model.classes_), model.predict(pd.DataFrame({"a": [4]})).tolist()
(['no', 'yes'], ['yes'])
>>> model.run_report().usage["requests"]
0
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from bench.llm.backend import Usage
from bench.methods.base import MethodReport

__all__ = [
    "DEFAULT_MAX_INVALID_SHARE",
    "LLMEstimator",
    "RowProgress",
    "RunLedger",
    "UnreadableAnswersError",
    "aligned_proba",
    "as_labels",
    "require_llm",
]

log = logging.getLogger("bench")

DEFAULT_MAX_INVALID_SHARE = 0.2  # llm.max_invalid_share (bench/config.py LLMConfig)
_EXAMPLE_CHARS = 120  # an example answer is cut to this length in messages
PROGRESS_EVERY_S = 60.0  # RowProgress: seconds between progress lines of a long pass


class UnreadableAnswersError(ValueError):
    """Too many of a run's LLM answers named no class (``llm.max_invalid_share``)."""


@dataclass
class RunLedger:
    """What an LLM estimator has spent and noted since the start of its latest `fit`.

    `parts` are the ledgers of sub-estimators it fitted (a refitted prompt, a teacher): their
    usage, artifacts and diagnostic seconds add to this one's, and their details are shown at
    the top level (key "") or under their key.
    """

    usage: Usage = field(default_factory=Usage)
    details: dict[str, Any] = field(default_factory=dict)  # the record's `details`
    artifacts: dict[str, str] = field(default_factory=dict)  # file name -> text
    # (wall, CPU) seconds of predict_proba spent on diagnostics, not predictions (explanations)
    diagnostic_seconds: tuple[float, float] = (0.0, 0.0)
    parts: dict[str, RunLedger] = field(default_factory=dict)

    def tally(
        self, method: str, valid: bool, answer: str | None = None, unparsed: int | None = None
    ) -> None:
        """Count one answer: how it was scored (``details.scoring``: logprobs, verbalized,
        sampled or generation, bench/llm/scoring.py) and, when it named no class, as invalid
        (``details.invalid_answers``, the first such answer kept as an example in
        ``details.invalid_example``). An answer read from generated text also adds its
        generations that could not be parsed (`unparsed`; default: 1 if invalid) to
        ``details.unparsed_answers`` (a sampled row may parse 7 draws of 8 and stay valid)."""
        scoring = self.details.setdefault("scoring", {})
        scoring[method] = scoring.get(method, 0) + 1
        self.details["invalid_answers"] = self.details.get("invalid_answers", 0) + (not valid)
        if method != "logprobs":  # logprob runs keep the record they always had
            unread = int(not valid) if unparsed is None else unparsed
            self.details["unparsed_answers"] = self.details.get("unparsed_answers", 0) + unread
        if not valid and self.details.get("invalid_example") is None and answer is not None:
            self.details["invalid_example"] = _shorten(answer)

    def answers(self) -> tuple[int, int]:
        """(answers that named no class, answers counted) since the start of the fit."""
        return self.details.get("invalid_answers", 0), sum(self.details.get("scoring", {}).values())

    def check_answers(self, limit: float, n_classes: int) -> None:
        """Fail when more than `limit` of the answers named no class; otherwise, if any did,
        note in ``details.guessed`` how many were guessed and how."""
        invalid, total = self.answers()
        if not total:
            return
        example = self.details.get("invalid_example")
        shown = f"; e.g. {example!r}" if example is not None else ""
        if invalid / total > limit:
            raise UnreadableAnswersError(
                f"{invalid} of {total} answers could not be read as a class "
                f"(limit llm.max_invalid_share={limit:g}){shown}"
            )
        if invalid:
            self.details["guessed"] = (
                f"{invalid} of {total} answers could not be read as a class and were scored "
                f"as a uniform guess (1/{n_classes} each class){shown}"
            )

    def add_diagnostic_seconds(self, wall: float, cpu: float) -> None:
        self.diagnostic_seconds = (
            self.diagnostic_seconds[0] + wall,
            self.diagnostic_seconds[1] + cpu,
        )

    def total_usage(self) -> Usage:
        """This ledger's usage with its parts'."""
        return sum((part.total_usage() for part in self.parts.values()), Usage()) + self.usage

    def report(self) -> MethodReport:
        """The method report: own details and its parts', all usage, artifacts and seconds."""
        details: dict[str, Any] = {}
        artifacts: dict[str, str] = {}
        wall, cpu = self.diagnostic_seconds
        for key, part in self.parts.items():
            sub = part.report()
            if key:
                details[key] = sub.details
            else:
                details.update(sub.details)
            artifacts.update(sub.artifacts)
            wall, cpu = wall + sub.diagnostic_seconds[0], cpu + sub.diagnostic_seconds[1]
        details.update(self.details)
        artifacts.update(self.artifacts)
        return MethodReport(
            details=details,
            usage=self.total_usage().as_dict(),
            artifacts=artifacts,
            diagnostic_seconds=(wall, cpu),
        )


class LLMEstimator(ClassifierMixin, BaseEstimator):
    """The base of the LLM methods' estimators (see the module docstring for the rules).

    A subclass stores its keyword arguments in ``__init__`` (scikit-learn's rule), implements
    `_fit` and `predict_proba`, and may override `_check_params` (refuse settings before any
    row is paid for) and `_declared_classes` (classes known without training rows, so that
    zero-shot has classes to score). It records through ``self._ledger``: ``usage`` (add each
    result's usage), ``details`` and ``artifacts``.
    """

    # No ledger until the first fit: the report of an estimator never fitted is empty.
    _ledger: RunLedger | None = None

    def fit(self, X: pd.DataFrame, y: Any, **fit_params: Any) -> LLMEstimator:
        self._ledger = RunLedger()  # usage is cumulative from here (module docstring)
        self._check_params()
        labels = as_labels(y, X.index)
        known = {str(c) for c in self._declared_classes()}
        self.classes_ = np.array(sorted(known | set(labels)), dtype=object)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least two classes (class_labels or y)"
            )
        self._fit(X, labels, **fit_params)
        return self

    def _fit(self, X: pd.DataFrame, y: pd.Series, **fit_params: Any) -> None:
        """Learn from `X` and its labels `y` (strings, indexed like X); ``classes_`` is set."""
        raise NotImplementedError

    def _check_params(self) -> None:
        """Raise ValueError, naming the setting, for parameters that cannot work."""

    def _declared_classes(self) -> Iterable[str]:
        """Classes known before seeing labels (the task's class labels); none by default."""
        return ()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def run_ledger(self) -> RunLedger:
        """The ledger of the latest fit, which predicting adds to (never before a fit)."""
        if self._ledger is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit first")
        return self._ledger

    def spent(self) -> Usage:
        """The LLM usage since the start of the latest fit (zero before any fit)."""
        return Usage() if self._ledger is None else self._ledger.total_usage()

    def check_answers(self) -> None:
        """Fail the run when too many answers since fit named no class (module docstring);
        the limit is the ``max_invalid_share`` of the estimator's ``llm`` config."""
        limit = (getattr(self, "llm", None) or {}).get("max_invalid_share")
        limit = DEFAULT_MAX_INVALID_SHARE if limit is None else float(limit)
        self.run_ledger().check_answers(limit, len(self.classes_))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The most probable class of each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def run_report(self) -> MethodReport:
        """Details, LLM usage since the start of the latest fit, artifacts; so far, if a step
        failed; empty before any fit."""
        return MethodReport() if self._ledger is None else self._ledger.report()

    # Read-only views of the ledger, named like learned attributes for tests and notebooks.
    @property
    def usage_(self) -> dict[str, Any]:
        """The LLM usage so far (`run_report().usage`)."""
        return self.spent().as_dict()

    @property
    def fit_info_(self) -> dict[str, Any]:
        """The details recorded so far (`run_report().details`)."""
        return self.run_report().details

    @property
    def artifacts_(self) -> dict[str, str]:
        """Files kept next to the run record (`run_report().artifacts`)."""
        return self.run_report().artifacts


def as_labels(y: Any, index: pd.Index) -> pd.Series:
    """Labels as strings, indexed like the rows they label."""
    return pd.Series([str(v) for v in np.asarray(y)], index=index, dtype=object)


def aligned_proba(proba: np.ndarray, their: Sequence[Any], classes: np.ndarray) -> np.ndarray:
    """A sub-model's probabilities (columns in the order of `their` classes) as columns in the
    order of `classes`; a class it never saw gets probability 0, one outside `classes` is an
    error."""
    ours = {str(c): j for j, c in enumerate(classes)}
    full = np.zeros((len(proba), len(classes)))
    for j, label in enumerate(their):
        if str(label) not in ours:
            raise ValueError(f"the sub-model predicted an unknown class '{label}'")
        full[:, ours[str(label)]] = proba[:, j]
    return full


def _shorten(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 3] + "..."


def require_llm(estimator: BaseEstimator, llm: Any) -> None:
    """Refuse to fit without an llm config (the `llm` parameter)."""
    if not llm:
        raise ValueError(f"{type(estimator).__name__} needs an llm config (the `llm` parameter)")


@dataclass
class RowProgress:
    """A long pass over rows says how far it got, at most once every `every_s` seconds.

    Used as a context manager, a clock thread says it every `every_s` seconds of work whatever
    the rows cost (20,000-character cells take minutes per batch), counting the rows reported
    through `add` or `at`; the first line comes after `every_s` even if no row is through yet.
    Without the context manager only `at` speaks, when it is called.
    """

    what: str  # e.g. "llm_icl: %d/%d rows labelled"
    total: int
    every_s: float = field(default_factory=lambda: PROGRESS_EVERY_S)
    started: float = field(default_factory=time.perf_counter)
    said: float = field(default_factory=time.perf_counter)
    done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _clock: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> RowProgress:
        self.started = self.said = time.perf_counter()
        self._stop.clear()
        self._clock = threading.Thread(target=self._tick, name="row-progress", daemon=True)
        self._clock.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._clock is not None:
            self._clock.join()
            self._clock = None

    def add(self, rows: int = 1) -> None:
        """`rows` more rows are through (safe from any thread: a backend's `on_result`)."""
        with self._lock:
            self.done += rows

    def at(self, done: int) -> None:
        """`done` rows of `total` are through; log the pace and what is left, if it is time."""
        with self._lock:
            self.done = done
        now = time.perf_counter()
        if done == 0 or now - self.said <= self.every_s:
            return
        self._say(now)

    def _tick(self) -> None:
        while not self._stop.wait(
            timeout=max(0.0, self.every_s - (time.perf_counter() - self.said))
        ):
            if time.perf_counter() - self.said >= self.every_s:
                self._say(time.perf_counter())

    def _say(self, now: float) -> None:
        with self._lock:
            done, self.said = self.done, now
        elapsed = now - self.started
        if done == 0:
            log.info(
                f"{self.what}, none finished after %.0f s (each row takes longer than that)",
                done,
                self.total,
                elapsed,
            )
            return
        rate = elapsed / done
        log.info(
            f"{self.what}, %.2f s a row, about %.0f s to go",
            done,
            self.total,
            rate,
            rate * (self.total - done),
        )

"""In-context learning with its prompt chosen on the training rows only (`llm_icl_tuned`).

What a practitioner does by hand, iterating on the prompt until the scores look right, done
without the leak: the run's n training rows are split (stratified) into shots and a validation
part; each candidate prompt is an `LLMICLClassifier` fitted on the shot rows and scored on the
validation rows; the best candidate is refitted on all n rows and predicts the test rows once.
The test rows never reach the search: the runner hands a method its training rows only.

Candidates, tried greedily (each one changes one thing of the best so far and is kept if it
scores better on validation):
1. the configured prompt (the sweep's serializer, the default instruction and answer words);
2. fixed alternatives: another row layout (csv_table / list), fewer decimals, letters as
   answers, balanced shots, shuffled shot order, a more explicit instruction;
3. rewrites of the instruction proposed by an LLM (`search.optimizer_llm`, default the run's
   own) from the validation rows the current best gets wrong, in the spirit of APE / OPRO.

`search.max_candidates` and `search.max_llm_calls` bound the search (a candidate costs one LLM
call per validation row, a rewrite one generation more). Every candidate's changes, wording,
validation score, calls and seconds are in the run's `details.search`; its LLM usage is spent
during fit, so the report counts it as a one-off cost.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split

from bench.llm.backend import Usage, make_backend
from bench.llm.prompts import PROMPT_VERSION
from bench.methods.base import Choice, MethodContext, MethodKind, MethodReport, MethodTags, Range
from bench.methods.llm_icl import LLMICLClassifier, prompt_context
from bench.methods.shots import SELECTIONS

__all__ = ["LLM_ICL_TUNED", "Candidate", "LLMICLTunedClassifier", "SearchSettings"]

EXPLICIT = (
    "Read the labelled examples carefully: they show how the columns relate to the answer. "
    "Judge the last row the same way and give the single most likely answer."
)


@dataclass(frozen=True)
class SearchSettings:
    """`method.params.search`: how the prompt search splits the rows and what it may spend."""

    # "auto": hold out `validation` of the rows from 64 rows on; below that, 2-fold
    # cross-validation (each row validates once: a holdout of a few rows is mostly noise).
    # An integer k >= 2: k-fold cross-validation; 1: the holdout.
    folds: Any = "auto"
    validation: float = 0.25  # share of the n training rows held out for validation
    min_validation_rows: int = 8
    max_validation_rows: int = 64  # each candidate costs one LLM call per validation row
    max_candidates: int = 8
    max_llm_calls: int = 1000
    rewrites: int = 2  # instruction rewrites proposed by the optimizer LLM (within the budget)
    optimizer_llm: dict[str, Any] | None = None  # None: the run's own llm
    metric: str = "auto"  # roc_auc for two classes, else accuracy; or any metric name

    def problems(self) -> list[str]:
        key = "method.params.search"
        found = []
        if not 0 < self.validation < 1:
            found.append(f"{key}.validation={self.validation} must be between 0 and 1")
        for name in ("min_validation_rows", "max_validation_rows", "max_candidates"):
            if getattr(self, name) < 1:
                found.append(f"{key}.{name}={getattr(self, name)} must be >= 1")
        if not (self.folds == "auto" or (isinstance(self.folds, int) and self.folds >= 1)):
            found.append(f"{key}.folds={self.folds!r} must be auto or an integer >= 1")
        if self.max_llm_calls < 0 or self.rewrites < 0:
            found.append(f"{key}.max_llm_calls and {key}.rewrites must be >= 0")
        return found


@dataclass
class Candidate:
    """One prompt tried: what differs from the configured one, and how it scored."""

    name: str
    changes: dict[str, Any]
    validation_score: float = float("nan")
    llm_calls: int = 0
    seconds: float = 0.0
    error: str = ""  # why it has no score (it failed, or its prompt was tried already)
    parent: str = ""  # the candidate it changed one thing of
    kept: bool = False  # became the best so far


@dataclass
class _Search:
    candidates: list[Candidate] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)  # shared prompt text -> candidate
    calls: int = 0
    usage: Usage = field(default_factory=Usage)


class LLMICLTunedClassifier(ClassifierMixin, BaseEstimator):
    """`LLMICLClassifier` whose prompt is chosen by validation on the training rows."""

    def __init__(
        self, search: dict[str, Any] | None = None, positive_label: str | None = None, **icl: Any
    ) -> None:
        self.search = search
        self.positive_label = positive_label  # the class a binary search metric scores
        self.icl = icl  # LLMICLClassifier's parameters: the configured prompt

    # scikit-learn's get_params cannot see **kwargs; the run builds a fresh estimator anyway.
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"search": self.search, "positive_label": self.positive_label, **self.icl}

    def fit(self, X: pd.DataFrame, y: Any) -> LLMICLTunedClassifier:
        settings = SearchSettings(**(self.search or {}))
        problems = settings.problems()
        if problems:
            raise ValueError("; ".join(problems))
        labels = pd.Series([str(v) for v in np.asarray(y)], index=X.index, dtype=object)
        self._search = _Search()
        folds = self._folds(X, labels, settings)
        calls = sum(len(val_X) for _, _, val_X, _ in folds)  # per candidate
        metric = _metric_name(settings.metric, labels)
        best = self._try(Candidate("configured", {}), folds, metric)
        best.kept = True
        for candidate in self._alternatives():
            if not self._room(settings, calls):
                break
            candidate.parent = best.name
            candidate.changes = {**best.changes, **candidate.changes}
            self._try(candidate, folds, metric)
            if _better(candidate.validation_score, best.validation_score, metric):
                candidate.kept, best = True, candidate
        for i in range(settings.rewrites):
            if not self._room(settings, calls + 1):
                break
            wording = self._rewrite(settings, best, *folds[0], attempt=i)
            candidate = Candidate(
                f"rewrite_{i + 1}", {**best.changes, "guidance": wording}, parent=best.name
            )
            problem = _unusable(wording)
            if problem:  # recorded, not scored: a degenerate reply would only fit noise
                candidate.error = problem
                self._search.candidates.append(candidate)
                continue
            self._try(candidate, folds, metric)
            if _better(candidate.validation_score, best.validation_score, metric):
                candidate.kept, best = True, candidate
        self.best_ = best
        self.model_ = LLMICLClassifier(**{**self.icl, **best.changes}).fit(X, labels)
        self.classes_ = self.model_.classes_
        self.search_info_ = {
            "metric": metric,
            "folds": len(folds),
            "validation_rows": calls,  # over all folds
            "shot_rows": len(folds[0][0]),  # per fold
            "chosen": best.name,
            "chosen_changes": best.changes,
            "validation_score": best.validation_score,
            "instruction": self.model_.instruction_,
            "llm_calls": self._search.calls,
            "candidates": [asdict(c) for c in self._search.candidates],
        }
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def run_report(self) -> MethodReport:
        """The search (every candidate), the chosen model's details, search + predict usage."""
        search = getattr(self, "_search", None)
        usage = Usage() if search is None else Usage() + search.usage
        details: dict[str, Any] = {}
        model = getattr(self, "model_", None)
        if model is not None:
            report = model.run_report()
            details.update(report.details)
            usage += Usage(**{k: v for k, v in report.usage.items() if k in _USAGE_FIELDS})
        if hasattr(self, "search_info_"):
            details["search"] = self.search_info_
        elif search is not None:  # failed midway: what was tried so far
            details["search"] = {"candidates": [asdict(c) for c in search.candidates]}
        return MethodReport(details=details, usage=usage.as_dict())

    # -- the search -----------------------------------------------------------------------------
    def _folds(
        self, X: pd.DataFrame, y: pd.Series, settings: SearchSettings
    ) -> list[tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]]:
        """(shot rows, their labels, validation rows, their labels) per fold, stratified."""
        n, seed = len(X), int(self.icl.get("seed", 0))
        k = settings.folds if settings.folds != "auto" else (1 if n >= 64 else 2)
        counts = y.value_counts()
        if y.nunique() < 2 or counts.min() < 2 or n < max(4, 2 * k):
            raise ValueError(
                f"llm_icl_tuned needs training rows of two classes, at least 2 of each, to "
                f"validate prompts on (got {n} rows: {counts.to_dict()}); use llm_icl for fewer"
            )
        if k >= 2:
            from sklearn.model_selection import StratifiedKFold

            splitter = StratifiedKFold(
                n_splits=min(k, int(counts.min())), shuffle=True, random_state=seed
            )
            return [(X.iloc[a], y.iloc[a], X.iloc[b], y.iloc[b]) for a, b in splitter.split(X, y)]
        n_val = round(settings.validation * n)
        n_val = max(settings.min_validation_rows, min(settings.max_validation_rows, n_val))
        n_val = min(n_val, n - 2)
        stratify = y if n_val >= len(counts) and n - n_val >= len(counts) else None
        shots_X, val_X, shots_y, val_y = train_test_split(
            X, y, test_size=n_val, random_state=seed, stratify=stratify
        )
        return [(shots_X, shots_y, val_X, val_y)]

    def _alternatives(self) -> list[Candidate]:
        serializer = dict(self.icl.get("serializer") or {})
        other_layout = (
            {"name": "list", "format": "list", "shared_header": False}
            if serializer.get("shared_header")
            else {"name": "csv_table", "format": "csv", "shared_header": True}
        )
        classes = list(self.icl.get("class_labels") or ())
        letters = {c: chr(ord("A") + i) for i, c in enumerate(classes)}
        found = [
            Candidate("layout", {"serializer": {**serializer, **other_layout}}),
            Candidate("fewer_decimals", {"serializer": {**serializer, "precision": 2}}),
            Candidate("explicit_instruction", {"guidance": EXPLICIT}),
            Candidate("balanced_shots", {"selection": "balanced"}),
            Candidate("shuffled_shots", {"shot_order": "shuffled"}),
        ]
        if len(classes) >= 2:
            found.append(Candidate("letter_answers", {"verbalizer": letters}))
        return found

    def _room(self, settings: SearchSettings, calls: int) -> bool:
        scored = sum(c.llm_calls > 0 for c in self._search.candidates)
        return scored < settings.max_candidates and self._search.calls + calls <= (
            settings.max_llm_calls
        )

    def _try(
        self,
        candidate: Candidate,
        folds: list[tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]],
        metric: str,
    ) -> Candidate:
        """Fit the candidate on each fold's shot rows and score its validation rows; the score
        is the metric over every fold's validation predictions together."""
        start = time.perf_counter()
        self._search.candidates.append(candidate)
        predictions, truths = [], []
        try:
            for i, (shots_X, shots_y, val_X, val_y) in enumerate(folds):
                model = LLMICLClassifier(**{**self.icl, **candidate.changes}).fit(shots_X, shots_y)
                if i == 0:
                    same = self._search.prompts.get(model.prefix_)
                    if same is not None:  # e.g. balanced shots when every row is a shot
                        candidate.error = f"the same prompt as {same}: not scored again"
                        return candidate
                    self._search.prompts[model.prefix_] = candidate.name
                proba = model.predict_proba(val_X)
                report = model.run_report()
                self._search.usage += Usage(
                    **{k: v for k, v in report.usage.items() if k in _USAGE_FIELDS}
                )
                candidate.llm_calls += len(val_X)
                self._search.calls += len(val_X)
                predictions.append(proba)
                truths.append(val_y)
        except Exception as error:  # a candidate that cannot run loses; the search goes on
            candidate.error = f"{type(error).__name__}: {error}"
            candidate.seconds = time.perf_counter() - start
            return candidate
        candidate.validation_score = _score(
            metric, pd.concat(truths), np.vstack(predictions), model.classes_, self.positive_label
        )
        candidate.seconds = time.perf_counter() - start
        return candidate

    def _rewrite(
        self,
        settings: SearchSettings,
        best: Candidate,
        shots_X: pd.DataFrame,
        shots_y: pd.Series,
        val_X: pd.DataFrame,
        val_y: pd.Series,
        attempt: int = 0,
    ) -> str:
        """An instruction the optimizer LLM proposes from the best candidate's mistakes;
        sampled (temperature 0.7, seeded by the attempt), so that two rounds from the same best
        do not propose the same words."""
        model = LLMICLClassifier(**{**self.icl, **best.changes}).fit(shots_X, shots_y)
        wrong = _mistakes(model, val_X, val_y)
        request = (
            "You improve instructions for a model that labels table rows.\n\n"
            f"Current instruction:\n{model.instruction_}\n\n"
            f"It scores {best.validation_score:.3f} ({_metric_name(settings.metric, val_y)}) on "
            "held-out labelled rows. Rows it gets wrong, with their true answers:\n\n"
            f"{wrong}\n\n"
            "Write one short paragraph of extra guidance (at most 60 words) that would help it "
            "answer such rows correctly. Reply with the paragraph only.\n\nGuidance:"
        )
        llm = settings.optimizer_llm or self.icl.get("llm")
        backend = make_backend(llm)
        try:
            (result,) = backend.generate_many(
                [request], max_tokens=120, temperature=0.7, seed=attempt
            )
        except Exception:  # no rewrite this round; the search keeps what it has
            return ""
        finally:
            backend.close()
        self._search.usage += result.usage
        self._search.calls += 1
        return _first_paragraph(result.text)


_USAGE_FIELDS = set(Usage.__dataclass_fields__)


def _mistakes(model: LLMICLClassifier, X: pd.DataFrame, y: pd.Series, limit: int = 4) -> str:
    """Up to `limit` validation rows the model labels wrongly, serialized with their labels."""
    predicted = model.predict(X)
    rows = []
    for (_, row), truth, guess in zip(X.iterrows(), y, predicted, strict=True):
        if str(truth) != str(guess):
            record = model.serializer_.record(row.to_dict())
            rows.append(f"{record}\nTrue answer: {model.verbalizer_.word(str(truth))}")
        if len(rows) == limit:
            break
    return "\n\n".join(rows) or "(none: every held-out row is right)"


def _unusable(wording: str) -> str:
    """Why a proposed instruction is not worth scoring ("" when it is)."""
    if not wording:
        return "the optimizer proposed nothing"
    sentences = [x.strip().lower() for x in re.split(r"(?<=[.!?])\s+|\s\d+\.\s", wording)]
    sentences = [x for x in sentences if len(x) > 3]
    if len(sentences) >= 3 and len(set(sentences)) <= len(sentences) / 2:
        return "the proposed instruction repeats itself: not scored"
    return ""


def _first_paragraph(text: str, limit: int = 400) -> str:
    paragraph = next((p.strip() for p in text.strip().split("\n\n") if p.strip()), "")
    paragraph = " ".join(paragraph.split())
    return paragraph[:limit]


def _metric_name(requested: str, y: pd.Series) -> str:
    if requested != "auto":
        return requested
    return "roc_auc" if y.nunique() == 2 else "accuracy"


def _score(
    metric: str, y: pd.Series, proba: np.ndarray, classes: np.ndarray, positive_label: str | None
) -> float:
    """`metric` on validation rows; binary metrics score the dataset's positive class (else the
    last class, as the runner does)."""
    from bench.metrics import get_metric

    codes = {c: i for i, c in enumerate(classes)}
    y_codes = np.array([codes[str(v)] for v in y])
    positive = codes.get(positive_label, len(classes) - 1)
    return float(get_metric(metric)(y_codes, np.clip(proba, 1e-15, 1.0), positive))


def _better(score: float, best: float, metric: str) -> bool:
    from bench.metrics import higher_is_better

    if math.isnan(score):
        return False
    if math.isnan(best):
        return True
    return score > best if higher_is_better(metric) else score < best


def build_llm_icl_tuned(cfg: DictConfig, context: MethodContext) -> LLMICLTunedClassifier:
    """METHODS registry entry for `kind: llm_icl_tuned`."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    search = dict(params.pop("search", None) or {})
    name = search.get("optimizer_llm")
    if isinstance(name, str):
        from bench.config import load_llm_config

        search["optimizer_llm"] = OmegaConf.to_container(
            load_llm_config(name, key="method.params.search.optimizer_llm"), resolve=True
        )
    unknown = set(search) - set(SearchSettings.__dataclass_fields__)
    if unknown:
        valid = ", ".join(SearchSettings.__dataclass_fields__)
        raise ValueError(f"unknown method.params.search keys {sorted(unknown)}; valid: {valid}")
    problems = SearchSettings(**search).problems()
    if problems:
        raise ValueError("; ".join(problems))
    return LLMICLTunedClassifier(
        search=search,
        positive_label=context.positive_label,
        **prompt_context(context),
        **params,
    )


LLM_ICL_TUNED = MethodKind(
    build=build_llm_icl_tuned,
    tags=MethodTags(
        zero_shot=False, uses_llm=True, serializes_rows=True, prompt_version=PROMPT_VERSION
    ),
    param_ranges={
        "max_shots": Range(low=0, allow_none=True),
        "batch_size": Range(low=1),
        "selection": Choice(SELECTIONS),
    },
)

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

`ValidatedICL` is the part `llm_icl_auto` shares (bench/methods/llm_icl_auto.py, which chooses
among serializers): the validation folds, scoring a candidate on them with every call counted,
the budget, and refitting the winner; the metric and "better" rule are every pick's
(bench/methods/auto.py).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import StratifiedKFold, train_test_split

from bench.llm.backend import GenerateRequest, make_backend
from bench.llm.budget import BudgetReached
from bench.llm.prompts import PROMPT_VERSION
from bench.methods.auto import better, selection_metric, validation_score
from bench.methods.base import Choice, MethodContext, MethodKind, MethodTags, Range, keep_params
from bench.methods.llm_base import LLMEstimator
from bench.methods.llm_icl import LLMICLClassifier, prompt_context
from bench.methods.shots import SELECTIONS
from bench.metrics import METRIC_NAMES

__all__ = [
    "LLM_ICL_TUNED",
    "SEARCH_RANGES",
    "Candidate",
    "LLMICLTunedClassifier",
    "SearchSettings",
    "ValidatedICL",
    "checked_search",
]

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
    prompts: dict[str, str] = field(default_factory=dict)  # digest of its prompts -> candidate
    calls: int = 0  # every LLM call of the search (scoring and rewriting): the budget's count
    # candidate -> its model on the first fold and that fold's validation probabilities: the
    # mistakes a rewrite shows the optimizer, without asking the LLM for them again
    first_fold: dict[str, tuple[LLMICLClassifier, np.ndarray]] = field(default_factory=dict)


class ValidatedICL(LLMEstimator):
    """An `LLMICLClassifier` whose prompt is chosen on validation rows drawn from the training
    rows only, then refitted on all of them: what `llm_icl_tuned` and `llm_icl_auto` share.

    A subclass stores `search` (the `SearchSettings`, a dict), `positive_label` (the class a
    binary metric scores) and every `LLMICLClassifier` parameter (the configured prompt) in its
    `__init__`, and implements `_choose`: the candidates it tries, each scored by `_try` on the
    folds of `_folds` within the budget `_room` checks.
    """

    method_name = "this method"  # in messages: the subclass's method

    def _icl(self, changes: dict[str, Any] | None = None) -> LLMICLClassifier:
        """An unfitted in-context classifier: the configured prompt with `changes`."""
        params = self.get_params(deep=False)
        keys = LLMICLClassifier().get_params(deep=False)
        # a parameter the subclass does not have (llm_icl_auto's serializer) is the candidate's
        configured = {key: params[key] for key in keys if key in params}
        return LLMICLClassifier(**{**configured, **(changes or {})})

    def _settings(self) -> SearchSettings:
        return SearchSettings(**(self.search or {}))

    def _check_params(self) -> None:
        problems = self._settings().problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _declared_classes(self) -> tuple[str, ...]:
        return self.class_labels

    def _fit(self, X: pd.DataFrame, labels: pd.Series) -> None:
        ledger = self.run_ledger()
        self._search = _Search()
        try:
            best, folds, metric = self._choose(X, labels, self._settings())
        except BaseException:  # failed midway: the report keeps what was tried so far
            ledger.details["search"] = {
                "candidates": [asdict(c) for c in self._search.candidates],
                "llm_calls": self._search.calls,
            }
            raise
        self.best_ = best
        self.model_ = self._icl(best.changes).fit(X, labels)
        # The chosen prompt's details at the top level; its predictions' usage adds up here.
        ledger.parts[""] = self.model_.run_ledger()
        self.search_info_ = {
            "metric": metric,
            "folds": len(folds),
            "validation_rows": sum(len(val_X) for _, _, val_X, _ in folds),  # all folds
            "shot_rows": len(folds[0][0]),  # per fold
            "chosen": best.name,
            "chosen_changes": best.changes,
            "validation_score": best.validation_score,
            "instruction": self.model_.instruction_,
            "llm_calls": self._search.calls,
            "candidates": [asdict(c) for c in self._search.candidates],
        }
        ledger.details["search"] = self.search_info_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(X)

    def _choose(
        self, X: pd.DataFrame, labels: pd.Series, settings: SearchSettings
    ) -> tuple[Candidate, list[tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]], str]:
        """The best candidate, the folds it was scored on and the metric."""
        raise NotImplementedError

    # -- the search -----------------------------------------------------------------------------
    def _folds(
        self, X: pd.DataFrame, y: pd.Series, settings: SearchSettings
    ) -> list[tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]]:
        """(shot rows, their labels, validation rows, their labels) per fold, stratified."""
        n, seed = len(X), int(self.seed)
        k = settings.folds if settings.folds != "auto" else (1 if n >= 64 else 2)
        counts = y.value_counts()
        if y.nunique() < 2 or counts.min() < 2 or n < max(4, 2 * k):
            raise ValueError(
                f"{self.method_name} needs training rows of two classes, at least 2 of each, to "
                f"validate prompts on (got {n} rows: {counts.to_dict()}); use llm_icl for fewer"
            )
        if k >= 2:
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
        is the metric over every fold's validation predictions together. A candidate whose full
        prompts (not the prefix: under knn or max_shots 0 it holds no row) are those of one
        scored before is not scored again. Every LLM call is counted (`_Search.calls`, the
        budget), its usage is this estimator's; a candidate that fails loses, but a refused
        `llm.budget_usd` fails the run."""
        start = time.perf_counter()
        self._search.candidates.append(candidate)
        # Candidates do not explain: explanations are the chosen prompt's, on the test rows.
        changes = {**candidate.changes, "explain_rows": 0}
        models: list[LLMICLClassifier] = []
        try:
            digest = hashlib.sha256()  # built without the LLM: a repeat costs no call
            for shots_X, shots_y, val_X, _ in folds:
                models.append(self._icl(changes))
                models[-1].fit(shots_X, shots_y)
                for prompt in models[-1].prompts(val_X):
                    digest.update(prompt.encode() + b"\x00")
            same = self._search.prompts.get(digest.hexdigest())
            if same is not None:  # e.g. balanced shots when every row is a shot
                candidate.error = f"the same prompt as {same}: not scored again"
                return candidate
            self._search.prompts[digest.hexdigest()] = candidate.name
            predictions = [m.predict_proba(fold[2]) for m, fold in zip(models, folds, strict=True)]
            self._search.first_fold[candidate.name] = (models[0], predictions[0])
        except BudgetReached:
            raise  # not a lost candidate: picking among what could be afforded is no pick
        except Exception as error:  # a candidate that cannot run loses; the search goes on
            candidate.error = f"{type(error).__name__}: {error}"
            candidate.seconds = time.perf_counter() - start
            return candidate
        finally:  # what was spent, even by a fold that failed midway
            for model in models:
                if getattr(model, "_backend", None) is not None:  # fitted, never predicted
                    model._backend.close()
                    model._backend = None
                spent = model.spent()
                self.run_ledger().usage += spent
                candidate.llm_calls += spent.requests + spent.cache_hits
                self._search.calls += spent.requests + spent.cache_hits
        truths = pd.concat([val_y for _, _, _, val_y in folds])
        candidate.validation_score = validation_score(
            metric, truths, np.vstack(predictions), models[0].classes_, self.positive_label
        )
        candidate.seconds = time.perf_counter() - start
        return candidate


class LLMICLTunedClassifier(ValidatedICL):
    """`LLMICLClassifier` whose prompt is chosen by validation on the training rows.

    `search` holds the `SearchSettings` (a dict), `positive_label` the class a binary search
    metric scores; every other parameter is `LLMICLClassifier`'s, the configured prompt the
    search starts from (so `set_params(max_shots=3)` changes what `fit` tries).
    """

    method_name = "llm_icl_tuned"

    def __init__(
        self,
        search: dict[str, Any] | None = None,
        positive_label: str | None = None,
        *,
        llm: dict[str, Any] | None = None,
        serializer: dict[str, Any] | None = None,
        class_labels: tuple[str, ...] = (),
        target: str = "label",
        task_description: str = "",
        feature_descriptions: dict[str, str] | None = None,
        max_shots: int | None = None,
        selection: str = "first",
        verbalizer: dict[str, str] | None = None,
        queries_per_request: int = 1,
        batch_size: int = 64,
        seed: int = 0,
        guidance: str | None = None,
        shot_order: str = "given",
        knn_layout: str = "similarity",
        explain_rows: int = 0,
    ) -> None:
        keep_params(self, locals())

    def _choose(
        self, X: pd.DataFrame, labels: pd.Series, settings: SearchSettings
    ) -> tuple[Candidate, list[tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]], str]:
        """The greedy search (module docstring): the best candidate, the folds and the metric."""
        folds = self._folds(X, labels, settings)
        calls = sum(len(val_X) for _, _, val_X, _ in folds)  # per candidate
        metric = selection_metric(settings.metric, labels)
        best = self._try(Candidate("configured", {}), folds, metric)
        best.kept = True
        for candidate in self._alternatives():
            if not self._room(settings, calls):
                break
            candidate.parent = best.name
            candidate.changes = {**best.changes, **candidate.changes}
            self._try(candidate, folds, metric)
            if better(candidate.validation_score, best.validation_score, metric):
                candidate.kept, best = True, candidate
        for i in range(settings.rewrites):
            if not self._room(settings, calls + 1):  # the rewrite, then scoring it
                break
            wording, failure = self._rewrite(settings, best, folds[0], attempt=i)
            candidate = Candidate(
                f"rewrite_{i + 1}", {**best.changes, "guidance": wording}, parent=best.name
            )
            problem = failure or _unusable(wording)
            if problem:  # recorded, not scored: a degenerate reply would only fit noise
                candidate.error = problem
                self._search.candidates.append(candidate)
                continue
            self._try(candidate, folds, metric)
            if better(candidate.validation_score, best.validation_score, metric):
                candidate.kept, best = True, candidate
        return best, folds, metric

    def _alternatives(self) -> list[Candidate]:
        serializer = dict(self.serializer or {})
        other_layout = (
            {"name": "list", "format": "list", "shared_header": False}
            if serializer.get("shared_header")
            else {"name": "csv_table", "format": "csv", "shared_header": True}
        )
        classes = list(self.class_labels or ())
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

    def _rewrite(
        self,
        settings: SearchSettings,
        best: Candidate,
        fold: tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series],
        attempt: int = 0,
    ) -> tuple[str, str]:
        """An instruction the optimizer LLM proposes from the best candidate's mistakes on the
        first fold, and why there is none ("" when there is one). Sampled (temperature 0.7,
        seeded by the attempt), so that two rounds from the same best do not propose the same
        words. The call counts against the budget even when it fails."""
        if best.name not in self._search.first_fold:
            return "", f"no validation predictions of '{best.name}' to show the optimizer"
        model, proba = self._search.first_fold[best.name]
        _, _, val_X, val_y = fold
        wrong = _mistakes(model, proba, val_X, val_y)
        request = (
            "You improve instructions for a model that labels table rows.\n\n"
            f"Current instruction:\n{model.instruction_}\n\n"
            f"It scores {best.validation_score:.3f} ({selection_metric(settings.metric, val_y)})"
            " on "
            "held-out labelled rows. Rows it gets wrong, with their true answers:\n\n"
            f"{wrong}\n\n"
            "Write one short paragraph of extra guidance (at most 60 words) that would help it "
            "answer such rows correctly. Reply with the paragraph only.\n\nGuidance:"
        )
        backend = make_backend(settings.optimizer_llm or self.llm)
        self._search.calls += 1
        try:
            (result,) = backend.generate(
                [GenerateRequest(request, max_tokens=120, temperature=0.7, seed=attempt)]
            )
        except BudgetReached:
            raise  # the run fails with the budget's message, as a scoring call's refusal does
        except Exception as error:  # no rewrite this round: recorded, the search goes on
            return "", f"the optimizer failed: {type(error).__name__}: {error}"
        finally:
            backend.close()
        self.run_ledger().usage += result.usage
        return _first_paragraph(result.text), ""


def _mistakes(
    model: LLMICLClassifier, proba: np.ndarray, X: pd.DataFrame, y: pd.Series, limit: int = 4
) -> str:
    """Up to `limit` validation rows the model labelled wrongly (its probabilities `proba`),
    serialized with their labels."""
    predicted = model.classes_[proba.argmax(axis=1)]
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


def checked_search(search: dict[str, Any], unused: tuple[str, ...] = ()) -> dict[str, Any]:
    """`method.params.search` as given, once no key is unknown (or `unused` by the method) and
    every value can work; else ValueError naming the keys."""
    valid = [key for key in SearchSettings.__dataclass_fields__ if key not in unused]
    unknown = set(search) - set(valid)
    if unknown:
        raise ValueError(
            f"unknown method.params.search keys {sorted(unknown)}; valid: {', '.join(valid)}"
        )
    problems = SearchSettings(**search).problems()
    if problems:
        raise ValueError("; ".join(problems))
    return search


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
    return LLMICLTunedClassifier(
        search=checked_search(search),
        positive_label=context.positive_label,
        **prompt_context(context),
        **params,
    )


# The search's own settings, checked before the sweep like the others (llm_icl_auto's too).
SEARCH_RANGES: dict[str, Range | Choice] = {
    "search.metric": Choice(("auto", *METRIC_NAMES)),
    "search.validation": Range(low=0, high=1, integer=False),
    "search.min_validation_rows": Range(low=1),
    "search.max_validation_rows": Range(low=1),
    "search.max_candidates": Range(low=1),
    "search.max_llm_calls": Range(low=0),
}

LLM_ICL_TUNED = MethodKind(
    build=build_llm_icl_tuned,
    tags=MethodTags(
        zero_shot=False, uses_llm=True, serializes_rows=True, prompt_version=PROMPT_VERSION
    ),
    param_ranges={
        "max_shots": Range(low=0, allow_none=True),
        "batch_size": Range(low=1),
        "selection": Choice(SELECTIONS),
        **SEARCH_RANGES,
        "search.rewrites": Range(low=0),
    },
)

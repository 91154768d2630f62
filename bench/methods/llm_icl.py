"""LLM in-context classification: k labelled training rows in the prompt, then the query row.

The shots come from the run's own training subset (k = n_train unless `max_shots` caps it),
picked by `selection` (bench/methods/shots.py), written by a row serializer
(bench/llm/serialize.py) under an instruction built from the dataset card
(bench/llm/prompts.py). Each class's probability is the model's probability of its answer word
after ``Answer:``, renormalised over the classes; without log-probabilities (`llm.scoring`,
bench/llm/scoring.py) the model states its answer and a probability, or answers several times
at a temperature, parsed, with unparseable answers counted (``details.scoring``,
``details.unparsed_answers``): past ``llm.max_invalid_share`` of them the run fails
(`LLMEstimator.check_answers`). With `queries_per_request` > 1, several
query rows share one generated request (cheaper on hosted APIs; no probabilities then).

The prompt puts the instruction and the shots first and the query last, so with a static
selection every query of a run shares one prefix that llama.cpp, vLLM or a hosted prompt cache
evaluates once.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bench.llm.backend import (
    GenerateRequest,
    LLMBackend,
    PromptTooLongError,
    ScoreRequest,
    context_limit,
    make_backend,
    parse_label,
)
from bench.llm.prompts import ANSWER, PROMPT_VERSION, Verbalizer, instruction
from bench.llm.scoring import unparsed_answers
from bench.llm.serialize import RowSerializer
from bench.methods.base import Choice, MethodContext, MethodKind, MethodTags, Range, keep_params
from bench.methods.explain import Explanation, explain, summary
from bench.methods.llm_base import LLMEstimator, RowProgress, require_llm
from bench.methods.shots import SELECTIONS, nearest_shots, shared_prefix_layout, static_shots

__all__ = [
    "LLM_ICL",
    "SERIALIZER_KEYS",
    "LLMICLClassifier",
    "build_llm_icl",
    "prompt_context",
    "serializer_options",
]


# The serializer config's keys that are RowSerializer options (`seed` comes from the run).
SERIALIZER_KEYS = tuple(f.name for f in fields(RowSerializer) if f.name != "seed")


class LLMICLClassifier(LLMEstimator):
    """Few-shot (or zero-shot) classification by an LLM; a scikit-learn estimator.

    `llm` is an llm config (conf/llm/*.yaml as a dict); `serializer` a serializer config
    (conf/serializer/*.yaml); `class_labels` fixes the label set so that zero training rows
    (zero-shot) still has classes to score.
    """

    _backend: LLMBackend | None = None  # open from fit to the end of predict_proba

    def __init__(
        self,
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

    # -- estimator API ------------------------------------------------------------------------
    def _check_params(self) -> None:
        require_llm(self, self.llm)
        if self.explain_rows and self.queries_per_request > 1:  # before any row is paid for
            raise ValueError(
                "method.params.explain_rows needs one row per request (queries_per_request: 1)"
            )

    def _declared_classes(self) -> tuple[str, ...]:
        return self.class_labels

    def _fit(self, X: pd.DataFrame, labels: pd.Series) -> None:
        self.k_ = len(X) if self.max_shots is None else min(self.max_shots, len(X))
        self.pool_X_, self.pool_y_ = X.reset_index(drop=True), labels.reset_index(drop=True)
        self.serializer_ = RowSerializer(**serializer_options(self.serializer), seed=self.seed).fit(
            X
        )
        self._backend = None
        backend = self._get_backend()
        self.verbalizer_ = Verbalizer.build(self.classes_, self.verbalizer, backend.first_token)
        glossary = self.feature_descriptions if self._describe_columns() else None
        question = "each row to label" if self.queries_per_request > 1 else "the last row"
        self.instruction_ = instruction(
            self.task_description,
            self.target,
            self.verbalizer_,
            glossary,
            self.k_,
            question,
            self.guidance,
        )
        header = self.serializer_.header(list(X.columns))
        self.prefix_ = self.instruction_ + "\n\n" + (f"{header}\n" if header else "")
        if self.selection == "knn":
            self.shots_ = None  # chosen per query
        else:
            self.shots_ = static_shots(self.pool_y_, self.k_, self.selection, self.seed)
            if self.shot_order == "shuffled":
                self.shots_ = np.random.default_rng(self.seed + 1).permutation(self.shots_)
            elif self.shot_order != "given":
                raise ValueError(
                    f"method.params.shot_order={self.shot_order!r}: use given or shuffled"
                )
            self.prefix_ += self._shots_text(self.shots_)
        self.run_ledger().details.update(
            shots=self.k_,
            selection=self.selection,
            verbalizer=dict(zip(self.verbalizer_.classes, self.verbalizer_.words, strict=True)),
            scoring={},  # answers by how they were scored, over every predict_proba since fit
            invalid_answers=0,
            invalid_example=None,
            prefix_reuse=None,
        )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        ledger = self.run_ledger()
        backend = self._get_backend()
        try:
            if self.queries_per_request > 1:
                proba = self._predict_grouped(backend, X)
            else:
                proba = self._predict_scored(backend, X)
            if self.explain_rows:  # timed apart: not part of the cost per prediction
                wall, cpu = time.perf_counter(), time.process_time()
                explained = self._explain(backend, X.iloc[: self.explain_rows], proba)
                ledger.add_diagnostic_seconds(time.perf_counter() - wall, time.process_time() - cpu)
                ledger.details["explanations"] = summary(explained)
                ledger.artifacts["explanations.json"] = json.dumps(
                    [e.as_dict() for e in explained], indent=1
                )
        finally:
            backend.close()
            self._backend = None
        usage = ledger.usage
        # share of prompt tokens the engine reused from the previous prompt's prefix
        ledger.details["prefix_reuse"] = (
            round(usage.cached_tokens / usage.prompt_tokens, 4) if usage.prompt_tokens else None
        )
        self.check_answers()  # coin flips for unreadable answers are not an ok run
        return proba

    # -- prompts ------------------------------------------------------------------------------
    def prompts(self, X: pd.DataFrame) -> list[str]:
        """The full prompt of each query row, in the rows' order (for inspection and tests)."""
        if self.selection != "knn":
            return [self.prefix_ + self._query_text(row) for _, row in X.iterrows()]
        shots, _ = self._knn_plan(X)
        return [
            self.prefix_ + self._shots_text(positions) + self._query_text(row)
            for positions, (_, row) in zip(shots, X.iterrows(), strict=True)
        ]

    def _knn_plan(self, X: pd.DataFrame) -> tuple[list[np.ndarray], np.ndarray]:
        """Each query row's retrieved shots (in prompt order) and the order to send the rows in."""
        neighbours = nearest_shots(self.pool_X_, X, self.k_)
        if self.knn_layout == "similarity":
            return neighbours, np.arange(len(neighbours))
        if self.knn_layout != "shared_prefix":
            raise ValueError(
                f"method.params.knn_layout={self.knn_layout!r}: use similarity or shared_prefix"
            )
        return shared_prefix_layout(neighbours)

    def _shots_text(self, positions: np.ndarray) -> str:
        blocks = [
            f"{self.serializer_.record(self.pool_X_.iloc[i].to_dict())}\n{ANSWER} "
            f"{self.verbalizer_.word(self.pool_y_.iloc[i])}"
            for i in positions
        ]
        return "".join(f"{block}\n\n" for block in blocks)

    def _query_text(self, row: pd.Series) -> str:
        return f"{self.serializer_.record(row.to_dict())}\n{ANSWER}"

    def _explain(
        self, backend: LLMBackend, X: pd.DataFrame, proba: np.ndarray
    ) -> list[Explanation]:
        """Reasons for the first rows of X and their measured faithfulness (methods/explain.py).
        Their cost is kept apart from the predictions' (details.explanations)."""
        if X.empty:
            return []
        shots = self._knn_plan(X)[0] if self.selection == "knn" else None

        def prompt_of(i: int, row: pd.Series) -> str:
            shot_text = "" if shots is None else self._shots_text(shots[i])
            return self.prefix_ + shot_text + self._query_text(row)

        shown = dict(zip(X.columns, self.serializer_.names(list(X.columns)), strict=True))
        return explain(
            backend,
            prompt_of,
            X,
            self.verbalizer_.answers(),
            proba[: len(X)],
            self.pool_X_,
            shown,
            self.seed,
        )

    # -- scoring -----------------------------------------------------------------------------
    def _predict_scored(self, backend: LLMBackend, X: pd.DataFrame) -> np.ndarray:
        answers = self.verbalizer_.answers()
        ledger = self.run_ledger()
        proba = np.zeros((len(X), len(self.classes_)))
        shots = None
        order = np.arange(len(X))
        if self.selection == "knn":  # retrieval for every row at once: one index, one order
            shots, order = self._knn_plan(X)
        # a clock, not the batches, says how far it got: a batch of long rows takes minutes
        with RowProgress("llm_icl: %d/%d rows labelled", len(X)) as progress:
            for start in range(0, len(X), self.batch_size):
                rows = order[start : start + self.batch_size]
                prompts = [
                    self.prefix_
                    + ("" if shots is None else self._shots_text(shots[i]))
                    + self._query_text(X.iloc[i])
                    for i in rows
                ]
                self._check_context(backend, prompts)
                counted: set[int] = set()

                def arrived(index: int, result: Any, counted: set[int] = counted) -> None:
                    # counted as it arrives: a batch cut short (a budget reached, an endpoint
                    # lost) still records what its answered requests used
                    ledger.usage += result.usage
                    counted.add(index)
                    progress.add()

                scored = backend.score([ScoreRequest(p, answers) for p in prompts], arrived)
                for j, (i, result) in enumerate(zip(rows, scored, strict=True)):
                    proba[i] = [result.probs[a] for a in answers]
                    if j not in counted:
                        ledger.usage += result.usage
                    ledger.tally(result.method, result.valid, result.text, unparsed_answers(result))
        return proba

    def _predict_grouped(self, backend: LLMBackend, X: pd.DataFrame) -> np.ndarray:
        """Several numbered query rows per generated request: one-hot answers, no logprobs."""
        if self.selection == "knn":
            raise ValueError(
                "queries_per_request > 1 needs one shared prefix; not with selection=knn"
            )
        words = list(self.verbalizer_.words)
        size = self.queries_per_request
        requests = []
        for start in range(0, len(X), size):
            rows = X.iloc[start : start + size]
            numbered = "\n\n".join(
                f"[{j + 1}]\n{self.serializer_.record(row.to_dict())}"
                for j, (_, row) in enumerate(rows.iterrows())
            )
            requests.append(
                f"{self.prefix_}Rows to label:\n\n{numbered}\n\nAnswer each row on its own line as "
                f"`[number] answer`, with an answer from: {', '.join(words)}.\n"
            )
        self._check_context(backend, requests)
        proba = np.full((len(X), len(words)), 1.0 / len(words))
        results = backend.generate([GenerateRequest(r, max_tokens=8 * size + 16) for r in requests])
        ledger = self.run_ledger()
        for block, result in enumerate(results):
            ledger.usage += result.usage
            found = _numbered_answers(result.text, words)
            for j in range(min(size, len(X) - block * size)):
                word = found.get(j + 1)
                ledger.tally("generation", word is not None, result.text)
                if word is None:
                    continue
                proba[block * size + j] = [float(w == word) for w in words]
        return proba

    def _check_context(self, backend: LLMBackend, prompts: list[str]) -> None:
        """Skip the run before sending when the longest prompt cannot fit the context window."""
        cfg = backend.config
        limit = context_limit(cfg)
        longest = max(prompts, key=len)
        tokens = backend.count_tokens(longest)
        if tokens > limit:
            raise PromptTooLongError(tokens, limit, cfg.name)

    # -- helpers ------------------------------------------------------------------------------
    def _describe_columns(self) -> bool:
        """Column descriptions go in the prompt for zero-shot, or when the serializer asks."""
        return bool(self.feature_descriptions) and (
            self.k_ == 0 or bool((self.serializer or {}).get("descriptions", False))
        )

    def _get_backend(self) -> LLMBackend:
        if self._backend is None:
            self._backend = make_backend(self.llm)
        return self._backend

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_backend", None)  # a loaded model or an open connection is not picklable
        return state


def serializer_options(serializer: dict[str, Any] | None) -> dict[str, Any]:
    """The RowSerializer options a serializer config sets (bench/llm/serialize.py)."""
    options = dict(serializer or {})
    return {k: options[k] for k in SERIALIZER_KEYS if k in options and options[k] is not None}


def _numbered_answers(text: str, words: list[str]) -> dict[int, str]:
    """`[3] yes` lines of a generated answer -> {3: "yes"}."""
    found = {}
    for match in re.finditer(r"\[(\d+)\][ \t]*[:.-]?[ \t]*([^\n]+)", text):
        word = parse_label(match.group(2), words)
        if word is not None:
            found[int(match.group(1))] = word
    return found


def prompt_context(context: MethodContext) -> dict[str, Any]:
    """What an estimator that writes table rows into prompts takes from the run's context."""
    return {
        "llm": context.llm,
        "serializer": context.serializer,
        "class_labels": context.class_labels,
        "target": context.target,
        "task_description": context.description,
        "feature_descriptions": {f.name: f.description for f in context.features},
        "seed": context.seed,
    }


def build_llm_icl(cfg: DictConfig, context: MethodContext) -> LLMICLClassifier:
    """METHODS registry entry for `kind: llm_icl`."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    return LLMICLClassifier(**prompt_context(context), **params)


LLM_ICL = MethodKind(
    build=build_llm_icl,
    tags=MethodTags(
        zero_shot=True, uses_llm=True, serializes_rows=True, prompt_version=PROMPT_VERSION
    ),
    param_ranges={
        "max_shots": Range(low=0, allow_none=True),
        "queries_per_request": Range(low=1),
        "batch_size": Range(low=1),
        "explain_rows": Range(low=0),
        "selection": Choice(SELECTIONS),
        "knn_layout": Choice(("similarity", "shared_prefix")),
    },
)

"""Explanations an in-context learner gives for its answers, and whether they are faithful.

"You can just ask it why" meets "it makes up plausible reasons": both are testable. For the first
`explain_rows` rows a run predicts (the split's first test rows, so the same rows for every run
and method), the model is shown its own prompt and answer and asked for a one-sentence reason
naming the two columns that mattered most. `named_columns` reads which columns the reason names.

Faithfulness is then measured on the model itself, never on what it claims: the values of the
named columns are replaced by those of other training rows (`DONORS` of them), and the change
in the probability of the model's answer is averaged; the same donor rows then replace as many
columns the reason did not name. A faithful explainer moves its prediction more through the
columns it names: ``named effect - unnamed effect > 0`` per row, summarised over rows with a
t-interval in the report (bench/report/explanations.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.llm.protocol import LLMBackend, Usage
from bench.llm.requests import GenerateRequest, ScoreRequest

__all__ = ["DONORS", "EXPLAIN_QUESTION", "Explanation", "explain", "named_columns", "summary"]

DONORS = 3  # training rows whose values replace a row's columns, per perturbation
EXAMPLES_IN_DETAILS = 3  # reasons copied into the run record (all are in explanations.json)
# Two columns, not "the columns": asked for every column that decided it, Qwen2.5-Coder-1.5B
# named all seven in 24 of 24 reasons, which leaves nothing unnamed to compare with.
EXPLAIN_QUESTION = (
    "\nIn one sentence: which two columns of this row mattered most for that answer, and why?"
    "\nReason:"
)
# The reply continues this sentence: a base model (Gemma 3 270M) asked only "Reason:" wrote
# labels such as "customer-service-contact-resolution-1" and named no column in 16 of 16 rows.
REASON_START = " The two columns that mattered most were"
_NOT_WORD = re.compile(r"[^0-9a-z]+")


@dataclass
class Explanation:
    """One explained row: the model's reason and the measured effect of the columns."""

    row: int  # the task's row index (as in the predictions file's `row`)
    answer: str
    probability: float  # of the answer, from this explanation's unperturbed prompt
    reason: str
    named: list[str]  # columns the reason names
    unnamed: list[str]  # as many columns it did not name, replaced the same way
    donors: list[int]  # training-row positions whose values were swapped in
    named_effect: float | None = None  # mean |change in p(answer)| with `named` replaced
    unnamed_effect: float | None = None
    usage: Usage = field(default_factory=Usage, repr=False)

    def as_dict(self) -> dict[str, Any]:
        fields = dict(vars(self))
        fields.pop("usage")
        return fields


def named_columns(text: str, shown: dict[str, str]) -> list[str]:
    """The columns a reason names, in column order. `shown` maps each column to the name the
    prompt showed for it (the serializer's, e.g. permuted); matching ignores case, underscores
    and punctuation, and also accepts a name without its trailing unit (``queue wait`` for
    ``queue_wait_s``, ``previous contacts`` for ``previous_contacts_30d``) when that is not
    shared by two columns."""
    spoken = f" {_words(text)} "
    spellings: dict[str, set[str]] = {}
    for column, name in shown.items():
        for spelling in _spellings(name):
            spellings.setdefault(spelling, set()).add(column)
    found: set[str] = set()
    for spelling, columns in spellings.items():
        if len(columns) == 1 and f" {spelling} " in spoken:
            found |= columns
    return [column for column in shown if column in found]


def explain(
    backend: LLMBackend,
    prompt_of: Callable[[int, pd.Series], str],
    X: pd.DataFrame,
    answers: Sequence[str],
    proba: np.ndarray,
    donors_from: pd.DataFrame,
    shown: dict[str, str],
    seed: int,
) -> list[Explanation]:
    """Ask for a reason for each row of `X` (already predicted: `proba`, columns in the order of
    `answers`), then measure the effect of the named and of as many unnamed columns.
    `prompt_of(i, row)` is the scoring prompt of row i of X with `row`'s values (same shots)."""
    if X.empty:
        return []
    picked = proba.argmax(axis=1)
    requests = [
        f"{prompt_of(i, row)}{answers[picked[i]]}{EXPLAIN_QUESTION}{REASON_START}"
        for i, (_, row) in enumerate(X.iterrows())
    ]
    replies = backend.generate([GenerateRequest(r, max_tokens=48, stop=["\n"]) for r in requests])
    explained = []
    for i, (index, reply) in enumerate(zip(X.index, replies, strict=True)):
        reason = reply.text.strip()
        # A base model continues the sentence ("the queue wait and ..."); a chat model starts
        # its own ("The two columns that mattered most for that answer were ...").
        if not reason[:1].isupper():
            reason = f"{REASON_START.strip()} {reason}"
        named = named_columns(reason, shown)
        rng = np.random.default_rng([seed, int(index)])
        others = [c for c in X.columns if c not in named]
        unnamed = [str(c) for c in rng.permutation(others)[: len(named)]] if named else []
        donors = rng.choice(len(donors_from), size=min(DONORS, len(donors_from)), replace=False)
        explained.append(
            Explanation(
                row=int(index),
                answer=str(answers[picked[i]]).strip(),
                probability=float("nan"),  # scored with the perturbed rows
                reason=reason,
                named=named,
                unnamed=unnamed,
                donors=[int(d) for d in donors],
                usage=reply.usage,
            )
        )
    _measure_effects(backend, prompt_of, X, answers, explained, donors_from)
    return explained


def summary(explained: list[Explanation]) -> dict[str, Any]:
    """What a run record keeps: the per-row effects (for the report's interval) and a few
    reasons; every reason is in the run's explanations.json."""
    measured = [e for e in explained if e.named_effect is not None and e.unnamed_effect is not None]
    usage = sum((e.usage for e in explained), Usage())
    return {
        "rows": len(explained),
        "naming_a_column": sum(1 for e in explained if e.named),
        # how often each set of columns was named: one set for every row is a global prior
        # ("tenure matters"), not a reason about the row
        "named_sets": dict(Counter(" + ".join(e.named) for e in explained if e.named)),
        "named_effect": [e.named_effect for e in measured],
        "unnamed_effect": [e.unnamed_effect for e in measured],
        "examples": [
            {"row": e.row, "answer": e.answer, "reason": e.reason, "named": e.named}
            for e in explained[:EXAMPLES_IN_DETAILS]
        ],
        "llm_seconds": round(usage.llm_seconds, 3),
        "requests": usage.requests,
        "cache_hits": usage.cache_hits,  # a rerun's reasons come from the request cache
    }


def _measure_effects(
    backend: LLMBackend,
    prompt_of: Callable[[int, pd.Series], str],
    X: pd.DataFrame,
    answers: Sequence[str],
    explained: list[Explanation],
    donors_from: pd.DataFrame,
) -> None:
    """Score every row as it is and perturbed, in one batch, and store the mean |change| in
    p(answer) per column set (the unperturbed prompt is scored again, so a change measures the
    perturbation alone even where the run's prompt ordered its shots differently)."""
    prompts: list[str] = []
    slots: list[tuple[int, str]] = []  # (explained row, "base" | "named" | "unnamed") per prompt
    for i, e in enumerate(explained):
        row = X.iloc[i]
        prompts.append(prompt_of(i, row))
        slots.append((i, "base"))
        if not e.named or not e.unnamed:
            continue  # names no column (or every column): nothing to compare
        for kind, columns in (("named", e.named), ("unnamed", e.unnamed)):
            for d in e.donors:
                changed = row.copy()
                changed[columns] = donors_from.iloc[d][columns].to_numpy()
                prompts.append(prompt_of(i, changed))
                slots.append((i, kind))
    results = backend.score([ScoreRequest(p, answers) for p in prompts])
    key = {a.strip(): a for a in answers}  # the scored continuation of each answer word
    changes: dict[tuple[int, str], list[float]] = {}
    for (i, kind), result in zip(slots, results, strict=True):
        e = explained[i]
        e.usage += result.usage
        if kind == "base":  # comes first for its row
            e.probability = float(result.probs[key[e.answer]])
        else:
            change = abs(result.probs[key[e.answer]] - e.probability)
            changes.setdefault((i, kind), []).append(change)
    for (i, kind), values in changes.items():
        setattr(explained[i], f"{kind}_effect", float(np.mean(values)))


def _words(text: str) -> str:
    return _NOT_WORD.sub(" ", text.lower()).strip()


def _spellings(name: str) -> set[str]:
    words = _words(name).split()
    spellings = {" ".join(words)} if words else set()
    # A trailing unit or window ("s", "months", "30d") is often left out when a name is spoken.
    if len(words) >= 3 and (len(words[-1]) <= 3 or any(ch.isdigit() for ch in words[-1])):
        spellings.add(" ".join(words[:-1]))
    if len(words) >= 3 and words[-1] in {"months", "days", "hours", "seconds", "minutes"}:
        spellings.add(" ".join(words[:-1]))
    return spellings

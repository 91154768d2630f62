"""How a class probability is read from an LLM (`llm.scoring`).

* ``logprobs``: the next-token log-probabilities of each label (both backends); an endpoint
  that returns none fails the run, naming the setting;
* ``verbalized``: the model names its answer and a probability (0-100) that it is correct; both
  are parsed, the rest of the mass is shared by the other labels;
* ``sampled``: `llm.scoring_samples` answers drawn at `llm.scoring_temperature`, each with its
  own seed (so the request cache reproduces them), as add-one (Laplace) smoothed frequencies;
* ``auto``: logprobs where the endpoint returns them, else verbalized.

`with_scoring` wraps a backend *outside* the request cache: the generations a verbalized or
sampled score asks for are cached one by one, so a rerun sends nothing. Every `ScoreResult`
says in `method` which mode produced it ("logprobs", "verbalized", "sampled", or "generation":
a logprob endpoint's answer whose top tokens held no label, parsed as before). ``auto`` tells an
endpoint without logprobs (every later batch asked verbalized directly) from one whose answer
held no label among its top tokens (`ScoreResult.logprobs_without_labels`: that row alone is
asked again). An answer that
cannot be parsed scores uniform and is counted (`valid=False`; a sampled row only when no draw
parsed); `ParsedScore.unparsed` counts the unparsed generations of one score.

>>> parse_verbalized("Answer: yes\\nProbability: 85", [" yes", " no"])
(' yes', 0.85)
>>> parse_verbalized("**No** (confidence 0.7)", [" yes", " no"])
(' no', 0.7)
>>> smoothed_frequencies({" yes": 5, " no": 1}, [" yes", " no"])
{' yes': 0.75, ' no': 0.25}
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.llm.protocol import (
    GenerateResult,
    LLMBackend,
    LLMConfigError,
    OnResult,
    ScoreResult,
    Usage,
)
from bench.llm.requests import GenerateRequest, ScoreRequest
from bench.llm.wrapper import BackendWrapper

log = logging.getLogger("bench")

__all__ = [
    "NOT_LOGPROBS",
    "SCORING_MODES",
    "ParsedScore",
    "ScoringBackend",
    "parse_answer",
    "parse_verbalized",
    "scored_by",
    "smoothed_frequencies",
    "unparsed_answers",
    "verbalized_prompt",
    "with_scoring",
]

SCORING_MODES = ("auto", "logprobs", "verbalized", "sampled")
NOT_LOGPROBS = "†"  # the report's mark on a number whose probabilities are not logprobs
ANSWER = "Answer:"  # how llm_icl's prompts end (bench/llm/prompts.py)
VERBALIZED_TOKENS = 32  # room for "Answer: <label>\nProbability: <n>" and a little chatter


@dataclass
class ParsedScore(ScoreResult):
    """A score read from generated answers: `answers` generations, `unparsed` of them unread."""

    answers: int = 1
    unparsed: int = 0


def unparsed_answers(result: ScoreResult) -> int:
    """Generated answers of `result` that could not be parsed (0 for a logprob score; a
    parsed-answer fallback that named no label counts one)."""
    if isinstance(result, ParsedScore):
        return result.unparsed
    return int(result.method != "logprobs" and not result.valid)


def scored_by(details: Any) -> str:
    """How most answers of a run were scored, from its record's ``details.scoring``
    ("logprobs" for a run that records none: every run before the other modes)."""
    counts = details.get("scoring") if isinstance(details, Mapping) else None
    if not isinstance(counts, Mapping) or not counts:
        return "logprobs"
    usable = {str(k): float(v) for k, v in counts.items() if isinstance(v, int | float)}
    if not usable or not any(usable.values()):
        return "logprobs"
    # ties go to logprobs, then alphabetically: a stable label whatever the dict order
    return min(usable, key=lambda mode: (-usable[mode], mode != "logprobs", mode))


def with_scoring(backend: LLMBackend) -> LLMBackend:
    """`backend` answering score requests as its config's `llm.scoring` says."""
    mode = str(backend.config.get("scoring") or "auto")
    if mode not in SCORING_MODES:
        raise LLMConfigError(
            f"llm '{backend.config.get('name')}': llm.scoring={mode!r} is not one of "
            f"{', '.join(SCORING_MODES)}"
        )
    if mode in ("auto", "logprobs") and backend.config.get("backend") == "llamacpp":
        return backend  # in-process, every score is read from the logits: nothing to add
    return ScoringBackend(backend, mode)


class ScoringBackend(BackendWrapper):
    """Answers `score` by the mode `llm.scoring` names; generate and embed pass through.

    Under ``auto`` a batch none of whose answers came with logprobs, before any answer of this
    backend did, teaches it that the endpoint returns none: that batch and every later one are
    asked verbalized directly, and the log says so once. Single answers of a logprob endpoint
    without logprobs are asked again, verbalized.
    """

    def __init__(self, backend: LLMBackend, mode: str) -> None:
        super().__init__(backend)
        self.mode = mode
        self._seen_logprobs = False  # some answer of this backend came with logprobs
        self._no_logprobs = False  # auto: the endpoint gives none, ask verbalized directly
        self._said_rows = False

    def score(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None = None
    ) -> list[ScoreResult]:
        if not requests:
            return []
        if self.mode == "verbalized" or (self.mode == "auto" and self._no_logprobs):
            return self._verbalized(requests, on_result)
        if self.mode == "sampled":
            return self._sampled(requests, on_result)
        if self.mode == "logprobs":
            return self._logprobs(requests, on_result)
        return self._auto(requests, on_result)

    # -- logprobs ---------------------------------------------------------------------------
    def _logprobs(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None
    ) -> list[ScoreResult]:
        results = self.backend.score(requests, on_result=on_result)
        self._learn(results)
        if not self._seen_logprobs:
            cfg = self.config
            where = cfg.get("base_url") or cfg.get("model")
            raise LLMConfigError(
                f"llm '{cfg.get('name')}': llm.scoring=logprobs, but the endpoint {where} "
                f"returned no log-probabilities for any of {len(results)} score request(s) "
                f"(it answered e.g. {_short(results[0].text)!r}); set llm.scoring to auto "
                "(verbalized where logprobs are missing), verbalized or sampled"
            )
        return results

    def _learn(self, results: Sequence[ScoreResult]) -> None:
        if any(r.method == "logprobs" or r.logprobs_without_labels for r in results):
            self._seen_logprobs = True

    # -- auto -------------------------------------------------------------------------------
    def _auto(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None
    ) -> list[ScoreResult]:
        def forward(i: int, result: ScoreResult) -> None:  # the others are asked again
            if on_result is not None and result.method == "logprobs":
                on_result(i, result)

        results: list[ScoreResult] = self.backend.score(requests, on_result=forward)
        self._learn(results)
        missing = [i for i, r in enumerate(results) if r.method != "logprobs"]
        if not missing:
            return results
        cfg = self.config
        if not self._seen_logprobs:
            self._no_logprobs = True
            log.info(
                "llm '%s': the endpoint returned no log-probabilities; llm.scoring=auto reads "
                "verbalized probabilities (the answer and a 0-100 probability) from here on",
                cfg.get("name"),
            )
        elif not self._said_rows:
            self._said_rows = True
            log.info(
                "llm '%s': some answers came without the labels' log-probabilities; "
                "llm.scoring=auto asks those rows for a verbalized probability",
                cfg.get("name"),
            )

        def both_asks(i: int, result: ScoreResult) -> ScoreResult:
            return replace(result, usage=results[i].usage + result.usage)  # the first was paid

        def relay(j: int, result: ScoreResult) -> None:
            if on_result is not None:
                on_result(missing[j], both_asks(missing[j], result))

        again = self._verbalized([requests[i] for i in missing], relay)
        for i, result in zip(missing, again, strict=True):
            results[i] = both_asks(i, result)
        return results

    # -- verbalized -------------------------------------------------------------------------
    def _verbalized(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None
    ) -> list[ScoreResult]:
        chat = self.config.get("api") != "completions"
        asked = [
            GenerateRequest(
                verbalized_prompt(r.prompt, r.labels, chat),
                max_tokens=VERBALIZED_TOKENS,
                temperature=0.0,
                stop=() if chat else ("\n\n",),
            )
            for r in requests
        ]

        def read(i: int, result: GenerateResult) -> ParsedScore:
            # a completion continues after "Answer:": parse it with it, keep the model's text
            return verbalized_score(
                result.text, requests[i].labels, result.usage, "" if chat else ANSWER
            )

        def relay(i: int, result: GenerateResult) -> None:
            if on_result is not None:
                on_result(i, read(i, result))

        answers = self.backend.generate(asked, on_result=relay)
        return [read(i, result) for i, result in enumerate(answers)]

    # -- sampled ----------------------------------------------------------------------------
    def _sampled(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None
    ) -> list[ScoreResult]:
        cfg = self.config
        draws = int(cfg.get("scoring_samples") or 8)
        temperature = float(cfg.get("scoring_temperature") or 0.0)
        chat = cfg.get("api") != "completions"
        asked = [
            GenerateRequest(
                r.prompt,
                max_tokens=_answer_tokens(r.labels),
                temperature=temperature,
                stop=() if chat else ("\n",),
                # its own seed per draw, so the cache reproduces each one; the same seeds in
                # every row (common random numbers): rows keep their order, coarsely
                seed=seed,
            )
            for r in requests
            for seed in range(draws)
        ]
        texts: list[list[str | None]] = [[None] * draws for _ in requests]
        usages = [Usage() for _ in requests]
        left = [draws] * len(requests)
        lock = threading.Lock()  # a backend may call back from its own threads

        def relay(k: int, result: GenerateResult) -> None:
            i, seed = divmod(k, draws)
            with lock:
                texts[i][seed] = result.text
                usages[i] = usages[i] + result.usage
                left[i] -= 1
                done = left[i] == 0
            if done and on_result is not None:
                on_result(i, sampled_score(texts[i], requests[i].labels, usages[i]))

        answers = self.backend.generate(asked, on_result=relay)
        scores = []
        for i, request in enumerate(requests):
            row = answers[i * draws : (i + 1) * draws]
            usage = sum((a.usage for a in row), Usage())
            scores.append(sampled_score([a.text for a in row], request.labels, usage))
        return scores


# -- prompts and parsing ----------------------------------------------------------------------
def verbalized_prompt(prompt: str, labels: Sequence[str], chat: bool) -> str:
    """`prompt` asking for the answer and a probability: a chat model is told the two-line
    form; a completion model's text ends in ``Answer:`` so it continues with the label."""
    body = prompt.rstrip()
    if body.endswith(ANSWER):
        body = body[: -len(ANSWER)].rstrip()
    words = ", ".join(label.strip() for label in labels)
    # Worded as "Just ask for calibration" (Tian et al., 2023) words it; small chat models
    # copy an "<answer>" placeholder unless told the format is the whole reply.
    ask = (
        f"Give your best guess ({words}) and the probability, from 0 to 100, that your guess "
        "is correct, in exactly this format and nothing else:\nAnswer: <your guess>\n"
        "Probability: <a number from 0 to 100>"
    )
    return f"{body}\n\n{ask}" if chat else f"{body}\n\n{ask}\n\n{ANSWER}"


_MARKUP = re.compile(r"[*_`#>\"']")
_ANSWER_AT = re.compile(r"\b(?:final\s+)?answer(?:\s+is)?\s*[:=\-]?\s*", re.IGNORECASE)
_PROBABILITY = re.compile(
    r"\b(?:probability|confidence|likelihood|chance)\b[^0-9\n]{0,24}?(\d+(?:\.\d+)?)\s*(%)?",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])\s*(%)?")


def parse_answer(text: str, labels: Sequence[str]) -> str | None:
    """The label an answer names: at its start, or right after "Answer:" / "answer is"
    (markdown and quotes ignored); None when neither names one."""
    from bench.llm.backend import parse_label

    clean = _MARKUP.sub("", text).strip()
    found = parse_label(clean, labels)
    if found is not None:
        return found
    for match in _ANSWER_AT.finditer(clean):
        found = parse_label(clean[match.end() :], labels)
        if found is not None:
            return found
    return None


def _probability(number: str, percent: str | None) -> float | None:
    """A stated probability as a fraction: "85", "85%" and "0.85" read 0.85."""
    value = float(number)
    if not percent and "." in number and value <= 1.0:
        return value  # "0.85": a fraction despite the 0-100 asked for
    return value / 100.0 if value <= 100.0 else None


def parse_verbalized(text: str, labels: Sequence[str]) -> tuple[str | None, float | None]:
    """(the label named, the probability stated that it is correct), each None if unread."""
    label = parse_answer(text, labels)
    clean = _MARKUP.sub("", text)
    match = _PROBABILITY.search(clean) or _PERCENT.search(clean)
    if match is not None:
        groups = match.groups()
        return label, _probability(groups[0], groups[1] if len(groups) > 1 else "%")
    if label is None:
        return None, None
    # "yes, 85" / "yes (0.9)": the first number after the label's own words
    after = clean.lower().split(label.strip().lower(), 1)[-1]
    number = _NUMBER.search(after)
    return label, None if number is None else _probability(number.group(1), number.group(2))


def verbalized_score(
    text: str, labels: Sequence[str], usage: Usage, prefix: str = ""
) -> ParsedScore:
    """The named label gets the stated probability, the other labels share the rest; an
    answer missing either part is uniform and counted. `prefix`: what the prompt put before
    the answer (parsed with it, not kept in `text`)."""
    label, probability = parse_verbalized(prefix + text, labels)
    if label is None or probability is None:
        uniform = {lb: 1.0 / len(labels) for lb in labels}
        return ParsedScore(uniform, "verbalized", False, text, usage, answers=1, unparsed=1)
    rest = (1.0 - probability) / max(1, len(labels) - 1)
    probs = {lb: probability if lb == label else rest for lb in labels}
    return ParsedScore(probs, "verbalized", True, text, usage, answers=1, unparsed=0)


def smoothed_frequencies(counts: Mapping[str, int], labels: Sequence[str]) -> dict[str, float]:
    """Add-one (Laplace) smoothed frequencies: (count + 1) / (answers + labels)."""
    total = sum(counts.get(lb, 0) for lb in labels) + len(labels)
    return {lb: (counts.get(lb, 0) + 1) / total for lb in labels}


def sampled_score(texts: Sequence[str | None], labels: Sequence[str], usage: Usage) -> ParsedScore:
    """The smoothed frequencies of the labels `texts` name; uniform (and invalid) when none
    names one."""
    named = [parse_answer(t or "", labels) for t in texts]
    counts: dict[str, int] = {}
    for label in named:
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    unparsed = sum(label is None for label in named)
    shown = " | ".join(_short(t) for t in texts)
    if not counts:
        uniform = {lb: 1.0 / len(labels) for lb in labels}
        return ParsedScore(
            uniform, "sampled", False, shown, usage, answers=len(texts), unparsed=unparsed
        )
    probs = smoothed_frequencies(counts, labels)
    return ParsedScore(probs, "sampled", True, shown, usage, answers=len(texts), unparsed=unparsed)


def _answer_tokens(labels: Sequence[str]) -> int:
    """Room for the longest label and an "Answer:" a chat model may repeat."""
    return 8 + max(len(label) for label in labels) // 3


def _short(text: str | None, chars: int = 60) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= chars else text[: chars - 3] + "..."

"""The three completion tests (header, row, feature) on a dataset's raw CSV text: what each
asks the model (`_Asker`: one-line greedy completions through a backend, raw or chat), how much
it asks (`MemcheckSettings`), and what each found against the marginal baseline (`HeaderTest`,
`RowTest`, `FeatureTest`, with their `evidence` under the verdict rule of result.py)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.llm.memcheck.raw import RawTable, _fields, _values
from bench.llm.memcheck.result import BASELINE_QUANTILE, MIN_EXACT
from bench.llm.protocol import LLMBackend, Messages, Usage
from bench.llm.requests import GenerateRequest

__all__ = [
    "BUDGET_MARGIN",
    "CHAT_SYSTEM",
    "FeatureTest",
    "HeaderTest",
    "MemcheckSettings",
    "RowTest",
    "feature_test",
    "header_test",
    "row_test",
]

CHAT_SYSTEM = (
    "You complete CSV files. The user gives the start of a file; reply with the exact text that "
    "follows it in that file, starting right where it stops. No explanation, no code fences."
)
# Tokens generated beyond the expected text's length in characters (a token holds at least one
# character): one shows what follows the text; a chat answer may first open a code fence.
BUDGET_MARGIN = {"completions": 1, "chat": 8}


@dataclass(frozen=True)
class MemcheckSettings:
    """How much the memcheck asks: its cost is about 2 x `rows` rows of prompt and `rows` x
    `max_values` values generated."""

    rows: int = 25  # trials of the row test, and of the feature test
    context_rows: int = 5  # real rows before the first trial row, so every trial has context
    header_lines: tuple[int, ...] = (0, 1, 3)  # lines cut by the header test (0 = the header)
    # The row test gives at least `prefix_share` of a row's values and asks for the next
    # `max_values`, a window that ends at the rarest column after the prefix (so a completion
    # is hard to guess) or at the end of the row.
    prefix_share: float = 0.5
    max_values: int = 4
    # per prompt, and at most half the model's window in tokens (generation slows down as the
    # context grows: Gemma 3 270M on one core 41 tokens/s after 200 tokens, 26 after 5,000)
    max_prompt_chars: int = 4000
    baseline_draws: int = 2000  # random draws of the marginal baseline
    seed: int = 0  # where the block of trial rows starts; the baseline's draws


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class HeaderTest:
    """Continuations of the file's start, cut after a comma near the middle of early lines."""

    splits: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0  # wall time of the test

    @property
    def evidence(self) -> bool:
        return any(s["next_line_verbatim"] and s["next_line_rare"] for s in self.splits)

    @property
    def best_chars(self) -> int:
        return max((s["matched_chars"] for s in self.splits), default=0)

    def summary(self) -> str:
        if self.skipped:
            return f"skipped ({self.skipped})"
        whole = sum(s["next_line_verbatim"] for s in self.splits)
        return (
            f"longest verbatim continuation {self.best_chars} characters over "
            f"{len(self.splits)} cuts; next line reproduced whole after {whole} of them"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "evidence": self.evidence,
            "best_matched_chars": self.best_chars,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "splits": self.splits,
        }


@dataclass
class RowTest:
    """Rows completed from their first values, against the marginal baseline."""

    trials: int = 0
    exact_rows: int = 0  # completed exactly
    rare_trials: int = 0  # trials whose asked values include a rare one ...
    exact_rare_rows: int = 0  # ... and how many of them were completed exactly
    values_matched: int = 0
    values_total: int = 0
    baseline_value_rate_mean: float = 0.0
    baseline_value_rate_q95: float = 0.0
    baseline_exact_rare_rows_mean: float = 0.0
    baseline_exact_rare_rows_q95: float = 0.0
    first_line: int | None = None  # line number in the file (1 = header) of the first trial
    columns: tuple[int, int] | None = None  # the asked values: columns [a, b), 0-based
    details: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0  # wall time of the test

    @property
    def value_rate(self) -> float:
        return self.values_matched / self.values_total if self.values_total else 0.0

    @property
    def evidence(self) -> bool:
        return (
            self.exact_rare_rows >= MIN_EXACT
            and self.exact_rare_rows > self.baseline_exact_rare_rows_q95
            and self.value_rate > self.baseline_value_rate_q95
        )

    def summary(self) -> str:
        if self.skipped:
            return f"skipped ({self.skipped})"
        return (
            f"{self.exact_rows} of {self.trials} rows completed exactly ({self.exact_rare_rows} "
            f"of the {self.rare_trials} that ask for a rare value; by chance: "
            f"{BASELINE_QUANTILE:.0%} quantile {self.baseline_exact_rare_rows_q95:g}); "
            f"{self.value_rate:.0%} of values (marginal baseline "
            f"{self.baseline_value_rate_mean:.0%}, {BASELINE_QUANTILE:.0%} quantile "
            f"{self.baseline_value_rate_q95:.0%})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "evidence": self.evidence,
            "trials": self.trials,
            "exact_rows": self.exact_rows,
            "rare_trials": self.rare_trials,
            "exact_rare_rows": self.exact_rare_rows,
            "values_matched": self.values_matched,
            "values_total": self.values_total,
            "value_rate": self.value_rate,
            "baseline": {
                "value_rate_mean": self.baseline_value_rate_mean,
                "value_rate_q95": self.baseline_value_rate_q95,
                "exact_rare_rows_mean": self.baseline_exact_rare_rows_mean,
                "exact_rare_rows_q95": self.baseline_exact_rare_rows_q95,
            },
            "first_line": self.first_line,
            "columns": list(self.columns) if self.columns else None,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "details": self.details,
        }


@dataclass
class FeatureTest:
    """The rare-valued column named from the rest of its row, against the marginal baseline."""

    column: str | None = None
    distinct_values: int = 0
    trials: int = 0
    exact: int = 0
    baseline_exact_mean: float = 0.0
    baseline_exact_q95: float = 0.0
    details: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0  # wall time of the test

    @property
    def evidence(self) -> bool:
        return self.exact >= MIN_EXACT and self.exact > self.baseline_exact_q95

    def summary(self) -> str:
        if self.skipped:
            return f"skipped ({self.skipped})"
        return (
            f"'{self.column}' ({self.distinct_values} distinct values) named exactly for "
            f"{self.exact} of {self.trials} rows (by chance: mean {self.baseline_exact_mean:.2f}, "
            f"{BASELINE_QUANTILE:.0%} quantile {self.baseline_exact_q95:g})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "evidence": self.evidence,
            "column": self.column,
            "distinct_values": self.distinct_values,
            "trials": self.trials,
            "exact": self.exact,
            "baseline": {
                "exact_mean": self.baseline_exact_mean,
                "exact_q95": self.baseline_exact_q95,
            },
            "skipped": self.skipped,
            "seconds": self.seconds,
            "details": self.details,
        }


# ---------------------------------------------------------------------------------------------
# The tests


class _Asker:
    """Sends one-line completion requests through a backend, as raw text (stopping at the end
    of the line) or, for chat models, with an instruction; adds up what they used."""

    def __init__(self, backend: LLMBackend, chat: bool, prompt_cap: int) -> None:
        self.backend, self.chat = backend, chat
        self.prompt_cap = prompt_cap  # characters (a token holds at least one)
        self.usage = Usage()

    def lines(self, prompts: Sequence[str], targets: Sequence[str]) -> list[str]:
        """The first line of each greedy continuation, in order (so a local model reuses the
        prompts' shared prefixes). A line as long as the longest target is never cut short: a
        token holds at least one character, and a raw completion stops at the newline anyway."""
        if not prompts:
            return []
        requests: list[str | Messages] = (
            [
                [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": p}]
                for p in prompts
            ]
            if self.chat
            else list(prompts)
        )
        # One budget for the batch (one call: an endpoint answers it concurrently).
        budget = (
            max(len(t) for t in targets) + BUDGET_MARGIN["chat" if self.chat else "completions"]
        )
        stop = None if self.chat else ["\n"]
        results = self.backend.generate(
            [GenerateRequest(r, max_tokens=budget, temperature=0.0, stop=stop) for r in requests]
        )
        for result in results:
            self.usage = self.usage + result.usage
        return [self._first_line(r.text, p) for r, p in zip(results, prompts, strict=True)]

    def _first_line(self, text: str, prompt: str) -> str:
        if self.chat:
            text = re.sub(r"^\s*```[\w-]*\n?", "", text.lstrip("\n"))  # a fenced answer
            tail = prompt.rsplit("\n", 1)[-1]
            if tail and text.startswith(tail):  # the model repeated the cut line first
                text = text[len(tail) :]
        return text.split("\n", 1)[0].rstrip("\r")


def _cut(line: str) -> int:
    """Where a line is cut: after the comma nearest its middle (whole tokens on each side)."""
    commas = [start for start, _ in _fields(line)[1:]]  # each later field starts after a comma
    if not commas:
        return len(line) // 2
    return min(commas, key=lambda c: abs(c - len(line) / 2))


def header_test(table: RawTable, settings: MemcheckSettings, asker: _Asker) -> HeaderTest:
    """Cut the file after a comma near the middle of each of `settings.header_lines` and ask
    for the rest of that line; where it comes back verbatim, ask for the next line too (greedy
    decoding would have gone on the same way), and measure how far the answer is verbatim."""
    lines = table.lines
    wanted = [i for i in settings.header_lines if i + 1 < len(lines)]
    if not wanted:
        return HeaderTest(skipped="the file has fewer than two lines")
    cuts = {i: _cut(lines[i]) for i in wanted}
    prompts = {i: "\n".join([*lines[:i], lines[i][: cuts[i]]]) for i in wanted}
    rests = {i: lines[i][cuts[i] :] for i in wanted}
    # One request per call: the cut lines differ in length, and each gets its own budget.
    firsts = {i: asker.lines([prompts[i]], [rests[i]])[0] for i in wanted}
    follow = [i for i in wanted if firsts[i] == rests[i]]
    nexts = {i: asker.lines([prompts[i] + rests[i] + "\n"], [lines[i + 1]])[0] for i in follow}
    splits = []
    for i in wanted:
        expected = rests[i] + "\n" + lines[i + 1]
        completion = firsts[i] + ("\n" + nexts[i] if i in nexts else "")
        splits.append(
            {
                "line": i + 1,
                "prompt_chars": len(prompts[i]),
                "expected": expected,
                "completion": completion,
                "matched_chars": _common_prefix(expected, completion),
                "next_line_verbatim": nexts.get(i) == lines[i + 1],
                "next_line_rare": table.holds_rare(list(enumerate(table.rows[i]))),
            }
        )
    return HeaderTest(splits=splits)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _block(n_rows: int, settings: MemcheckSettings) -> tuple[int, int, int]:
    """(first context row, first trial row, trials) of the contiguous block the tests use."""
    trials = min(settings.rows, max(0, n_rows - 1))
    context = min(settings.context_rows, n_rows - trials)
    rng = np.random.default_rng(settings.seed)
    start = int(rng.integers(context, n_rows - trials + 1))
    return start - context, start, trials


def _contexts(
    header: str,
    data: list[str],
    block: tuple[int, int, int],
    settings: MemcheckSettings,
    asker: _Asker,
) -> list[int]:
    """The first context row of each trial. The block's earlier rows stay in the prompt, so
    consecutive prompts share a prefix a local model or a serving engine reuses, until the
    prompt would pass `asker.prompt_cap` characters; then the context starts afresh
    `context_rows` before the trial row."""
    first, start, trials = block

    def size(a: int, i: int) -> int:
        return len(header) + sum(len(data[k]) + 1 for k in range(a, i + 1))

    firsts, current = [], first
    for i in range(start, start + trials):
        if size(current, i) > asker.prompt_cap:
            current = max(first, i - settings.context_rows)
            while current < i and size(current, i) > asker.prompt_cap:
                current += 1
        firsts.append(current)
    return firsts


def _quantile(values: np.ndarray) -> float:
    return float(np.quantile(values, BASELINE_QUANTILE))


def _window(table: RawTable, settings: MemcheckSettings) -> tuple[int, int]:
    """The columns [a, b) the row test asks for: `max_values` of them after at least
    `prefix_share` of the row, ending at the column with the most distinct values there."""
    width = table.width
    earliest = min(max(1, round(width * settings.prefix_share)), width - 1)
    later = [j for j in range(earliest, width) if not _identifier(table.column(j))]
    rarest = max(later or [width - 1], key=lambda j: len(table.marginals[j]))
    a = max(earliest, rarest + 1 - settings.max_values)
    return a, min(width, a + settings.max_values)


def row_test(table: RawTable, settings: MemcheckSettings, asker: _Asker) -> RowTest:
    """Give each row of the block up to the asked window (`_window`), after the earlier rows of
    the block; count exact completions of the window's values and draw the marginal baseline."""
    header, data, width = table.lines[0], table.lines[1:], table.width
    if width < 2 or len(data) < 2:
        return RowTest(skipped="needs at least two rows of at least two values")
    block = _block(len(data), settings)
    _, start, trials = block
    a, b = _window(table, settings)
    prompts, targets, asked = [], [], []
    for i, first in zip(
        range(start, start + trials), _contexts(header, data, block, settings, asker), strict=True
    ):
        spans = _fields(data[i])
        if len(spans) != width:  # a malformed line: ask for the rest of it, counting nothing
            spans = [*spans[: min(a, len(spans) - 1)], (spans[-1][0], len(data[i]))]
        window = spans[min(a, len(spans) - 1) : b]
        prompts.append("\n".join([header, *data[first:i], data[i][: window[0][0]]]))
        targets.append(data[i][window[0][0] : window[-1][1]])
        asked.append(list(enumerate(table.rows[i]))[a:b] if len(table.rows[i]) == width else [])
    answers = asker.lines(prompts, targets)
    result = RowTest(trials=trials, first_line=start + 2, columns=(a, b))
    chances, rare = [], []
    for k, (target, answer) in enumerate(zip(targets, answers, strict=True)):
        expected, got = _values(target), _values(answer)
        matched = sum(a == b for a, b in zip(expected, got, strict=False))
        exact = answer == target or answer.startswith(target + ",")  # (values after it unasked)
        holds_rare = table.holds_rare(asked[k])
        result.exact_rows += exact
        result.rare_trials += holds_rare
        result.exact_rare_rows += exact and holds_rare
        result.values_matched += matched
        result.values_total += len(expected)
        result.details.append(
            {
                "line": start + k + 2,
                "given": prompts[k].rsplit("\n", 1)[-1],
                "expected": target,
                "completion": answer,
                "values_matched": matched,
                "values": len(expected),
                "exact": exact,
                "rare_value": holds_rare,
            }
        )
        chances.append([table.share(j, v) for j, v in asked[k]] or [0.0] * len(expected))
        rare.append(holds_rare)
    rates, exacts = _row_baseline(chances, rare, settings)
    result.baseline_value_rate_mean = float(rates.mean())
    result.baseline_value_rate_q95 = _quantile(rates)
    result.baseline_exact_rare_rows_mean = float(exacts.mean())
    result.baseline_exact_rare_rows_q95 = _quantile(exacts)
    return result


def _row_baseline(
    chances: list[list[float]], rare: list[bool], settings: MemcheckSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Per draw: the share of values matched, and the rows with a rare value matched whole,
    when every value is drawn from its column's marginal distribution (a value then matches
    with its frequency)."""
    rng = np.random.default_rng(settings.seed + 1)
    flat = np.array([p for row in chances for p in row])
    hits = rng.random((settings.baseline_draws, flat.size)) < flat
    bounds = np.cumsum([0] + [len(row) for row in chances])
    whole = np.stack([hits[:, a:b].all(axis=1) for a, b in itertools.pairwise(bounds)], axis=1)
    return hits.mean(axis=1), whole[:, np.array(rare, dtype=bool)].sum(axis=1).astype(float)


def _identifier(values: list[str]) -> bool:
    """A row counter or id: whole numbers rising down the file (R's rownames, a contact id).
    Its value follows from the rows around it, so naming it shows no memory of the row."""
    try:
        numbers = np.array([float(v.strip('"')) for v in values])
    except ValueError:
        return False
    whole = bool(np.all(numbers == np.round(numbers)))
    return len(numbers) > 1 and whole and bool(np.all(np.diff(numbers) > 0))


def feature_test(table: RawTable, settings: MemcheckSettings, asker: _Asker) -> FeatureTest:
    """Move the column with the most distinct values (identifiers aside) to the end of every
    line and ask for its value in each row of the block, given the rest of the row after the
    `context_rows` rows before the block as examples (the same for every row, so consecutive
    prompts share them and the context stays short)."""
    header, parsed, width = table.lines[0], table.rows, table.width
    if width < 2 or len(parsed) < 2:
        return FeatureTest(skipped="needs at least two rows of at least two values")
    columns = _values(header)
    if len(columns) != width:
        columns = [f"column {j + 1}" for j in range(width)]
        if table.columns is not None and len(table.columns) == width:
            columns = list(table.columns)
    candidates = [j for j in range(width) if not _identifier(table.column(j))]
    if not candidates:
        return FeatureTest(skipped="every column is an identifier")
    rare = max(candidates, key=lambda j: len(table.marginals[j]))
    if len(table.marginals[rare]) < 2:
        return FeatureTest(skipped="no column has more than one value")

    def moved(values: list[str]) -> str:
        return ",".join([*values[:rare], *values[rare + 1 :], values[rare]])

    head = moved(_values(header)) if len(_values(header)) == width else header
    first, start, trials = _block(len(parsed), settings)
    examples = [moved(parsed[k]) for k in range(first, start) if len(parsed[k]) == width]
    prompts, targets, rows = [], [], []
    for i in range(start, start + trials):
        if len(parsed[i]) == width:
            others = [*parsed[i][:rare], *parsed[i][rare + 1 :]]
            prompts.append("\n".join([head, *examples, ",".join(others) + ","]))
            targets.append(parsed[i][rare])
            rows.append(i)
    answers = asker.lines(prompts, targets)
    result = FeatureTest(
        column=columns[rare].strip('"'),
        distinct_values=len(table.marginals[rare]),
        trials=len(prompts),
    )
    for i, target, answer in zip(rows, targets, answers, strict=True):
        got = _values(answer)[0]
        result.exact += got == target
        result.details.append(
            {"line": i + 2, "expected": target, "completion": got, "exact": got == target}
        )
    chances = np.array([table.share(rare, t) for t in targets])
    rng = np.random.default_rng(settings.seed + 2)
    draws = (rng.random((settings.baseline_draws, len(chances))) < chances).sum(axis=1)
    result.baseline_exact_mean, result.baseline_exact_q95 = float(draws.mean()), _quantile(draws)
    return result

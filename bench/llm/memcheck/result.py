"""The verdict rule and the memcheck's result: the thresholds a test's counts must pass to say
"memorised" (`MIN_EXACT`, `BASELINE_QUANTILE`, `RARE_SHARE`), the rule and the caveat written
into every result (`VERDICT_RULE`, `TINY_MODEL_NOTE`), and `MemcheckResult`, the three tests on
one (dataset, llm) with their verdict, what they cost and their JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bench.llm.protocol import Usage

# The tests (completion.py) and the raw text (raw.py) import the thresholds from here: the
# tests' classes are imported back for the annotations only, which stay strings at run time.
if TYPE_CHECKING:
    from bench.llm.memcheck.completion import FeatureTest, HeaderTest, MemcheckSettings, RowTest

__all__ = [
    "BASELINE_QUANTILE",
    "MIN_EXACT",
    "NO_EVIDENCE",
    "RARE_SHARE",
    "TINY_MODEL_NOTE",
    "VERDICT_RULE",
    "MemcheckResult",
]

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
            f"memorised: evidence from the {', '.join(found)} test{'s' if len(found) > 1 else ''} "
            f"({self.row.exact_rare_rows} of {self.row.trials} rows with a rare value completed "
            "exactly)"
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

"""The verdict's sentences: one per comparison, in words a reader can check against the numbers.

bench/report/verdict.py decides; this module only writes. A line names the two methods and their
scores, the answer, the difference with its 95% interval (and the joint one where several sizes
are decided together), what more data would decide, and what a day of predictions costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.config import ReportConfig
from bench.report.compare import Interval
from bench.report.runs import metric_name

if TYPE_CHECKING:
    from bench.report.verdict import Comparison

__all__ = [
    "CATEGORIES",
    "MANY_SEEDS",
    "adjusted_sentence",
    "classical_better_from",
    "format_score",
    "format_sig",
    "headline",
    "name_sizes",
    "sentence",
]

CATEGORIES = ("better", "good enough", "worse", "inconclusive", "untested")
MANY_SEEDS = 100  # beyond this, "how many seeds" stops being advice

RELATION = {
    "better": "the LLM is better",
    "good enough": "the LLM is good enough",
    "worse": "the LLM is worse",
    "inconclusive": "inconclusive",
}


def sentence(
    c: Comparison, metric: str, margin: float, group_words: tuple[str, str], settings: ReportConfig
) -> str:
    """The line of one comparison: the training-row picks, or the best of each side."""
    iv = c.interval
    if c.kind == "picks":
        llm = f"{c.llm} ({c.llm_picked})" if c.llm_picked else c.llm
        classical = f"{c.classical} ({c.classical_picked})" if c.classical_picked else c.classical
        start = (
            f"With {c.n_train:,} labelled rows, picked without the test rows: {llm} scores "
            f"{c.llm_mean:.3f} {metric_name(metric)} and {classical} {c.classical_mean:.3f}"
        )
    else:  # llm_picked: what the best's own runs chose (llm_boost's s = 0, picks.boost_scales)
        llm = f"{c.llm} ({c.llm_picked})" if c.llm_picked else c.llm
        start = (
            f"With {c.n_train:,} labelled rows, {llm} scores {c.llm_mean:.3f} "
            f"{metric_name(metric)} and {c.classical} {c.classical_mean:.3f}"
        )
    groups = f"{iv.n_seeds} {group_words[0] if iv.n_seeds == 1 else group_words[1]}"
    if c.line_category == "untested":
        why = f"; {iv.why_seeds}" if iv.why_seeds else ""
        return (
            f"{start}: too few matched seeds to compare (only {groups}{why}).{_cost(c, settings)}"
        )
    if iv.method == "rows":
        basis = f"paired over {iv.n_rows:,} test rows of {groups}"
    else:
        basis = f"t-interval over {groups}"
        if iv.why_seeds:
            basis += f": {iv.why_seeds}"
    stats = (
        f"LLM - classical = {iv.estimate:+.3f}, 95% CI {iv.low:+.3f} to {iv.high:+.3f}"
        f"{_joint(c, 'interval')}, {basis}"
    )
    relation = RELATION[c.line_category]
    decided = c.joint if c.joint is not None and c.decides == "interval" else iv
    if c.line_category == "good enough" and decided.advantage[0] < 0:
        relation += f" (at most {margin:g} worse)"
    text = f"{start}: {relation} ({stats})"
    if c.line_category == "inconclusive":
        text += _what_decides(decided, margin)
    return text + "." + _cost(c, settings)


def _joint(c: Comparison, interval: str) -> str:
    """' (-0.061 to +0.020 jointly over 4 sizes)' where `interval` decides jointly."""
    if c.joint is None or c.joint_sizes < 2 or c.decides != interval:
        return ""
    return f" ({c.joint.low:+.3f} to {c.joint.high:+.3f} jointly over {c.joint_sizes} sizes)"


def adjusted_sentence(c: Comparison, metric: str) -> str:
    """The best-on-test comparison adjusted for choosing both methods on those test rows."""
    adjusted = c.adjusted
    assert adjusted is not None
    unit = metric_name(metric)
    choice = (
        f"picking the best of {adjusted.n_llm} LLM-based and {adjusted.n_classical} classical "
        f"method{'s' if adjusted.n_classical != 1 else ''} on these test rows"
    )
    assert adjusted.interval is not None and adjusted.fit is not None
    iv = adjusted.interval
    differ = [
        f"{' and '.join(dict.fromkeys(picks))} on the {side} side"
        for side, picks, best in (
            ("LLM", adjusted.llm_picks, c.llm),
            ("classical", adjusted.classical_picks, c.classical),
        )
        if set(picks) != {best}
    ]
    halves = f"; the halves picked {', '.join(differ)}" if differ else ""
    category = c.adjusted_category
    text = (
        f"Adjusted for {choice} (cross-fitted: each side picked on one half of every seed's "
        f"test rows and compared on the other, then swapped{halves}): LLM - classical = "
        f"{iv.estimate:+.3f}, 95% CI {iv.low:+.3f} to {iv.high:+.3f}"
    )
    text += f"{_joint(c, 'adjusted')}: {RELATION.get(category, 'too few seeds to compare')}."
    fit = adjusted.fit
    return text + (
        f" Picking the best flatters the LLM side by about {_signed(fit.llm.flattery)} {unit} "
        f"and the classical side by {_signed(fit.classical.flattery)} (the best's score on each "
        "half against that of the pick made on the other half)."
    )


def _signed(x: float) -> str:
    """`x` to 3 decimals with its sign, and a rounded zero as +0.000, never -0.000.

    >>> _signed(-0.0001), _signed(0.0123)
    ('+0.000', '+0.012')
    """
    return f"{x + 0.0 if round(x, 3) else 0.0:+.3f}"


def _what_decides(iv: Interval, margin: float) -> str:
    target = (
        f"whether it is good enough (within {margin:g})"
        if iv.advantage[0] > -margin
        else "whether the LLM is worse"
    )
    per_seed = iv.n_rows // iv.n_seeds if iv.n_seeds and iv.n_rows else 0
    if (iv.seeds_needed or 0) > MANY_SEEDS and (iv.rows_needed is None or iv.method != "rows"):
        return (
            f"; more than {MANY_SEEDS} seeds would be needed to decide {target}: the estimate "
            "sits close to the boundary"
        )
    if iv.rows_needed is not None and iv.method == "rows":
        text = (
            f"; about {iv.rows_needed:,} test rows per seed (now {per_seed:,}) would decide "
            f"{target}"
        )
        if iv.seeds_needed is not None:
            text += f", or about {iv.seeds_needed:,} seeds of {per_seed:,} rows"
        return text
    if iv.seeds_needed is not None:
        return f"; about {iv.seeds_needed:,} seeds (now {iv.n_seeds}) would decide {target}"
    return "; the estimate sits on the boundary: no amount of data is likely to decide it"


def _cost(c: Comparison, settings: ReportConfig) -> str:
    """What a day of predictions costs each side: fees where the LLM pays, else compute."""
    lead = f" At {settings.daily_predictions:,} predictions a day, {c.llm}"
    classical = _daily(c.classical_usd_per_day, c.classical_cpu_hours_per_day)
    if c.llm_usd_per_day > 0:
        text = f"{lead} costs ${format_sig(c.llm_usd_per_day)} a day"
    elif not math.isnan(c.llm_cpu_hours_per_day):
        text = f"{lead} needs {format_sig(c.llm_cpu_hours_per_day)} compute hours a day"
    else:
        return (
            f" The cost per prediction of {c.llm} is unknown: all its answers came from the "
            "request cache."
        )
    return text + (f"; {c.classical} {classical}." if classical else ".")


def _daily(usd: float, hours: float) -> str:
    if usd > 0:
        return f"costs ${format_sig(usd)}"
    if not math.isnan(hours):
        return f"needs {format_sig(hours)} compute hours"
    return ""


def format_score(x: float) -> str:
    """A score with three decimals, "-" when there is none."""
    return "-" if math.isnan(x) else f"{x:.3f}"


def format_sig(x: float, digits: int = 2) -> str:
    """Two significant digits, thousands separated: 0.0137 -> '0.014', 1234 -> '1,200'."""
    if x == 0 or math.isnan(x) or math.isinf(x):
        return "0" if x == 0 else str(x)
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    if decimals <= 0:
        return f"{round(x, decimals):,.0f}"
    return f"{x:.{decimals}f}"


def classical_better_from(comparisons: Sequence[Comparison]) -> int | None:
    """The smallest tested n_train from which the LLM is worse at every larger tested size."""
    tested = [c for c in comparisons if c.category != "untested"]
    from_n = None
    for c in reversed(tested):
        if c.category != "worse":
            break
        from_n = c.n_train
    return from_n


def headline(
    comparisons: Sequence[Comparison], metric: str, margin: float
) -> tuple[int | None, str]:
    """One sentence that groups the sizes by category; each size is named once."""
    tested = [c for c in comparisons if c.category != "untested"]
    untested = [c.n_train for c in comparisons if c.category == "untested"]
    lead = f"With a margin of {margin:g} {metric_name(metric)}, "
    if not tested:
        return None, (
            lead
            + f"too few matched seeds to compare at any training size ({name_sizes(untested)})."
        )
    by = {cat: [c.n_train for c in tested if c.category == cat] for cat in CATEGORIES}
    from_n = classical_better_from(tested)
    sizes = [c.n_train for c in tested]
    if from_n is not None and from_n == sizes[0]:
        parts = [f"classical models are better at every training size tested ({name_sizes(sizes)})"]
    else:
        parts = []
        enough = by["better"] + by["good enough"]
        if enough:
            part = f"the LLM is good enough at {name_sizes(sorted(enough))}"
            if by["better"]:
                part += f" (better at {name_sizes(by['better'])})"
            parts.append(part)
        if from_n is not None:
            parts.append(f"classical models are better from {from_n:,} rows on")
            earlier = [n for n in by["worse"] if n < from_n]
            if earlier:
                parts.append(f"and at {name_sizes(earlier)}")
        elif by["worse"]:
            parts.append(f"classical models are better at {name_sizes(by['worse'])}")
        if by["inconclusive"]:
            parts.append(f"undecided at {name_sizes(by['inconclusive'])} (see below)")
    if untested:
        parts.append(f"too few matched seeds to compare at {name_sizes(untested)}")
    return from_n, lead + "; ".join(parts).replace("; and at", " and at") + "."


def name_sizes(ns: Sequence[int]) -> str:
    """[16, 64, 256] -> '16, 64 and 256 rows'."""
    words = [f"{n:,}" for n in ns]
    joined = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"{joined} row{'s' if len(ns) > 1 or ns[0] != 1 else ''}"

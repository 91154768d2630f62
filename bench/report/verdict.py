"""The plain-language verdict: the best LLM-based method against the best classical method.

For each n_train the best LLM-based method (methods that call an LLM) and the best classical method
(by mean) are compared by the paired 95% t-interval of their difference (LLM - classical) over
the seeds both ran; pooled over datasets, over (dataset, seed) pairs. A side "wins" only where
the interval excludes 0; otherwise the text says "not significantly different". Classical
models "win from n rows" when they are significantly better at n and at every larger size that
could be tested (2 or more pairs). The text says nothing the intervals do not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from bench.metrics import higher_is_better
from bench.report.ranks import rank_table
from bench.report.runs import metric_name, ok_runs, uses_llm
from bench.report.stats import PairedDifference, paired_difference

__all__ = [
    "VERDICT_NOTE",
    "Comparison",
    "Verdict",
    "dataset_verdict",
    "format_sig",
    "overall_verdicts",
]

VERDICT_NOTE = (
    "Each comparison is a paired 95% t-interval of the difference LLM - classical over the "
    "seeds both methods ran (pooled over datasets: over dataset x seed pairs, taken as "
    "independent although seeds of one dataset are alike, so the interval is optimistic); it "
    "is not adjusted for the several "
    "training sizes, and the best method of each side is picked on the same results, which "
    "flatters both sides alike. Costs are means per 1,000 predictions; compute seconds are CPU "
    "seconds of fit + predict for classical methods and LLM seconds for LLM-based methods."
)


@dataclass(frozen=True)
class Comparison:
    """The best LLM-based and the best classical method at one n_train."""

    n_train: int
    llm: str
    classical: str
    llm_mean: float
    classical_mean: float
    difference: PairedDifference  # LLM - classical, in metric units
    status: str  # llm_better | classical_better | tie | untested
    llm_seconds: float = float("nan")  # compute seconds per 1,000 predictions
    classical_seconds: float = float("nan")
    llm_usd: float = float("nan")  # USD per 1,000 predictions
    classical_usd: float = float("nan")

    @property
    def cost_ratio(self) -> float:
        """LLM compute seconds per prediction over the classical method's (NaN if unknown)."""
        if self.classical_seconds > 0 and self.llm_seconds >= 0:
            return self.llm_seconds / self.classical_seconds
        return float("nan")


@dataclass
class Verdict:
    """Comparisons per n_train, the size from which classical models win, and the text."""

    scope: str
    metric: str
    comparisons: list[Comparison]
    classical_from: int | None
    headline: str
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join([self.headline, *(f"- {line}" for line in self.lines)])


def _status(diff: PairedDifference, better: bool) -> str:
    if not diff.testable:
        return "untested"
    if not diff.significant:
        return "tie"
    return "llm_better" if (diff.mean > 0) == better else "classical_better"


def _best(means: Mapping[str, float], better: bool) -> str:
    """The best label by mean; ties go to the first name alphabetically (deterministic)."""
    top = max(means.values()) if better else min(means.values())
    return min(k for k, v in means.items() if math.isclose(v, top, abs_tol=1e-12))


def _mean_cost(rows: pd.DataFrame, column: str) -> float:
    return float(rows[column].mean()) if column in rows.columns else float("nan")


def dataset_verdict(runs: pd.DataFrame, metric: str, dataset: str) -> Verdict:
    """The verdict on one dataset's prepared runs (with `cost_per_1k` columns if costs known)."""
    ok = ok_runs(runs, metric)
    better = higher_is_better(metric)
    comparisons = []
    zero_shot = None
    for n_train, at_n in ok.groupby("n_train", sort=True):
        llm_runs = at_n[uses_llm(at_n)]
        classical_runs = at_n[at_n["family"].eq("classical")]
        if llm_runs.empty:
            continue
        llm_label = _best(llm_runs.groupby("label")[metric].mean().to_dict(), better)
        llm_rows = llm_runs[llm_runs["label"].eq(llm_label)]
        if classical_runs.empty:
            if n_train == 0:
                zero_shot = (llm_label, float(llm_rows[metric].mean()))
            continue
        classical_label = _best(classical_runs.groupby("label")[metric].mean().to_dict(), better)
        classical_rows = classical_runs[classical_runs["label"].eq(classical_label)]
        comparisons.append(_compare(int(n_train), llm_rows, classical_rows, ["seed"], metric))
    verdict = _verdict(dataset, metric, comparisons, ok, pairs=("paired seed", "paired seeds"))
    if zero_shot is not None:
        label, mean = zero_shot
        verdict.lines.insert(
            0,
            f"With 0 labelled rows (zero-shot), the best LLM-based method, {label}, scores "
            f"{mean:.3f} {metric_name(metric)}; classical methods need training rows.",
        )
    return verdict


def overall_verdicts(runs: pd.DataFrame, metrics: Mapping[str, str]) -> list[Verdict]:
    """One pooled verdict per metric (datasets scored with the same metric pool together).

    At each n_train, over the datasets where both families have results at that size, the
    LLM-based and the classical method with the best mean rank are compared over their shared
    (dataset, seed) pairs.
    """
    verdicts = []
    by_metric: dict[str, list[str]] = {}
    for dataset, metric in sorted(metrics.items()):
        by_metric.setdefault(metric, []).append(dataset)
    for metric, datasets in by_metric.items():
        ok = ok_runs(runs[runs["dataset"].isin(datasets)], metric)
        comparisons = []
        for n_train, at_n in ok.groupby("n_train", sort=True):
            comparison = _pooled_comparison(at_n, metric, int(n_train))
            if comparison is not None:
                comparisons.append(comparison)
        scope = f"{len(datasets)} dataset{'s' if len(datasets) != 1 else ''} ({metric})"
        verdicts.append(
            _verdict(
                scope,
                metric,
                comparisons,
                ok,
                pairs=("dataset x seed pair", "dataset x seed pairs"),
            )
        )
    return verdicts


def _pooled_comparison(at_n: pd.DataFrame, metric: str, n_train: int) -> Comparison | None:
    """Best-ranked LLM-based vs classical method over the datasets where both families ran."""
    llm_family = uses_llm(at_n)
    both = set(at_n.loc[llm_family, "dataset"]) & set(
        at_n.loc[at_n["family"].eq("classical"), "dataset"]
    )
    at_n = at_n[at_n["dataset"].isin(both)]
    if at_n.empty:
        return None
    ranks = rank_table(at_n, {d: metric for d in sorted(both)})
    # Lowest mean rank; ties go to the first name alphabetically.
    ranks = ranks.sort_values(["mean_rank", "method"])
    llm_labels = set(at_n.loc[llm_family, "label"])
    llm_label = ranks[ranks["method"].isin(llm_labels)].iloc[0]["method"]
    classical_label = ranks[ranks["family"].eq("classical")].iloc[0]["method"]
    llm_rows = at_n[at_n["label"].eq(llm_label)]
    classical_rows = at_n[at_n["label"].eq(classical_label)]
    return _compare(n_train, llm_rows, classical_rows, ["dataset", "seed"], metric)


def _compare(
    n_train: int, llm_rows: pd.DataFrame, classical_rows: pd.DataFrame, keys: list[str], metric: str
) -> Comparison:
    """Compare two methods' runs over their shared pairs (`keys`): means, difference, costs.

    The means are over the shared pairs, so the sentence's two scores differ by exactly the
    difference it reports; without shared pairs they are over all runs and nothing is tested.
    """
    llm, classical = llm_rows.set_index(keys), classical_rows.set_index(keys)
    shared = llm.index.intersection(classical.index)
    if len(shared):
        llm, classical = llm.loc[shared], classical.loc[shared]
    diff = paired_difference(llm[metric], classical[metric])
    return Comparison(
        n_train,
        str(llm["label"].iloc[0]),
        str(classical["label"].iloc[0]),
        float(llm[metric].mean()),
        float(classical[metric].mean()),
        diff,
        _status(diff, higher_is_better(metric)),
        _mean_cost(llm, "seconds_per_1k"),
        _mean_cost(classical, "seconds_per_1k"),
        _mean_cost(llm, "usd_per_1k"),
        _mean_cost(classical, "usd_per_1k"),
    )


def _verdict(
    scope: str,
    metric: str,
    comparisons: list[Comparison],
    ok: pd.DataFrame,
    pairs: tuple[str, str],
) -> Verdict:
    has_llm = bool(uses_llm(ok).any()) if len(ok) else False
    has_classical = bool(ok["family"].eq("classical").any()) if len(ok) else False
    lines = [_sentence(c, metric, pairs) for c in comparisons]
    if not has_llm:
        headline = "No LLM-based method has results here: nothing to compare."
    elif not has_classical:
        headline = "No classical method has results here: nothing to compare."
    elif not comparisons:
        headline = "LLM-based and classical methods never ran at the same training size."
    else:
        return Verdict(scope, metric, comparisons, *_headline(comparisons), lines)
    return Verdict(scope, metric, comparisons, None, headline, lines)


def _headline(comparisons: Sequence[Comparison]) -> tuple[int | None, str]:
    tested = [c for c in comparisons if c.status != "untested"]
    untested = [c.n_train for c in comparisons if c.status == "untested"]
    if not tested:
        return None, (
            f"Too few paired seeds to compare at any training size ({_sizes(untested)}): "
            "no verdict."
        )
    tail = f" Too few paired seeds to test at {_sizes(untested)}." if untested else ""
    from_n = None
    for c in reversed(tested):  # the longest run of classical wins that reaches the largest size
        if c.status != "classical_better":
            break
        from_n = c.n_train
    sizes = [c.n_train for c in tested]
    if from_n is not None and from_n == sizes[0]:
        return from_n, (
            f"Classical models win at every training size tested ({_sizes(sizes)}): the best "
            "classical method is significantly better than the best LLM-based method at each."
            + tail
        )
    below = [c for c in tested if from_n is None or c.n_train < from_n]
    details = []
    for status, words in (
        ("llm_better", "the best LLM-based method is significantly better at"),
        ("tie", "the difference is not significant at"),
        ("classical_better", "the best classical method is significantly better at"),
    ):
        ns = [c.n_train for c in below if c.status == status]
        if ns:
            details.append(f"{words} {_sizes(ns)}")
    if from_n is not None:
        won = [n for n in sizes if n >= from_n]
        return from_n, (
            f"Classical models win from {from_n} labelled rows on: the best classical method is "
            f"significantly better at {_sizes(won)}. Below that, " + "; ".join(details) + "." + tail
        )
    return None, (
        f"Classical models do not win from any training size tested (up to {sizes[-1]} rows): "
        + "; ".join(details)
        + "."
        + tail
    )


def _sizes(ns: Sequence[int]) -> str:
    """[16, 64, 256] -> '16, 64 and 256 rows'."""
    words = [str(n) for n in ns]
    joined = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"{joined} row{'s' if len(ns) > 1 or ns[0] != 1 else ''}"


def _sentence(c: Comparison, metric: str, pairs: tuple[str, str]) -> str:
    d = c.difference
    pair_words = f"{d.n} {pairs[0] if d.n == 1 else pairs[1]}"
    start = (
        f"With {c.n_train} labelled rows, {c.llm} scores {c.llm_mean:.3f} "
        f"{metric_name(metric)} and {c.classical} {c.classical_mean:.3f}"
    )
    if c.status == "untested":
        stats = f"too few pairs to compare (only {pair_words}, no confidence interval)"
    else:
        relation = {
            "llm_better": "the LLM-based method is significantly better",
            "classical_better": "the classical method is significantly better",
            "tie": "not significantly different",
        }[c.status]
        stats = (
            f"{relation} (LLM - classical = {d.mean:+.3f}, 95% CI {d.low:+.3f} to "
            f"{d.high:+.3f}, {pair_words})"
        )
    return f"{start}: {stats}{_cost_phrase(c)}."


def _cost_phrase(c: Comparison) -> str:
    parts = []
    ratio = c.cost_ratio
    if not math.isnan(ratio):
        parts.append(
            f"needs {format_sig(ratio)}x the compute time per prediction "
            f"({format_sig(c.llm_seconds)} vs {format_sig(c.classical_seconds)} s per 1,000)"
        )
    if c.llm_usd > 0:
        fee = f"costs ${format_sig(c.llm_usd)} per 1,000 predictions in fees"
        if c.classical_usd > 0:
            fee += f" (vs ${format_sig(c.classical_usd)})"
        parts.append(fee)
    if not parts:
        if math.isnan(c.llm_seconds) and math.isnan(c.llm_usd):
            return (
                f"; the cost per prediction of {c.llm} is unknown "
                "(all its answers came from the request cache)"
            )
        return ""
    return f"; {c.llm} " + " and ".join(parts)


def format_sig(x: float, digits: int = 2) -> str:
    """Two significant digits, thousands separated: 0.0137 -> '0.014', 1234 -> '1,200'."""
    if x == 0 or math.isnan(x) or math.isinf(x):
        return "0" if x == 0 else str(x)
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    if decimals <= 0:
        return f"{round(x, decimals):,.0f}"
    return f"{x:.{decimals}f}"

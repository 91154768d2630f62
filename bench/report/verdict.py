"""The plain-language verdict: is the best LLM-based method good enough to replace the best
classical one?

At each n_train the best LLM-based method (methods that call an LLM) and the best classical
method (by mean) are compared by a paired 95% interval of LLM - classical (`bench.report.compare`:
row-level over the test rows and seeds, or over seeds only with `report.stats=seeds`). "Good
enough" is a non-inferiority question with a margin (`report.margin`, in the metric's units):

- *better*: the interval lies above 0;
- *good enough*: its lower end is above -margin (at most `margin` worse, perhaps better);
- *worse*: it lies below 0 and reaches below -margin;
- *inconclusive*: it spans 0 and reaches below -margin; the line says how many test rows per
  seed (or seeds) would decide it at the observed variance.

Directions are the metric's: for log loss "above 0" means lower loss. Every training size gets
exactly one category, and the headline only groups them, so no two sentences disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from bench.config import ReportConfig
from bench.metrics import higher_is_better
from bench.report.compare import Interval, PredictionReader, compare_runs
from bench.report.ranks import rank_table
from bench.report.runs import metric_name, ok_runs, uses_llm

__all__ = [
    "CATEGORIES",
    "DEFAULT_MARGIN",
    "Comparison",
    "Verdict",
    "categorize",
    "dataset_verdict",
    "format_score",
    "format_sig",
    "margin_for",
    "overall_verdicts",
    "verdict_note",
]

DEFAULT_MARGIN = 0.02  # in the metric's units: 2 AUC or accuracy points, 0.02 nats of log loss
MANY_SEEDS = 100  # beyond this, "how many seeds" stops being advice
CATEGORIES = ("better", "good enough", "worse", "inconclusive", "untested")


def margin_for(settings: ReportConfig, metric: str) -> float:
    """The non-inferiority margin in `metric`'s units (one default for every metric)."""
    del metric  # the same 0.02 reads sensibly for AUC, accuracy, log loss and Brier
    return DEFAULT_MARGIN if settings.margin is None else float(settings.margin)


def verdict_note(settings: ReportConfig, metric: str = "roc_auc") -> str:
    margin = f"{margin_for(settings, metric):g}"
    how = (
        "a two-level paired bootstrap over the stored per-row predictions (seeds resampled, "
        "then test rows within each seed, stratified by class; 2,000 replicates), so both the "
        "test rows' noise and the seed-to-seed spread are in it; where a run's predictions are "
        "missing, the paired t-interval over seeds"
        if settings.stats == "rows"
        else "the paired t-interval over the seeds both methods ran (report.stats=seeds)"
    )
    return (
        f"Each verdict line compares the best LLM-based with the best classical method at one "
        f"training size by a 95% interval of LLM - classical: {how}. Pooled over datasets, "
        "each dataset x seed is one group. Categories with margin "
        f"{margin} (report.margin, in the metric's units): better (interval above 0), good "
        f"enough (its lower end above -{margin}: at most {margin} worse), worse (below 0 and "
        f"reaching below -{margin}), inconclusive (otherwise; the line says how many test rows "
        "per seed, or seeds, would decide it if the estimate and variance stayed as observed). "
        "Not adjusted for the several training sizes; the best method of each side is picked on "
        "the same results, which flatters both sides alike."
    )


def categorize(interval: Interval, margin: float) -> str:
    """better | good enough | worse | inconclusive | untested, for `a - b` with a = the LLM."""
    if not interval.testable:
        return "untested"
    _, low, high = interval.advantage
    if low > 0:
        return "better"
    if low > -margin:
        return "good enough"
    if high < 0:
        return "worse"
    return "inconclusive"


@dataclass(frozen=True)
class Comparison:
    """The best LLM-based and the best classical method at one n_train."""

    n_train: int
    llm: str
    classical: str
    llm_mean: float
    classical_mean: float
    interval: Interval  # LLM - classical, in metric units
    category: str  # one of CATEGORIES
    llm_cpu_hours_per_day: float = float("nan")  # marginal compute at the daily volume
    classical_cpu_hours_per_day: float = float("nan")
    llm_usd_per_day: float = float("nan")
    classical_usd_per_day: float = float("nan")


@dataclass
class Verdict:
    """Comparisons per n_train, the size from which classical models are better, the text."""

    scope: str
    metric: str
    margin: float
    comparisons: list[Comparison]
    classical_from: int | None
    headline: str
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join([self.headline, *(f"- {line}" for line in self.lines)])

    def sizes(self, *categories: str) -> list[int]:
        return [c.n_train for c in self.comparisons if c.category in categories]


def _best(means: Mapping[str, float], better: bool) -> str:
    """The best label by mean; ties go to the first name alphabetically (deterministic)."""
    top = max(means.values()) if better else min(means.values())
    return min(k for k, v in means.items() if math.isclose(v, top, abs_tol=1e-12))


def dataset_verdict(
    runs: pd.DataFrame,
    metric: str,
    dataset: str,
    settings: ReportConfig | None = None,
    reader: PredictionReader | None = None,
) -> Verdict:
    """The verdict on one dataset's prepared runs (with cost columns if costs are known)."""
    settings = settings or ReportConfig()
    reader = reader or PredictionReader(None)
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
        comparisons.append(
            _compare(int(n_train), llm_rows, classical_rows, ["seed"], metric, settings, reader)
        )
    verdict = _verdict(dataset, metric, comparisons, ok, settings, group_words=("seed", "seeds"))
    if zero_shot is not None:
        label, mean = zero_shot
        verdict.lines.insert(
            0,
            f"With 0 labelled rows (zero-shot), the best LLM-based method, {label}, scores "
            f"{mean:.3f} {metric_name(metric)}; classical methods need training rows.",
        )
    return verdict


def overall_verdicts(
    runs: pd.DataFrame,
    metrics: Mapping[str, str],
    settings: ReportConfig | None = None,
    reader: PredictionReader | None = None,
) -> list[Verdict]:
    """One pooled verdict per metric (datasets scored with the same metric pool together).

    At each n_train, over the datasets where both families have results at that size, the
    LLM-based and the classical method with the best mean rank are compared over their shared
    (dataset, seed) groups.
    """
    settings = settings or ReportConfig()
    reader = reader or PredictionReader(None)
    verdicts = []
    by_metric: dict[str, list[str]] = {}
    for dataset, metric in sorted(metrics.items()):
        by_metric.setdefault(metric, []).append(dataset)
    for metric, datasets in by_metric.items():
        ok = ok_runs(runs[runs["dataset"].isin(datasets)], metric)
        comparisons = []
        for n_train, at_n in ok.groupby("n_train", sort=True):
            comparison = _pooled_comparison(at_n, metric, int(n_train), settings, reader)
            if comparison is not None:
                comparisons.append(comparison)
        scope = f"{len(datasets)} dataset{'s' if len(datasets) != 1 else ''} ({metric})"
        words = ("dataset x seed", "dataset x seed groups")
        verdicts.append(_verdict(scope, metric, comparisons, ok, settings, group_words=words))
    return verdicts


def _pooled_comparison(
    at_n: pd.DataFrame,
    metric: str,
    n_train: int,
    settings: ReportConfig,
    reader: PredictionReader,
) -> Comparison | None:
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
    keys = ["dataset", "seed"]
    return _compare(n_train, llm_rows, classical_rows, keys, metric, settings, reader)


def _compare(
    n_train: int,
    llm_rows: pd.DataFrame,
    classical_rows: pd.DataFrame,
    keys: list[str],
    metric: str,
    settings: ReportConfig,
    reader: PredictionReader,
) -> Comparison:
    """Compare two methods' runs over their shared groups (`keys`): means, interval, costs.

    The means are over the shared groups, so the sentence's two scores differ by exactly the
    difference it reports; without shared groups they are over all runs and nothing is tested.
    """
    margin = margin_for(settings, metric)
    interval = compare_runs(
        llm_rows, classical_rows, metric, keys, reader, stats=settings.stats, margin=margin
    )
    llm, classical = llm_rows.set_index(keys), classical_rows.set_index(keys)
    shared = llm.index.intersection(classical.index)
    if len(shared):
        llm, classical = llm.loc[shared], classical.loc[shared]
    daily = settings.daily_predictions
    return Comparison(
        n_train,
        str(llm["label"].iloc[0]),
        str(classical["label"].iloc[0]),
        float(llm[metric].mean()),
        float(classical[metric].mean()),
        interval,
        categorize(interval, margin),
        _per_day(llm, "marginal_seconds_per_1k", daily) / 3600,
        _per_day(classical, "marginal_seconds_per_1k", daily) / 3600,
        _per_day(llm, "marginal_usd_per_1k", daily),
        _per_day(classical, "marginal_usd_per_1k", daily),
    )


def _per_day(rows: pd.DataFrame, column: str, daily: int) -> float:
    """Mean cost per 1,000 predictions scaled to `daily` predictions (NaN if unknown)."""
    if column not in rows.columns:
        return float("nan")
    return float(pd.to_numeric(rows[column], errors="coerce").mean()) * daily / 1000


def _verdict(
    scope: str,
    metric: str,
    comparisons: list[Comparison],
    ok: pd.DataFrame,
    settings: ReportConfig,
    group_words: tuple[str, str],
) -> Verdict:
    margin = margin_for(settings, metric)
    has_llm = bool(uses_llm(ok).any()) if len(ok) else False
    has_classical = bool(ok["family"].eq("classical").any()) if len(ok) else False
    lines = [_sentence(c, metric, margin, group_words, settings) for c in comparisons]
    if not has_llm:
        headline = "No LLM-based method has results here: nothing to compare."
    elif not has_classical:
        headline = "No classical method has results here: nothing to compare."
    elif not comparisons:
        headline = "LLM-based and classical methods never ran at the same training size."
    else:
        from_n, headline = _headline(comparisons, metric, margin)
        return Verdict(scope, metric, margin, comparisons, from_n, headline, lines)
    return Verdict(scope, metric, margin, comparisons, None, headline, lines)


def classical_better_from(comparisons: Sequence[Comparison]) -> int | None:
    """The smallest tested n_train from which the LLM is worse at every larger tested size."""
    tested = [c for c in comparisons if c.category != "untested"]
    from_n = None
    for c in reversed(tested):
        if c.category != "worse":
            break
        from_n = c.n_train
    return from_n


def _headline(
    comparisons: Sequence[Comparison], metric: str, margin: float
) -> tuple[int | None, str]:
    """One sentence that groups the sizes by category; each size is named once."""
    tested = [c for c in comparisons if c.category != "untested"]
    untested = [c.n_train for c in comparisons if c.category == "untested"]
    lead = f"With a margin of {margin:g} {metric_name(metric)}, "
    if not tested:
        return None, (
            lead + f"too few matched seeds to compare at any training size ({_sizes(untested)})."
        )
    by = {cat: [c.n_train for c in tested if c.category == cat] for cat in CATEGORIES}
    from_n = classical_better_from(tested)
    sizes = [c.n_train for c in tested]
    if from_n is not None and from_n == sizes[0]:
        parts = [f"classical models are better at every training size tested ({_sizes(sizes)})"]
    else:
        parts = []
        enough = by["better"] + by["good enough"]
        if enough:
            part = f"the LLM is good enough at {_sizes(sorted(enough))}"
            if by["better"]:
                part += f" (better at {_sizes(by['better'])})"
            parts.append(part)
        if from_n is not None:
            parts.append(f"classical models are better from {from_n:,} rows on")
            earlier = [n for n in by["worse"] if n < from_n]
            if earlier:
                parts.append(f"and at {_sizes(earlier)}")
        elif by["worse"]:
            parts.append(f"classical models are better at {_sizes(by['worse'])}")
        if by["inconclusive"]:
            parts.append(f"undecided at {_sizes(by['inconclusive'])} (see below)")
    if untested:
        parts.append(f"too few matched seeds to compare at {_sizes(untested)}")
    return from_n, lead + "; ".join(parts).replace("; and at", " and at") + "."


def _sizes(ns: Sequence[int]) -> str:
    """[16, 64, 256] -> '16, 64 and 256 rows'."""
    words = [f"{n:,}" for n in ns]
    joined = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"{joined} row{'s' if len(ns) > 1 or ns[0] != 1 else ''}"


_RELATION = {
    "better": "the LLM is better",
    "good enough": "the LLM is good enough",
    "worse": "the LLM is worse",
    "inconclusive": "inconclusive",
}


def _sentence(
    c: Comparison,
    metric: str,
    margin: float,
    group_words: tuple[str, str],
    settings: ReportConfig,
) -> str:
    iv = c.interval
    start = (
        f"With {c.n_train:,} labelled rows, {c.llm} scores {c.llm_mean:.3f} "
        f"{metric_name(metric)} and {c.classical} {c.classical_mean:.3f}"
    )
    groups = f"{iv.n_seeds} {group_words[0] if iv.n_seeds == 1 else group_words[1]}"
    if c.category == "untested":
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
    stats = f"LLM - classical = {iv.estimate:+.3f}, 95% CI {iv.low:+.3f} to {iv.high:+.3f}, {basis}"
    relation = _RELATION[c.category]
    if c.category == "good enough" and iv.advantage[0] < 0:
        relation += f" (at most {margin:g} worse)"
    sentence = f"{start}: {relation} ({stats})"
    if c.category == "inconclusive":
        sentence += _what_decides(iv, margin)
    return sentence + "." + _cost(c, settings)


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

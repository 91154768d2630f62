"""The plain-language verdict: is the LLM good enough to replace a classical model?

At each n_train the verdict compares, by a paired 95% interval of LLM - classical
(`bench.report.compare`: row-level over the test rows and seeds, or over seeds only with
`report.stats=seeds`):

1. the practitioner's picks, made on the training rows (`classical_auto` and `llm_icl_auto` or
   `llm_icl_tuned`, bench/report/picks.py), where the sweep ran them: this decides the size;
2. the best LLM-based and the best classical method by their mean on the test rows (the
   ceiling), followed by the same comparison adjusted for that choice by cross-fitting
   (bench/report/selection.py): the adjusted one decides where no picks ran.

The deciding intervals of a verdict's several sizes hold jointly (Bonferroni: each widened to
1 - 0.05 / sizes, `bench.report.stats.joint_factor`), so the headline that groups the sizes is
wrong anywhere with probability at most 5%. "Good enough" is a non-inferiority question with a
margin (`report.margin`, in the metric's units):

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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from bench.config import ReportConfig
from bench.metrics import higher_is_better
from bench.report.compare import Interval, PredictionReader, compare_runs
from bench.report.picks import (
    Adjusted,
    adjusted_best,
    boost_scales,
    picked_text,
    training_picks,
    without_picks,
)
from bench.report.ranks import rank_table
from bench.report.runs import metric_name, ok_runs, uses_llm
from bench.report.sentences import (
    CATEGORIES,
    adjusted_sentence,
    classical_better_from,
    format_score,
    format_sig,
    sentence,
)
from bench.report.sentences import headline as _headline
from bench.report.sentences import name_sizes as _sizes
from bench.report.stats import joint_factor

__all__ = [
    "CATEGORIES",
    "DEFAULT_MARGIN",
    "Comparison",
    "Verdict",
    "categorize",
    "classical_better_from",
    "dataset_verdict",
    "format_score",
    "format_sig",
    "margin_for",
    "overall_verdicts",
    "verdict_note",
    "widen",
]

DEFAULT_MARGIN = 0.02  # in the metric's units: 2 AUC or accuracy points, 0.02 nats of log loss


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
        "At each training size the first line compares the practitioner's picks, made on the "
        "training rows only (classical_auto: CV among the classical methods; llm_icl_auto: the "
        "serializer chosen on validation rows from the training rows, else llm_icl_tuned; a "
        "side with one method only needs no pick), by "
        f"a 95% interval of LLM - classical: {how}. No test row took part in either choice, so "
        "the interval means what it says. The next line is the ceiling: the best LLM-based and "
        "the best classical method by their mean on the test rows, with the same interval, "
        "which the choice flatters (the maximum of several noisy scores is biased upwards, the "
        "more so the more methods a side has). The line after it adjusts for the choice by "
        "cross-fitting: each side's best is picked on one half of every seed's test rows "
        "(alternate rows of each class) and compared on the other half, then the halves swap; "
        "the interval is the same bootstrap with a seed's two halves resampled together. It "
        "covers the true difference between the methods the halves picked (the true "
        "best-vs-best difference when one method of each side is clearly best, or when a "
        "side's methods are equally good), and it says how much picking the best flattered "
        "each side. Where the picks did not run, the adjusted line decides the size. "
        "scripts/bench_coverage.py measures both intervals' coverage with the choice included "
        "(README). Sizes together: the interval that decides each size is widened so that all "
        "sizes of one verdict hold together with 95% probability (Bonferroni, each half-width "
        "times the ratio of the 1 - 0.05/(2 x sizes) and 0.975 quantiles); the line shows it "
        "as 'jointly over N sizes', so the headline, which groups the sizes, is wrong anywhere "
        "with probability at most 5%. The answer lists one headline per dataset and one across "
        "datasets, each at that level on its own, not jointly. Pooled over datasets, each "
        "dataset x seed is one group. Categories with margin "
        f"{margin} (report.margin, in the metric's units): better (interval above 0), good "
        f"enough (its lower end above -{margin}: at most {margin} worse), worse (below 0 and "
        f"reaching below -{margin}), inconclusive (otherwise; the line says how many test rows "
        "per seed, or seeds, would decide it if the estimate and variance stayed as observed)."
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
    """One LLM-based against one classical method at one n_train: the training-row picks
    (`kind` "picks") or the best of each side on the test rows ("best")."""

    n_train: int
    llm: str
    classical: str
    llm_mean: float
    classical_mean: float
    interval: Interval  # LLM - classical, in metric units
    category: str  # one of CATEGORIES: the size's answer where this comparison decides it
    llm_cpu_hours_per_day: float = float("nan")  # marginal compute at the daily volume
    classical_cpu_hours_per_day: float = float("nan")
    llm_usd_per_day: float = float("nan")
    classical_usd_per_day: float = float("nan")
    kind: str = "best"
    llm_picked: str = ""  # what a training-row pick chose ("picked xgboost in 3 of 3 runs")
    classical_picked: str = ""
    adjusted: Adjusted | None = None  # "best" with a choice: the cross-fitted comparison
    decides: str = "interval"  # which interval decides the size: interval | adjusted | ""
    joint: Interval | None = None  # the deciding interval, widened for the sizes decided together
    joint_sizes: int = 1
    line_category: str = ""  # the category the line states for its own interval
    adjusted_category: str = ""

    def __post_init__(self) -> None:
        if not self.line_category:
            object.__setattr__(self, "line_category", self.category)


@dataclass
class Verdict:
    """Comparisons per n_train, the size from which classical models are better, the text.

    `comparisons` holds the comparison that decides each size (the training-row picks where
    they ran, else the best of each side); `ceilings` the best-of-each-side comparisons that
    stand beside the picks.
    """

    scope: str
    metric: str
    margin: float
    comparisons: list[Comparison]
    classical_from: int | None
    headline: str
    lines: list[str] = field(default_factory=list)
    ceilings: list[Comparison] = field(default_factory=list)

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
    sizes = []
    zero_shot = None
    for n_train, full in ok.groupby("n_train", sort=True):
        picks = training_picks(full[uses_llm(full)], full[full["family"].eq("classical")])
        at_n = without_picks(full)
        llm_runs = at_n[uses_llm(at_n)]
        classical_runs = at_n[at_n["family"].eq("classical")]
        if llm_runs.empty:
            continue
        llm_label = _best(llm_runs.groupby("label")[metric].mean().to_dict(), better)
        if classical_runs.empty:
            if n_train == 0:
                llm_rows = llm_runs[llm_runs["label"].eq(llm_label)]
                zero_shot = (llm_label, float(llm_rows[metric].mean()))
            continue
        classical_label = _best(classical_runs.groupby("label")[metric].mean().to_dict(), better)
        best = (llm_label, classical_label)
        pools = (llm_runs, classical_runs)
        sizes.append(_size(int(n_train), pools, best, picks, ["seed"], metric, settings, reader))
    verdict = _verdict(dataset, metric, sizes, ok, settings, group_words=("seed", "seeds"))
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
        sizes = []
        for n_train, at_n in ok.groupby("n_train", sort=True):
            size = _pooled_size(at_n, metric, int(n_train), settings, reader)
            if size:
                sizes.append(size)
        scope = f"{len(datasets)} dataset{'s' if len(datasets) != 1 else ''} ({metric})"
        words = ("dataset x seed", "dataset x seed groups")
        verdicts.append(_verdict(scope, metric, sizes, ok, settings, group_words=words))
    return verdicts


def _pooled_size(
    at_n: pd.DataFrame,
    metric: str,
    n_train: int,
    settings: ReportConfig,
    reader: PredictionReader,
) -> list[Comparison]:
    """Best-ranked LLM-based vs classical method over the datasets where both families ran."""
    llm_family = uses_llm(at_n)
    both = set(at_n.loc[llm_family, "dataset"]) & set(
        at_n.loc[at_n["family"].eq("classical"), "dataset"]
    )
    at_n = at_n[at_n["dataset"].isin(both)]
    if at_n.empty:
        return []
    picks = training_picks(at_n[uses_llm(at_n)], at_n[at_n["family"].eq("classical")])
    at_n = without_picks(at_n)
    ranks = rank_table(at_n, {d: metric for d in sorted(both)})
    # Lowest mean rank; ties go to the first name alphabetically.
    ranks = ranks.sort_values(["mean_rank", "method"])
    llm_runs = at_n[uses_llm(at_n)]
    llm_label = ranks[ranks["method"].isin(set(llm_runs["label"]))].iloc[0]["method"]
    classical_label = ranks[ranks["family"].eq("classical")].iloc[0]["method"]
    classical_runs = at_n[at_n["family"].eq("classical")]
    best = (str(llm_label), str(classical_label))
    keys = ["dataset", "seed"]
    pools = (llm_runs, classical_runs)
    return _size(n_train, pools, best, picks, keys, metric, settings, reader)


def _size(
    n_train: int,
    pools: tuple[pd.DataFrame, pd.DataFrame],
    best: tuple[str, str],
    picks: tuple[pd.DataFrame, pd.DataFrame] | None,
    keys: list[str],
    metric: str,
    settings: ReportConfig,
    reader: PredictionReader,
) -> list[Comparison]:
    """One size's comparisons: [training-row picks,] best of each side (with its adjustment).

    `pools` are the LLM-based and classical runs the best is chosen among, `best` their labels.
    """
    margin = margin_for(settings, metric)
    llm_runs, classical_runs = pools
    llm_rows = llm_runs[llm_runs["label"].eq(best[0])]
    classical_rows = classical_runs[classical_runs["label"].eq(best[1])]
    ceiling = _compare(n_train, llm_rows, classical_rows, keys, metric, settings, reader)
    # an llm_boost whose CV chose s = 0 predicted with the trees alone: the line says so
    ceiling = replace(ceiling, llm_picked=boost_scales(llm_rows))
    if llm_runs["label"].nunique() > 1 or classical_runs["label"].nunique() > 1:
        adjusted = adjusted_best(
            llm_runs,
            classical_runs,
            best,
            metric,
            keys,
            reader,
            higher_is_better(metric),
            settings.stats,
        )
        usable = adjusted.interval is not None and adjusted.interval.testable
        ceiling = replace(
            ceiling,
            adjusted=adjusted,
            adjusted_category=categorize(adjusted.interval, margin) if usable else "untested",
            decides="adjusted" if usable else "interval",
        )
    if picks is None:
        return [ceiling]
    chosen = _compare(n_train, picks[0], picks[1], keys, metric, settings, reader)
    chosen = replace(
        chosen,
        kind="picks",
        llm_picked=picked_text(picks[0]),
        classical_picked=picked_text(picks[1]),
    )
    return [chosen, replace(ceiling, decides="")]


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


def _deciding(c: Comparison) -> Interval:
    """The interval that decides a comparison's size: adjusted, or its own."""
    if c.decides == "adjusted" and c.adjusted is not None and c.adjusted.interval is not None:
        return c.adjusted.interval
    return c.interval


def widen(interval: Interval, factor: float, needed_factor: float | None = None) -> Interval:
    """Each half-width times `factor`; what would decide it grows by `needed_factor`^2 (the
    variance a narrower interval needs shrinks by it). The count needed is for more seeds or
    rows than now, where a t quantile's ratio is near the normal one: pass that ratio, as the
    ratio at 2 degrees of freedom would ask for twice the seeds that decide."""
    est = interval.estimate
    grow = factor if needed_factor is None else needed_factor

    def scaled(n: int | None) -> int | None:
        return None if n is None else math.ceil(n * grow**2)

    return replace(
        interval,
        low=est - (est - interval.low) * factor,
        high=est + (interval.high - est) * factor,
        rows_needed=scaled(interval.rows_needed),
        seeds_needed=scaled(interval.seeds_needed),
    )


def _jointly(sizes: list[list[Comparison]], margin: float) -> list[list[Comparison]]:
    """Decide every size with its deciding interval widened so that all hold together."""
    deciding = [c for size in sizes for c in size if c.decides]
    count = sum(_deciding(c).testable for c in deciding)
    out = []
    for size in sizes:
        done = []
        for c in size:
            iv = _deciding(c)
            if c.decides and iv.testable:
                df = iv.n_seeds - 1 if iv.method == "seeds" else None
                joint = widen(iv, joint_factor(count, df), joint_factor(count))
                category = categorize(joint, margin)
                c = replace(c, joint=joint, joint_sizes=count, category=category)
                if c.decides == "adjusted":
                    c = replace(c, adjusted_category=category, line_category=c.line_category)
                else:
                    c = replace(c, line_category=category)
            done.append(c)
        out.append(done)
    return out


NO_PICKS = (
    "The training-row picks (classical_auto and llm_icl_auto, which choose on the training rows "
    "only) were not run in this sweep: each size compares the best of each side on the test "
    "rows"
)


def _verdict(
    scope: str,
    metric: str,
    sizes: list[list[Comparison]],
    ok: pd.DataFrame,
    settings: ReportConfig,
    group_words: tuple[str, str],
) -> Verdict:
    margin = margin_for(settings, metric)
    sizes = _jointly(sizes, margin)
    comparisons = [size[0] for size in sizes]
    ceilings = [c for size in sizes for c in size[1:]]
    lines = []
    unadjusted: dict[str, list[int]] = {}  # why -> sizes, said once below
    for c in (c for size in sizes for c in size):
        lines.append(sentence(c, metric, margin, group_words, settings))
        if c.adjusted is not None and c.adjusted.interval is not None:
            lines.append(adjusted_sentence(c, metric))
        elif c.adjusted is not None:
            unadjusted.setdefault(c.adjusted.why, []).append(c.n_train)
    lines += [
        f"Not adjusted for picking the best of each side on the test rows at {_sizes(ns)}: {why}."
        for why, ns in unadjusted.items()
    ]
    if comparisons and not any(c.kind == "picks" for c in comparisons):
        adjusted = any(c.adjusted is not None and c.adjusted.interval for c in comparisons)
        tail = ", and the adjusted line under it takes that choice into account" if adjusted else ""
        lines.append(f"{NO_PICKS}{tail}.")
    has_llm = bool(uses_llm(ok).any()) if len(ok) else False
    has_classical = bool(ok["family"].eq("classical").any()) if len(ok) else False
    from_n = None
    if not has_llm:
        headline = "No LLM-based method has results here: nothing to compare."
    elif not has_classical:
        headline = "No classical method has results here: nothing to compare."
    elif not comparisons:
        headline = "LLM-based and classical methods never ran at the same training size."
    else:
        from_n, headline = _headline(comparisons, metric, margin)
    return Verdict(scope, metric, margin, comparisons, from_n, headline, lines, ceilings)

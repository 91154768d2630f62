"""One-off and marginal cost per method, cost per day of a deployment, the volume at which
distilling an LLM beats serving it, and the cost-quality Pareto front.

A run has two phases, costed apart:

- one-off (`fit`): training, tuning, the program an LLM writes (llm_codegen), the LLM labelling
  of unlabelled rows (llm_distill). Paid once, whatever the number of predictions.
- marginal (`predict`): what each further prediction costs, reported per 1,000 test rows. For
  llm_icl these are the LLM calls; for llm_codegen and llm_distill, running the program or the
  student model.

Each phase has compute seconds and USD:

- compute seconds: classical methods: the CPU seconds of the phase (`fit_cpu_s`,
  `predict_cpu_s`); LLM-based methods (`uses_llm`): max(wall seconds, LLM wall seconds) of the
  phase, the LLM wall seconds being the wall time its LLM requests took (`llm_wall_seconds`:
  concurrent requests share the seconds they overlap, so 8 requests at once for 10 s are 10 s,
  not 80), plus that of the answers served from the cache when they were computed; other
  families (TabPFN, perhaps on a GPU): the wall seconds of the phase.
- USD: the fees of the phase (`usd`, which includes `usd_per_hour` x LLM wall time for
  self-hosted priced models); given `usd_per_cpu_hour`, a phase without fees is priced at its
  compute seconds x `usd_per_cpu_hour` / 3600.

The runner records the LLM usage spent during fit (`fit_requests`, `fit_cache_hits`, `fit_usd`,
`fit_llm_seconds`, `fit_llm_wall_seconds`); the rest of the run's usage was spent predicting.
Answers served from the request cache are not billed, so a cost would shrink with every rerun. A
cache entry keeps what computing its answer cost, and a hit reports it (`cached_llm_seconds`,
`cached_llm_wall_seconds`, `cached_usd`, `costed_cache_hits`): those answers cost what they cost
when computed. Hits from entries older than that carry no cost; the known cost is scaled to all
answers, (requests + cache_hits) / (requests + costed_cache_hits), and a phase whose answers all
lack a cost has none (NaN).

Records written before the split are upgraded when the store reads them (`read_record` in
bench/record.py): a phase's CPU seconds are then its wall seconds, and all LLM usage is marginal
for llm_icl (it calls the LLM per test row) and one-off for llm_codegen and llm_distill (they
call it during fit). So is `n_test`, the number of test rows, for records without it (the row
count of the run's predictions file), and `llm_wall_seconds` for records written before it
(their summed LLM seconds: concurrent requests are then overcounted, as they were). This module
reads the upgraded columns only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from bench.llm.protocol import PHASE_USAGE_KEYS
from bench.report.runs import BASELINE, row_order, uses_llm

__all__ = [
    "COST_COLUMNS",
    "COST_NOTE",
    "COST_UNITS",
    "ONE_OFF_UNITS",
    "BreakEven",
    "break_even",
    "cost_per_1k",
    "cost_points",
    "cost_unit",
    "deploy_costs",
    "format_volume",
    "n_test_rows",
    "pareto_front",
    "with_pareto",
]

CostUnit = Literal["usd", "seconds"]

COST_COLUMNS = [
    "one_off_seconds",
    "one_off_usd",
    "marginal_seconds_per_1k",
    "marginal_usd_per_1k",
]
COST_NOTE = (
    "Costs are split in two. One-off: what fitting costs once (training, tuning, the program an "
    "LLM writes, the LLM labelling rows for a distilled model). Marginal: what predicting costs, "
    "per 1,000 predictions. Both in USD where a run paid (API fees, or usd_per_hour x LLM wall "
    "time, or usd_per_cpu_hour x compute time when that price is given); otherwise in compute "
    "seconds: CPU seconds for classical methods, the longer of wall time and the wall time of LLM"
    " calls (concurrent calls counted once) for LLM-based methods, wall seconds for others. Cost "
    "per day is the marginal cost x the daily number of predictions; the one-off cost is shown "
    "apart, not spread over days. Answers from the request cache cost what they cost when "
    "computed (the cache keeps it); answers from cache entries written before costs were kept are"
    " costed like the others of their phase, and a phase with no known cost is not plotted. Older"
    " run records, without the split, count fit wall time as one-off and predict wall time as "
    "marginal, and all LLM calls as marginal for llm_icl and as one-off for llm_codegen and "
    "llm_distill. Points are means over seeds per method and n_train; the Pareto front holds the "
    "points no other point beats on both marginal cost and quality."
)
COST_UNITS = {
    "usd": "USD per 1,000 predictions",
    "seconds": "compute seconds per 1,000 predictions",
}
ONE_OFF_UNITS = {"usd": "USD, once", "seconds": "compute seconds, once"}


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    if name in runs.columns:
        return pd.to_numeric(runs[name], errors="coerce").astype(float)
    return pd.Series(np.nan, index=runs.index, dtype=float)


def n_test_rows(runs: pd.DataFrame, root: Path | None = None) -> pd.Series:
    """Test rows per run (`n_test`; `load_results` fills it for records without it). `root`
    is not needed any more and kept for callers."""
    return _column(runs, "n_test")


def _usage_by_phase(runs: pd.DataFrame) -> tuple[dict[str, pd.Series], dict[str, pd.Series]]:
    """(fit, predict) LLM usage per run: the recorded fit share (none where a run records
    none), and the rest."""
    fit, predict = {}, {}
    for key in PHASE_USAGE_KEYS:
        fit[key] = _column(runs, f"fit_{key}").fillna(0.0)
        predict[key] = (_column(runs, key).fillna(0.0) - fit[key]).clip(lower=0.0)
    return fit, predict


def _cache_scale(requests: pd.Series, hits: pd.Series, costed: pd.Series) -> pd.Series:
    """All answers / answers whose cost is known (computed now, or hits whose cache entry kept
    their original cost); NaN where no answer's cost is known."""
    known = requests + costed
    scale = pd.Series(1.0, index=requests.index)
    some = known > 0
    scale[some] = (requests + hits)[some] / known[some]
    scale[~some & (hits > 0)] = np.nan
    return scale


def _phase_cost(
    runs: pd.DataFrame,
    wall: pd.Series,
    cpu: pd.Series,
    usage: dict[str, pd.Series],
    usd_per_cpu_hour: float | None,
) -> tuple[pd.Series, pd.Series]:
    """(compute seconds, USD) of one phase of each run, scaled for cached answers."""
    llm_based = uses_llm(runs)
    classical = runs["family"].astype(str).eq("classical") & ~llm_based
    seconds = wall.copy()
    seconds[classical] = cpu[classical]
    # wall time, not summed latencies; answers from the cache cost what they cost when computed
    llm_seconds = usage["llm_wall_seconds"] + usage["cached_llm_wall_seconds"]
    seconds[llm_based] = np.fmax(wall, llm_seconds)[llm_based]
    scale = _cache_scale(usage["requests"], usage["cache_hits"], usage["costed_cache_hits"])
    seconds = seconds * scale
    fees = usage["usd"] + usage["cached_usd"]
    usd = fees * scale
    if usd_per_cpu_hour is not None:
        usd = usd.where(fees > 0, seconds * usd_per_cpu_hour / 3600)
    return seconds, usd


def cost_per_1k(
    runs: pd.DataFrame, root: Path | None = None, usd_per_cpu_hour: float | None = None
) -> pd.DataFrame:
    """`runs` with the one-off and marginal cost of each run added (NaN where unknown).

    Columns added: `one_off_seconds`, `one_off_usd` (the fit phase, once), and
    `marginal_seconds_per_1k`, `marginal_usd_per_1k` (the predict phase, per 1,000 test rows).
    `root` (the results directory) is not needed any more and kept for callers;
    `usd_per_cpu_hour` prices the compute seconds of phases without fees.
    """
    if usd_per_cpu_hour is not None and not usd_per_cpu_hour >= 0:
        raise ValueError(f"usd_per_cpu_hour must be a price >= 0 USD, got {usd_per_cpu_hour}")
    n_test = n_test_rows(runs, root).where(lambda n: n > 0)
    fit_usage, predict_usage = _usage_by_phase(runs)
    fit_seconds, fit_usd = _phase_cost(
        runs, _column(runs, "fit_s"), _column(runs, "fit_cpu_s"), fit_usage, usd_per_cpu_hour
    )
    predict_seconds, predict_usd = _phase_cost(
        runs,
        _column(runs, "predict_s"),
        _column(runs, "predict_cpu_s"),
        predict_usage,
        usd_per_cpu_hour,
    )
    return runs.assign(
        one_off_seconds=fit_seconds,
        one_off_usd=fit_usd,
        marginal_seconds_per_1k=predict_seconds / n_test * 1000,
        marginal_usd_per_1k=predict_usd / n_test * 1000,
    )


def _ok_with_costs(runs: pd.DataFrame, metric: str | None) -> pd.DataFrame:
    if missing := [c for c in COST_COLUMNS if c not in runs.columns]:
        raise ValueError(f"runs lack the cost columns {missing}: pass them through cost_per_1k")
    ok = runs[runs["status"].eq("ok")].dropna(subset=["n_train"])
    if metric is not None:
        ok = ok.dropna(subset=[metric])
    return ok.assign(n_train=ok["n_train"].astype(int))


def cost_points(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean metric and mean costs per (family, label, n_train) over ok runs with `cost_per_1k`.

    Costs average over the seeds whose cost is known.
    """
    columns = ["family", "label", "n_train", metric, *COST_COLUMNS]
    ok = _ok_with_costs(runs, metric)
    if ok.empty:
        return pd.DataFrame(columns=columns)
    ok = ok.assign(**{c: ok[c].astype(float) for c in [metric, *COST_COLUMNS]})
    return ok.groupby(["family", "label", "n_train"], as_index=False)[columns[3:]].mean()


def _paid(points: pd.DataFrame) -> pd.Series:
    """Per point: did it pay anything in USD, in either phase?"""
    usd = [points.get(c, pd.Series(np.nan, index=points.index)) for c in COST_COLUMNS[1::2]]
    return (usd[0].fillna(0) > 0) | (usd[1].fillna(0) > 0)


def cost_unit(points: pd.DataFrame, usd_per_cpu_hour: float | None = None) -> CostUnit:
    """USD when any run paid something or compute has a price, else compute seconds."""
    return "usd" if usd_per_cpu_hour is not None or bool(_paid(points).any()) else "seconds"


def pareto_front(cost: np.ndarray, quality: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Mask of the points no other point beats: at most the cost and at least the quality,
    strictly better in one. NaN points are never on the front.

    >>> pareto_front(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.9, 0.8]), True).tolist()
    [True, True, False]
    """
    c = np.asarray(cost, dtype=float)
    q = np.asarray(quality, dtype=float) * (1.0 if higher_is_better else -1.0)
    valid = ~(np.isnan(c) | np.isnan(q))
    front = np.zeros(len(c), dtype=bool)
    for i in np.flatnonzero(valid):
        others = valid & (c <= c[i]) & (q >= q[i]) & ((c < c[i]) | (q > q[i]))
        front[i] = not others.any()
    return front


def with_pareto(points: pd.DataFrame, metric: str, unit: CostUnit) -> pd.DataFrame:
    """`cost_points` with `cost` (marginal, per 1,000 predictions, in `unit`), `one_off` (in
    `unit`) and `pareto` (on the front of marginal cost vs quality) added."""
    from bench.metrics import higher_is_better

    usd = unit == "usd"
    cost = points["marginal_usd_per_1k" if usd else "marginal_seconds_per_1k"].astype(float)
    one_off = points["one_off_usd" if usd else "one_off_seconds"].astype(float)
    front = pareto_front(cost.to_numpy(), points[metric].to_numpy(), higher_is_better(metric))
    return points.assign(cost=cost, one_off=one_off, pareto=front)


def deploy_costs(
    runs: pd.DataFrame,
    metric: str,
    daily_predictions: float = 10_000_000,
    usd_per_cpu_hour: float | None = None,
) -> pd.DataFrame:
    """What each method would cost deployed at `daily_predictions` a day, a row per label.

    Each method is taken at the largest n_train where it has ok runs (the model one would
    deploy); the majority baseline is left out. Columns: family, label, n_train, `metric` (mean),
    the four `COST_COLUMNS` (means over seeds), `per_day_usd` (marginal USD x daily volume; NaN
    when the marginal cost is unpriced: no fees and no `usd_per_cpu_hour`) and
    `per_day_cpu_hours` (marginal compute seconds x daily volume / 3600). The one-off cost is
    not spread over days. Rows follow the family order of the report.

    `runs` come from `cost_per_1k`; without its columns they are computed here with
    `usd_per_cpu_hour`, which should be the price given to `cost_per_1k` otherwise.
    """
    if not daily_predictions > 0:
        raise ValueError(f"daily_predictions must be > 0, got {daily_predictions}")
    if any(c not in runs.columns for c in COST_COLUMNS):
        runs = cost_per_1k(runs, usd_per_cpu_hour=usd_per_cpu_hour)
    columns = ["family", "label", "n_train", metric, *COST_COLUMNS]
    points = cost_points(runs, metric)
    points = points[~points["label"].astype(str).str.startswith(BASELINE)]
    if points.empty:
        return pd.DataFrame(columns=[*columns, "per_day_usd", "per_day_cpu_hours"])
    largest = points.loc[points.groupby(["family", "label"])["n_train"].idxmax(), columns]
    per_day = daily_predictions / 1000  # the marginal costs are per 1,000 predictions
    usd = largest["marginal_usd_per_1k"]
    priced = usd.fillna(0) > 0 if usd_per_cpu_hour is None else pd.Series(True, usd.index)
    largest = largest.assign(
        per_day_usd=(usd * per_day).where(priced),
        per_day_cpu_hours=largest["marginal_seconds_per_1k"] * per_day / 3600,
    )
    order = row_order(list(zip(largest["family"], largest["label"], strict=True)))
    rank = {key: i for i, key in enumerate(order)}
    keys = [rank[(f, lb)] for f, lb in zip(largest["family"], largest["label"], strict=True)]
    return largest.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)


@dataclass(frozen=True)
class BreakEven:
    """When distilling an LLM into a small model gets cheaper than serving the LLM.

    Serving costs `served_one_off` + `served_marginal` x V for V predictions, distilling
    `distilled_one_off` + `distilled_marginal` x V (marginal costs per prediction, in `unit`).
    `volume` is the V where the two meet: 0 when distilling is cheaper from the start, None when
    it never pays off (its marginal cost is not lower).
    """

    llm: str
    served: str  # label of the llm_icl method
    distilled: str  # label of the llm_distill method
    n_train: int
    volume: float | None
    unit: CostUnit
    served_one_off: float
    served_marginal: float
    distilled_one_off: float
    distilled_marginal: float

    def days(self, daily_predictions: float) -> float | None:
        """Days of serving `daily_predictions` a day until distilling has paid off."""
        return None if self.volume is None else self.volume / daily_predictions


def break_even(runs: pd.DataFrame, metric: str | None = None) -> list[BreakEven]:
    """Break-even volumes for every pair of a serving (llm_icl) and a distillation
    (llm_distill) method on the same LLM.

    `runs` come from `cost_per_1k`, one dataset's. A pair is compared at the largest n_train
    where both have ok runs (with a value for `metric`, when given) and known costs, in USD when
    both paid something (fees, or the `usd_per_cpu_hour` price), else in compute seconds.
    """
    ok = _ok_with_costs(runs, metric)
    ok = ok[ok["family"].isin(("llm_icl", "llm_distill")) & uses_llm(ok)]
    if ok.empty:
        return []
    by = ["llm", "family", "label", "n_train"]
    means = ok.groupby(by, as_index=False)[COST_COLUMNS].mean().dropna(subset=COST_COLUMNS)
    results = []
    for llm, group in means.groupby("llm", sort=True):
        served = group[group["family"] == "llm_icl"]
        distilled = group[group["family"] == "llm_distill"]
        for s_label in sorted(set(served["label"])):
            for d_label in sorted(set(distilled["label"])):
                s = served[served["label"] == s_label].set_index("n_train")
                d = distilled[distilled["label"] == d_label].set_index("n_train")
                shared = sorted(set(s.index) & set(d.index))
                if shared:
                    n = shared[-1]
                    results.append(_break_even(str(llm), s_label, d_label, n, s.loc[n], d.loc[n]))
    return results


def _break_even(
    llm: str, served: str, distilled: str, n_train: int, s: pd.Series, d: pd.Series
) -> BreakEven:
    frame = pd.DataFrame([s[COST_COLUMNS], d[COST_COLUMNS]]).astype(float)
    unit: CostUnit = "usd" if bool(_paid(frame).all()) else "seconds"
    one_off, marginal = (
        ("one_off_usd", "marginal_usd_per_1k")
        if unit == "usd"
        else ("one_off_seconds", "marginal_seconds_per_1k")
    )
    o_s, o_d = float(s[one_off]), float(d[one_off])
    m_s, m_d = float(s[marginal]) / 1000, float(d[marginal]) / 1000  # per prediction
    volume = None if m_d >= m_s else max((o_d - o_s) / (m_s - m_d), 0.0)
    return BreakEven(llm, served, distilled, int(n_train), volume, unit, o_s, m_s, o_d, m_d)


_SCALES = ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand"))
_DURATIONS = ((86400.0, "day"), (3600.0, "hour"), (60.0, "minute"), (1.0, "second"))


def _sig(value: float) -> str:
    """Two significant digits, without an exponent: 0.25, 6, 12, 850, 1,234."""
    return f"{value:,.0f}" if value >= 100 else f"{float(f'{value:.2g}'):g}"


def _count(value: float) -> str:
    """A count in words: 1234567 -> '1.2 million', 850 -> '850'."""
    rounded = float(f"{value:.2g}")  # round first, so 999,700 reads '1 million'
    for size, word in _SCALES:
        if rounded >= size:
            return f"{rounded / size:g} {word}"
    return _sig(value)


def _duration(seconds: float) -> str:
    """A duration in the largest unit it fills: 21600 -> '6 hours', 2 -> '2 seconds'."""
    size, word = next(((s, w) for s, w in _DURATIONS if seconds >= s), _DURATIONS[-1])
    text = _sig(seconds / size)
    return f"{text} {word}{'' if text == '1' else 's'}"


def format_volume(volume: float | None, daily_predictions: float | None = None) -> str:
    """A break-even volume in words, with how long it takes at `daily_predictions` a day.

    >>> format_volume(1_234_567)
    '1.2 million predictions'
    >>> format_volume(2_500_000, daily_predictions=10_000_000)
    '2.5 million predictions (6 hours at 10 million predictions a day)'
    >>> format_volume(None)
    'never (distilling does not cost less per prediction)'
    """
    if volume is None:
        return "never (distilling does not cost less per prediction)"
    text = f"{_count(volume)} prediction{'' if volume == 1 else 's'}"
    if daily_predictions is None:
        return text
    elapsed = _duration(volume / daily_predictions * 86400)
    return f"{text} ({elapsed} at {_count(daily_predictions)} predictions a day)"

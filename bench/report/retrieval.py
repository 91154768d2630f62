"""What retrieval leaves to the LLM: each retrieval LLM run against its neighbours' own vote.

An LLM run with ``selection: knn`` (`llm_icl_knn`, `llm_icl_knn_all`) puts each test row's k
nearest training rows, with their labels, into its prompt. How much of its score is the LLM, and
how much those labels? The `knn` method (conf/method/knn.yaml) votes the labels of the very same
neighbours: one definition finds them (bench/methods/neighbours.py), and the same seed means the
same training and test rows, so with the same k the two runs saw the same neighbours. Each row
here is LLM - kNN on the seeds both ran, as `compare_runs` makes it: the paired bootstrap over
the test rows (bench/report/paired.py), or the t-interval over seeds where per-row predictions
are missing. A kNN run with another k is named, not paired.

>>> import pandas as pd
>>> llm = {"method": "llm_icl_knn", "llm": "m", "details": {"selection": "knn", "shots": 16}}
>>> vote = {"method": "knn", "llm": None, "details": {"k": 16, "vote": "distance_weighted"}}
>>> runs = pd.DataFrame([{**llm, "seed": s, "roc_auc": 0.8 + s / 100} for s in (0, 1)]
...     + [{**vote, "seed": s, "roc_auc": 0.75 + s / 50} for s in (0, 1)]).assign(
...     dataset="d", status="ok", n_train=64, serializer=None)
>>> table = retrieval_table(runs, "roc_auc", PredictionReader(None))
>>> table[["label", "control", "k", "seeds", "difference"]].round(3).to_dict("records")
[{'label': 'llm_icl_knn (m)', 'control': 'knn', 'k': 16, 'seeds': 2, 'difference': 0.045}]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from bench.methods.neighbours import VOTE
from bench.report.compare import Interval, PredictionReader, compare_runs
from bench.report.doc import Block, Heading, Paragraph, Table
from bench.report.runs import metric_name, ok_runs
from bench.report.verdict import format_score

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = ["RETRIEVAL_NOTE", "retrieval_blocks", "retrieval_rows", "retrieval_table"]

RETRIEVAL_NOTE = (
    "What the LLM adds beyond its neighbours' labels: each LLM run that retrieves its shots "
    "(selection knn) against the knn method on the same seed, training rows and k, i.e. the "
    "same neighbours voting their labels (weighted by closeness) without any LLM. Gain = LLM - "
    "kNN in the metric, oriented so that positive means the LLM scored better, with its 95% "
    "interval: the paired bootstrap over the test rows of the matched seeds, or the paired "
    "t-interval over seeds where per-row predictions are missing. A gain near 0 means the LLM "
    "did little more than copy its neighbours' labels. A kNN run with a different k is named, "
    "not paired: other neighbours, another question."
)

_COLUMNS = [
    "label",
    "n_train",
    "k",
    "control",
    "seeds",
    "mean",
    "control_mean",
    "difference",
    "low",
    "high",
    "basis",
    "n_rows",
    "why_seeds",
    "unpaired",
]


def _detail(runs: pd.DataFrame, key: str) -> pd.Series:
    """details[key] per run (None where a run has no details or not that key)."""
    if "details" not in runs.columns:
        return pd.Series(None, index=runs.index, dtype=object)
    return runs["details"].map(lambda d: d.get(key) if isinstance(d, dict) else None)


def retrieval_table(
    runs: pd.DataFrame, metric: str, reader: PredictionReader, stats: str = "rows"
) -> pd.DataFrame:
    """A row per retrieval LLM (label) and n_train of one dataset's ok runs, and per kNN control
    that ran at that n_train (one row with control None where none did).

    Columns: label, n_train, k (the LLM's shots), control (the kNN method), seeds (paired),
    mean and control_mean (of `metric` on those seeds), difference, low, high (LLM - kNN and
    its 95% interval, positive = the LLM better), basis ("rows" or "seeds"), n_rows, why_seeds,
    and unpaired: why some or all seeds were not paired (another k, other training or test
    rows).
    """
    if metric not in runs.columns or runs.empty:
        return pd.DataFrame(columns=_COLUMNS)
    ok = ok_runs(runs, metric)
    ok = ok.assign(_k=_detail(ok, "shots"), _selection=_detail(ok, "selection"))
    ok["_vote_k"] = _detail(ok, "k").where(_detail(ok, "vote").eq(VOTE))
    retrieval = ok[ok["_selection"].eq("knn") & ok["_k"].notna()]
    controls = ok[ok["_vote_k"].notna()]
    rows = []
    for (_, n_train), llm_runs in retrieval.groupby(["label", "n_train"], sort=True):
        llm_runs = llm_runs.drop_duplicates("seed", keep="last")
        here = controls[controls["n_train"] == n_train]
        if here.empty:
            rows.append(_row(llm_runs, None, metric, [], None, ""))
        for _, votes in here.groupby("label", sort=True):
            votes = votes.drop_duplicates("seed", keep="last")
            paired, unpaired = _pairable(llm_runs, votes)
            interval = None
            if paired:
                a, b = (r[r["seed"].isin(paired)] for r in (llm_runs, votes))
                interval = compare_runs(a, b, metric, ["seed"], reader, stats=stats)
            rows.append(_row(llm_runs, votes, metric, paired, interval, unpaired))
    return pd.DataFrame(rows, columns=_COLUMNS)


def _pairable(llm_runs: pd.DataFrame, votes: pd.DataFrame) -> tuple[list[int], str]:
    """The seeds on which the two saw the same neighbours and were scored on the same test rows,
    and why the others were not paired."""
    mine, theirs = llm_runs.set_index("seed"), votes.set_index("seed")
    paired, reasons = [], []
    for seed in sorted(set(mine.index) & set(theirs.index)):
        k_llm, k_vote = int(mine.at[seed, "_k"]), int(theirs.at[seed, "_vote_k"])
        if k_llm != k_vote:
            reasons.append(f"seed {seed}: k differs (LLM {k_llm}, kNN {k_vote})")
        elif _differ(mine.loc[seed], theirs.loc[seed], "train_rows_hash"):
            reasons.append(f"seed {seed}: other training rows")
        elif _differ(mine.loc[seed], theirs.loc[seed], "test_rows_hash"):
            # the row bootstrap would catch it by row ids; the seeds' t-interval would not
            reasons.append(f"seed {seed}: other test rows")
        else:
            paired.append(int(seed))
    return paired, "; ".join(reasons)


def _differ(a: pd.Series, b: pd.Series, column: str) -> bool:
    """Both runs recorded `column` and the values differ (absent in old records: not known)."""
    x, y = a.get(column), b.get(column)
    return isinstance(x, str) and isinstance(y, str) and x != y


def _row(
    llm_runs: pd.DataFrame,
    votes: pd.DataFrame | None,
    metric: str,
    paired: list[int],
    interval: Interval | None,
    unpaired: str,
) -> dict[str, Any]:
    """One table row: an LLM's runs at one n_train against one kNN control's (or none)."""
    difference, low, high = interval.advantage if interval else (math.nan,) * 3
    return {
        "label": str(llm_runs["label"].iloc[0]),
        "n_train": int(llm_runs["n_train"].iloc[0]),
        "k": int(llm_runs["_k"].iloc[-1]),
        "control": None if votes is None else str(votes["label"].iloc[0]),
        "seeds": len(paired),
        # over the paired seeds; over all the LLM's where none are
        "mean": _mean(llm_runs, paired, metric) if paired else float(llm_runs[metric].mean()),
        "control_mean": _mean(votes, paired, metric) if votes is not None else math.nan,
        "difference": difference,
        "low": low,
        "high": high,
        "basis": interval.method if interval else "",
        "n_rows": interval.n_rows if interval else 0,
        "why_seeds": interval.why_seeds if interval else "",
        "unpaired": unpaired,
    }


def _mean(runs: pd.DataFrame, seeds: list[int], metric: str) -> float:
    values = runs[runs["seed"].isin(seeds)][metric]
    return float(values.mean()) if len(values) else math.nan


def retrieval_blocks(section: DatasetSection) -> list[Block]:
    """The retrieval control, where a retrieval LLM ran."""
    metric = section.metric
    table = retrieval_table(section.runs, metric, section.reader, stats=section.settings.stats)
    if not len(table):
        return []
    name = metric_name(metric)
    header = ("LLM method", "n_train", "k", name, f"kNN vote ({name})", "LLM - kNN (95% CI)")
    return [
        Heading("What the LLM adds beyond its neighbours' labels", 3),
        Table((*header, "reading"), tuple(map(tuple, retrieval_rows(table))), align="lrrrlwl"),
        Paragraph(RETRIEVAL_NOTE, note=True),
    ]


def retrieval_rows(table: pd.DataFrame) -> list[list[str]]:
    """The table's display strings, a list per row."""
    return [
        [
            str(row.label),
            f"{row.n_train:,}",
            str(row.k),
            format_score(row.mean),
            f"{row.control}: {format_score(row.control_mean)}" if row.control else "-",
            _gain(row),
            _reading(row),
        ]
        for row in table.itertuples(index=False)
    ]


def _gain(row: Any) -> str:
    if row.control is None:
        return "- (no knn run at this n_train: bench-run method=knn)"
    if row.seeds == 0:
        return f"- (not paired: {row.unpaired})"
    if row.basis == "rows":
        basis = f"{row.n_rows:,} rows"
    else:
        basis = f"t over {row.seeds} seed{'s' if row.seeds != 1 else ''}"
        basis += f": {row.why_seeds}" if row.why_seeds else ""
    basis += f"; not paired: {row.unpaired}" if row.unpaired else ""
    if math.isnan(row.low) or math.isnan(row.high):
        return f"{row.difference:+.3f} (no interval, {basis})"
    return f"{row.difference:+.3f} ({row.low:+.3f} to {row.high:+.3f}, {basis})"


def _reading(row: Any) -> str:
    if any(math.isnan(x) for x in (row.difference, row.low, row.high)):
        return "untested"
    if row.low > 0:
        return "the LLM adds to its neighbours' vote"
    if row.high < 0:
        return "the vote alone scores better"
    return "no clear difference"

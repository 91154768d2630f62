"""Whether a serializer helps: each serializer against a reference, paired on the same runs.

`experiment=number_formats` and `experiment=serialization` run one LLM method (same llm, n_train,
seeds and test rows) under several serializers. The summary table shows each serializer's mean;
here each non-reference serializer is compared with the reference ("list", the default, when it
ran; else the first by name) on the seeds both ran, with `compare_runs`: the paired bootstrap
over the stored per-row predictions, or the paired t-interval over seeds where they are missing.
Runs without a serializer (methods that do not write rows as text) are not compared.

>>> import pandas as pd
>>> runs = pd.DataFrame({
...     "status": ["ok"] * 4, "method": ["llm_icl"] * 4, "llm": ["m"] * 4, "n_train": [8] * 4,
...     "seed": [0, 1, 0, 1], "serializer": ["list", "list", "list_words", "list_words"],
...     "roc_auc": [0.6, 0.7, 0.7, 0.8], "label": ["x"] * 4})
>>> table = serializer_table(runs, "roc_auc", PredictionReader(None))
>>> table[["serializer", "reference", "seeds", "difference"]].round(3).to_dict("records")
[{'serializer': 'list_words', 'reference': 'list', 'seeds': 2, 'difference': 0.1}]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from bench.report.compare import Interval, PredictionReader, compare_runs
from bench.report.doc import Block, Heading, Paragraph, Table
from bench.report.runs import metric_name, ok_runs
from bench.report.verdict import format_score

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = [
    "REFERENCE_SERIALIZER",
    "SERIALIZATIONS_NOTE",
    "reference_serializer",
    "serializer_blocks",
    "serializer_header",
    "serializer_rows",
    "serializer_table",
]

REFERENCE_SERIALIZER = "list"  # the default serializer (conf/serializer)

SERIALIZATIONS_NOTE = (
    "Serializations compared: each row is one serializer against the reference serializer of the "
    f"same method, LLM and n_train (column reference: {REFERENCE_SERIALIZER!r}, the default, where "
    "it ran; else the first by name), on the seeds both ran: a seed is one train/test split, so "
    "both scored the same test rows. Gain = serializer - reference in the metric, oriented so "
    "that positive means the serializer scored better (lower for log loss and Brier), with its "
    "95% interval: the paired bootstrap over the test rows of the matched seeds, or the paired "
    "t-interval over seeds where per-row predictions are missing. The intervals are not "
    "corrected for comparing several serializers: where a serializer makes no difference, one "
    "interval in twenty still excludes 0."
)

_GROUP = ("dataset", "method", "llm", "n_train")  # what must match for a paired comparison
_COLUMNS = [
    "label",
    "method",
    "llm",
    "n_train",
    "serializer",
    "reference",
    "seeds",
    "mean",
    "reference_mean",
    "difference",
    "low",
    "high",
    "basis",
    "n_rows",
    "why_seeds",
]


def reference_serializer(serializers: list[str]) -> str:
    """The default serializer where it ran, else the first by name."""
    return REFERENCE_SERIALIZER if REFERENCE_SERIALIZER in serializers else min(serializers)


def serializer_table(
    runs: pd.DataFrame, metric: str, reader: PredictionReader, stats: str = "rows"
) -> pd.DataFrame:
    """A row per non-reference serializer of each (method, llm, n_train) of one dataset's ok runs
    that ran under at least two serializers.

    Columns: label (method, with the llm), method, llm, n_train, serializer, reference, seeds
    (matched with the reference), mean and reference_mean (of `metric` over those seeds),
    difference, low, high (serializer - reference and its 95% interval, oriented so that
    positive is better), basis ("rows" or "seeds", as `compare_runs` made it), n_rows and
    why_seeds (why a seed-level interval was used). `stats` is `report.stats`.
    """
    if "serializer" not in runs.columns or metric not in runs.columns or runs.empty:
        return pd.DataFrame(columns=_COLUMNS)
    ok = ok_runs(runs, metric)
    ok = ok[ok["serializer"].map(lambda s: isinstance(s, str) and bool(s))]
    keys = [c for c in _GROUP if c in ok.columns]
    rows = []
    for values, group in ok.groupby(keys, sort=True, dropna=False):
        where = dict(zip(keys, values, strict=True))
        by_serializer = {
            str(name): runs_of.drop_duplicates("seed", keep="last")
            for name, runs_of in group.groupby("serializer", sort=True)
        }
        if len(by_serializer) < 2:
            continue
        reference = reference_serializer(list(by_serializer))
        base = by_serializer[reference]
        for name, runs_of in by_serializer.items():
            if name == reference:
                continue
            interval = compare_runs(runs_of, base, metric, ["seed"], reader, stats=stats)
            rows.append(_row(where, name, reference, runs_of, base, metric, interval))
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    return frame.sort_values(["label", "n_train", "serializer"]).reset_index(drop=True)


def _row(
    where: dict[str, Any],
    name: str,
    reference: str,
    runs_of: pd.DataFrame,
    base: pd.DataFrame,
    metric: str,
    interval: Interval,
) -> dict[str, Any]:
    seeds = sorted(set(runs_of["seed"]) & set(base["seed"]))
    llm = where.get("llm")
    llm = llm if isinstance(llm, str) and llm else None
    method = str(where.get("method", ""))
    difference, low, high = interval.advantage
    return {
        "label": f"{method} ({llm})" if llm else method,
        "method": method,
        "llm": llm,
        "n_train": int(where.get("n_train", 0)),
        "serializer": name,
        "reference": reference,
        "seeds": len(seeds),
        "mean": _mean(runs_of, seeds, metric),
        "reference_mean": _mean(base, seeds, metric),
        "difference": difference,
        "low": low,
        "high": high,
        "basis": interval.method,
        "n_rows": interval.n_rows,
        "why_seeds": interval.why_seeds,
    }


def _mean(runs: pd.DataFrame, seeds: list[int], metric: str) -> float:
    values = runs[runs["seed"].isin(seeds)][metric]
    return float(values.mean()) if len(values) else float("nan")


def serializer_blocks(section: DatasetSection) -> list[Block]:
    """The serializations compared, where a method ran with two or more."""
    metric = section.metric
    table = serializer_table(section.runs, metric, section.reader, stats=section.settings.stats)
    if not len(table):
        return []
    return [
        Heading("Serializations compared", 3),
        Table(tuple(serializer_header(metric)), tuple(map(tuple, serializer_rows(table)))),
        Paragraph(SERIALIZATIONS_NOTE, note=True),
    ]


def serializer_header(metric: str) -> list[str]:
    name = metric_name(metric)
    return [
        "method",
        "n_train",
        "seeds",
        "serializer",
        name,
        f"reference ({name})",
        "gain (95% CI)",
        "reading",
    ]


def serializer_rows(table: pd.DataFrame) -> list[list[str]]:
    return [
        [
            str(row.label),
            str(row.n_train),
            str(row.seeds),
            str(row.serializer),
            format_score(row.mean),
            f"{row.reference}: {format_score(row.reference_mean)}",
            _gain(row),
            _reading(row.difference, row.low, row.high),
        ]
        for row in table.itertuples(index=False)
    ]


def _gain(row: Any) -> str:
    difference, low, high = row.difference, row.low, row.high
    if math.isnan(difference):
        return "- (no matched seeds)"
    if row.basis == "rows":
        basis = f"{row.n_rows:,} rows"
    else:
        seeds = row.seeds
        basis = f"t over {seeds} seed{'s' if seeds != 1 else ''}"
        if row.why_seeds:
            basis += f": {row.why_seeds}"
    if math.isnan(low) or math.isnan(high):
        return f"{difference:+.3f} (no interval, {basis})"
    return f"{difference:+.3f} ({low:+.3f} to {high:+.3f}, {basis})"


def _reading(difference: float, low: float, high: float) -> str:
    if any(math.isnan(x) for x in (difference, low, high)):
        return "untested"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no clear difference"

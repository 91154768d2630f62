"""What the verdict compares at one training size, read from the runs: the practitioner's picks
made on the training rows, and the best of each side on the test rows with its adjustment.

- Training-row picks: `classical_auto` chooses among the classical methods by CV on its training
  rows, `llm_icl_auto` chooses the serializer on validation rows drawn from the training rows
  (`llm_icl_tuned` also picks its prompt there). Neither choice has seen a test row, so their
  paired interval means what it says. Each run's details name what it picked (`picked`).
- Best on the test rows: the best mean of each side, adjusted for that choice by cross-fitting
  (bench/report/selection.py) over the stored per-row predictions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.compare import Interval, PredictionReader, accuracy_group
from bench.report.paired import METRIC_NAMES
from bench.report.runs import uses_llm
from bench.report.selection import CrossFit, cross_fit, too_few_rows
from bench.report.stats import ALPHA, paired_difference

__all__ = [
    "AUTO_CLASSICAL",
    "AUTO_LLM",
    "Adjusted",
    "adjusted_best",
    "boost_scales",
    "picked_text",
    "training_picks",
    "without_picks",
]

AUTO_CLASSICAL = "classical_auto"
AUTO_LLM = ("llm_icl_auto", "llm_icl_tuned")  # in order of preference
PICKERS = (AUTO_CLASSICAL, "llm_icl_auto")  # each scores as one of the methods it chose among
BOOST = "llm_boost"  # its CV may choose s = 0: the trees alone, no LLM asked for a test row
N_BOOT = 2000


def training_picks(
    llm_runs: pd.DataFrame, classical_runs: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The runs of the LLM side's and the classical side's training-row pick, if both exist.

    A side's pick is its picker (`classical_auto`; the first `llm_icl_auto` label by name, one
    per LLM, else `llm_icl_tuned`), or its only method where it has one (no choice to make).
    At least one side must have a picker, else the best-of-each-side line says it all. The
    rule is fixed, so no test row takes part in it.
    """
    sides = []
    for runs, pickers in ((llm_runs, AUTO_LLM), (classical_runs, (AUTO_CLASSICAL,))):
        found = next(
            (runs[runs["method"].eq(m)] for m in pickers if runs["method"].eq(m).any()), None
        )
        if found is not None:
            found = found[found["label"].eq(sorted(found["label"].unique())[0])]
        sides.append(found)
    if all(side is None for side in sides):
        return None
    for i, runs in enumerate((llm_runs, classical_runs)):
        if sides[i] is None:
            if runs["label"].nunique() != 1:
                return None
            sides[i] = runs
    return sides[0], sides[1]


def without_picks(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs the best-of-each-side line chooses among: all but the pickers (`PICKERS`),
    which repeat one of their candidates, unless that leaves a side without runs.
    (llm_icl_tuned stays: its prompt is its own.)"""
    rest = runs[~runs["method"].isin(PICKERS)]
    for side in (uses_llm(runs), runs["family"].eq("classical")):
        if side.any() and not side[rest.index].any():
            return runs
    return rest


def picked_text(runs: pd.DataFrame) -> str:
    """What a pick chose over its seeds: 'picked xgboost in 3 of 3 runs'; for a side's only
    method, that it is the only one ('' if nothing is recorded)."""
    if not runs["method"].isin((*AUTO_LLM, AUTO_CLASSICAL)).any():
        family = "LLM-based" if uses_llm(runs).all() else "classical"
        scales = boost_scales(runs)
        return f"the only {family} method" + (f"; {scales}" if scales else "")
    picks = Counter(
        str(d["picked"])
        for d in runs.get("details", pd.Series(dtype=object))
        if isinstance(d, dict) and d.get("picked") not in (None, "")
    )
    if not picks:
        return ""
    if len(picks) == 1:
        ((name, count),) = picks.items()
        return f"picked {name} in {count} of {len(runs)} runs"
    runs_of = [f"{name} in {count}" for name, count in picks.most_common()]
    return f"picked {', '.join(runs_of)} of {len(runs)} runs"


def boost_scales(runs: pd.DataFrame) -> str:
    """Where some of one method's llm_boost runs chose s = 0 by cross-validation, which
    predicts with the trees alone although the run counts as LLM-based: 's = 0 in 2 of 3 runs:
    the trees alone there' ('' for other methods, or where every run used the LLM)."""
    if not len(runs) or not runs.get("family", runs["method"]).eq(BOOST).all():
        return ""
    scales = [d.get("scale") if isinstance(d, dict) else None for d in runs.get("details", [])]
    zero = sum(isinstance(x, int | float) and not isinstance(x, bool) and x == 0 for x in scales)
    if not zero:
        return ""
    there = "" if zero == len(runs) else " there"
    return f"s = 0 in {zero} of {len(runs)} runs: the trees alone{there}"


@dataclass(frozen=True)
class Adjusted:
    """The best-on-test comparison adjusted for its choice (or why it could not be)."""

    n_llm: int  # LLM-based methods the best was chosen from
    n_classical: int
    interval: Interval | None = None  # LLM - classical over the cross-fitted picks
    fit: CrossFit | None = None
    llm_picks: tuple[str, str] = ("", "")  # picked on half 0, on half 1
    classical_picks: tuple[str, str] = ("", "")
    why: str = ""


def adjusted_best(
    llm_runs: pd.DataFrame,
    classical_runs: pd.DataFrame,
    best: tuple[str, str],
    metric: str,
    keys: list[str],
    reader: PredictionReader,
    higher_is_better: bool,
    stats: str = "rows",
) -> Adjusted:
    """Cross-fit the choice of the best LLM-based and classical method over the groups (`keys`)
    where the two best (`best` = their labels) both ran; every candidate must have run there."""
    llm_index = llm_runs.set_index(keys)
    classical_index = classical_runs.set_index(keys)
    shared = llm_index[llm_index["label"].eq(best[0])].index.intersection(
        classical_index[classical_index["label"].eq(best[1])].index
    )
    sides = [_candidates(llm_index, shared), _candidates(classical_index, shared)]
    counts = (len(sides[0]), len(sides[1]))
    if len(shared) == 0:
        return Adjusted(*counts, why="no matched seeds")
    sweep, why = _sweep(sides, shared, metric, reader)
    if sweep is None:
        return Adjusted(*counts, why=why)
    name = metric if metric in METRIC_NAMES else "accuracy"
    fit = cross_fit(sweep, name, higher_is_better, n_boot=N_BOOT, alpha=ALPHA)
    iv = fit.interval
    if stats == "seeds":  # the t-interval over the seeds' held-out differences
        diff = paired_difference(pd.Series(fit.per_seed), pd.Series(np.zeros(len(fit.per_seed))))
        interval = Interval(diff.mean, diff.low, diff.high, diff.n, 0, "seeds", higher_is_better)
    else:
        interval = Interval(
            iv.estimate, iv.low, iv.high, iv.n_seeds, iv.n_rows, "rows", higher_is_better
        )
    labels = [list(side) for side in sides]
    return Adjusted(
        *counts,
        interval=interval,
        fit=fit,
        llm_picks=(labels[0][fit.llm.picks[0]], labels[0][fit.llm.picks[1]]),
        classical_picks=(labels[1][fit.classical.picks[0]], labels[1][fit.classical.picks[1]]),
    )


def _not_adjustable(metric: str, n_classes: int) -> str:
    """Why the best-on-test line cannot be adjusted for `metric`: what the cross-fit can do."""
    task = "multiclass " if n_classes > 2 and metric in METRIC_NAMES else ""
    return (
        f"{task}{metric} cannot be adjusted for choosing the best (binary tasks: AUC, accuracy, "
        "log loss or Brier; multiclass: accuracy only)"
    )


def _candidates(runs: pd.DataFrame, shared: pd.Index) -> dict[str, pd.DataFrame]:
    """label -> its runs at the shared groups, for every label that ran at all of them."""
    found = {}
    for label, rows in sorted(runs.groupby("label"), key=lambda item: str(item[0])):
        if shared.isin(rows.index).all() and len(shared):
            found[str(label)] = rows.loc[shared]
    return found


def _sweep(
    sides: list[dict[str, pd.DataFrame]], shared: pd.Index, metric: str, reader: PredictionReader
) -> tuple[list | None, str]:
    """Per group: (y, LLM scores k x n, classical scores m x n), rows in one order."""
    sweep = []
    for key in shared:
        frames, runs = [], []
        for side in sides:
            for rows in side.values():
                run = rows.loc[key]
                frame = reader.read(run)
                if frame is None:
                    return None, "per-row predictions are missing or unreadable"
                frames.append(frame.sort_values("row").reset_index(drop=True))
                runs.append(run)
        if any(not f["row"].equals(frames[0]["row"]) for f in frames):
            return None, "the methods predicted different test rows"
        labels = [str(x) for x in runs[0].get("class_labels", [])] or [
            c.removeprefix("proba_") for c in frames[0].columns if c.startswith("proba_")
        ]
        codes = frames[0]["y_true"].astype(str).map({c: i for i, c in enumerate(labels)})
        if codes.isna().any():
            return None, "a test label is not among the run's class labels"
        y = codes.to_numpy(dtype=int)
        probas = [f[[f"proba_{c}" for c in labels]].to_numpy(dtype=float) for f in frames]
        if len(labels) == 2 and metric in METRIC_NAMES:  # as compare.py: class 1's column
            scores = np.array([p[:, 1] for p in probas])
        elif metric == "accuracy":  # right or wrong per row, stratified by the majority class
            parts = [accuracy_group(y, p, p) for p in probas]
            y, scores = parts[0][0], np.array([part[1] for part in parts])
        else:
            return None, _not_adjustable(metric, len(labels))
        if why := too_few_rows(y):
            return None, why
        k = len(sides[0])
        sweep.append((y, scores[:k], scores[k:]))
    return sweep, ""

"""Run records prepared for the report: display labels, family order, one run per cell.

A *label* names what a table row is: the method, plus the LLM for LLM-based methods, plus the
serializer when one method ran with several, so `llm_icl` on two models never averages into
one row.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.llm.scoring import NOT_LOGPROBS, scored_by
from bench.metrics import metric_label

__all__ = [
    "BASELINE",
    "FAMILY_ORDER",
    "PreparedRuns",
    "family_key",
    "method_labels",
    "metric_name",
    "ok_runs",
    "prepare_runs",
    "row_order",
    "uses_llm",
]

FAMILY_ORDER = (
    "classical",
    "tabpfn",
    "llm_icl",
    "llm_codegen",
    "llm_distill",
    "llm_embed",
    "llm_boost",
)
BASELINE = "majority"  # the floor every method must beat; drawn and listed first


def metric_name(metric: str) -> str:
    """How a metric reads in prose: `roc_auc` -> `AUC`."""
    return metric_label(metric)


def uses_llm(runs: pd.DataFrame) -> pd.Series:
    """Per run: did it call an LLM? (its record names the llm it used)."""
    if "llm" not in runs.columns:
        return pd.Series(False, index=runs.index)
    return runs["llm"].map(lambda v: isinstance(v, str) and bool(v)).astype(bool)


def family_key(family: object) -> tuple[int, str]:
    """Sort key: the known families in their fixed order, unknown ones after, by name."""
    name = str(family)
    return (FAMILY_ORDER.index(name) if name in FAMILY_ORDER else len(FAMILY_ORDER), name)


def row_order(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(family, label) pairs grouped by family; the majority baseline first in its family."""
    return sorted(keys, key=lambda fl: (family_key(fl[0]), not fl[1].startswith(BASELINE), fl[1]))


def method_labels(runs: pd.DataFrame) -> pd.Series:
    """A display label per run: `method`, or `method (llm[, serializer][, scoring†])` for LLM
    methods. A run whose probabilities were mostly not read from logprobs (`llm.scoring`,
    bench/llm/scoring.py) is labelled with how they were read and marked †, so it is never
    pooled with a logprob run of the same LLM as one method."""
    if runs.empty:
        return pd.Series(dtype=object, index=runs.index)
    # The serializer is named only for methods that ran with more than one.
    several = runs.groupby("method")["serializer"].nunique(dropna=True)
    details = runs["details"] if "details" in runs.columns else pd.Series(None, index=runs.index)
    labels = []
    for method, llm, serializer, detail in zip(
        runs["method"], runs["llm"], runs["serializer"], details, strict=True
    ):
        parts = []
        if isinstance(llm, str) and llm:
            parts.append(llm)
        if isinstance(serializer, str) and several.get(method, 0) > 1:
            parts.append(serializer)
        if parts and (scoring := scored_by(detail)) != "logprobs":
            parts.append(f"{scoring}{NOT_LOGPROBS}")
        labels.append(f"{method} ({', '.join(parts)})" if parts else str(method))
    return pd.Series(labels, index=runs.index, dtype=object)


@dataclass(frozen=True)
class PreparedRuns:
    """All run records (`all_runs`) and one run per dataset x label x n_train x seed (`runs`)."""

    all_runs: pd.DataFrame
    runs: pd.DataFrame
    superseded: int  # older records of a cell that a later (or ok) record replaced


def prepare_runs(results: pd.DataFrame) -> PreparedRuns:
    """Add labels and keep one record per cell: the ok one, the latest if several.

    Two records share a cell when they differ only in settings the label does not show (a
    method parameter, the split settings): averaging them would mix two experiments.
    """
    frame = results.copy()
    frame["label"] = method_labels(frame)
    if frame.empty:
        return PreparedRuns(frame, frame, 0)
    key = ["dataset", "label", "n_train", "seed"]
    order = frame.assign(
        _ok=frame["status"].eq("ok"),
        _at=frame.get("finished_at", pd.Series("", index=frame.index)).fillna("").astype(str),
    ).sort_values(["_ok", "_at"], kind="stable")
    kept = order.drop_duplicates(subset=key, keep="last").drop(columns=["_ok", "_at"])
    kept = kept.sort_index()
    return PreparedRuns(frame, kept, len(frame) - len(kept))


def ok_runs(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Finished runs with a value for `metric` (and a label, added if missing)."""
    if "label" not in runs.columns:  # not prepared yet: label it and keep one run per cell
        runs = prepare_runs(runs).runs
    ok = runs[runs["status"].eq("ok")].dropna(subset=[metric, "n_train"])
    return ok.assign(n_train=ok["n_train"].astype(int), **{metric: ok[metric].astype(float)})

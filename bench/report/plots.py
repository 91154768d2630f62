"""Figures: learning curves (metric vs n_train) and cost vs quality with its Pareto front.

Colours follow families (classical blues, TabPFN greens, in-context reds, codegen purples,
distillation oranges); a tuned variant shares its base method's colour and is dashed; the
majority baseline is a black dotted line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.metrics import get_metric, higher_is_better
from bench.report.cost import COST_UNITS
from bench.report.runs import BASELINE, metric_name, row_order

__all__ = ["Style", "cost_plot", "learning_curve", "method_styles", "shot_positions"]

# Distinct hues within each family's colour range: shades of one colour are hard to tell apart.
_FAMILY_COLOURS = {
    "classical": ["#2171b5", "#17becf", "#08306b", "#6baed6", "#008080", "#4b6584"],
    "tabpfn": ["#1b7837", "#5aae61", "#a6dba0"],
    "llm_icl": ["#d62728", "#e7298a", "#a50f15", "#fb6a4a"],
    "llm_codegen": ["#6a3d9a", "#9467bd", "#c2a5cf"],
    "llm_distill": ["#ff7f0e", "#8c564b", "#fdae6b"],
}
_OTHER_COLOURS = ["#525252", "#969696", "#bcbd22"]
_MARKERS = "os^DvPXh<>"


@dataclass(frozen=True)
class Style:
    color: str
    linestyle: str
    marker: str


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def method_styles(keys: Iterable[tuple[str, str]]) -> dict[str, Style]:
    """A style per method label from its (family, label): a colour of its family, a marker."""
    styles: dict[str, Style] = {}
    ordered = row_order(list(set(keys)))
    for family in dict.fromkeys(f for f, _ in ordered):
        labels = [label for f, label in ordered if f == family]
        bases = list(dict.fromkeys(_base(label) for label in labels if label != BASELINE))
        colours = _FAMILY_COLOURS.get(family, _OTHER_COLOURS)
        for label in labels:
            if label == BASELINE:
                styles[label] = Style("black", ":", "")
                continue
            i = bases.index(_base(label))
            dashed = "_tuned" in label
            styles[label] = Style(
                colours[i % len(colours)], "--" if dashed else "-", _MARKERS[i % len(_MARKERS)]
            )
    return styles


def _base(label: str) -> str:
    return label.replace("_tuned", "")


def shot_positions(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """`table` with `x`: n_train, or the mean shot count k of in-context runs (`details.shots`).

    An in-context method may cap its shots (`max_shots`), so its point belongs at k.
    """
    table = table.assign(x=table["n_train"].astype(float))
    if "details" not in runs.columns or runs.empty:
        return table
    shots = runs["details"].map(lambda d: d.get("shots") if isinstance(d, dict) else None)
    known = runs.assign(k=pd.to_numeric(shots, errors="coerce")).dropna(subset=["k", "n_train"])
    if known.empty:
        return table
    k = known.groupby(["label", "n_train"])["k"].mean()
    for i, row in table.iterrows():
        key = (row["method"], row["n_train"])
        if key in k.index:
            table.at[i, "x"] = float(k[key])
    return table


def _log_positions(x: pd.Series) -> tuple[pd.Series, float | None]:
    """Zero (zero-shot) has no place on a log axis: put it one halving left of the smallest n."""
    positive = x[x > 0]
    zero_at = float(positive.min() / 2) if len(positive) else 1.0
    return x.where(x > 0, zero_at), (zero_at if (x == 0).any() else None)


def learning_curve(table: pd.DataFrame, metric: str, title: str, path: Path) -> Path:
    """Mean metric vs n_train per method with its 95% CI band over seeds (`summary_table`)."""
    plt = _pyplot()
    if "x" not in table.columns:
        table = table.assign(x=table["n_train"].astype(float))
    positions, zero_at = _log_positions(table["x"].astype(float))
    table = table.assign(pos=positions)
    styles = method_styles(zip(table["family"], table["method"], strict=True))
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    for family, method in row_order(list(styles_keys(table))):
        rows = table[(table["family"] == family) & (table["method"] == method)].sort_values("pos")
        style = styles[method]
        baseline = method == BASELINE
        ax.plot(
            rows["pos"],
            rows["mean"],
            color=style.color,
            linestyle=style.linestyle,
            marker=style.marker or None,
            ms=4,
            lw=1.4 if baseline else 1.6,
            label="majority baseline" if baseline else method,
            zorder=3 if baseline else 2,
        )
        band = rows.dropna(subset=["ci"])
        if not baseline and len(band):
            low, high = get_metric(metric).bounds  # a band never claims an AUC above 1
            ax.fill_between(
                band["pos"],
                (band["mean"] - band["ci"]).clip(lower=low),
                (band["mean"] + band["ci"]).clip(upper=high),
                color=style.color,
                alpha=0.08,
                lw=0,
            )
    ax.set_xscale("log")
    ticks = sorted(set(table["pos"]))
    tick_labels = []
    for t in ticks:
        tick_labels.append("0" if zero_at is not None and t == zero_at else f"{t:g}")
    ax.set_xticks(ticks, tick_labels)
    ax.minorticks_off()
    ax.set_xlabel("labelled training rows (log scale; in-context methods at their shot count k)")
    arrow = "higher is better" if higher_is_better(metric) else "lower is better"
    ax.set_ylabel(f"{metric_name(metric)} ({arrow})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.text(0.01, 0.01, "Bands: 95% t-interval of the mean over seeds.", fontsize=7, color="0.35")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def styles_keys(table: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(table["family"], table["method"], strict=True))


def cost_plot(points: pd.DataFrame, metric: str, unit: str, title: str, path: Path) -> Path:
    """Metric vs cost per 1,000 predictions (log axis), a point per method x n_train.

    `points` comes from `with_pareto`: columns family, label, n_train, metric, cost, pareto.
    Runs that cost $0 in USD mode sit on a dotted line at the left edge, marked "$0".
    """
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter

    data = points.dropna(subset=["cost", metric])
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    positive = data["cost"][data["cost"] > 0]
    floor = float(positive.min() / 4) if len(positive) else 1.0
    data = data.assign(pos=data["cost"].where(data["cost"] > 0, floor))
    styles = method_styles(zip(data["family"], data["label"], strict=True))
    for family, label in row_order(list(set(zip(data["family"], data["label"], strict=True)))):
        rows = data[(data["family"] == family) & (data["label"] == label)].sort_values("n_train")
        style = styles[label]
        ax.plot(
            rows["pos"],
            rows[metric],
            color=style.color,
            linestyle=style.linestyle,
            lw=0.8,
            alpha=0.6,
            marker=style.marker or "o",
            ms=5,
            label=label,
        )
    front = data[data["pareto"]].sort_values("pos")
    if len(front):
        ax.step(front["pos"], front[metric], where="post", color="black", lw=1.2, alpha=0.7)
        ax.scatter(
            front["pos"],
            front[metric],
            s=90,
            facecolors="none",
            edgecolors="black",
            lw=1.4,
            zorder=4,
            label="Pareto front",
        )
        logs = np.log10(data["pos"].astype(float))
        middle = (logs.min() + logs.max()) / 2
        for i, row in enumerate(front.itertuples()):
            # Labels of points right of the middle go left, so none runs off the axes.
            right_half = np.log10(row.pos) > middle
            ax.annotate(
                f"{row.label} @{row.n_train}",
                (row.pos, getattr(row, metric)),
                textcoords="offset points",
                xytext=(-8 if right_half else 8, -11 if i % 2 else 5),
                ha="right" if right_half else "left",
                fontsize=7,
            )
    if (data["cost"] == 0).any():
        ax.axvline(floor, color="0.5", ls=":", lw=1)
        ax.annotate(
            "$0",
            (floor, 1),
            xycoords=("data", "axes fraction"),
            xytext=(2, -12),
            textcoords="offset points",
            fontsize=8,
            color="0.35",
        )
    ax.set_xscale("log")
    # Plain numbers (0.1, 1, 10) read faster than powers of ten.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel(f"{COST_UNITS[unit]} (log scale)")
    arrow = "higher is better" if higher_is_better(metric) else "lower is better"
    ax.set_ylabel(f"{metric_name(metric)} ({arrow})")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

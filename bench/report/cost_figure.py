"""The cost-quality figure: quality vs marginal cost (with its Pareto front) and vs one-off cost.

Two panels share the quality axis. Left: the cost of 1,000 more predictions, where serving an
LLM differs most from a trained model. Right: what fitting cost once (training, tuning,
writing a program, labelling rows), which the marginal cost hides. A point per method x n_train,
coloured by `bench.report.plots.method_styles`; free points (cost 0) sit on a dotted line at the
left edge of their panel.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.metrics import higher_is_better
from bench.report.cost import COST_UNITS, ONE_OFF_UNITS
from bench.report.doc import Block, Bullets, Figure, Heading, Paragraph
from bench.report.plots import Style, method_styles
from bench.report.runs import metric_name, row_order
from bench.report.verdict import format_sig

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = ["cost_blocks", "cost_plot", "pareto_lines"]


def cost_blocks(section: DatasetSection) -> list[Block]:
    """The cost-quality figure and its Pareto front, when any run has a cost."""
    points = section.points
    if not len(points) or not points["cost"].notna().any():
        return []
    name, metric = section.name, section.metric
    draw = partial(
        cost_plot, points, metric, section.unit, f"{name}: {metric_name(metric)} vs cost"
    )
    return [
        Heading(f"Cost vs quality ({COST_UNITS[section.unit]})", 3),
        Figure(f"{name}_cost.png", f"cost vs quality: {name}", draw=draw),
        Paragraph("Pareto front on marginal cost (cheapest first):"),
        Bullets(tuple(pareto_lines(section))),
    ]


def pareto_lines(section: DatasetSection) -> list[str]:
    """One line per Pareto-optimal point: method @ n_train: cost, metric."""
    unit = "$" if section.unit == "usd" else ""
    suffix = "" if section.unit == "usd" else " s"
    name = metric_name(section.metric)
    return [
        f"{row.label} @{row.n_train}: {unit}{format_sig(row.cost)}{suffix} per 1,000 "
        f"predictions, {getattr(row, section.metric):.3f} {name}"
        for row in section.pareto.itertuples()
        if not math.isnan(row.cost)
    ]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _with_positions(data: pd.DataFrame, column: str) -> tuple[pd.DataFrame, float]:
    """Rows with a known `column`, placed at `pos`: zero has no place on a log axis, so free
    points go a factor 4 left of the cheapest paid one. Returns the rows and that floor."""
    rows = data.dropna(subset=[column])
    positive = rows[column][rows[column] > 0]
    floor = float(positive.min() / 4) if len(positive) else 1.0
    return rows.assign(pos=rows[column].where(rows[column] > 0, floor)), floor


def _panel(
    ax: Any,
    data: pd.DataFrame,
    column: str,
    metric: str,
    styles: dict[str, Style],
    zero_text: str,
) -> pd.DataFrame:
    """One panel: a line per method through its n_train points. Returns the placed rows."""
    from matplotlib.ticker import FuncFormatter

    rows, floor = _with_positions(data, column)
    if rows.empty:  # say so rather than leave a blank box
        ax.text(0.5, 0.5, "no cost known", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        return rows
    for family, label in row_order(list(set(zip(rows["family"], rows["label"], strict=True)))):
        line = rows[(rows["family"] == family) & (rows["label"] == label)].sort_values("n_train")
        style = styles[label]
        ax.plot(
            line["pos"],
            line[metric],
            color=style.color,
            linestyle=style.linestyle,
            lw=0.8,
            alpha=0.6,
            marker=style.marker or "o",
            ms=5,
            label=label,
        )
    ax.set_xscale("log")
    if not (rows[column] > 0).any():  # all free: the floor is the only tick, and it reads 0
        ax.set_xticks([floor], [zero_text])
        ax.minorticks_off()
    else:
        # Plain numbers (0.1, 1, 10) read faster than powers of ten.
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        if (rows[column] == 0).any():
            ax.axvline(floor, color="0.5", ls=":", lw=1)
            ax.annotate(
                zero_text,
                (floor, 0),
                xycoords=("data", "axes fraction"),
                xytext=(3, 4),
                textcoords="offset points",
                fontsize=8,
                color="0.35",
            )
    ax.grid(alpha=0.3)
    ax.grid(alpha=0.1, which="minor")
    return rows


def _front(ax: Any, rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The Pareto front as a step line, its points ringed. Returns the front's rows."""
    front = rows[rows["pareto"].astype(bool)].sort_values("pos") if len(rows) else rows
    if front.empty:
        return front
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
    return front


def _label_points(ax: Any, front: pd.DataFrame, points: pd.DataFrame, metric: str) -> None:
    """Label each front point with method @n_train at the offset that overlaps the fewest
    labels and markers inside the axes: front points often crowd (a method at several n)."""
    renderer = ax.figure.canvas.get_renderer()
    ax.figure.canvas.draw()  # settle the layout first, so the overlap checks hold when saved
    frame = ax.get_window_extent(renderer)
    xy = ax.transData.transform(points[["pos", metric]].astype(float).to_numpy())
    half = 4 * ax.figure.dpi / 72  # a marker's half width, in pixels
    xmin, xmax = ax.get_xlim()
    middle = (np.log10(xmin) + np.log10(xmax)) / 2
    placed: list[Any] = []
    for row in front.itertuples():
        # Right of the middle, labels go left first, so none runs off the axes.
        sides = (-1, 1) if np.log10(row.pos) > middle else (1, -1)
        best: tuple[float, Any] | None = None
        for dx, dy in [(8 * side, dy) for side in sides for dy in (5, -12, 14, -21, 23, -30)]:
            text = ax.annotate(
                f"{row.label} @{row.n_train}",
                (row.pos, getattr(row, metric)),
                textcoords="offset points",
                xytext=(dx, dy),
                ha="left" if dx > 0 else "right",
                fontsize=7,
            )
            box = text.get_window_extent(renderer)
            outside = not (frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1))
            hidden = np.sum(
                (xy[:, 0] > box.x0 - half)
                & (xy[:, 0] < box.x1 + half)
                & (xy[:, 1] > box.y0 - half)
                & (xy[:, 1] < box.y1 + half)
            )
            score = 100 * outside + 10 * sum(box.overlaps(o) for o in placed) + hidden
            if best is None or score < best[0]:
                if best is not None:
                    best[1].remove()
                best = (score, text)
            else:
                text.remove()
            if score == 0:
                break
        if best is not None:
            placed.append(best[1].get_window_extent(renderer))


def cost_plot(points: pd.DataFrame, metric: str, unit: str, title: str, path: Path) -> Path:
    """Metric vs marginal cost per 1,000 predictions (left) and vs one-off cost (right), both
    on log axes, a point per method x n_train.

    `points` comes from `bench.report.cost.with_pareto`: columns family, label, n_train,
    `metric`, cost (marginal), one_off and pareto, costs in `unit` ("usd" or "seconds").
    """
    plt = _pyplot()
    data = points.dropna(subset=[metric])
    styles = method_styles(zip(data["family"], data["label"], strict=True))
    zero_text = "$0" if unit == "usd" else "0 s"
    fig, (marginal, one_off) = plt.subplots(
        1, 2, figsize=(13, 5.2), sharey=True, layout="constrained"
    )
    placed = _panel(marginal, data, "cost", metric, styles, zero_text)
    _panel(one_off, data, "one_off", metric, styles, zero_text)
    marginal.set_xlabel(f"{COST_UNITS[unit]} (log scale)")
    one_off.set_xlabel(f"{ONE_OFF_UNITS[unit]} (log scale)")
    marginal.set_title("Marginal cost: predicting", fontsize=10)
    one_off.set_title(
        "One-off cost: fitting (training, tuning, LLM labelling or coding)", fontsize=10
    )
    arrow = "higher is better" if higher_is_better(metric) else "lower is better"
    marginal.set_ylabel(f"{metric_name(metric)} ({arrow})")
    one_off.tick_params(labelleft=False)
    fig.suptitle(title)
    front = _front(marginal, placed, metric)
    # One legend for both panels: a method may miss from one panel when that cost is unknown.
    handles: dict[str, Any] = {}
    for ax in (marginal, one_off):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            fontsize=7.5,
            loc="outside right upper",
            frameon=False,
        )
    if len(front):  # last: the labels are placed in the final layout
        _label_points(marginal, front, placed, metric)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)

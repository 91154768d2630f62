"""Learning curves (metric vs n_train), and the colours and markers every figure shares.

Colours follow families (classical blues, TabPFN greens, in-context reds, codegen purples,
distillation oranges, embeddings golds, LLM-Boost olives; pfn_boost is a TabPFN green); a tuned
variant shares its base method's colour and is dashed; the majority baseline is a black dotted
line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D

from bench.metrics import get_metric, higher_is_better
from bench.report.runs import BASELINE, family_key, metric_name, row_order

__all__ = [
    "Style",
    "differences_to_best_classical",
    "family_bests",
    "learning_curve",
    "method_styles",
    "shot_positions",
]

# Distinct hues within each family's colour range: shades of one colour are hard to tell apart.
_FAMILY_COLOURS = {
    "classical": ["#2171b5", "#17becf", "#08306b", "#6baed6", "#008080", "#4b6584"],
    "tabpfn": ["#1b7837", "#5aae61", "#a6dba0"],
    "llm_icl": ["#d62728", "#e7298a", "#a50f15", "#fb6a4a"],
    "llm_codegen": ["#6a3d9a", "#9467bd", "#c2a5cf"],
    "llm_distill": ["#ff7f0e", "#8c564b", "#fdae6b"],
    "llm_embed": ["#b8860b", "#daa520", "#f0e442"],
    # the LLM and the trees together (LLM-Boost): olives, between the LLMs' and the trees' hues
    "llm_boost": ["#808000", "#b5b800", "#556b2f"],
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

    An in-context method may cap its shots (`max_shots`), so its point belongs at k; one that
    retrieves its shots per query from all n rows (`selection: knn`) learns from all of them
    and stays at n_train.
    """
    table = table.assign(x=table["n_train"].astype(float))
    if "details" not in runs.columns or runs.empty:
        return table

    def fixed_shots(details: object) -> object:
        if not isinstance(details, dict) or details.get("selection") == "knn":
            return None
        return details.get("shots")

    shots = runs["details"].map(fixed_shots)
    known = runs.assign(k=pd.to_numeric(shots, errors="coerce")).dropna(subset=["k", "n_train"])
    if known.empty:
        return table
    k = known.groupby(["label", "n_train"])["k"].mean()
    for i, row in table.iterrows():
        key = (row["method"], row["n_train"])
        if key in k.index:
            table.at[i, "x"] = float(k[key])
    return table


CLASSICAL = "classical"  # the family every other family is measured against


def _sign(metric: str) -> float:
    """+1 where higher is better, -1 where lower is: `sign * value` is always "higher = better"."""
    return 1.0 if higher_is_better(metric) else -1.0


def family_bests(table: pd.DataFrame, metric: str) -> set[str]:
    """Per family, the method label with the best mean metric averaged over the n_train it ran.

    `table` is a `summary_table`. The majority baseline is never a family best (it is drawn
    apart); a tie goes to the label first in alphabetical order, so row order never matters.

    >>> t = pd.DataFrame({"family": ["classical"] * 3, "method": ["a", "b", "b"],
    ...                   "n_train": [16, 16, 64], "mean": [0.7, 0.6, 0.9]})
    >>> family_bests(t, "roc_auc")
    {'b'}
    """
    rows = table[table["method"] != BASELINE]
    score = rows.groupby(["family", "method"])["mean"].mean() * _sign(metric)
    bests: set[str] = set()
    for _, group in score.groupby(level="family"):
        top = group.max()
        tied = sorted(str(m) for (_, m), s in group.items() if math.isclose(s, top, abs_tol=1e-12))
        bests.add(tied[0])
    return bests


def differences_to_best_classical(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each method's mean minus the best classical method's mean at the same n_train.

    Signed so that positive = better than the best classical method (a lower-is-better metric
    is negated). The reference at an n_train is the classical method, majority baseline aside,
    with the best mean there (a tie: the first label alphabetically); n_train where no
    classical method ran are left out, and so is everything when none ran anywhere.
    Columns: family, method, n_train, x (`shot_positions`; n_train if absent), difference,
    reference (the best classical label).
    """
    columns = ["family", "method", "n_train", "x", "difference", "reference"]
    sign = _sign(metric)
    table = table.assign(x=_x(table))
    classical = table[(table["family"] == CLASSICAL) & (table["method"] != BASELINE)]
    if classical.empty:
        return pd.DataFrame(columns=columns)
    ranked = classical.assign(_score=classical["mean"] * sign).sort_values(
        ["n_train", "_score", "method"], ascending=[True, False, True]
    )
    best = ranked.drop_duplicates("n_train").set_index("n_train")
    rows = table[table["n_train"].isin(best.index)]
    reference = rows["n_train"].map(best["mean"])
    rows = rows.assign(
        difference=sign * (rows["mean"] - reference), reference=rows["n_train"].map(best["method"])
    )
    return rows[columns].reset_index(drop=True)


def _x(table: pd.DataFrame) -> pd.Series:
    return (table["x"] if "x" in table.columns else table["n_train"]).astype(float)


def _log_positions(x: pd.Series) -> tuple[pd.Series, float | None]:
    """Zero (zero-shot) has no place on a log axis: put it one halving left of the smallest n."""
    positive = x[x > 0]
    zero_at = float(positive.min() / 2) if len(positive) else 1.0
    return x.where(x > 0, zero_at), (zero_at if (x == 0).any() else None)


def _legend_order(table: pd.DataFrame, bests: set[str]) -> list[tuple[str, str]]:
    """(family, label) by family; in each, its best first, then the others; the baseline last."""
    keys = {(str(f), str(m)) for f, m in zip(table["family"], table["method"], strict=True)}
    ordered = sorted(
        (k for k in keys if k[1] != BASELINE),
        key=lambda k: (family_key(k[0]), k[1] not in bests, k[1]),
    )
    return ordered + sorted(k for k in keys if k[1] == BASELINE)


def _difference_limits(diffs: pd.DataFrame, margin: float | None) -> tuple[float, float]:
    """A y range around the bulk of the differences, 0 and the margin.

    One method far below the rest (an LLM that failed at small n) would otherwise squash every
    other line into a sliver; points beyond the range are drawn on its edge, with their value.
    """
    values = diffs["difference"].astype(float)
    q_low, q_high = float(values.quantile(0.1)), float(values.quantile(0.9))
    spread = max(q_high - q_low, 0.02)
    low = max(float(values.min()), q_low - spread)
    high = min(float(values.max()), q_high + spread)
    edge = 1.5 * margin if margin else 0.0
    low, high = min(low, -edge, 0.0), max(high, edge, 0.0)
    pad = 0.07 * max(high - low, 0.02)
    return low - pad, high + pad


def _metric_limits(table: pd.DataFrame, metric: str, bests: set[str]) -> tuple[float, float]:
    """The top panel's y range: every mean, and the bands as far as 40% of that range beyond.

    With 3 seeds a band can span half the scale (t = 4.3); drawn in full it would squeeze the
    lines, which are what the panel compares.
    """
    low, high = float(table["mean"].min()), float(table["mean"].max())
    span = max(high - low, 0.02)
    bands = table[table["method"].isin(bests)]
    floor, ceiling = get_metric(metric).bounds
    band_low = (bands["mean"] - bands["ci"]).clip(lower=floor).min()
    band_high = (bands["mean"] + bands["ci"]).clip(upper=ceiling).max()
    if pd.notna(band_low):
        low = min(low, max(float(band_low), low - 0.4 * span))
    if pd.notna(band_high):
        high = max(high, min(float(band_high), high + 0.4 * span))
    pad = 0.04 * (high - low or 0.02)
    return low - pad, high + pad


def _line_style(style: Style, kind: str) -> dict[str, object]:
    """Matplotlib keywords for a family best (bold), another method (thin) or the baseline."""
    common = {"color": style.color, "linestyle": style.linestyle, "marker": style.marker or None}
    if kind == "best":
        return {**common, "lw": 2.4, "ms": 5.5, "alpha": 1.0, "zorder": 4}
    if kind == "baseline":
        return {**common, "lw": 1.5, "ms": 0, "alpha": 0.9, "zorder": 3}
    return {**common, "lw": 0.9, "ms": 3, "alpha": 0.55, "zorder": 2}


def learning_curve(
    table: pd.DataFrame, metric: str, title: str, path: Path, margin: float | None = None
) -> Path:
    """Mean metric vs n_train (top) and the difference to the best classical method (bottom).

    `table` is a `summary_table`, with `x` from `shot_positions` where in-context methods ran
    (they are drawn at their shot count k; open markers where k < n_train). Per family its
    best method (`family_bests`) is a bold line with its 95% band over seeds, the others are
    thin; the majority baseline is a black dotted line. The bottom panel
    (`differences_to_best_classical`, positive = better) shades [-margin, +margin] as good
    enough; it is left out when no classical method ran.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    table = table.assign(x=_x(table))
    positions, zero_at = _log_positions(table["x"])
    table = table.assign(pos=positions)
    styles = method_styles(zip(table["family"], table["method"], strict=True))
    bests = family_bests(table, metric)
    diffs = differences_to_best_classical(table, metric)
    diffs = diffs[diffs["method"] != BASELINE]  # far below by design; the top panel shows it
    if len(diffs):
        fig, (top, bottom) = plt.subplots(
            2,
            1,
            sharex=True,
            figsize=(11, 7.6),
            gridspec_kw={"height_ratios": [3, 2]},
            layout="constrained",  # room for the legend on the right and the notes below
        )
    else:
        fig, top = plt.subplots(figsize=(11, 4.9), layout="constrained")
        bottom = None

    handles = _draw_curves(top, table, metric, styles, bests)
    top.set_ylim(*_metric_limits(table, metric, bests))
    arrow = "higher is better" if higher_is_better(metric) else "lower is better"
    top.set_ylabel(f"{metric_name(metric)} ({arrow})")
    top.set_title(title, loc="left", fontsize=12)
    if bottom is not None:
        _draw_differences(bottom, diffs, table, styles, bests, margin)
        if margin:
            handles.append((Patch(color="0.8", lw=0), f"±{margin:g} (good enough)", "margin"))
    _format_x(bottom if bottom is not None else top, table, zero_at)
    for ax in (top, bottom):
        if ax is not None:
            ax.grid(alpha=0.25, lw=0.6)
            ax.spines[["top", "right"]].set_visible(False)
    _legend(top, handles)
    notes = ["Bold: each family's best method (mean over its n_train), with its 95% band."]
    if (table["x"] < table["n_train"]).any():
        notes.append("Open markers: in-context runs capped at k < n_train shots.")
    if bottom is not None:
        notes.append("Bottom: difference to the best classical method at the same n_train.")
    fig.supxlabel(" ".join(notes), x=0.01, ha="left", fontsize=7.5, color="0.35")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _draw_curves(
    ax: Axes, table: pd.DataFrame, metric: str, styles: dict[str, Style], bests: set[str]
) -> list[tuple[Artist, str, str]]:
    """The top panel; returns the legend entries as (artist, label, kind)."""
    from matplotlib.lines import Line2D

    handles: list[tuple[Artist, str, str]] = []
    family = None
    for fam, method in _legend_order(table, bests):
        kind = "baseline" if method == BASELINE else "best" if method in bests else "other"
        if kind != "baseline" and fam != family:  # a family header in the legend
            handles.append((Line2D([], [], color="none"), fam, "header"))
            family = fam
        rows = table[(table["family"] == fam) & (table["method"] == method)]
        rows = rows.sort_values(["pos", "n_train"])
        (line,) = ax.plot(rows["pos"], rows["mean"], **_line_style(styles[method], kind))
        _open_capped(ax, rows, rows["mean"], line)
        handles.append((line, "majority baseline" if kind == "baseline" else method, kind))
        band = rows.dropna(subset=["ci"])
        if kind == "best" and len(band):
            low, high = get_metric(metric).bounds  # a band never claims an AUC above 1
            lower = (band["mean"] - band["ci"]).clip(lower=low)
            upper = (band["mean"] + band["ci"]).clip(upper=high)
            if len(band) == 1:  # a band of one point has no width: an error bar instead
                ax.errorbar(
                    band["pos"],
                    band["mean"],
                    yerr=[band["mean"] - lower, upper - band["mean"]],
                    color=styles[method].color,
                    lw=1.2,
                    capsize=4,
                    zorder=3,
                )
            else:
                ax.fill_between(
                    band["pos"],
                    lower,
                    upper,
                    color=styles[method].color,
                    alpha=0.12,
                    lw=0,
                    zorder=1,
                )
    return handles


def _open_capped(ax: Axes, rows: pd.DataFrame, y: pd.Series, line: Line2D) -> None:
    """Redraw the markers of in-context points with k < n_train shots hollow."""
    capped = rows["x"] < rows["n_train"]
    if capped.any() and line.get_marker() not in (None, "None", ""):
        ax.plot(
            rows["pos"][capped],
            y[capped],
            linestyle="none",
            marker=line.get_marker(),
            ms=line.get_markersize() + 0.5,
            markerfacecolor="white",
            markeredgecolor=line.get_color(),
            markeredgewidth=1.3,
            alpha=line.get_alpha(),
            zorder=line.get_zorder() + 0.5,
        )


def _legend(ax: Axes, handles: list[tuple[Artist, str, str]]) -> None:
    """One legend right of the top panel: family headers, the bests in bold first."""
    legend = ax.legend(
        [h for h, _, _ in handles],
        [label for _, label, _ in handles],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        handlelength=2.6,
    )
    for text, (_, _, kind) in zip(legend.get_texts(), handles, strict=True):
        if kind in ("best", "header"):
            text.set_fontweight("bold")
        if kind == "header":
            text.set_color("0.3")
            text.set_x(-28)  # a header starts where the line samples do


def _draw_differences(
    ax: Axes,
    diffs: pd.DataFrame,
    table: pd.DataFrame,
    styles: dict[str, Style],
    bests: set[str],
    margin: float | None,
) -> None:
    """The bottom panel: a line per method, the margin band around 0, outliers on the edge."""
    positions = table.set_index(["family", "method", "n_train"])["pos"]
    keys = pd.MultiIndex.from_frame(diffs[["family", "method", "n_train"]])
    diffs = diffs.assign(pos=positions.reindex(keys).to_numpy())
    low, high = _difference_limits(diffs, margin)
    if margin:
        ax.axhspan(-margin, margin, color="0.8", alpha=0.55, lw=0, zorder=0)
    ax.axhline(0, color="0.25", lw=1.0, zorder=1)
    for (_, method), rows in diffs.groupby(["family", "method"], sort=False):
        rows = rows.sort_values(["pos", "n_train"])
        kind = "best" if method in bests else "other"
        values = rows["difference"].astype(float)
        shown = values.clip(low, high)
        (line,) = ax.plot(rows["pos"], shown, **_line_style(styles[method], kind))
        _open_capped(ax, rows, shown, line)
        for pos, value in zip(rows["pos"], values, strict=True):
            if low <= value <= high:
                continue
            # Off the axis: a triangle on the edge pointing where it went, with its value.
            below = value < low
            ax.scatter(
                pos,
                low if below else high,
                marker="v" if below else "^",
                s=34,
                color=styles[method].color,
                zorder=6,
                clip_on=False,
            )
            ax.annotate(
                f"{value:+.2f}",
                (pos, low if below else high),
                textcoords="offset points",
                xytext=(7, 5 if below else -12),
                fontsize=7.5,
                color=styles[method].color,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
                zorder=7,
            )
    ax.set_ylim(low, high)
    own = diffs[diffs["method"] == diffs["reference"]]  # placed where the reference ran
    references = own.set_index("pos")["reference"].sort_index()
    if references.nunique() == 1:
        ax.set_ylabel(f"difference to best classical\n({references.iloc[0]}; positive = better)")
        return
    ax.set_ylabel("difference to best classical\n(positive = better)")
    for pos, name in references.items():  # the reference changes with n: name it at each
        ax.annotate(
            f"vs {name}",
            (pos, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            color="0.35",
        )


def _format_x(ax: Axes, table: pd.DataFrame, zero_at: float | None) -> None:
    """Log x with a tick per n_train (zero at its stand-in position), plain numbers."""
    ax.set_xscale("log")
    sizes = sorted({float(n) for n in table["n_train"]})
    ticks = [zero_at if n == 0 and zero_at is not None else n for n in sizes if n > 0 or zero_at]
    ax.set_xticks(ticks, ["0" if t == zero_at else f"{t:,.0f}" for t in ticks])
    ax.minorticks_off()
    low, high = min(table["pos"]), max(table["pos"])
    ax.set_xlim(low / 1.35, high * 1.35)  # room for the end markers
    shots = (table["x"] != table["n_train"]).any() or (table["family"] == "llm_icl").any()
    where = "; in-context methods at their shot count k" if shots else ""
    ax.set_xlabel(f"labelled training rows (log scale{where})")

"""Per-dataset paper tables: methods (grouped by family) x n_train, mean ± 95% CI over seeds.

In each n_train column the best mean is bold; every other method is compared with the best by a
paired t-test over the seeds both ran (same split per seed), the column's p-values are
Holm-corrected, and methods whose adjusted p-value is at least 0.05, or that cannot be tested
(fewer than 2 paired seeds), get a dagger: not significantly worse than the best.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.metrics import higher_is_better
from bench.report.doc import Block, Figure, GridTable, Heading, Paragraph
from bench.report.grid import Cell, Grid
from bench.report.plots import learning_curve, shot_positions
from bench.report.runs import metric_name, ok_runs, row_order
from bench.report.stats import ALPHA, holm, paired_difference, t_half_width

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = [
    "TABLE_NOTE",
    "method_grid",
    "summary_grid",
    "summary_table",
    "table_blocks",
    "table_caption",
    "to_latex",
    "to_markdown",
]

OTHER_TEST_SET = "‡"  # a cell scored on another test set than the rest of its table
TABLE_NOTE = (
    "Cells: mean ± half-width of the 95% t-interval over seeds (no ± with one seed). "
    "Bold: best mean in the column. †: not significantly worse than the best — paired t-test "
    "over the seeds both methods ran (each seed is one shared train/test split), p-values "
    "Holm-corrected within the column, α = 0.05; a method with fewer than 2 seeds paired with "
    "the best cannot be tested and is marked too. So an unmarked cell is significantly worse "
    "than the best, and a marked one is not shown to be (with 3 seeds only large, consistent "
    "gaps are significant)."
)


def summary_table(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (family, method label, n_train) of one dataset's ok runs.

    Columns: family, method (the display label), n_train, mean, std, ci (95% half-width),
    seeds, best, tied (not significantly worse than the best), p_holm, n_test (the sizes of
    the test sets its runs were scored on, a sorted tuple; empty when not recorded).
    """
    ok = ok_runs(runs, metric)
    better = higher_is_better(metric)
    columns = ["family", "method", "n_train", "mean", "std", "ci", "seeds", "best", "tied"]
    if ok.empty:
        return pd.DataFrame(columns=[*columns, "p_holm", "n_test"])
    rows = []
    for n_train, column in ok.groupby("n_train", sort=True):
        by_seed = {
            key: group.set_index("seed")[metric]
            for key, group in column.groupby(["family", "label"])
        }
        test_sizes = {key: _test_sizes(group) for key, group in column.groupby(["family", "label"])}
        means = {key: float(values.mean()) for key, values in by_seed.items()}
        top = max(means.values()) if better else min(means.values())
        best = {key for key, mean in means.items() if math.isclose(mean, top, abs_tol=1e-12)}
        reference = by_seed[min(best)]
        p_values = {
            key: paired_difference(values, reference).p_value
            for key, values in by_seed.items()
            if key not in best
        }
        adjusted = holm(p_values)
        for key, values in by_seed.items():
            p = adjusted.get(key, float("nan"))
            rows.append(
                {
                    "family": key[0],
                    "method": key[1],
                    "n_train": int(n_train),
                    "mean": means[key],
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "ci": t_half_width(values),
                    "seeds": len(values),
                    "best": key in best,
                    # Untestable (fewer than 2 seeds paired with the best) is not "worse" either.
                    "tied": key not in best and (math.isnan(p) or p >= ALPHA),
                    "p_holm": p,
                    "n_test": test_sizes[key],
                }
            )
    return pd.DataFrame(rows)


def _format(mean: float, ci: float) -> str:
    return f"{mean:.3f}" if np.isnan(ci) else f"{mean:.3f} ± {ci:.3f}"


def _test_sizes(group: pd.DataFrame) -> tuple[int, ...]:
    if "n_test" not in group.columns:
        return ()
    return tuple(sorted({int(n) for n in group["n_test"].dropna()}))


def common_test_sizes(table: pd.DataFrame) -> tuple[int, ...]:
    """The test-set sizes most of the table's runs were scored on (by seeds, the larger on a
    tie); () if unknown."""
    if "n_test" not in table.columns or table.empty:
        return ()
    weights: dict[tuple[int, ...], int] = {}
    for sizes, seeds in zip(table["n_test"], table["seeds"], strict=True):
        if sizes:
            weights[tuple(sizes)] = weights.get(tuple(sizes), 0) + int(seeds)
    # on a tie, the larger test set is the reference: the smaller one is the exception
    return max(weights, key=lambda sizes: (weights[sizes], sizes)) if weights else ()


def other_test_set(table: pd.DataFrame) -> pd.Series:
    """Cells scored on a test set of another size than the rest of the table (e.g. 100 rows
    where the others have 200, from another `split.max_test_rows`): not comparable with them."""
    common = common_test_sizes(table)
    if not common:
        return pd.Series(False, index=table.index)
    return table["n_test"].map(lambda sizes: bool(sizes) and tuple(sizes) != common).astype(bool)


def test_set_note(table: pd.DataFrame) -> str | None:
    """The note that explains the ‡ of `summary_grid`, or None when every cell shares one."""
    other = other_test_set(table)
    if not other.any():
        return None
    sizes = sorted({n for cell in table.loc[other, "n_test"] for n in cell})
    common = "/".join(map(str, common_test_sizes(table)))
    return (
        f"{OTHER_TEST_SET}: scored on another test set ({'/'.join(map(str, sizes))} test rows, "
        f"the other cells {common}): not comparable with the other cells."
    )


def summary_grid(table: pd.DataFrame) -> Grid:
    """The `summary_table` as a grouped grid of formatted cells ("-" where a method has no run);
    a cell scored on another test set than the rest is marked ‡ (`test_set_note`)."""
    marked = other_test_set(table)
    other = {
        (f, m, n)
        for f, m, n in table.loc[marked, ["family", "method", "n_train"]].itertuples(index=False)
    }

    def cell(row: pd.Series) -> Cell:
        text = _format(row["mean"], row["ci"])
        if row.name in other:
            text += f" {OTHER_TEST_SET}"
        return Cell(text, row["best"], row["tied"])

    return method_grid(table, cell)


def method_grid(table: pd.DataFrame, cell: Callable[[pd.Series], Cell]) -> Grid:
    """A family-grouped grid with a row per method and a column per n_train; `cell` formats one
    (family, method, n_train) row of `table` (its `name` is that key), and "-" stands where a
    method has none."""
    sizes = sorted(table["n_train"].unique())
    indexed = table.set_index(["family", "method", "n_train"])
    grid = Grid("method", [f"n={n}" for n in sizes])
    keys = row_order(list({(f, m) for f, m in zip(table["family"], table["method"], strict=True)}))
    for family in dict.fromkeys(f for f, _ in keys):
        rows = []
        for _, method in (k for k in keys if k[0] == family):
            cells = [
                cell(indexed.loc[(family, method, n)])
                if (family, method, n) in indexed.index
                else Cell("-")
                for n in sizes
            ]
            rows.append((method, cells))
        grid.groups.append((family, rows))
    return grid


def table_caption(dataset: str, metric: str) -> str:
    """`dataset: AUC (roc_auc, higher is better) by training rows.`"""
    arrow = "higher is better" if higher_is_better(metric) else "lower is better"
    return f"{dataset}: {metric_name(metric)} ({metric}, {arrow}) by training rows."


def table_blocks(section: DatasetSection) -> list[Block]:
    """The paper table (also written alone as <dataset>.md/.tex) and the learning curve."""
    if section.grid is None:
        return [Paragraph(section.no_table)]
    name, metric = section.name, section.metric
    caption = table_caption(name, metric)
    seeds = int(section.table["seeds"].max())
    curve = partial(
        learning_curve,
        shot_positions(section.table, section.runs),
        metric,
        f"{name}: {metric_name(metric)} vs labelled training rows",
        margin=section.verdict.margin,
    )
    other = test_set_note(section.table)
    note = f"{TABLE_NOTE} {other}" if other else TABLE_NOTE
    return [
        Heading(caption, 3),
        GridTable(section.grid, export=name, caption=caption, note=note),
        *([Paragraph(other, note=True)] if other else []),
        Paragraph(f"Up to {seeds} seed(s) per cell. {TABLE_NOTE}", note=True),
        Heading("Learning curve", 3),
        Figure(f"{name}.png", f"learning curve: {name}", draw=curve),
    ]


def to_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown (bold best, † not significantly worse)."""
    return summary_grid(table).to_markdown()


def to_latex(table: pd.DataFrame, caption: str, label: str = "tab:results") -> str:
    """The table as a booktabs LaTeX table; the caption carries the statistical note."""
    return summary_grid(table).to_latex(f"{caption} {TABLE_NOTE}", label)

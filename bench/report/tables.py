"""Methods x n_train tables of mean +- std over seeds, best per column in bold."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["summary_table", "to_latex", "to_markdown"]


def summary_table(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, std and seed count of `metric` per (method, n_train), from ok runs of one dataset."""
    ok = runs[runs["status"] == "ok"].dropna(subset=[metric])
    grouped = ok.groupby(["family", "method", "n_train"])[metric]
    table = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    table["std"] = table["std"].fillna(0.0)
    return table


def _cells(table: pd.DataFrame, higher_is_better: bool, bold: tuple[str, str]) -> pd.DataFrame:
    """A method x n_train grid of formatted cells; each column's best mean wrapped in `bold`."""
    means = table.pivot(index=["family", "method"], columns="n_train", values="mean")
    stds = table.pivot(index=["family", "method"], columns="n_train", values="std")
    order = sorted(means.index, key=lambda fm: (fm[1] != "majority", fm[0], fm[1]))
    means, stds = means.loc[order], stds.loc[order]
    best = means.max() if higher_is_better else means.min()
    cells = pd.DataFrame(index=means.index, columns=means.columns, dtype=object)
    for n in means.columns:
        for key in means.index:
            mean, std = means.at[key, n], stds.at[key, n]
            if np.isnan(mean):
                cells.at[key, n] = "-"
                continue
            text = f"{mean:.3f} ± {std:.3f}"
            cells.at[key, n] = f"{bold[0]}{text}{bold[1]}" if np.isclose(mean, best[n]) else text
    return cells


def to_markdown(table: pd.DataFrame, higher_is_better: bool) -> str:
    cells = _cells(table, higher_is_better, ("**", "**"))
    header = "| method | family | " + " | ".join(f"n={n}" for n in cells.columns) + " |"
    rule = "|---|---|" + "---|" * len(cells.columns)
    rows = [
        f"| {method} | {family} | " + " | ".join(cells.loc[(family, method)]) + " |"
        for family, method in cells.index
    ]
    return "\n".join([header, rule, *rows])


def to_latex(table: pd.DataFrame, higher_is_better: bool, caption: str) -> str:
    cells = _cells(table, higher_is_better, (r"\textbf{", "}"))
    cells = cells.map(lambda c: c.replace("±", r"$\pm$"))
    columns = "ll" + "r" * len(cells.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_escape(caption)}}}",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        "Method & Family & " + " & ".join(f"$n={n}$" for n in cells.columns) + r" \\",
        r"\midrule",
    ]
    for family, method in cells.index:
        row = [_escape(method), _escape(family), *cells.loc[(family, method)]]
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return (
        text.replace("\\", r"\textbackslash{}")
        .replace("_", r"\_")
        .replace("&", r"\&")
        .replace("%", r"\%")
        .replace("±", r"$\pm$")
    )

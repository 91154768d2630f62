"""Assemble PATH/report/: report.md with a table and a learning curve per dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.metrics import higher_is_better
from bench.registry import METRICS, UnknownNameError, unknown_name_message
from bench.report.plots import learning_curve
from bench.report.tables import summary_table, to_latex, to_markdown
from bench.results import load_results

__all__ = ["write_report"]


def choose_metric(runs: pd.DataFrame, requested: str) -> str:
    """`auto` means ROC AUC for a binary task and accuracy otherwise."""
    if requested != "auto":
        if requested not in METRICS:
            raise UnknownNameError(
                unknown_name_message("metric", requested, METRICS.names(), "--metric")
            )
        return requested
    labels = [c for c in runs.get("class_labels", pd.Series(dtype=object)).dropna()]
    n_classes = len(labels[0]) if labels else 2
    return "roc_auc" if n_classes == 2 else "accuracy"


def write_report(path: str | Path, metric: str = "auto") -> Path:
    """Write report.md, one <dataset>.md/.tex table and <dataset>.png curve per dataset."""
    path = Path(path)
    if not (path / "runs").is_dir():
        raise FileNotFoundError(
            f"{path} has no runs/ folder: is it a results directory written by bench-run?"
        )
    results = load_results(path)
    if results.empty:
        raise ValueError(f"{path}/runs holds no run records yet; run bench-run first.")
    out = path / "report"
    out.mkdir(parents=True, exist_ok=True)
    status_counts = results["status"].value_counts().to_dict()
    sections = [
        "# Benchmark report",
        "",
        f"Results directory: `{path.resolve()}`  ",
        "Runs: " + ", ".join(f"{n} {s}" for s, n in sorted(status_counts.items())),
        "",
    ]
    for dataset, runs in results.groupby("dataset", sort=True):
        chosen = choose_metric(runs, metric)
        table = summary_table(runs, chosen)
        sections.append(f"## {dataset}")
        if table.empty:
            sections += ["", "No successful runs.", ""]
            continue
        better = higher_is_better(chosen)
        arrow = "higher is better" if better else "lower is better"
        caption = f"{dataset}: {chosen} ({arrow}), mean ± std over seeds; best per column in bold."
        markdown = to_markdown(table, better)
        (out / f"{dataset}.md").write_text(f"{caption}\n\n{markdown}\n")
        (out / f"{dataset}.tex").write_text(to_latex(table, better, caption))
        learning_curve(
            table, chosen, f"{dataset}: {chosen} vs training rows", out / f"{dataset}.png"
        )
        seeds = int(table["seeds"].max())
        sections += [
            "",
            caption + f" Up to {seeds} seed(s) per cell.",
            "",
            markdown,
            "",
            f"![{dataset}]({dataset}.png)",
            "",
        ]
        problems = runs[runs["status"].isin(["failed", "unavailable"])]
        if len(problems):
            sections.append(f"{len(problems)} run(s) did not finish; see their `error` in runs/.")
            sections.append("")
    (out / "report.md").write_text("\n".join(sections))
    return out

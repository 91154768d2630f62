"""What several sections of the report share, computed once from a results directory.

`collect` reads the runs and computes per dataset its metric, paper table, cost points and
verdict, and across datasets the ranks and verdicts. Each section (page.py lists them) turns
this into blocks, computing what only it shows (the deploy costs, the prompt searches...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.config import ReportConfig
from bench.metrics import get_metric
from bench.report.compare import PredictionReader
from bench.report.cost import cost_per_1k, cost_points, cost_unit, with_pareto
from bench.report.grid import Grid
from bench.report.ranks import rank_grid, rank_table
from bench.report.runs import prepare_runs
from bench.report.summary import RunSummary, summarize_runs
from bench.report.tables import summary_grid, summary_table
from bench.report.verdict import Verdict, dataset_verdict, overall_verdicts
from bench.results import load_results

__all__ = [
    "DatasetSection",
    "ReportContent",
    "choose_metric",
    "collect",
]


def choose_metric(runs: pd.DataFrame, requested: str) -> str:
    """`auto` means ROC AUC for a binary task and accuracy otherwise."""
    if requested != "auto":
        return get_metric(requested, key="--metric").name
    labels = [c for c in runs.get("class_labels", pd.Series(dtype=object)).dropna()]
    n_classes = len(labels[0]) if labels else 2
    return "roc_auc" if n_classes == 2 else "accuracy"


@dataclass
class DatasetSection:
    """One dataset's runs and what more than one of its sections needs."""

    name: str
    metric: str
    table: pd.DataFrame  # summary_table
    grid: Grid | None
    verdict: Verdict
    points: pd.DataFrame  # cost_points with cost and pareto
    unit: str  # usd | seconds
    runs: pd.DataFrame  # this dataset's prepared runs (with costs)
    not_finished: int  # failed or unavailable runs
    path: Path  # the results directory (audits, predictions)
    reader: PredictionReader  # per-row predictions, for paired intervals
    settings: ReportConfig = field(default_factory=ReportConfig)

    @property
    def no_table(self) -> str:
        """Why there is no table: no run finished, or none has a value of the metric."""
        if not self.runs["status"].eq("ok").any():
            return "No successful runs."
        # e.g. `--metric precision` on runs recorded before precision was a metric
        return (
            f"No successful run has a value of {self.metric}: runs recorded before it was a "
            "metric lack it, and a metric undefined on the test set (AUC of one class) has none. "
            "Choose another with --metric."
        )

    @property
    def pareto(self) -> pd.DataFrame:
        """The Pareto-optimal (method, n_train) points, cheapest first."""
        if self.points.empty:
            return self.points
        return self.points[self.points["pareto"]].sort_values(["cost", "n_train"])


@dataclass
class ReportContent:
    path: Path
    summary: RunSummary
    metrics: dict[str, str]  # dataset -> metric
    ranks: pd.DataFrame
    rank_grid: Grid | None
    overall: list[Verdict]
    datasets: list[DatasetSection] = field(default_factory=list)
    settings: ReportConfig = field(default_factory=ReportConfig)


def collect(path: str | Path, settings: ReportConfig | None = None) -> ReportContent:
    """Read PATH/runs and compute every table, figure input and verdict of the report."""
    settings = settings or ReportConfig()
    problems = settings.problems()
    if problems:
        raise ValueError("; ".join(problems))
    path = Path(path)
    if not (path / "runs").is_dir():
        raise FileNotFoundError(
            f"{path} has no runs/ folder: is it a results directory written by bench-run?"
        )
    results = load_results(path)
    if results.empty:
        raise ValueError(f"{path}/runs holds no run records yet; run bench-run first.")
    prepared = prepare_runs(results)
    runs = cost_per_1k(prepared.runs, path, usd_per_cpu_hour=settings.usd_per_cpu_hour)
    summary = summarize_runs(
        prepared.all_runs, prepared.superseded, results.attrs.get("unreadable")
    )
    reader = PredictionReader(path)
    metrics: dict[str, str] = {}
    sections = []
    for dataset, dataset_runs in runs.groupby("dataset", sort=True):
        chosen = choose_metric(dataset_runs, settings.metric)
        metrics[str(dataset)] = chosen
        table = summary_table(dataset_runs, chosen)
        points = cost_points(dataset_runs, chosen)
        unit = cost_unit(points, settings.usd_per_cpu_hour)
        if len(points):
            points = with_pareto(points, chosen, unit)
        sections.append(
            DatasetSection(
                name=str(dataset),
                metric=chosen,
                table=table,
                grid=summary_grid(table) if len(table) else None,
                verdict=dataset_verdict(dataset_runs, chosen, str(dataset), settings, reader),
                points=points,
                unit=unit,
                runs=dataset_runs,
                not_finished=int(dataset_runs["status"].isin(["failed", "unavailable"]).sum()),
                path=path,
                reader=reader,
                settings=settings,
            )
        )
    ranks = rank_table(runs, metrics)
    several = len(metrics) > 1  # a rank across one dataset says nothing the table does not
    return ReportContent(
        path=path,
        summary=summary,
        metrics=metrics,
        ranks=ranks,
        rank_grid=rank_grid(ranks) if several and len(ranks) else None,
        overall=overall_verdicts(runs, metrics, settings, reader) if several else [],
        datasets=sections,
        settings=settings,
    )

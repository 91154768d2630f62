"""Write PATH/report/: report.md, report.html, per-dataset tables (.md/.tex) and figures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench.config import ReportConfig
from bench.report.content import ReportContent, choose_metric, collect, cost_file, curve_file
from bench.report.cost_figure import cost_plot
from bench.report.html import render_html
from bench.report.markdown import render_markdown
from bench.report.plots import learning_curve, shot_positions
from bench.report.ranks import RANK_NOTE
from bench.report.runs import metric_name
from bench.report.tables import TABLE_NOTE, table_caption

__all__ = ["choose_metric", "write_report"]


def write_report(
    path: str | Path, metric: str | None = None, settings: ReportConfig | None = None
) -> Path:
    """Write the report for the results directory `path`; returns PATH/report.

    Files: report.md and report.html (the whole report; the HTML is self-contained), per
    dataset <dataset>.md and <dataset>.tex (booktabs) tables, <dataset>.png (learning curve)
    and <dataset>_cost.png (cost vs quality), and ranks.md / ranks.tex (across datasets).
    `metric` is a metric name or `auto` (ROC AUC for binary tasks, accuracy otherwise; it
    overrides `settings.metric`); `settings` holds the margin, the statistics, the daily volume
    and the CPU price (`report.*` of bench-run).
    """
    settings = settings or ReportConfig()
    if metric is not None:
        settings = replace(settings, metric=metric)
    content = collect(path, settings)
    out = Path(path) / "report"
    out.mkdir(parents=True, exist_ok=True)
    _write_figures_and_tables(content, out)
    (out / "report.md").write_text(render_markdown(content))
    (out / "report.html").write_text(render_html(content, out))
    return out


def _write_figures_and_tables(content: ReportContent, out: Path) -> None:
    for section in content.datasets:
        name, chosen = section.name, section.metric
        if section.grid is not None:
            caption = table_caption(name, chosen)
            (out / f"{name}.md").write_text(
                f"{caption}\n\n{section.grid.to_markdown()}\n\n{TABLE_NOTE}\n"
            )
            (out / f"{name}.tex").write_text(
                section.grid.to_latex(f"{caption} {TABLE_NOTE}", f"tab:{name}")
            )
            learning_curve(
                shot_positions(section.table, section.runs),
                chosen,
                f"{name}: {metric_name(chosen)} vs labelled training rows",
                out / curve_file(name),
                margin=section.verdict.margin,
            )
        if len(section.points) and section.points["cost"].notna().any():
            cost_plot(
                section.points,
                chosen,
                section.unit,
                f"{name}: {metric_name(chosen)} vs cost",
                out / cost_file(name),
            )
    if content.rank_grid is not None:
        caption = "Mean rank / win rate across datasets by training rows."
        (out / "ranks.md").write_text(
            f"{caption}\n\n{content.rank_grid.to_markdown()}\n\n{RANK_NOTE}\n"
        )
        (out / "ranks.tex").write_text(
            content.rank_grid.to_latex(f"{caption} {RANK_NOTE}", "tab:ranks")
        )

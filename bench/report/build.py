"""Write PATH/report/: report.md, report.html, per-dataset tables (.md/.tex) and figures.

The whole folder is written aside and then put in place at once (bench/report/swap.py), so a
crash, a full disk, a signal or a reader during a rewrite never sees half a report, nor a new
report.md beside an old report.html.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from bench.config import ReportConfig
from bench.report.content import choose_metric, collect
from bench.report.doc import Block, Figure, GridTable, walk
from bench.report.html import render_html
from bench.report.markdown import render_markdown
from bench.report.page import page_blocks
from bench.report.swap import staged_folder
from bench.results import write_atomic

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
    blocks = page_blocks(content)
    with staged_folder(out) as stage:  # the whole folder replaces the old one, or nothing does
        _write_figures_and_tables(blocks, stage)
        _write_text(stage / "report.md", render_markdown(blocks))
        title = f"Benchmark report: {content.path.name}"
        _write_text(stage / "report.html", render_html(blocks, stage, title))
    return out


def _write_text(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"))


def _write_figures_and_tables(blocks: list[Block], out: Path) -> None:
    """Draw every figure (the HTML page embeds them) and export the tables that ask for it."""
    for block in walk(blocks):
        if isinstance(block, Figure) and block.draw is not None:
            # Matplotlib writes in pieces: draw aside, then put the whole PNG in place.
            with tempfile.TemporaryDirectory(dir=out, prefix=".draw-") as scratch:
                drawn = Path(scratch) / block.file
                block.draw(drawn)
                write_atomic(out / block.file, drawn.read_bytes())
        elif isinstance(block, GridTable) and block.export:
            caption, note, grid = block.caption, block.note, block.grid
            _write_text(
                out / f"{block.export}.md", f"{caption}\n\n{grid.to_markdown()}\n\n{note}\n"
            )
            _write_text(
                out / f"{block.export}.tex",
                grid.to_latex(f"{caption} {note}", f"tab:{block.export}"),
            )

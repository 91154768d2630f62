"""`bench-report PATH`: paper tables, learning curves, cost vs quality, verdicts, one HTML page.

Modules, one concept each: runs (labels, one run per cell), stats (intervals, paired tests,
Holm), tables (per-dataset tables), ranks (across datasets), cost (per 1,000 predictions,
Pareto), verdict (plain-language comparison), summary (run counts, errors, usage), plots,
grid (Markdown/LaTeX/HTML tables), content (computes everything), markdown and html (render),
build (writes the files).
"""

from bench.report.build import choose_metric, write_report

__all__ = ["choose_metric", "write_report"]

"""`bench-report PATH`: paper tables, learning curves, cost vs quality, verdicts, one HTML page.

Modules, one concept each. Computing: runs (labels, one run per cell), stats (intervals, paired
tests, Holm), compare and paired (paired differences on per-row predictions), tables (per-dataset
tables), ranks (across datasets), cost (per 1,000 predictions, Pareto, deploy costs, break-even),
verdict (plain-language comparison), summary (run counts, errors, usage), content (what several
sections share, computed once). Sections, each returning blocks: tables, serializations, deploy,
search, explanations, audits, cost_figure, details, and page (the page order, the answer, the
verdicts, the notes). Drawing: doc (the block types), grid (grouped tables as Markdown, LaTeX
and HTML), plots and cost_figure (PNG figures), markdown and html (the two writers), build
(writes the files).
"""

from bench.report.build import choose_metric, write_report

__all__ = ["choose_metric", "write_report"]

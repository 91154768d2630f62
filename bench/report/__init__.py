"""`bench-report PATH`: paper-style tables and learning curves from a results directory."""

from bench.report.build import write_report

__all__ = ["write_report"]

"""The report's "Validity audits": what the leak audit and memorisation checks found.

Why: a method's score means little if a feature is known only after the outcome, or if the
LLM has seen the table during pre-training. bench-run writes both checks next to the runs,
in `<results_dir>/audits/`: `leaks__<dataset>.json` (bench/data/audit.py, read back with its
typed reader `AuditReport.from_json`) and `memcheck__<dataset>__<llm>.json`
(bench/llm/memcheck/, which has no reader: its dataset, llm, model and verdict are read). This
module says, per dataset, in plain lines what they found. A file that cannot be read is named,
never silently skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from bench.data.audit import AuditReport, FeatureAudit, audit_file
from bench.report.doc import Block, Bullets, Heading, Paragraph

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = ["AUDITS_NOTE", "AUDITS_TITLE", "audit_blocks", "audit_lines"]

AUDITS_TITLE = "Validity audits"
AUDITS_NOTE = (
    "Leak audit (bench-data audit): each column's cross-validated AUC alone on the seed-0 "
    "training pool, against the same score with the target shuffled; a column is flagged when "
    "it alone nearly determines the target or its name or description says it is measured "
    "after the outcome. Memorisation (bench-llm memcheck): whether the LLM completes the "
    "table's header, rows and values from memory."
)


def audit_blocks(section: DatasetSection) -> list[Block]:
    """The section (nothing when the dataset has no audit)."""
    lines = audit_lines(section.path, section.name)
    if not lines:
        return []
    return [Heading(AUDITS_TITLE, 3), Bullets(tuple(lines)), Paragraph(AUDITS_NOTE, note=True)]


def audit_lines(results_dir: Path, dataset: str) -> list[str]:
    """One plain-text line per finding of the audits of `dataset` under results_dir/audits/."""
    leaks = audit_file(results_dir, dataset)
    memchecks = sorted((Path(results_dir) / "audits").glob(f"memcheck__{dataset}__*.json"))
    lines: list[str] = []
    if leaks.is_file():
        try:
            report = AuditReport.from_json(leaks.read_text())
        except (OSError, ValueError, KeyError, TypeError) as error:
            lines.append(f"audit file {leaks.name} could not be read: {error}")
        else:
            lines += _leak_lines(report)
    for path in memchecks:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            lines.append(f"audit file {path.name} could not be read: {error}")
            continue
        if data.get("dataset") != dataset:  # `a__b` files also match the pattern of `a`
            continue
        tested = f"{data.get('llm')}, {data['model']}" if data.get("model") else data.get("llm")
        lines.append(f"memorisation ({tested}): {data.get('verdict')}")
    return lines


def _leak_lines(report: AuditReport) -> list[str]:
    lines = [_flag_line(row) for row in report.flagged]
    if report.flagged:
        lines.append(
            "leak audit: if these are known only after the outcome, drop them: "
            f"dataset.leak_columns={report.fix()}"
        )
    else:
        features = [row for row in report.rows if not row.declared]
        best = max(features, key=lambda row: row.auc, default=None)
        strongest = f" (strongest alone: {best.name}, AUC {best.auc:.3f})" if best else ""
        lines.append(f"leak audit: no column flagged among {len(features)} feature(s){strongest}")
    for row in report.rows:
        if row.declared:
            state = "kept as a feature (keep_leak_columns)" if row.used else "dropped"
            lines.append(
                f"leak audit: {row.name} is a declared leak column, {state}; alone it scores "
                f"AUC {row.auc:.3f}"
            )
    return lines


def _flag_line(row: FeatureAudit) -> str:
    reasons = "; ".join(row.reasons)
    score = "" if "AUC" in reasons else f"AUC alone {row.auc:.3f}, "
    return (
        f"leak audit: {row.name} is used as a feature and is flagged: {reasons} "
        f"({score}chance up to {row.chance_p95:.3f})"
    )

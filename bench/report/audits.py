"""The report's "Validity audits": what the leak audit and memorisation checks found.

Why: a method's score means little if a feature is known only after the outcome, or if the
LLM has seen the table during pre-training. bench-run writes both checks next to the runs,
in `<results_dir>/audits/`: `leaks__<dataset>.json` (bench/data/audit.py) and
`memcheck__<dataset>__<llm>.json` (bench/llm/memcheck/). This module reads them and says,
per dataset, in plain lines what they found; both renderers lay out the same lines. A file
that cannot be read is named, never silently skipped.

>>> audit_lines(Path("results/quick"), "callcenter")  # doctest: +SKIP
['leak audit: no column flagged among 7 feature(s) ...', 'leak audit: handle_time_s is a ...']
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

__all__ = ["AUDITS_NOTE", "AUDITS_TITLE", "audit_html", "audit_lines", "audit_markdown"]

AUDITS_TITLE = "Validity audits"
AUDITS_NOTE = (
    "Leak audit (bench-data audit): each column's cross-validated AUC alone on the seed-0 "
    "training pool, against the same score with the target shuffled; a column is flagged when "
    "it alone nearly determines the target or its name or description says it is measured "
    "after the outcome. Memorisation (bench-llm memcheck): whether the LLM completes the "
    "table's header, rows and values from memory."
)


def audit_lines(results_dir: Path, dataset: str) -> list[str]:
    """One plain-text line per finding of the audits of `dataset` under results_dir/audits/."""
    folder = Path(results_dir) / "audits"
    lines: list[str] = []
    memchecks = sorted(folder.glob(f"memcheck__{dataset}__*"))
    for path in [folder / f"leaks__{dataset}.json", *memchecks]:
        if not path.is_file() or path.suffix != ".json":
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            lines.append(f"audit file {path.name} could not be read: {error}")
            continue
        if data.get("dataset") != dataset:  # `a__b` files also match the pattern of `a`
            continue
        if data.get("kind") == "memcheck":
            tested = f"{data.get('llm')}, {data['model']}" if data.get("model") else data.get("llm")
            lines.append(f"memorisation ({tested}): {data.get('verdict')}")
        elif data.get("kind") == "leaks":
            lines += _leak_lines(data)
    return lines


def _leak_lines(data: dict[str, Any]) -> list[str]:
    rows = data.get("rows", [])
    flagged = [r for r in rows if r.get("reasons") and not r.get("declared")]
    lines = [_flag_line(r) for r in flagged]
    if flagged:
        declared = [r["name"] for r in rows if r.get("declared")]
        names = ",".join([*declared, *(r["name"] for r in flagged)])
        lines.append(
            f"leak audit: if these are known only after the outcome, drop them: "
            f"dataset.leak_columns=[{names}]"
        )
    else:
        features = [r for r in rows if not r.get("declared")]
        best = max(features, key=lambda r: r["auc"], default=None)
        strongest = f" (strongest alone: {best['name']}, AUC {best['auc']:.3f})" if best else ""
        lines.append(f"leak audit: no column flagged among {len(features)} feature(s){strongest}")
    for r in rows:
        if r.get("declared"):
            state = "kept as a feature (keep_leak_columns)" if r.get("used") else "dropped"
            lines.append(
                f"leak audit: {r['name']} is a declared leak column, {state}; alone it scores "
                f"AUC {r['auc']:.3f}"
            )
    return lines


def _flag_line(row: dict[str, Any]) -> str:
    reasons = "; ".join(row["reasons"])
    score = "" if "AUC" in reasons else f"AUC alone {row['auc']:.3f}, "
    return (
        f"leak audit: {row['name']} is used as a feature and is flagged: {reasons} "
        f"({score}chance up to {row['chance_p95']:.3f})"
    )


def audit_markdown(lines: list[str]) -> list[str]:
    """The section in report.md (empty when there is no audit)."""
    if not lines:
        return []
    return [f"### {AUDITS_TITLE}", "", *(f"- {line}" for line in lines), "", AUDITS_NOTE, ""]


def audit_html(lines: list[str]) -> str:
    """The section in report.html (empty when there is no audit)."""
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f'<h3>{AUDITS_TITLE}</h3><ul>{items}</ul><p class="note">{html.escape(AUDITS_NOTE)}</p>'

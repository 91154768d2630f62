"""report.md: the whole report as Markdown, figures linked as files next to it."""

from __future__ import annotations

import math

from bench.report.audits import audit_markdown
from bench.report.content import DatasetSection, ReportContent, cost_file, curve_file
from bench.report.cost import COST_NOTE, COST_UNITS
from bench.report.deploy import break_even_lines, deploy_header, deploy_rows
from bench.report.explanations import (
    EXPLANATIONS_NOTE,
    example_line,
    explanation_examples,
    explanation_header,
    explanation_rows,
)
from bench.report.ranks import RANK_NOTE
from bench.report.runs import metric_name
from bench.report.search import SEARCH_NOTE, search_header, search_rows
from bench.report.serializations import SERIALIZATIONS_NOTE, serializer_header, serializer_rows
from bench.report.summary import RunSummary
from bench.report.tables import TABLE_NOTE, table_caption
from bench.report.verdict import Verdict, format_sig, verdict_note

__all__ = [
    "answer_lines",
    "chosen_prompts",
    "pareto_lines",
    "render_markdown",
    "summary_lines",
    "usage_line",
]


def usage_line(summary: RunSummary) -> str:
    """Totals of LLM usage and compute over all runs, in one sentence."""
    t = summary.totals
    tokens = int(t["prompt_tokens"] + t["completion_tokens"])
    return (
        f"LLM usage: {int(t['requests']):,} requests, {tokens:,} tokens "
        f"({int(t['prompt_tokens']):,} prompt, {int(t['completion_tokens']):,} completion, "
        f"{int(t['cached_tokens']):,} prompt tokens from a prefix cache), "
        f"{int(t['cache_hits']):,} answers from the request cache, "
        f"${t['usd']:.4f} in total, {t['llm_seconds']:.1f} s in LLM calls. "
        f"Wall time of all runs: {t['wall_s']:.1f} s."
    )


def summary_lines(summary: RunSummary) -> list[str]:
    """The run counts and usage totals."""
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    lines = [f"Runs: {summary.total} ({counts}).", "", usage_line(summary)]
    if summary.superseded:
        lines += [
            "",
            f"{summary.superseded} older run record(s) of a cell (same dataset, method, "
            "n_train and seed, different settings such as method parameters or the split) were "
            "replaced by the newest finished one in the tables.",
        ]
    if summary.unreadable:
        lines += ["", f"{len(summary.unreadable)} unreadable file(s) in runs/ were skipped:"]
        lines += [f"- `{path}`: {why}" for path, why in summary.unreadable]
    return lines


def _details(summary: RunSummary) -> list[str]:
    lines = []
    if summary.skipped:
        lines += ["", "Skipped runs by reason:", "", "| runs | reason | dataset/method |"]
        lines.append("|---:|---|---|")
        lines += [
            f"| {n} | {_cell(reason)} | {_cell(where)} |" for reason, n, where in summary.skipped
        ]
    if summary.failed:
        lines += ["", "Runs that did not finish:", ""]
        lines.append("| dataset | method | n_train | seed | status | error |")
        lines.append("|---|---|---:|---:|---|---|")
        for f in summary.failed:
            lines.append(
                f"| {f['dataset']} | {f['method']} | {_opt(f['n_train'])} | {_opt(f['seed'])} "
                f"| {f['status']} | {_cell(str(f['error']))} |"
            )
        if summary.failed_unlisted:
            lines.append(f"\n... and {summary.failed_unlisted} more (see their `error` in runs/).")
    return lines


def _opt(value: object) -> str:
    return "-" if value is None else str(value)


def _cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def verdict_lines(verdict: Verdict) -> list[str]:
    return [verdict.headline, "", *(f"- {line}" for line in verdict.lines)]


def pareto_lines(section: DatasetSection) -> list[str]:
    """One line per Pareto-optimal point: method @ n_train: cost, metric."""
    unit = "$" if section.unit == "usd" else ""
    suffix = "" if section.unit == "usd" else " s"
    name = metric_name(section.metric)
    return [
        f"{row.label} @{row.n_train}: {unit}{format_sig(row.cost)}{suffix} per 1,000 "
        f"predictions, {getattr(row, section.metric):.3f} {name}"
        for row in section.pareto.itertuples()
        if not math.isnan(row.cost)
    ]


def answer_lines(content: ReportContent) -> list[tuple[str, str]]:
    """(scope, headline) per dataset, then across datasets: the answer, first on the page."""
    answers = [(section.name, section.verdict.headline) for section in content.datasets]
    answers += [(f"Across {verdict.scope}", verdict.headline) for verdict in content.overall]
    return answers


def chosen_prompts(section: DatasetSection) -> list[str]:
    """The instruction a search chose, per method and n_train (its first seed's)."""
    lines = []
    firsts = section.search.drop_duplicates(["label", "n_train"])
    for row in firsts.itertuples(index=False):
        lines += [
            f"Chosen instruction of {row.label} at {row.n_train} rows (seed {row.seed}):",
            "",
            "```text",
            row.instruction,
            "```",
            "",
        ]
    return lines


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def render_markdown(content: ReportContent) -> str:
    """The report as one Markdown document: the answer first, the run details last."""
    settings = content.settings
    out = [
        "# Is the LLM good enough yet? Benchmark report",
        "",
        f"Results directory: `{content.path.resolve()}`",
        "",
        "## The answer",
        "",
        *(f"- **{scope}.** {headline}" for scope, headline in answer_lines(content)),
        "",
    ]
    if content.overall:
        out += ["## Verdict across datasets", ""]
        for verdict in content.overall:
            out += [f"**{verdict.scope}.**", "", *verdict_lines(verdict), ""]
    for section in content.datasets:
        out += [f"## {section.name}", "", "### Verdict", "", *verdict_lines(section.verdict), ""]
        if section.grid is None:
            out += [section.no_table, ""]
        else:
            out += [
                f"### {table_caption(section.name, section.metric)}",
                "",
                section.grid.to_markdown(),
                "",
                f"Up to {int(section.table['seeds'].max())} seed(s) per cell. See the notes at "
                "the end for the statistics.",
                "",
                f"![learning curve: {section.name}]({curve_file(section.name)})",
                "",
            ]
        if len(section.serializations):
            out += [
                "### Serializations compared",
                "",
                *_table(serializer_header(section.metric), serializer_rows(section.serializations)),
                "",
                SERIALIZATIONS_NOTE,
                "",
            ]
        if len(section.deploy):
            out += [
                "### Cost to deploy",
                "",
                *_table(
                    deploy_header(section.metric, settings.daily_predictions),
                    deploy_rows(section.deploy, section.metric, section.unit),
                ),
                "",
                *(
                    f"- {line}"
                    for line in break_even_lines(section.break_even, settings.daily_predictions)
                ),
                "",
            ]
        if len(section.search):
            out += [
                "### Prompt search",
                "",
                *_table(search_header(), search_rows(section.search)),
                "",
                SEARCH_NOTE,
                "",
                *chosen_prompts(section),
            ]
        if len(section.explanations):
            out += [
                "### Explanations",
                "",
                *_table(explanation_header(), explanation_rows(section.explanations)),
                "",
                EXPLANATIONS_NOTE,
                "",
                *(f"- {example_line(*e)}" for e in explanation_examples(section.runs)),
                "",
            ]
        out += audit_markdown(section.audits)
        if len(section.points) and section.points["cost"].notna().any():
            out += [
                f"### Cost vs quality ({COST_UNITS[section.unit]})",
                "",
                f"![cost vs quality: {section.name}]({cost_file(section.name)})",
                "",
                "Pareto front on marginal cost (cheapest first):",
                "",
                *(f"- {line}" for line in pareto_lines(section)),
                "",
            ]
        if section.not_finished:
            out += [f"{section.not_finished} run(s) did not finish; see Run details.", ""]
    if content.rank_grid is not None:
        out += [
            "## Mean rank and win rate across datasets",
            "",
            content.rank_grid.to_markdown(),
            "",
            RANK_NOTE,
            "",
        ]
    out += ["## Run details", "", *summary_lines(content.summary), *_details(content.summary)]
    out += [
        "",
        "## How to read this report",
        "",
        f"- Verdicts: {verdict_note(settings)}",
        f"- Tables: {TABLE_NOTE}",
        f"- Ranks: {RANK_NOTE}",
        f"- Cost: {COST_NOTE}",
        "",
    ]
    return "\n".join(out)

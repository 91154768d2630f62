"""report.html: one self-contained page (inline CSS, figures as base64 PNG, no external URL)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from bench.report.audits import audit_html
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
from bench.report.markdown import answer_lines, pareto_lines, usage_line
from bench.report.ranks import RANK_NOTE
from bench.report.search import SEARCH_NOTE, search_header, search_rows
from bench.report.serializations import SERIALIZATIONS_NOTE, serializer_header, serializer_rows
from bench.report.summary import RunSummary
from bench.report.tables import TABLE_NOTE, table_caption
from bench.report.verdict import Verdict, verdict_note

__all__ = ["render_html"]

_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dee7; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #f4f6fa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 10px; padding-top: 8px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; color: #2b3445; }
.muted, .note { color: var(--muted); font-size: 13px; }
nav { margin: 12px 0 6px; font-size: 14px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
.verdict { background: #eef4fb; border-left: 4px solid var(--accent); padding: 10px 16px;
           border-radius: 4px; margin: 8px 0 14px; }
.verdict p { margin: 4px 0 8px; font-weight: 600; }
.verdict ul { margin: 4px 0; padding-left: 20px; }
.verdict li { margin: 3px 0; }
.answer { background: #eef4fb; border: 1px solid #c9dcf2; border-radius: 6px;
          padding: 10px 18px; margin: 12px 0 18px; }
.answer h2 { border: 0; margin: 4px 0 6px; padding: 0; font-size: 19px; }
.answer li { margin: 6px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 20px; }
.card.ok b { color: #1d7a3a; } .card.failed b, .card.unavailable b { color: #b42318; }
.card.skipped b { color: #9a6700; }
table { border-collapse: collapse; margin: 8px 0 6px; font-size: 13.5px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; font-variant-numeric: tabular-nums; }
thead th { border-bottom: 2px solid #9aa3b2; background: #f7f8fb; }
tbody th { text-align: left; font-weight: normal; }
tr.group th { text-align: left; font-style: italic; font-weight: 600; background: #f0f2f6;
              color: #39414f; }
td.best { background: #fff4c2; }
td.tied { background: #eef7ee; }
table.plain td, table.plain th { text-align: left; white-space: normal; }
td.text, th.text { text-align: left; white-space: normal; min-width: 14em; }
img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figure { margin: 10px 0; }
pre { white-space: pre-wrap; background: #f7f8fb; border: 1px solid var(--line);
      border-radius: 4px; padding: 8px 12px; font-size: 13px; }
.wide { overflow-x: auto; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></figure>'


def _verdict(verdict: Verdict, title: str = "") -> str:
    items = "".join(f"<li>{_e(line)}</li>" for line in verdict.lines)
    heading = f"<h3>{_e(title)}</h3>" if title else ""
    return (
        f'<div class="verdict">{heading}<p>{_e(verdict.headline)}</p>'
        f"{'<ul>' + items + '</ul>' if items else ''}</div>"
    )


def _summary(summary: RunSummary) -> str:
    cards = "".join(
        f'<div class="card {_e(status)}"><b>{n}</b>{_e(status)}</div>'
        for status, n in summary.counts.items()
    )
    parts = [f'<div class="cards">{cards}</div>', f"<p>{_e(usage_line(summary))}</p>"]
    if summary.superseded:
        parts.append(
            f'<p class="note">{summary.superseded} older run record(s) of a cell were replaced '
            "by the newest finished one.</p>"
        )
    if summary.unreadable:
        items = "".join(
            f"<li><code>{_e(path)}</code>: {_e(why)}</li>" for path, why in summary.unreadable
        )
        parts.append(
            f'<p class="note">{len(summary.unreadable)} unreadable file(s) in runs/ were '
            f'skipped:</p><ul class="note">{items}</ul>'
        )
    if summary.skipped:
        rows = "".join(
            f"<tr><td>{n}</td><td>{_e(reason)}</td><td>{_e(where)}</td></tr>"
            for reason, n, where in summary.skipped
        )
        parts.append(
            "<h3>Skipped runs by reason</h3>"
            '<div class="wide"><table class="plain"><thead><tr><th>runs</th><th>reason</th>'
            f"<th>dataset/method</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    if summary.failed:
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{_e('-' if f[k] is None else f[k])}</td>"
                for k in ("dataset", "method", "n_train", "seed", "status", "error")
            )
            + "</tr>"
            for f in summary.failed
        )
        more = (
            f'<p class="note">... and {summary.failed_unlisted} more.</p>'
            if summary.failed_unlisted
            else ""
        )
        parts.append(
            "<h3>Runs that did not finish</h3>"
            '<div class="wide"><table class="plain"><thead><tr><th>dataset</th><th>method</th>'
            "<th>n_train</th><th>seed</th><th>status</th><th>error</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>{more}"
        )
    return "\n".join(parts)


def _plain_table(header: list[str], rows: list[list[str]], text_last: bool = False) -> str:
    """A table of numbers; `text_last`: the last column is prose, left-aligned and wrapped."""
    last = len(header) - 1 if text_last else -1
    head = "".join(
        f'<th class="text">{_e(h)}</th>' if i == last else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{_e(cell)}</td>' if i == last else f"<td>{_e(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wide">{table}</div>'


def _deploy(section: DatasetSection, daily_predictions: int) -> str:
    table = _plain_table(
        deploy_header(section.metric, daily_predictions),
        deploy_rows(section.deploy, section.metric, section.unit),
    )
    lines = "".join(
        f"<li>{_e(line)}</li>" for line in break_even_lines(section.break_even, daily_predictions)
    )
    return "<h3>Cost to deploy</h3>" + table + (f"<ul>{lines}</ul>" if lines else "")


def _search(section: DatasetSection) -> str:
    table = _plain_table(search_header(), search_rows(section.search))
    prompts = "".join(
        f"<p>Chosen instruction of {_e(row.label)} at {row.n_train} rows (seed {row.seed}):</p>"
        f"<pre>{_e(row.instruction)}</pre>"
        for row in section.search.drop_duplicates(["label", "n_train"]).itertuples(index=False)
    )
    return f'<h3>Prompt search</h3>{table}<p class="note">{_e(SEARCH_NOTE)}</p>{prompts}'


def _serializations(section: DatasetSection) -> str:
    table = _plain_table(serializer_header(section.metric), serializer_rows(section.serializations))
    return f'<h3>Serializations compared</h3>{table}<p class="note">{_e(SERIALIZATIONS_NOTE)}</p>'


def _explanations(section: DatasetSection) -> str:
    table = _plain_table(
        explanation_header(), explanation_rows(section.explanations), text_last=True
    )
    examples = "".join(
        f"<li>{_e(example_line(*e))}</li>" for e in explanation_examples(section.runs)
    )
    return f'<h3>Explanations</h3>{table}<p class="note">{_e(EXPLANATIONS_NOTE)}</p>' + (
        f"<ul>{examples}</ul>" if examples else ""
    )


def _dataset(section: DatasetSection, out: Path, daily_predictions: int) -> str:
    parts = [f'<h2 id="ds-{_e(section.name)}">{_e(section.name)}</h2>']
    parts.append(_verdict(section.verdict))
    if section.grid is None:
        parts.append(f"<p>{_e(section.no_table)}</p>")
    else:
        seeds = int(section.table["seeds"].max())
        parts += [
            f"<h3>{_e(table_caption(section.name, section.metric))}</h3>",
            f'<div class="wide">{section.grid.to_html()}</div>',
            f'<p class="note">Up to {seeds} seed(s) per cell. {_e(TABLE_NOTE)}</p>',
            "<h3>Learning curve</h3>",
            _image(out / curve_file(section.name), f"learning curve {section.name}"),
        ]
    if len(section.serializations):
        parts.append(_serializations(section))
    if len(section.deploy):
        parts.append(_deploy(section, daily_predictions))
    if len(section.search):
        parts.append(_search(section))
    if len(section.explanations):
        parts.append(_explanations(section))
    if section.audits:
        parts.append(audit_html(section.audits))
    if len(section.points) and section.points["cost"].notna().any():
        front = "".join(f"<li>{_e(line)}</li>" for line in pareto_lines(section))
        parts += [
            f"<h3>Cost vs quality ({_e(COST_UNITS[section.unit])})</h3>",
            _image(out / cost_file(section.name), f"cost vs quality {section.name}"),
            f"<p>Pareto front on marginal cost, cheapest first:</p><ul>{front}</ul>",
        ]
    if section.not_finished:
        parts.append(
            f'<p class="note">{section.not_finished} run(s) did not finish: '
            "see the run summary.</p>"
        )
    return "\n".join(parts)


def _answer(content: ReportContent) -> str:
    items = "".join(
        f"<li><b>{_e(scope)}.</b> {_e(headline)}</li>" for scope, headline in answer_lines(content)
    )
    return f'<section class="answer" id="answer"><h2>The answer</h2><ul>{items}</ul></section>'


def render_html(content: ReportContent, out: Path) -> str:
    """The report as one HTML page (the answer first, run details last); figures are read
    from `out` and embedded."""
    daily = content.settings.daily_predictions
    nav = []
    if content.overall:
        nav.append('<a href="#overall">Across datasets</a>')
    nav += [f'<a href="#ds-{_e(s.name)}">{_e(s.name)}</a>' for s in content.datasets]
    if content.rank_grid is not None:
        nav.append('<a href="#ranks">Ranks</a>')
    nav += ['<a href="#summary">Run summary</a>', '<a href="#notes">Notes</a>']
    body = [
        "<h1>Is the LLM good enough yet?</h1>",
        f'<div class="muted">Benchmark report for <code>{_e(content.path.resolve())}</code></div>',
        _answer(content),
        f"<nav>{''.join(nav)}</nav>",
    ]
    if content.overall:
        body.append('<h2 id="overall">Verdict across datasets</h2>')
        body += [_verdict(v, v.scope) for v in content.overall]
    body += [_dataset(section, out, daily) for section in content.datasets]
    if content.rank_grid is not None:
        body += [
            '<h2 id="ranks">Mean rank and win rate across datasets</h2>',
            f'<div class="wide">{content.rank_grid.to_html()}</div>',
            f'<p class="note">{_e(RANK_NOTE)}</p>',
        ]
    body += ['<h2 id="summary">Run summary</h2>', _summary(content.summary)]
    notes = "".join(
        f"<li><b>{_e(title)}.</b> {_e(text)}</li>"
        for title, text in (
            ("Verdicts", verdict_note(content.settings)),
            ("Tables", TABLE_NOTE),
            ("Ranks", RANK_NOTE),
            ("Cost", COST_NOTE),
        )
    )
    body += ['<h2 id="notes">How to read this report</h2>', f'<ul class="note">{notes}</ul>']
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Benchmark report: {_e(content.path.name)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )

"""report.html: the report's blocks as one self-contained page (inline CSS, figures as base64
PNG, no external URL)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from bench.report import doc
from bench.report.doc import Block, Item

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


_CODE = re.compile(r"`([^`]+)`")
_NOTE = ' class="note"'


def _text(text: str) -> str:
    """Escaped text with its `code` spans as <code>."""
    return _CODE.sub(r"<code>\1</code>", _e(text))


def render_html(blocks: Sequence[Block], out: Path, title: str) -> str:
    """The blocks as one HTML page; figures are read from `out` and embedded. The navigation
    bar, after the first box (the answer), links every heading that has a `nav` name."""
    nav = "".join(
        f'<a href="#{_e(b.anchor)}">{_e(b.nav)}</a>'
        for b in doc.walk(blocks)
        if isinstance(b, doc.Heading) and b.nav and b.anchor
    )
    body = []
    for block in blocks:
        body.append(_block(block, out))
        if nav and isinstance(block, doc.Box):
            body.append(f"<nav>{nav}</nav>")
            nav = ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def _block(block: Block, out: Path) -> str:
    match block:
        case doc.Heading(text=text, level=level, anchor=anchor):
            attr = f' id="{_e(anchor)}"' if anchor else ""
            return f"<h{level}{attr}>{_text(text)}</h{level}>"
        case doc.Paragraph(text=text, note=note):
            return f"<p{_NOTE if note else ''}>{_text(text)}</p>"
        case doc.Bullets(items=items, note=note):
            lis = "".join(f"<li>{_item(item)}</li>" for item in items)
            return f"<ul{_NOTE if note else ''}>{lis}</ul>"
        case doc.Table():
            return _table(block)
        case doc.GridTable(grid=grid):
            return f'<div class="wide">{grid.to_html()}</div>'
        case doc.Figure(file=file, alt=alt):
            return _image(out / file, alt)
        case doc.Code(text=text):
            return f"<pre>{_e(text)}</pre>"
        case doc.Counts(text=text, counts=counts):
            cards = "".join(
                f'<div class="card {_e(status)}"><b>{n}</b>{_e(status)}</div>'
                for status, n in counts
            )
            return f'<div class="cards">{cards}</div><p>{_text(text)}</p>'
        case doc.Box(kind=kind, blocks=inner):
            tag = "section" if kind == "answer" else "div"
            return f'<{tag} class="{_e(kind)}">{"".join(_block(b, out) for b in inner)}</{tag}>'
    raise TypeError(f"no HTML for {type(block).__name__}")


def _item(item: str | Item) -> str:
    if isinstance(item, Item):
        return f"<b>{_text(item.lead)}.</b> {_text(item.text)}"
    return _text(item)


def _table(table: doc.Table) -> str:
    """Right-aligned cells, prose (`w`) columns left-aligned and wrapped; a `plain` table is
    all left-aligned and wrapped (its CSS class)."""
    align = table.alignment()

    def cell(tag: str, i: int, text: str) -> str:
        return (
            f'<{tag} class="text">{_e(text)}</{tag}>'
            if align[i] == "w"
            else f"<{tag}>{_e(text)}</{tag}>"
        )

    head = "".join(cell("th", i, h) for i, h in enumerate(table.header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    plain = ' class="plain"' if table.plain else ""
    return (
        f'<div class="wide"><table{plain}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></figure>'

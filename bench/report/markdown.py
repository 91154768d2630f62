"""report.md: the report's blocks as Markdown, figures linked as files next to it."""

from __future__ import annotations

from collections.abc import Sequence

from bench.report.doc import (
    Block,
    Box,
    Bullets,
    Code,
    Counts,
    Figure,
    GridTable,
    Heading,
    Item,
    Paragraph,
    Table,
)

__all__ = ["render_markdown", "table_markdown"]


def render_markdown(blocks: Sequence[Block]) -> str:
    """The blocks as one Markdown document, a blank line between blocks."""
    parts = [_block(block) for block in blocks]
    return "\n\n".join(part for part in parts if part) + "\n"


def _block(block: Block) -> str:
    match block:
        case Heading(text=text, level=level):
            return f"{'#' * level} {text}"
        case Paragraph(text=text):
            return text
        case Bullets(items=items):
            return "\n".join(f"- {_item(item)}" for item in items)
        case Table():
            return table_markdown(block)
        case GridTable(grid=grid):
            return grid.to_markdown()
        case Figure(file=file, alt=alt):
            return f"![{alt}]({file})"
        case Code(text=text):
            return f"```text\n{text}\n```"
        case Counts(text=text):
            return text
        case Box(blocks=inner):
            return render_markdown(inner).rstrip("\n")
    raise TypeError(f"no Markdown for {type(block).__name__}")


def _item(item: str | Item) -> str:
    return f"**{item.lead}.** {item.text}" if isinstance(item, Item) else item


def _cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    """A pipe table: text columns left-aligned, number columns right-aligned."""
    align = ["---:" if a == "r" else "---" for a in table.alignment()]
    lines = ["| " + " | ".join(_cell(h) for h in table.header) + " |", f"|{'|'.join(align)}|"]
    return "\n".join(
        lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    )

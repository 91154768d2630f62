"""The report's blocks: what a section says, independent of the format that draws it.

Every section of the report (bench/report/page.py lists them in page order) returns a list of
these frozen blocks; markdown.py and html.py each draw every kind, so report.md and
report.html carry the same sentences and numbers by construction. Text may hold `code` spans in
backticks; everything else is plain text that each writer escapes for its format.

>>> blocks = [Heading("callcenter", 2), Paragraph("Up to 2 seed(s) per cell.", note=True)]
>>> [type(block).__name__ for block in walk(blocks)]
['Heading', 'Paragraph']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.report.grid import Grid

__all__ = [
    "Block",
    "Box",
    "Bullets",
    "Code",
    "Counts",
    "Figure",
    "GridTable",
    "Heading",
    "Item",
    "Paragraph",
    "Table",
    "walk",
]


@dataclass(frozen=True)
class Heading:
    """A heading; `anchor` gives the HTML page a link target, `nav` names it in the page's
    navigation bar (the Markdown file has none: Markdown viewers build their own outline)."""

    text: str
    level: int = 2
    anchor: str = ""
    nav: str = ""


@dataclass(frozen=True)
class Paragraph:
    """A paragraph; a `note` is set smaller and grey in HTML."""

    text: str
    note: bool = False


@dataclass(frozen=True)
class Item:
    """A bullet with a bold lead-in: `**lead.** text`."""

    lead: str
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str | Item, ...]
    note: bool = False


@dataclass(frozen=True)
class Table:
    """A table of display strings. `align` has a letter per column: `l` text, `r` a number,
    `w` prose to wrap (default: text, then numbers). `plain`: a list of records rather than
    numbers, drawn in HTML left-aligned and wrapped throughout."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str = ""
    plain: bool = False

    def alignment(self) -> str:
        return self.align or "l" + "r" * (len(self.header) - 1)


@dataclass(frozen=True)
class GridTable:
    """A grouped paper table (grid.py). With `export`, the report also writes it alone as
    `<export>.md` and `<export>.tex`, captioned `caption` plus `note`."""

    grid: Grid
    export: str = ""
    caption: str = ""
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG next to the report (`file`); `draw` writes it to a path, once, before the
    report files are rendered (the HTML page embeds it, the Markdown file links it)."""

    file: str
    alt: str
    draw: Callable[[Path], object] | None = None


@dataclass(frozen=True)
class Code:
    """Verbatim text, such as a prompt: a fenced block / <pre>."""

    text: str


@dataclass(frozen=True)
class Counts:
    """Run counts per status: a sentence (`text`), drawn in HTML with one card per status."""

    text: str
    counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Box:
    """Blocks set off from the page (`kind` "answer" or "verdict" names the HTML style)."""

    kind: str
    blocks: tuple[Block, ...]


Block = Heading | Paragraph | Bullets | Table | GridTable | Figure | Code | Counts | Box


def walk(blocks: Iterable[Block]) -> Iterator[Block]:
    """Every block, the blocks inside boxes included, in page order."""
    for block in blocks:
        yield block
        if isinstance(block, Box):
            yield from walk(block.blocks)

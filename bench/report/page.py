"""The report's page order: which sections appear, in which order, each returning blocks.

A section is a function from the computed content (content.py) to blocks (doc.py). Adding one
is one module plus one entry here: `PAGE` for a part of the page, `DATASET` for a part of every
dataset's section. The writers (markdown.py, html.py) draw whatever blocks come out.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.report.answers import unreadable_blocks
from bench.report.audits import audit_blocks
from bench.report.calibration import calibration_blocks
from bench.report.content import DatasetSection, ReportContent
from bench.report.cost import COST_NOTE
from bench.report.cost_figure import cost_blocks
from bench.report.deploy import deploy_blocks
from bench.report.details import details_blocks
from bench.report.doc import Block, Box, Bullets, GridTable, Heading, Item, Paragraph
from bench.report.explanations import explanation_blocks
from bench.report.ranks import RANK_NOTE
from bench.report.retrieval import retrieval_blocks
from bench.report.search import search_blocks
from bench.report.serializations import serializer_blocks
from bench.report.tables import TABLE_NOTE, table_blocks
from bench.report.verdict import Verdict, verdict_note

__all__ = ["DATASET", "PAGE", "page_blocks"]

TITLE = "Is the LLM good enough yet?"


def verdict_box(verdict: Verdict, title: str) -> Box:
    """A verdict: its title, its headline, then one line per training size."""
    lines = (Bullets(tuple(verdict.lines)),) if verdict.lines else ()
    return Box("verdict", (Heading(title, 3), Paragraph(verdict.headline), *lines))


def title_blocks(content: ReportContent) -> list[Block]:
    return [
        Heading(TITLE, 1),
        Paragraph(
            f"Benchmark report for the results directory `{content.path.resolve()}`.", note=True
        ),
    ]


def answer_blocks(content: ReportContent) -> list[Block]:
    """The verdicts' headlines, per dataset then across datasets: the answer, first."""
    items = [Item(section.name, section.verdict.headline) for section in content.datasets]
    items += [Item(f"Across {verdict.scope}", verdict.headline) for verdict in content.overall]
    return [Box("answer", (Heading("The answer", 2, anchor="answer"), Bullets(tuple(items))))]


def overall_blocks(content: ReportContent) -> list[Block]:
    if not content.overall:
        return []
    heading = Heading("Verdict across datasets", 2, anchor="overall", nav="Across datasets")
    return [heading, *(verdict_box(verdict, verdict.scope) for verdict in content.overall)]


def dataset_verdict_blocks(section: DatasetSection) -> list[Block]:
    return [verdict_box(section.verdict, "Verdict")]


def unfinished_blocks(section: DatasetSection) -> list[Block]:
    if not section.not_finished:
        return []
    text = f"{section.not_finished} run(s) did not finish; see the run summary."
    return [Paragraph(text, note=True)]


# The parts of each dataset's section, in page order.
DATASET: list[Callable[[DatasetSection], list[Block]]] = [
    dataset_verdict_blocks,
    table_blocks,
    serializer_blocks,
    retrieval_blocks,  # what a retrieval LLM adds beyond its neighbours' labels (knn)
    deploy_blocks,
    search_blocks,
    explanation_blocks,
    unreadable_blocks,
    calibration_blocks,
    audit_blocks,
    cost_blocks,
    unfinished_blocks,
]


def dataset_blocks(content: ReportContent) -> list[Block]:
    blocks: list[Block] = []
    for section in content.datasets:
        blocks.append(Heading(section.name, 2, anchor=f"ds-{section.name}", nav=section.name))
        for part in DATASET:
            blocks += part(section)
    return blocks


def rank_blocks(content: ReportContent) -> list[Block]:
    if content.rank_grid is None:
        return []
    caption = "Mean rank / win rate across datasets by training rows."
    return [
        Heading("Mean rank and win rate across datasets", 2, anchor="ranks", nav="Ranks"),
        GridTable(content.rank_grid, export="ranks", caption=caption, note=RANK_NOTE),
        Paragraph(RANK_NOTE, note=True),
    ]


def notes_blocks(content: ReportContent) -> list[Block]:
    notes = (
        Item("Verdicts", verdict_note(content.settings)),
        Item("Tables", TABLE_NOTE),
        Item("Ranks", RANK_NOTE),
        Item("Cost", COST_NOTE),
    )
    return [
        Heading("How to read this report", 2, anchor="notes", nav="Notes"),
        Bullets(notes, True),
    ]


# The page, top to bottom: the answer first, the run details and notes last.
PAGE: list[Callable[[ReportContent], list[Block]]] = [
    title_blocks,
    answer_blocks,
    overall_blocks,
    dataset_blocks,
    rank_blocks,
    details_blocks,
    notes_blocks,
]


def page_blocks(content: ReportContent) -> list[Block]:
    """The whole report as blocks."""
    return [block for part in PAGE for block in part(content)]

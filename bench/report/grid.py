"""A grouped table of formatted cells, rendered as Markdown, LaTeX (booktabs) or HTML.

Rows are grouped (by family), each cell is text plus two flags: `bold` (the best) and
`mark` (not significantly worse than the best, shown as a dagger).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

__all__ = ["Cell", "Grid", "latex_escape"]

DAGGER = "†"


@dataclass(frozen=True)
class Cell:
    text: str
    bold: bool = False
    mark: bool = False


@dataclass
class Grid:
    """`groups`: (group name, [(row label, cells per column)]) in display order."""

    row_header: str
    columns: list[str]
    groups: list[tuple[str, list[tuple[str, list[Cell]]]]] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str, list[Cell]]]:
        return [(group, label, cells) for group, rows in self.groups for label, cells in rows]

    def to_markdown(self) -> str:
        """Family in the first column of its group's first row only, so groups read as blocks."""
        lines = [
            f"| family | {self.row_header} | " + " | ".join(self.columns) + " |",
            "|---|---|" + "---:|" * len(self.columns),
        ]
        for group, rows in self.groups:
            for i, (label, cells) in enumerate(rows):
                texts = [_markdown_cell(c) for c in cells]
                lines.append(f"| {group if i == 0 else ''} | {label} | " + " | ".join(texts) + " |")
        return "\n".join(lines)

    def to_latex(self, caption: str, label: str) -> str:
        """A booktabs table: a group header row per family, methods indented beneath it."""
        width = len(self.columns) + 1
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\caption{{{latex_escape(caption)}}}",
            rf"\label{{{latex_escape(label)}}}",
            rf"\begin{{tabular}}{{l{'r' * len(self.columns)}}}",
            r"\toprule",
            latex_escape(self.row_header.capitalize())
            + " & "
            + " & ".join(latex_escape(c) for c in self.columns)
            + r" \\",
        ]
        for group, rows in self.groups:
            lines.append(r"\midrule")
            lines.append(rf"\multicolumn{{{width}}}{{l}}{{\textit{{{latex_escape(group)}}}}} \\")
            for label, cells in rows:
                texts = [_latex_cell(c) for c in cells]
                lines.append(r"\quad " + latex_escape(label) + " & " + " & ".join(texts) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """A <table>: one <tbody> per family with a header row naming it."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        parts = [
            '<table class="grid">',
            f"<thead><tr><th>{html.escape(self.row_header)}</th>{head}</tr></thead>",
        ]
        for group, rows in self.groups:
            parts.append("<tbody>")
            parts.append(
                f'<tr class="group"><th colspan="{len(self.columns) + 1}">'
                f"{html.escape(group)}</th></tr>"
            )
            for label, cells in rows:
                tds = "".join(_html_cell(c) for c in cells)
                parts.append(f"<tr><th>{html.escape(label)}</th>{tds}</tr>")
            parts.append("</tbody>")
        parts.append("</table>")
        return "\n".join(parts)


def _markdown_cell(cell: Cell) -> str:
    text = cell.text.replace("|", r"\|")
    text = f"**{text}**" if cell.bold else text
    return text + DAGGER if cell.mark else text


def _latex_cell(cell: Cell) -> str:
    text = latex_escape(cell.text)
    text = rf"\textbf{{{text}}}" if cell.bold else text
    return text + r"$^\dagger$" if cell.mark else text


def _html_cell(cell: Cell) -> str:
    classes = [c for c, on in (("best", cell.bold), ("tied", cell.mark)) if on]
    attr = f' class="{" ".join(classes)}"' if classes else ""
    text = html.escape(cell.text)
    text = f"<strong>{text}</strong>" if cell.bold else text
    return f"<td{attr}>{text}{'<sup>' + DAGGER + '</sup>' if cell.mark else ''}</td>"


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and spell the report's Unicode signs (±, †, α, dashes) in LaTeX."""
    out = []
    for char in str(text):
        out.append(
            {
                "\\": r"\textbackslash{}",
                "_": r"\_",
                "&": r"\&",
                "%": r"\%",
                "#": r"\#",
                "$": r"\$",
                "{": r"\{",
                "}": r"\}",
                "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}",
                "±": r"$\pm$",
                "–": "--",
                "—": "---",
                "−": "$-$",
                "†": r"$^\dagger$",
                "α": r"$\alpha$",
                "×": r"$\times$",
                "≤": r"$\leq$",
                "≥": r"$\geq$",
                "…": r"\ldots{}",
            }.get(char, char)
        )
    return "".join(out)

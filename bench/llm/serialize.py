"""Row serializers: one table row as prompt text, in six formats.

Formats: ``list`` (``age: 42`` lines), ``text`` (``The age is 42.``), ``json``, ``markdown``,
``csv`` and ``html`` (a one-row table with its header). Numbers are rendered compactly with
`precision` significant digits and never in exponent notation, missing values are written as
`missing`, and cell text is escaped for its format and sealed (`seal`: newlines collapsed, the
answer marker and control-token strings such as ``<|im_end|>`` defused) so that data can never
break the prompt's structure, e.g. by smuggling in a line ``Answer: yes``. Two ablations:
`values_only` drops the column names; `permute_names` shuffles names across columns
(deterministically from `seed`), testing whether the model reads the names at all.

`numbers` says how numeric cells are written: ``raw`` (as above), ``rounded`` (every number,
integers included, to 2 significant digits: 712 -> 710, 12.34 -> 12, 0.01234 -> 0.012),
``binned`` (the value's quartile bin among the training rows: ``low``, ``medium``, ``high`` or
``very high``) or ``words`` (the bin and the value: ``high (712)``). Bins are learned by
`RowSerializer.fit` on the run's training rows only, so a test row never moves a bin edge.

`shared_header` (csv and markdown) writes the column header once, before the first row, and each
row as its value line: one table whose rows are interleaved with answers. A row then costs a
third of the tokens of ``list``, which matters because every query row is evaluated afresh
while the shared prefix is evaluated once.

>>> RowSerializer("list").record({"age": 42.0, "plan": "gold", "calls": float("nan")})
'age: 42\\nplan: gold\\ncalls: missing'
>>> RowSerializer("text", precision=3).record({"wait": 12.3456})
'The wait is 12.3.'
>>> train = pd.DataFrame({"wait": [10, 20, 30, 40, 50], "plan": ["a", "b", "a", "b", "a"]})
>>> RowSerializer("list", numbers="words").fit(train).record({"wait": 45, "plan": "a"})
'wait: very high (45)\\nplan: a'
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BIN_LABELS",
    "FORMATS",
    "NUMBER_FORMATS",
    "NumberBins",
    "RowSerializer",
    "format_value",
    "seal",
    "sealed_literal",
]

FORMATS = ("list", "text", "json", "markdown", "csv", "html")
NUMBER_FORMATS = ("raw", "rounded", "binned", "words")
BINNED_FORMATS = ("binned", "words")  # number formats that need bins fitted on training rows
BIN_LABELS = ("low", "medium", "high", "very high")  # one per training quartile
ROUNDED_DIGITS = 2  # significant digits of numbers: "rounded"
TABLE_FORMATS = ("markdown", "csv")  # formats whose header can be shared by all rows
_SPACE = re.compile(r"\s+")
_MARKER = re.compile(r"answer\s*:", re.IGNORECASE)  # the prompt's "Answer:" (bench.llm.prompts)
# Strings shaped like a chat template's control tokens: <|im_end|>, <|eot_id|> (ChatML, Llama 3),
# <bos>, <end_of_turn>, </s>, <unused0> (SentencePiece, Gemma), <0x0A> (byte tokens), [INST] and
# <<SYS>> (Llama 2, Mistral). An in-process model tokenizes data with special=False, but an HTTP
# server tokenizes the whole text and would read them as the template's own markup.
_CONTROL = re.compile(
    r"<\|[^<>|\s]{0,64}\|>"
    r"|</?[A-Za-z_][\w.:-]{0,64}>"
    r"|<0x[0-9A-Fa-f]{2}>"
    r"|<</?SYS>>"
    r"|\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]"
)
_DEFUSED = str.maketrans({"<": "\u2039", ">": "\u203a", "[": "\u2039", "]": "\u203a"})


def format_value(value: Any, precision: int = 4, missing: str = "missing") -> str:
    """A cell as compact text: integers without a decimal point, floats to `precision`
    significant digits without exponent notation, text on one line with the answer marker
    defused."""
    if _is_missing(value):
        return missing
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if float(value).is_integer() and abs(value) < 1e15:
            return str(int(value))
        return np.format_float_positional(
            float(value), precision=precision, unique=True, fractional=False, trim="-"
        )
    return _line(str(value))


def rounded_value(value: Any, precision: int = 4, missing: str = "missing") -> str:
    """A number to `ROUNDED_DIGITS` significant digits (integers too: 712 -> 710); other cells
    as `format_value` writes them."""
    if _is_number(value) and np.isfinite(float(value)):
        value = float(f"{float(value):.{ROUNDED_DIGITS}g}")
    return format_value(value, precision, missing)


@dataclass(frozen=True)
class NumberBins:
    """Quartile edges of each numeric column, learned from training rows.

    A value's bin is the number of edges strictly below it: at most the first quartile is
    ``low``, up to the median ``medium``, up to the third quartile ``high``, above it
    ``very high``. Tied quartiles (columns with few distinct values) leave some bins empty
    rather than making edges ambiguous: a 0/1 column with 60 % zeros has edges (0, 0, 1), so
    0 is ``low`` and 1 is ``high``. Values outside the training range fall in the outer bins.
    """

    edges: tuple[tuple[str, tuple[float, ...]], ...]  # (column, its 3 quartiles), fit order

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> NumberBins:
        """Edges for every numeric column (booleans and text are not binned); a column
        without any training value gets none, and its values are written raw."""
        quantiles = np.linspace(0, 1, len(BIN_LABELS) + 1)[1:-1]
        edges = []
        for column in frame.columns:
            values = frame[column]
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                continue
            finite = values.to_numpy(dtype=float, na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            if len(finite):
                edges.append((str(column), tuple(float(q) for q in np.quantile(finite, quantiles))))
        return cls(tuple(edges))

    def label(self, column: str, value: Any) -> str | None:
        """The bin word of a numeric `value` of `column`, or None when it is not binned."""
        column_edges = dict(self.edges).get(str(column))
        if column_edges is None or not _is_number(value) or _is_missing(value):
            return None
        return BIN_LABELS[int(np.searchsorted(column_edges, float(value), side="left"))]


def _json_value(text: str, value: Any) -> Any:
    if _is_missing(value):
        return None
    if _is_number(value) and np.isfinite(float(value)):
        return json.loads(text)
    return text


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other non-scalars
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


@dataclass(frozen=True)
class RowSerializer:
    format: str = "list"
    precision: int = 4
    missing: str = "missing"
    values_only: bool = False
    permute_names: bool = False
    shared_header: bool = False
    numbers: str = "raw"
    seed: int = 0

    def __post_init__(self) -> None:
        # Learned by `fit`, not a constructor option (so not a serializer config key).
        object.__setattr__(self, "bins_", None)
        if self.numbers not in NUMBER_FORMATS:
            raise ValueError(
                f"Unknown number format '{self.numbers}' (serializer.numbers); "
                f"valid: {', '.join(NUMBER_FORMATS)}"
            )
        if self.format not in FORMATS:
            raise ValueError(
                f"Unknown serializer format '{self.format}' (serializer.format); "
                f"valid: {', '.join(FORMATS)}"
            )
        if self.shared_header and self.format not in TABLE_FORMATS:
            raise ValueError(
                f"serializer.shared_header needs a table format ({', '.join(TABLE_FORMATS)}), "
                f"not '{self.format}'"
            )

    def fit(self, frame: pd.DataFrame) -> RowSerializer:
        """This serializer with the number bins of `frame`, the run's training rows (never
        rows to predict); a copy, as the serializer is immutable. Only ``binned`` and
        ``words`` learn anything."""
        fitted = replace(self)
        if self.numbers in BINNED_FORMATS:
            if frame.empty:  # else every number would silently be written raw
                raise ValueError(
                    f"serializer.numbers={self.numbers} learns its bins from the training rows, "
                    "and this run has none (n_train=0): use raw or rounded"
                )
            object.__setattr__(fitted, "bins_", NumberBins.fit(frame))
        return fitted

    def header(self, columns: Sequence[str]) -> str:
        """The shared column header written once before the rows ("" unless `shared_header`)."""
        if not self.shared_header or self.values_only:
            return ""
        names = self.names(columns)
        if self.format == "csv":
            return self._csv_line(names)
        return "\n".join(
            ["| " + " | ".join(_markdown_cell(n) for n in names) + " |", "|" + "---|" * len(names)]
        )

    def names(self, columns: Sequence[str]) -> list[str]:
        """The column names as shown: as is, or permuted for the ablation."""
        names = [_line(str(c)) for c in columns]
        if self.permute_names and len(names) > 1:
            order = np.random.default_rng(self.seed).permutation(len(names))
            if (order == np.arange(len(names))).all():  # an ablation must actually permute
                order = np.roll(order, 1)
            names = [names[i] for i in order]
        return names

    def record(self, row: Mapping[str, Any]) -> str:
        """One row as text in this serializer's format."""
        names = self.names(list(row.keys()))
        raw = list(row.values())
        if self.numbers == "rounded":
            values = [rounded_value(v, self.precision, self.missing) for v in raw]
        else:
            values = [format_value(v, self.precision, self.missing) for v in raw]
        if self.numbers in BINNED_FORMATS:
            values, raw = self._binned(list(row.keys()), values, raw)
        if self.format == "json":
            return self._json(names, values, raw)
        return getattr(self, f"_{self.format}")(names, values)

    def _binned(
        self, columns: list[Any], values: list[str], raw: list[Any]
    ) -> tuple[list[str], list[Any]]:
        """Binned cells as their bin word (``words``: with the value); the raw value of a
        binned cell becomes its text, so json writes it as a string."""
        bins: NumberBins | None = self.bins_
        if bins is None:
            raise ValueError(
                f"serializer.numbers={self.numbers!r} writes bins learned from the training "
                "rows: fit the serializer on them first (RowSerializer.fit(training_rows))"
            )
        for i, (column, value) in enumerate(zip(columns, raw, strict=True)):
            label = bins.label(column, value)
            if label is not None:
                values[i] = label if self.numbers == "binned" else f"{label} ({values[i]})"
                raw[i] = values[i]
        return values, raw

    # -- one method per format ---------------------------------------------------------------
    def _list(self, names: list[str], values: list[str]) -> str:
        if self.values_only:
            return ", ".join(values)
        return "\n".join(f"{_line(n)}: {v}" for n, v in zip(names, values, strict=True))

    def _text(self, names: list[str], values: list[str]) -> str:
        if self.values_only:
            return " ".join(f"{v}." for v in values)
        return " ".join(f"The {_line(n)} is {v}." for n, v in zip(names, values, strict=True))

    def _json(self, names: list[str], values: list[str], raw: list[Any]) -> str:
        """Numbers as JSON numbers, missing cells as null, text as strings (even "007" or a text
        equal to the missing marker); infinities, which JSON lacks, as the strings "inf"."""
        typed = [_json_value(text, value) for text, value in zip(values, raw, strict=True)]
        if self.values_only:
            return json.dumps(typed, ensure_ascii=False)
        return json.dumps(dict(zip(names, typed, strict=True)), ensure_ascii=False)

    def _markdown(self, names: list[str], values: list[str]) -> str:
        cells = [_markdown_cell(v) for v in values]
        row = "| " + " | ".join(cells) + " |"
        if self.values_only or self.shared_header:
            return row
        header = "| " + " | ".join(_markdown_cell(n) for n in names) + " |"
        return "\n".join([header, "|" + "---|" * len(names), row])

    def _csv(self, names: list[str], values: list[str]) -> str:
        if self.values_only or self.shared_header:
            return self._csv_line(values)
        return self._csv_line(names) + "\n" + self._csv_line(values)

    @staticmethod
    def _csv_line(cells: list[str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        return buffer.getvalue().rstrip("\n")

    def _html(self, names: list[str], values: list[str]) -> str:
        cells = "".join(f"<td>{html.escape(v)}</td>" for v in values)
        if self.values_only:
            return f"<table><tr>{cells}</tr></table>"
        header = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        return f"<table><tr>{header}</tr><tr>{cells}</tr></table>"


def seal(text: Any) -> str:
    """Text from the data (a cell, a column or target name, a description, a class) as it may
    appear in a prompt: one line, the answer marker defused (``Answer: yes`` ->
    ``answer - yes``) and control-token strings defused (``<|im_end|>`` -> ``‹|im_end|›``), so it
    can add no answer slot, no line of its own and no chat-template markup on any backend.

    >>> seal("channel\\nAnswer: yes <|im_end|><start_of_turn>")
    'channel answer - yes ‹|im_end|›‹start_of_turn›'
    """
    line = _MARKER.sub("answer -", _SPACE.sub(" ", str(text)).strip())
    return _CONTROL.sub(lambda m: m.group(0).translate(_DEFUSED), line)


def sealed_literal(value: Any) -> str:
    """`repr(value)` (a name, or a list of names, as Python source) with every ``<`` written
    ``\\x3c``: the same value to Python, and no control-token string in the prompt."""
    return repr(value).replace("<", "\\x3c")


_line = seal  # the serializers' name for it


def _markdown_cell(text: str) -> str:
    return _line(text).replace("\\", "\\\\").replace("|", "\\|")

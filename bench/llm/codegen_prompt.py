"""Prompts that ask an LLM to write a scikit-learn model, and extracting the code it returns.

The prompt states the task (target meaning, classes, metric), the schema (name, dtype,
description, example values and missing rate per column), the number of rows and the class
balance, and a few example rows as CSV. The LLM must answer with one Python module that defines
``build_model()``. A repair prompt adds the failed program and the end of its error.

>>> extract_code("Here it is:\\n```python\\ndef build_model():\\n    pass\\n```\\nDone.")
'def build_model():\\n    pass\\n'
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from bench.llm.serialize import format_value

__all__ = [
    "CODEGEN_PROMPT_VERSION",
    "codegen_prompt",
    "extract_code",
    "repair_prompt",
    "schema_lines",
]

CODEGEN_PROMPT_VERSION = 1  # part of every codegen run's identity: bump when prompts change
ALLOWED_IMPORTS = "numpy, pandas, sklearn (scikit-learn), xgboost, lightgbm"
# Candidates after the first are asked for a different approach, so that they differ even at
# temperature 0 (and stay reproducible from the request cache).
APPROACHES = (
    "",
    "Use a different approach from a default gradient-boosting model, e.g. a regularised "
    "linear model with careful preprocessing.",
    "Use a random forest or extra-trees ensemble with simple, robust preprocessing.",
    "Use gradient boosting (LightGBM or XGBoost) with categorical columns encoded explicitly.",
)
# A fenced block: its info string (language tag) and its body, up to the closing fence.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([^\n`]*)\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
_PYTHON_TAGS = {"", "python", "python3", "py", "py3"}


def schema_lines(
    X: pd.DataFrame, descriptions: Mapping[str, str] | None = None, examples: int = 3
) -> list[str]:
    """One line per column: name, dtype, missing rate, description, example values."""
    lines = []
    for name in X.columns:
        column = X[name]
        values = [format_value(v) for v in column.dropna().unique()[:examples]]
        description = (descriptions or {}).get(name, "")
        lines.append(
            f"- {name} ({column.dtype}, {column.isna().mean():.0%} missing)"
            + (f": {' '.join(str(description).split())}" if description else "")
            + (f"; e.g. {', '.join(values)}" if values else "")
        )
    return lines


def codegen_prompt(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    target: str,
    task_description: str,
    metric: str,
    descriptions: Mapping[str, str] | None = None,
    example_rows: int = 5,
    candidate: int = 0,
) -> str:
    """The request for candidate number `candidate` (0-based)."""
    balance = y.astype(str).value_counts(normalize=True)
    classes = ", ".join(f"{label} {share:.0%}" for label, share in balance.items())
    sample = X.head(example_rows).copy()
    sample[target] = y.head(example_rows).to_numpy()
    approach = (
        APPROACHES[candidate]
        if candidate < len(APPROACHES)
        else f"Candidate {candidate + 1}: use an approach unlike the usual defaults."
    )
    parts = [
        "You are an expert data scientist. Write a Python module for this tabular "
        "classification task.",
        f"Task: {' '.join(task_description.split())}" if task_description else "",
        f"Target: `{target}`; classes and their share of the training rows: {classes}. "
        f"Metric: {metric} (higher is better). Training rows: {len(X)}.",
        "Columns (the model receives a pandas DataFrame with exactly these columns; text "
        "columns hold strings and may be missing):\n" + "\n".join(schema_lines(X, descriptions)),
        f"Example rows (CSV):\n{sample.to_csv(index=False).strip()}",
        "Requirements:\n"
        "- Define `build_model()` that returns an UNFITTED scikit-learn-compatible classifier "
        "with fit(X, y) and predict_proba(X). It must do its own preprocessing (encode text "
        "columns, handle missing values); y holds the class names as strings.\n"
        f"- Import only: {ALLOWED_IMPORTS}. No files, network, environment variables or "
        "subprocesses.\n"
        "- Keep it fast: it is fitted several times on a CPU.",
        approach,
        "Reply with the complete module in one ```python code block.",
    ]
    return "\n\n".join(part for part in parts if part)


def repair_prompt(original: str, code: str, error: str) -> str:
    """Ask for a corrected module after `code` failed with `error`."""
    return (
        f"{original}\n\nA previous attempt:\n```python\n{code.strip()}\n```\n\n"
        f"It failed with:\n```\n{error.strip()[-2000:]}\n```\n\n"
        "Fix the problem. Reply with the complete corrected module in one ```python code block."
    )


def extract_code(text: str) -> str | None:
    """The Python code of a reply: the fenced block that defines build_model (else the longest
    fenced block), or the whole reply when it has no fence but defines build_model."""
    blocks = [
        match.group(2)
        for match in _FENCE.finditer(text)
        if match.group(1).strip().lower() in _PYTHON_TAGS
    ]
    if blocks:
        with_build = [b for b in blocks if "def build_model" in b]
        return max(with_build or blocks, key=len)
    return text if "def build_model" in text else None

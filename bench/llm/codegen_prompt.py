"""Prompts that ask an LLM to write a scikit-learn model, and extracting the code it returns.

The prompt states the contract first (what `build_model()` returns, what `X` and `y` are, what
the module may not do), shows a short worked example for a *different* table (a ship-engine
table whose columns no dataset here has, so a copy is caught by its column names), then this
task: target and classes, metric, the schema (name, dtype, missing rate, description, example
values), the columns grouped into numeric and text lists ready to use, a few example rows as
CSV, and last the approach asked of this candidate, so that candidates share the long prefix
(a local model evaluates it once). A repair prompt adds the failed program, its failing line
and error, and an instruction that changes with the round.

>>> extract_code("Here it is:\\n```python\\ndef build_model():\\n    pass\\n```\\nDone.")
'def build_model():\\n    pass\\n'
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from bench.llm.serialize import format_value, seal, sealed_literal

__all__ = [
    "APPROACHES",
    "CODEGEN_PROMPT_VERSION",
    "EXAMPLE_COLUMNS",
    "codegen_prompt",
    "extract_code",
    "failing_line",
    "repair_prompt",
    "schema_lines",
]

CODEGEN_PROMPT_VERSION = 2  # part of every codegen run's identity: bump when prompts change
ALLOWED_IMPORTS = "numpy, pandas, sklearn (scikit-learn), xgboost, lightgbm"
# The worked example's table. Its column names must stay unlike any real table's: a program
# that names them copied the example (bench/llm/codegen_checks.py says so before running it).
EXAMPLE_COLUMNS = ("engine_hours", "crew_size", "fuel_type", "vessel_class")
WORKED_EXAMPLE = """\
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["engine_hours", "crew_size"]
TEXT = ["fuel_type", "vessel_class"]


def build_model():
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    text = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    features = ColumnTransformer([("num", numeric, NUMERIC), ("text", text, TEXT)])
    return make_pipeline(features, LogisticRegression(max_iter=1000))
"""
CONTRACT = f"""\
The contract (the harness checks it):
- Define `build_model()` with no arguments. It returns an UNFITTED scikit-learn-compatible \
classifier (for example a Pipeline) with fit(X, y) and predict_proba(X).
- The harness runs `model = build_model(); model.fit(X, y); model.predict_proba(X_new)`. \
X is a pandas DataFrame with exactly the columns listed below (names as written, text columns \
hold strings and may be missing); y is a pandas Series of class names (strings).
- There is no global data: no `df`, no files to read. The rows come only through fit and \
predict_proba. At the top level write only imports, constants and definitions: no example \
usage, no training, no printing.
- Import only: {ALLOWED_IMPORTS}. No files, network, environment variables or subprocesses.
- Keep it fast: it is fitted several times on a CPU."""
# Candidates after the first are asked for a different approach, so that they differ even at
# temperature 0 (and stay reproducible from the request cache).
APPROACHES = (
    "",
    "Approach for this candidate: gradient boosting. Keep the same preprocessing and use "
    "lightgbm.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, "
    "verbose=-1) as the classifier.",
    "Approach for this candidate: a random forest. Keep the same preprocessing and use "
    "sklearn.ensemble.RandomForestClassifier(n_estimators=300, min_samples_leaf=2, "
    "random_state=0) as the classifier.",
    "Approach for this candidate: a regularised linear model with careful preprocessing "
    "(e.g. LogisticRegression with a tuned C, or splines of the numeric columns).",
)
# What each repair round asks: the first fixes the error, later ones ask for a simpler module,
# so that a model that repeats itself is pushed somewhere else.
REPAIR_INSTRUCTIONS = (
    "Fix the cause of this error and reply with the complete corrected module in one "
    "```python code block. Do not send the same code again.",
    "That approach keeps failing. Write a new, simpler module that follows the worked "
    "example's structure with THIS table's columns, in one ```python code block.",
)
# A fenced block: its info string (language tag) and its body, up to the closing fence.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([^\n`]*)\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
_PYTHON_TAGS = {"", "python", "python3", "py", "py3"}
_PROGRAM_LINE = re.compile(r'File "program\.py", line (\d+)')


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
            f"- {seal(name)} ({column.dtype}, {column.isna().mean():.0%} missing)"
            + (f": {seal(description)}" if description else "")
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
    classes = ", ".join(f"{seal(label)} {share:.0%}" for label, share in balance.items())
    sample = X.head(example_rows).copy()
    sample[target] = y.head(example_rows).to_numpy()
    # what the model reads is sealed (bench.llm.serialize.seal); exact names are in the lists
    sample = sample.rename(columns=seal).map(lambda v: seal(v) if isinstance(v, str) else v)
    numeric = [str(c) for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    text = [str(c) for c in X.columns if str(c) not in numeric]
    approach = (
        APPROACHES[candidate]
        if candidate < len(APPROACHES)
        else f"Candidate {candidate + 1}: use an approach unlike the usual defaults."
    )
    parts = [
        "You are an expert data scientist. Write a Python module that builds a classifier "
        "for one tabular classification task.",
        CONTRACT,
        "A worked example, for a DIFFERENT table (a ship-engine table with the columns "
        f"{', '.join(EXAMPLE_COLUMNS)}); do not reuse its column names:\n"
        f"```python\n{WORKED_EXAMPLE}```",
        "Your task.",
        f"Task: {seal(task_description)}" if task_description else "",
        f"Target: `{seal(target)}`; classes and their share of the training rows: {classes}. "
        f"Metric: {metric} (higher is better). Training rows: {len(X)}.",
        "Columns of X:\n" + "\n".join(schema_lines(X, descriptions)),
        "The same columns as Python lists:\n"
        f"NUMERIC = {sealed_literal(numeric)}\nTEXT = {sealed_literal(text)}",
        f"Example rows (CSV):\n{sample.to_csv(index=False).strip()}",
        approach,
        "Reply with the complete module for THIS table in one ```python code block.",
    ]
    return "\n\n".join(part for part in parts if part)


def repair_prompt(original: str, code: str, error: str, round_: int = 1) -> str:
    """Ask for a different module after `code` failed with `error` (repair round `round_`,
    from 1): the failing line, the end of the error, and the round's instruction."""
    line = failing_line(code, error)
    instruction = REPAIR_INSTRUCTIONS[min(round_, len(REPAIR_INSTRUCTIONS)) - 1]
    return (
        f"{original}\n\nA previous attempt:\n```python\n{code.strip()}\n```\n\n"
        + (f"It failed at {line}\n\n" if line else "")
        + f"The error:\n```\n{error.strip()[-2000:]}\n```\n\n{instruction}"
    )


def failing_line(code: str, error: str) -> str | None:
    """ "line N: <source>" for the program's last frame in a traceback, if it has one."""
    numbers = _PROGRAM_LINE.findall(error)
    lines = code.splitlines()
    if not numbers or not 0 < int(numbers[-1]) <= len(lines):
        return None
    return f"line {numbers[-1]}: {lines[int(numbers[-1]) - 1].strip()}"


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

"""A generated program's model fitted once in the sandbox, then used to predict in another.

`fit_model` runs one sandboxed process that fits the program's model on the labelled rows and
sends it back pickled; `predict_model` hands those bytes to a fresh sandboxed process that loads
the model and predicts the rows' *features*. The harness keeps the bytes and never unpickles
them (unpickling runs code): only a sandboxed process does. So `llm_codegen` pays for training
once, in `fit` (a one-off cost), and a prediction costs a sandbox start and the model's own
`predict_proba`, not a refit (bench/llm/sandbox.py has the confinement and the limits).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.llm.confinement import SandboxLimits, read_roots
from bench.llm.sandbox import TARGET, SandboxResult, _checked_proba, _execute

__all__ = ["fit_model", "predict_model"]


def fit_model(
    source: str, X_train: pd.DataFrame, y_train: pd.Series, limits: SandboxLimits
) -> tuple[SandboxResult, bytes]:
    """Fit the program's model on the labelled rows in one sandboxed process: the run (with
    `classes`, the training labels' sorted set) and the fitted model pickled (b"" on failure)."""
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        workdir = _workdir(Path(tmp), source, "fit")
        train = X_train.reset_index(drop=True).copy()
        train[TARGET] = np.asarray(y_train).astype(str)
        train.to_parquet(workdir / "train.parquet", index=False)
        result, (_, payload) = _execute(workdir, limits)
    if result.ok and not payload:
        result.ok, result.error = False, "the fitted model could not be sent back"
    if not result.ok:
        return result, b""
    result.classes = sorted({str(c) for c in np.asarray(y_train)})
    return result, payload


def predict_model(
    source: str,
    model: bytes,
    classes: list[str],
    X_rows: pd.DataFrame,
    limits: SandboxLimits,
) -> SandboxResult:
    """Probabilities for `X_rows` (features only) from a model `fit_model` fitted, loaded in a
    fresh sandboxed process; checked here and aligned to `classes`."""
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        workdir = _workdir(Path(tmp), source, "predict")
        (workdir / "model.pkl").write_bytes(model)
        X_rows.reset_index(drop=True).to_parquet(workdir / "rows.parquet", index=False)
        result, sent = _execute(workdir, limits)
    if result.ok:
        try:
            result.proba = _checked_proba(sent, len(X_rows), classes)
            result.classes = list(classes)
        except ValueError as error:
            result.ok, result.error = False, f"the program's predictions are unusable: {error}"
    return result


def _workdir(tmp: Path, source: str, mode: str) -> Path:
    """A fresh work directory holding the program and the job (bench/llm/sandbox_child.py)."""
    workdir = tmp / "work"  # the inputs; the program sees them read-only when confined
    (workdir / "tmp").mkdir(parents=True)
    (workdir / "program.py").write_text(source)
    (workdir / "job.json").write_text(json.dumps({"read_roots": read_roots(), "mode": mode}))
    return workdir

"""Run LLM-written model code in a sandboxed subprocess; score it outside the sandbox.

`run_program(source, X_train, y_train, X_test)` writes the program, the training rows (with
labels) and the test rows' *features* into a fresh directory and runs bench/llm/sandbox_child.py
there; the program's model is fitted and returns class probabilities, nothing else. Without
`X_test` the harness cross-validates: it splits the rows itself, runs one sandboxed process per
fold (that fold's training rows with labels, the validation rows' features only), checks the
probabilities that come back (shape, finite, known classes, one row per validation row) and
computes the fold scores here. No sandboxed process ever holds a label it is scored on, so a
program cannot report, patch or forge its own score.

Confinement is bubblewrap's, with rlimits, a pids cgroup and an empty environment
(bench/llm/confinement.py). This module adds a wall-clock timeout that kills the whole sandbox,
output kept to files of which only the tails are read, the check of what comes back, and an
audit hook inside (sandbox_child.py; defence in depth, not the boundary). Where bwrap is missing
or unusable the result says ``isolation: none``; `llm_codegen` then refuses code from a hosted
model unless ``method.params.sandbox.allow_unconfined=true``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from bench.llm.confinement import (
    ProcessGroup,
    SandboxLimits,
    apply_limits,
    bwrap_command,
    confinement_available,
    environment,
    read_roots,
)

__all__ = [
    "SandboxLimits",  # from bench.llm.confinement
    "SandboxResult",
    "confinement_available",  # from bench.llm.confinement
    "fit_predict",
    "run_program",
]

CHILD = Path(__file__).with_name("sandbox_child.py")
TARGET = "__target__"  # must match sandbox_child.TARGET
TAIL_CHARS = 4000
_read_roots = read_roots  # the name bench/llm/sandbox_model.py imports


@dataclass
class SandboxResult:
    ok: bool
    error: str | None = None
    cv_score: float | None = None
    fold_scores: list[float] = field(default_factory=list)
    proba: np.ndarray | None = None
    classes: list[str] | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    seconds: float = 0.0
    isolation: str = "none"  # "bubblewrap" when confined (see the module docstring)

    def summary(self) -> dict:
        """A JSON-able record of this attempt (no probabilities)."""
        return {
            "ok": self.ok,
            "error": self.error,
            "cv_score": self.cv_score,
            "fold_scores": self.fold_scores,
            "stdout_tail": self.stdout_tail[-1000:],
            "stderr_tail": self.stderr_tail[-1000:],
            "seconds": round(self.seconds, 3),
            "isolation": self.isolation,
        }


def run_program(
    source: str,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_test: pd.DataFrame | None = None,
    *,
    metric: str = "roc_auc",
    positive_label: str | None = None,
    n_folds: int = 5,
    seed: int = 0,
    limits: SandboxLimits | None = None,
) -> SandboxResult:
    """Cross-validate (no `X_test`; scored here, fold by fold) or fit and predict (`X_test`)."""
    limits = limits or SandboxLimits()
    y_train = pd.Series(np.asarray(y_train).astype(str))
    if X_test is not None:
        return fit_predict(source, X_train, y_train, X_test, limits)
    return _cross_validate(source, X_train, y_train, metric, positive_label, n_folds, seed, limits)


def fit_predict(
    source: str,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_rows: pd.DataFrame,
    limits: SandboxLimits,
) -> SandboxResult:
    """One sandboxed process: fit on the labelled rows, return probabilities for `X_rows`
    (features only), checked here; classes in the order of the training labels' sorted set."""
    classes = sorted({str(c) for c in np.asarray(y_train)})
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        workdir = Path(tmp) / "work"  # the inputs; the program sees them read-only when confined
        (workdir / "tmp").mkdir(parents=True)
        (workdir / "program.py").write_text(source)
        train = X_train.reset_index(drop=True).copy()
        train[TARGET] = np.asarray(y_train).astype(str)
        train.to_parquet(workdir / "train.parquet", index=False)
        X_rows.reset_index(drop=True).to_parquet(workdir / "rows.parquet", index=False)
        (workdir / "job.json").write_text(json.dumps({"read_roots": read_roots()}))
        result, sent = _execute(workdir, limits)
        if result.ok:
            try:
                result.proba = _checked_proba(sent, len(X_rows), classes)
                result.classes = classes
            except ValueError as error:
                result.ok, result.error = False, f"the program's predictions are unusable: {error}"
        return result


def _checked_proba(sent: tuple[dict, bytes], n_rows: int, classes: list[str]) -> np.ndarray:
    """The child's probabilities, validated and aligned to `classes` (never trusted as is)."""
    meta, payload = sent
    try:
        raw = np.load(io.BytesIO(payload), allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"no readable probabilities ({error})") from None
    their = [str(c) for c in meta.get("classes", [])] if isinstance(meta, dict) else []
    if raw.ndim != 2 or raw.shape != (n_rows, len(their)):
        raise ValueError(f"shape {raw.shape}, expected ({n_rows}, {len(their)} classes)")
    raw = raw.astype(float)
    if not np.isfinite(raw).all() or (raw < 0).any():
        raise ValueError("probabilities that are negative, NaN or infinite")
    unknown = set(their) - set(classes)
    if unknown or len(set(their)) != len(their):
        raise ValueError(f"classes {their} are not distinct classes of the training labels")
    proba = np.zeros((n_rows, len(classes)))
    for j, label in enumerate(their):
        proba[:, classes.index(label)] = raw[:, j]
    total = proba.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("a row whose probabilities sum to zero")
    return proba / total


def _cross_validate(
    source: str,
    X: pd.DataFrame,
    y: pd.Series,
    metric: str,
    positive: str | None,
    n_folds: int,
    seed: int,
    limits: SandboxLimits,
) -> SandboxResult:
    """K sandboxed fits, each seeing one fold's training rows; every score computed here."""
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    folds = min(n_folds, int(y.value_counts().min()))
    if folds < 2:  # too few rows of a class to cross-validate: check that it runs, score unknown
        check = fit_predict(source, X, y, X.head(1), limits)
        check.proba, check.classes = None, None
        return check
    scores, seconds, last = [], 0.0, None
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, valid_idx in splitter.split(X, y):
        last = fit_predict(source, X.iloc[train_idx], y.iloc[train_idx], X.iloc[valid_idx], limits)
        seconds += last.seconds
        if not last.ok:
            last.seconds = seconds
            return last
        truth = y.iloc[valid_idx].to_numpy()
        classes = last.classes or []
        if metric == "roc_auc" and positive in classes and len(set(truth)) == 2:
            score = roc_auc_score(truth == positive, last.proba[:, classes.index(positive)])
        else:
            predicted = np.asarray(classes, dtype=object)[last.proba.argmax(axis=1)]
            score = accuracy_score(truth, predicted)
        scores.append(float(score))
    assert last is not None
    last.cv_score, last.fold_scores = float(np.mean(scores)), scores
    last.proba, last.classes, last.seconds = None, None, seconds
    return last


def _execute(workdir: Path, limits: SandboxLimits) -> tuple[SandboxResult, tuple[dict, bytes]]:
    """Run the child on the inputs in `workdir`; return the result and what it sent back."""
    # The child runs from a copy among the inputs: in a confined run nothing else is visible.
    shutil.copyfile(CHILD, workdir / CHILD.name)
    # Output and the result channel are files opened here, outside the work directory: the
    # program cannot swap them for a symlink to a host file (or a FIFO) that the harness would
    # then read, and the harness reads them through its own handles, never by path.
    outside = workdir.parent
    channel = open(outside / "channel", "w+b")  # noqa: SIM115 (closed below)
    command = [sys.executable, "-I", str(workdir / CHILD.name), str(workdir), str(channel.fileno())]
    confined = confinement_available()
    if confined:
        command = bwrap_command(command, workdir, limits)
    started = time.perf_counter()
    cpu_before = _children_cpu()
    timed_out = False
    with (
        channel,
        ProcessGroup(limits.max_processes) as group,
        open(outside / "stdout.txt", "w+b") as out,
        open(outside / "stderr.txt", "w+b") as err,
    ):
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=environment(workdir, limits),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            pass_fds=(channel.fileno(),),
            start_new_session=True,  # its own process group, killed as a whole on timeout
            preexec_fn=lambda: (group.enter(), apply_limits(limits)),
        )
        try:
            process.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
        group.kill_all()  # anything the program left behind
        seconds = time.perf_counter() - started
        cpu_used = _children_cpu() - cpu_before
        result = SandboxResult(
            ok=False,
            stdout_tail=_tail(out),
            stderr_tail=_tail(err),
            seconds=seconds,
            isolation="bubblewrap" if confined else "none",
        )
        header, payload = _received(channel, limits)
    returncode = process.returncode
    if timed_out:
        result.error = f"timed out after {limits.wall_s:g} s of wall-clock time (sandbox.wall_s)"
    elif returncode == 0 and "classes" in header:
        result.ok = True
    elif isinstance(header.get("error"), dict):
        try:
            result.error = _error_text(header["error"], limits)
        except (ValueError, KeyError, TypeError, AttributeError):
            result.error = "the program failed (its error report is unreadable)"
    elif cpu_used >= limits.cpu_s - 0.5:
        result.error = f"stopped at the CPU-time limit of {limits.cpu_s} s (sandbox.cpu_s)"
    else:
        result.error = _signal_text(returncode, limits, result.stderr_tail)
    return result, (header, payload)


def _received(channel: BinaryIO, limits: SandboxLimits) -> tuple[dict, bytes]:
    """The child's message: a JSON line, then .npy bytes; ({}, b"") when unreadable."""
    channel.seek(0)
    data = channel.read(limits.output_mb * 1024 * 1024 + 1)  # RLIMIT_FSIZE caps it anyway
    line, _, payload = data.partition(b"\n")
    try:
        header = json.loads(line)
    except ValueError:
        return {}, b""
    return (header, payload) if isinstance(header, dict) else ({}, b"")


def _error_text(payload: dict, limits: SandboxLimits) -> str:
    if payload["type"] == "MemoryError":
        return f"MemoryError: the program exceeded the memory limit of {limits.memory_mb} MB"
    if payload["type"] == "OSError" and "File too large" in payload["message"]:
        # Python ignores SIGXFSZ, so the file-size limit surfaces as EFBIG on the next write.
        return (
            f"OSError: the program wrote more than {limits.output_mb} MB (output or files; "
            "sandbox.output_mb)"
        )
    if payload["type"] == "OSError" and "No space left on device" in payload["message"]:
        return (
            f"OSError: the program filled its {limits.output_mb} MB work directory "
            "(sandbox.output_mb)"
        )
    # The last lines of the traceback are what a reader (and the repairing LLM) needs.
    tb_lines = payload["tb"].strip().splitlines()
    return "\n".join(tb_lines[-12:])[-3000:]


def _signal_text(returncode: int, limits: SandboxLimits, stderr_tail: str) -> str:
    if returncode > 128 and returncode - 128 in signal.valid_signals():
        returncode = -(returncode - 128)  # bwrap passes its child's death by signal on as 128+n
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"stopped at the CPU-time limit of {limits.cpu_s} s (sandbox.cpu_s)"
    if returncode == -signal.SIGXFSZ:
        return (
            f"stopped for writing more than {limits.output_mb} MB (output or files; "
            "sandbox.output_mb)"
        )
    if returncode == -signal.SIGSEGV:
        return "crashed with a segmentation fault (often the memory limit, sandbox.memory_mb)"
    last = stderr_tail.strip().splitlines()[-5:]
    return f"the sandboxed process exited with code {returncode}" + (
        ": " + " | ".join(last) if last else ""
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(handle: BinaryIO) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - TAIL_CHARS))
    return handle.read().decode("utf-8", errors="replace")


namespaces_available = confinement_available  # the older name

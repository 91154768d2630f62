"""Run LLM-written model code in a sandboxed subprocess.

`run_program(source, X_train, y_train, X_test=None)` writes the program and the training rows
(and, to predict, the test *features* only) into a fresh temporary directory and runs
bench/llm/sandbox_child.py there in a separate Python process with:

* CPU-time, address-space and file-size limits (rlimits) and a wall-clock timeout that kills the
  whole process group;
* where the host allows unprivileged namespaces (``unshare -rnmpf``): no network at all, and a
  minimal root file system holding only the Python installation and /usr (read-only) and the
  working directory (bench/llm/sandbox_confine.sh), so no library can reach other files;
* in any case, an audit hook (bench/llm/sandbox_child.py) that refuses sockets, subprocesses and
  Python-level access to files outside the directory, and an environment holding no variables
  of the parent (API keys stay outside), with HOME and TMPDIR inside the directory;
* stdout and stderr written to files (only their tails are kept), so a program that prints
  megabytes cannot flood the harness.

Without `X_test` it cross-validates ``build_model()`` on the training rows; with it, it fits on
all training rows and returns class probabilities for the test features. Failures come back as a
`SandboxResult` with a readable `error`, never as an exception.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["SandboxLimits", "SandboxResult", "namespaces_available", "run_program"]

CHILD = Path(__file__).with_name("sandbox_child.py")
CONFINE = Path(__file__).with_name("sandbox_confine.sh")
TARGET = "__target__"  # must match sandbox_child.TARGET
TAIL_CHARS = 4000


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 120.0  # wall-clock timeout of one sandboxed process
    cpu_s: int = 120  # CPU seconds (all threads together)
    memory_mb: int = 4096  # address space; numpy/xgboost reserve more than they touch
    output_mb: int = 16  # largest file the program may write, stdout and stderr included
    threads: int = 1  # OMP/BLAS threads


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
    isolation: str = "audit-hook"  # or "namespaces" (own network, file system and processes)

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
    """Cross-validate (no `X_test`) or fit and predict (with `X_test`) the program's model."""
    limits = limits or SandboxLimits()
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        workdir = Path(tmp) / "work"  # tmp/root is where a confined run mounts its file system
        (workdir / "tmp").mkdir(parents=True)
        (Path(tmp) / "root").mkdir()
        (workdir / "program.py").write_text(source)
        train = X_train.reset_index(drop=True).copy()
        train[TARGET] = pd.Series(y_train).astype(str).to_numpy()
        train.to_parquet(workdir / "train.parquet", index=False)
        if X_test is not None:
            X_test.reset_index(drop=True).to_parquet(workdir / "test.parquet", index=False)
        job = {
            "mode": "cv" if X_test is None else "predict",
            "metric": metric,
            "positive": positive_label,
            "n_folds": n_folds,
            "seed": seed,
            "read_roots": _read_roots(),
        }
        (workdir / "job.json").write_text(json.dumps(job))
        return _execute(workdir, limits)


def _execute(workdir: Path, limits: SandboxLimits) -> SandboxResult:
    # The child runs from a copy inside the directory: in a confined run nothing else is visible.
    shutil.copyfile(CHILD, workdir / CHILD.name)
    command = [sys.executable, "-I", str(workdir / CHILD.name), str(workdir)]
    isolated = namespaces_available()
    if isolated:
        command = _confined(command, workdir)
    started = time.perf_counter()
    cpu_before = _children_cpu()
    timed_out = False
    with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=_environment(workdir, limits),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, killed as a whole on timeout
            preexec_fn=lambda: _apply_limits(limits),
        )
        try:
            process.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
    seconds = time.perf_counter() - started
    # CPU time of the finished child and its descendants: through `unshare`, a child killed at
    # the CPU limit shows up as unshare's own exit code, not as SIGXCPU.
    cpu_used = _children_cpu() - cpu_before
    result = SandboxResult(
        ok=False,
        stdout_tail=_tail(workdir / "stdout.txt"),
        stderr_tail=_tail(workdir / "stderr.txt"),
        seconds=seconds,
        isolation="namespaces" if isolated else "audit-hook",
    )
    returncode = process.returncode
    if timed_out:
        result.error = f"timed out after {limits.wall_s:g} s of wall-clock time (sandbox.wall_s)"
    elif (workdir / "result.json").exists() and returncode == 0:
        payload = json.loads((workdir / "result.json").read_text())
        result.ok = True
        result.cv_score = payload.get("cv_score")
        result.fold_scores = payload.get("fold_scores", [])
        if "classes" in payload:
            result.classes = payload["classes"]
            result.proba = np.load(workdir / "proba.npy")
    elif (workdir / "error.json").exists():
        result.error = _error_text(json.loads((workdir / "error.json").read_text()), limits)
    elif cpu_used >= limits.cpu_s - 0.5:
        result.error = f"stopped at the CPU-time limit of {limits.cpu_s} s (sandbox.cpu_s)"
    else:
        result.error = _signal_text(returncode, limits, result.stderr_tail)
    return result


def _error_text(payload: dict, limits: SandboxLimits) -> str:
    if payload["type"] == "MemoryError":
        return f"MemoryError: the program exceeded the memory limit of {limits.memory_mb} MB"
    if payload["type"] == "OSError" and "File too large" in payload["message"]:
        # Python ignores SIGXFSZ, so the file-size limit surfaces as EFBIG on the next write.
        return (
            f"OSError: the program wrote more than {limits.output_mb} MB (output or files; "
            "sandbox.output_mb)"
        )
    # The last lines of the traceback are what a reader (and the repairing LLM) needs.
    tb_lines = payload["tb"].strip().splitlines()
    return "\n".join(tb_lines[-12:])[-3000:]


def _signal_text(returncode: int, limits: SandboxLimits, stderr_tail: str) -> str:
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


def _apply_limits(limits: SandboxLimits) -> None:
    """Runs in the child between fork and exec."""
    cpu = int(limits.cpu_s)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    size = limits.output_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _environment(workdir: Path, limits: SandboxLimits) -> dict[str, str]:
    """A fresh environment: nothing of the parent's (API keys included) is inherited."""
    threads = str(limits.threads)
    return {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",  # mount and chroot, for the confinement
        "HOME": str(workdir),
        "TMPDIR": str(workdir / "tmp"),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "JOBLIB_MULTIPROCESSING": "0",  # joblib runs n_jobs=-1 code sequentially: no subprocess
        "MPLBACKEND": "Agg",
    }


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(path: Path) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - TAIL_CHARS))
        return handle.read().decode("utf-8", errors="replace")


@cache
def _read_roots() -> list[str]:
    """What the program may read: the Python installation and system libraries."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {os.path.realpath(r) for r in roots}
    roots |= {"/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib", "/lib64", "/usr/share/zoneinfo"}
    roots |= {"/etc/localtime", "/dev/null", "/dev/urandom", "/sys/fs/cgroup"}
    roots |= {"/sys/devices/system/cpu"}
    return sorted(roots)


def _confined(command: list[str], workdir: Path) -> list[str]:
    """`command` in new user, network, mount and pid namespaces, chrooted into a minimal root."""
    read_dirs = sorted({sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix), "/usr"})
    return [
        "unshare",
        "-rnmpf",
        "sh",
        str(CONFINE),
        str(workdir.parent / "root"),
        str(workdir),
        ":".join(read_dirs),
        *command,
    ]


@cache
def namespaces_available() -> bool:
    """Whether this host lets an unprivileged process confine a Python child as `_confined` does
    (user namespaces may be disabled, e.g. in some containers); checked once per process."""
    if shutil.which("unshare") is None or shutil.which("chroot") is None:
        return False
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-probe-") as tmp:
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        (Path(tmp) / "root").mkdir()
        probe = _confined([sys.executable, "-I", "-c", "import numpy"], workdir)
        env = _environment(workdir, SandboxLimits())
        try:
            done = subprocess.run(probe, capture_output=True, timeout=60, env=env)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0

"""Run LLM-written model code in a sandboxed subprocess; score it outside the sandbox.

`run_program(source, X_train, y_train, X_test)` writes the program, the training rows (with
labels) and the test rows' *features* into a fresh directory and runs bench/llm/sandbox_child.py
there; the program's model is fitted and returns class probabilities, nothing else. Without
`X_test` the harness cross-validates: it splits the rows itself, runs one sandboxed process per
fold (that fold's training rows with labels, the validation rows' features only), checks the
probabilities that come back (shape, finite, known classes, one row per validation row) and
computes the fold scores here. No sandboxed process ever holds a label it is scored on, so a
program cannot report, patch or forge its own score.

Confinement is bubblewrap's (``bwrap``, a well-kept tool used by Flatpak): new user, mount, PID,
network, IPC and UTS namespaces, all capabilities dropped (the process cannot `chroot`, `mount`
or `pivot_root` its way out), a tmpfs root holding only /usr and the Python installation
(read-only) and the run's own directory, a fresh /proc of the sandbox's own processes, no
network, and death with the harness. Further: a process limit (a pids cgroup when the harness
runs as root, whom RLIMIT_NPROC does not bind, else RLIMIT_NPROC), CPU-time, address-space and
file-size rlimits, a wall-clock timeout that kills the whole sandbox, an environment holding
nothing of the parent's (API keys stay outside), output kept to files of which only the tails are
read, and an audit hook inside (defence in depth, not the boundary). Where bwrap is missing or
unusable the result says ``isolation: none``; `llm_codegen` then refuses code from a hosted model
unless ``method.params.sandbox.allow_unconfined=true``.
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
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

__all__ = [
    "SandboxLimits",
    "SandboxResult",
    "confinement_available",
    "fit_predict",
    "run_program",
]

CHILD = Path(__file__).with_name("sandbox_child.py")
TARGET = "__target__"  # must match sandbox_child.TARGET
TAIL_CHARS = 4000


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 120.0  # wall-clock timeout of one sandboxed process
    cpu_s: int = 120  # CPU seconds (all threads together)
    memory_mb: int = 4096  # address space; numpy/xgboost reserve more than they touch
    output_mb: int = 16  # largest file the program may write, stdout and stderr included
    threads: int = 1  # OMP/BLAS threads
    max_processes: int = 64  # processes and threads of one sandbox, all together
    allow_unconfined: bool = False  # run a hosted model's code even without bubblewrap


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
        (workdir / "job.json").write_text(json.dumps({"read_roots": _read_roots()}))
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
        command = _bwrap(command, workdir, limits)
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
            env=_environment(workdir, limits),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            pass_fds=(channel.fileno(),),
            start_new_session=True,  # its own process group, killed as a whole on timeout
            preexec_fn=lambda: (group.enter(), _apply_limits(limits)),
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


def _apply_limits(limits: SandboxLimits) -> None:
    """Runs in the child between fork and exec."""
    cpu = int(limits.cpu_s)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    size = limits.output_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Binds every user but root (whom the pids cgroup of ProcessGroup limits instead).
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))


def _environment(workdir: Path, limits: SandboxLimits) -> dict[str, str]:
    """A fresh environment: nothing of the parent's (API keys included) is inherited."""
    threads = str(limits.threads)
    return {
        "PATH": "/usr/bin:/bin",
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


def _tail(handle: BinaryIO) -> str:
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


def _bwrap(command: list[str], workdir: Path, limits: SandboxLimits) -> list[str]:
    """`command` under bubblewrap: only /usr, the Python installation and, at `workdir`, a
    scratch tmpfs of `limits.output_mb` holding the inputs read-only, exist."""
    python_dirs = sorted({sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix)})
    binds = [a for d in python_dirs if not d.startswith("/usr") for a in ("--ro-bind", d, d)]
    links = [
        a
        for link in ("/bin", "/lib", "/lib32", "/lib64", "/sbin")
        if os.path.islink(link)
        for a in ("--symlink", os.readlink(link), link)
    ]
    etc = [
        a
        for f in ("/etc/ld.so.cache", "/etc/localtime")
        if os.path.exists(f)
        for a in ("--ro-bind", f, f)
    ]
    inputs = [
        a
        for f in sorted(workdir.iterdir())
        for a in (("--dir", str(f)) if f.is_dir() else ("--ro-bind", str(f), str(f)))
    ]
    return [
        "bwrap",
        "--unshare-all",  # user, mount, pid, network, ipc, uts, cgroup namespaces
        "--die-with-parent",
        "--new-session",  # no TIOCSTI into the harness's terminal
        "--cap-drop",
        "ALL",
        *_no_nested_userns(),
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--tmpfs",
        "/",
        # /tmp first: the Python installation (a venv in a CI checkout, say) and the work
        # directory may both live under /tmp, and a later tmpfs would hide their binds.
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        "/usr",
        "/usr",
        *links,
        *binds,
        *etc,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # Scratch space the size of the output limit: RLIMIT_FSIZE caps one file, this all of
        # them; nothing the program writes reaches the host's disk.
        "--size",
        str(limits.output_mb * 1024 * 1024),
        "--tmpfs",
        str(workdir),
        *inputs,
        "--chdir",
        str(workdir),
        "--",
        *command,
    ]


@cache
def _no_nested_userns() -> list[str]:
    """bwrap >= 0.8 can forbid user namespaces inside the sandbox: a nested one would give the
    program every capability again there (not a way out, but a large kernel attack surface)."""
    try:
        usage = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    disable = "--disable-userns" in usage.stdout + usage.stderr
    return ["--unshare-user", "--disable-userns"] if disable else []


class ProcessGroup:
    """A pids cgroup (v1 or v2) holding one sandbox, when the harness may create one (root);
    it caps the processes of the sandbox and lets every one of them be killed afterwards."""

    ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))

    def __init__(self, max_processes: int) -> None:
        self.max_processes = max_processes
        self.path: Path | None = None

    def __enter__(self) -> ProcessGroup:
        for root in self.ROOTS:
            if not (root / "cgroup.procs").exists() or not os.access(root, os.W_OK):
                continue
            if root.name != "pids" and "pids" not in _read(root / "cgroup.subtree_control"):
                continue
            path = root / f"bench-sandbox-{os.getpid()}-{time.monotonic_ns()}"
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(self.max_processes))
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            self.path = path
            break
        return self

    def enter(self) -> None:
        """In the child, before exec: join the group (its descendants follow)."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def kill_all(self) -> None:
        if self.path is None:
            return
        for _ in range(50):
            pids = [int(p) for p in _read(self.path / "cgroup.procs").split()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            self.kill_all()
            with contextlib.suppress(OSError):
                self.path.rmdir()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@cache
def confinement_available() -> bool:
    """Whether bubblewrap can confine a Python child here (it needs unprivileged user
    namespaces, which some containers disable); checked once per process."""
    if shutil.which("bwrap") is None:
        return False
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-probe-") as tmp:
        workdir = Path(tmp)
        probe = _bwrap([sys.executable, "-I", "-c", "import numpy"], workdir, SandboxLimits())
        env = _environment(workdir, SandboxLimits())
        try:
            done = subprocess.run(probe, capture_output=True, timeout=60, env=env)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


namespaces_available = confinement_available  # the older name

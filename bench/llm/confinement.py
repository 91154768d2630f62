"""The sandbox's confinement: its limits, the bubblewrap command line, its environment and
the process group that holds it (bench/llm/sandbox.py runs programs inside them).

Bubblewrap (``bwrap``, a well-kept tool used by Flatpak) gives new user, mount, PID, network, IPC
and UTS namespaces, all capabilities dropped (the process cannot `chroot`, `mount` or
`pivot_root` its way out), a tmpfs root holding only /usr and the Python installation
(read-only) and the run's own directory, a fresh /proc of the sandbox's own processes, no
network, and death with the harness. Further: a process limit (a pids cgroup when the harness
runs as root, whom RLIMIT_NPROC does not bind, else RLIMIT_NPROC), CPU-time, address-space and
file-size rlimits, and an environment holding nothing of the parent's (API keys stay outside).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "ProcessGroup",
    "SandboxLimits",
    "apply_limits",
    "bwrap_command",
    "confinement_available",
    "environment",
    "no_nested_userns",
    "read_roots",
]


@dataclass(frozen=True)
class SandboxLimits:
    """The limits of one sandboxed process (`method.params.sandbox.*` of llm_codegen)."""

    wall_s: float = 120.0  # wall-clock timeout of one sandboxed process
    cpu_s: int = 120  # CPU seconds (all threads together)
    memory_mb: int = 4096  # address space; numpy/xgboost reserve more than they touch
    output_mb: int = 16  # largest file the program may write, stdout and stderr included
    threads: int = 1  # OMP/BLAS threads
    max_processes: int = 64  # processes and threads of one sandbox, all together
    allow_unconfined: bool = False  # run a hosted model's code even without bubblewrap


def apply_limits(limits: SandboxLimits) -> None:
    """The rlimits of `limits`, set in the child between fork and exec."""
    cpu = int(limits.cpu_s)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    size = limits.output_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Binds every user but root (whom the pids cgroup of ProcessGroup limits instead).
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))


def environment(workdir: Path, limits: SandboxLimits) -> dict[str, str]:
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


@cache
def read_roots() -> list[str]:
    """What the program may read: the Python installation and system libraries."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {os.path.realpath(r) for r in roots}
    roots |= {"/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib", "/lib64", "/usr/share/zoneinfo"}
    roots |= {"/etc/localtime", "/dev/null", "/dev/urandom", "/sys/fs/cgroup"}
    roots |= {"/sys/devices/system/cpu"}
    return sorted(roots)


def bwrap_command(command: list[str], workdir: Path, limits: SandboxLimits) -> list[str]:
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
        *no_nested_userns(),
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
def no_nested_userns() -> list[str]:
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
        probe = bwrap_command(
            [sys.executable, "-I", "-c", "import numpy"], workdir, SandboxLimits()
        )
        env = environment(workdir, SandboxLimits())
        try:
            done = subprocess.run(probe, capture_output=True, timeout=60, env=env)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0

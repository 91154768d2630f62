"""The report folder is replaced whole or not at all: SIGTERM during `bench-report`, or a disk
that fills up while it writes, leaves the previous report exactly as it was, and a reader never
sees a new report.md beside an old report.html. Real bench-run and bench-report processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.report.swap import STAGING_PREFIX, staged_folder

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
RUNS = ["dataset=callcenter", "method=majority,logreg", "n_train=[16]"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def store_with_report(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A store whose report covers seed 0, with more runs (seed 1) stored since: a new report
    would differ in every file."""
    store = tmp_path / "store"
    first = run(str(BIN / "bench-run"), "-m", *RUNS, "seeds=[0]", f"results_dir={store}",
                cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    old = snapshot(store / "report")
    more = run(str(BIN / "bench-run"), "-m", *RUNS, "seeds=[0,1]", f"results_dir={store}",
               "report=false", cwd=tmp_path)  # fmt: skip
    assert more.returncode == 0, more.stderr
    return store, old


def test_sigterm_during_bench_report_leaves_the_previous_report_whole(
    tmp_path: Path, store_with_report: tuple[Path, dict[str, bytes]]
) -> None:
    store, old = store_with_report
    stopped_midway = 0
    for delay in (0.5, 1.5, 2.2, 2.6, 2.9, 3.2):  # before, during and around the writing
        report = subprocess.Popen([str(BIN / "bench-report"), str(store)], cwd=tmp_path)
        time.sleep(delay)
        report.send_signal(signal.SIGTERM)
        report.wait(timeout=60)
        now = snapshot(store / "report")
        if report.returncode == 0:  # it finished first: a whole new report
            assert now.keys() == old.keys() and now["report.md"] != old["report.md"]
            break
        stopped_midway += 1
        assert report.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)  # before/after
        # stopped before the swap: the old report; after it (before exiting): the whole new one
        whole_new = now.keys() == old.keys() and now["report.md"] != old["report.md"]
        assert now == old or whole_new, f"SIGTERM after {delay} s left a mixed report"
        assert not [p for p in store.iterdir() if p.name.startswith(".report-")]
    assert stopped_midway >= 2


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs (needs root)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = run("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(where), cwd=tmp_path)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        run("umount", str(where), cwd=tmp_path)


def test_a_full_disk_during_bench_report_keeps_the_previous_report(
    tmp_path: Path, store_with_report: tuple[Path, dict[str, bytes]], small_disk: Path
) -> None:
    source, old = store_with_report
    store = small_disk / "store"
    shutil.copytree(source, store, ignore=shutil.ignore_patterns("logs"))
    free = os.statvfs(small_disk)
    room = 60_000  # less than the new report (its HTML alone is over 100 kB)
    (small_disk / "filler").write_bytes(b"\0" * (free.f_bavail * free.f_frsize - room))
    done = run(str(BIN / "bench-report"), str(store), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"bench-report: cannot write the report to {store / 'report'}: No space left on "
        "device; the previous report (if any) is unchanged"
    )
    assert snapshot(store / "report") == old
    assert not [p for p in store.iterdir() if p.name.startswith(".report-")]


def test_a_reader_sees_the_old_folder_or_the_new_one(tmp_path: Path) -> None:
    """The swap itself: the folder's content is replaced at once, and an error while writing
    the new one leaves the old one and no staging folder."""
    target = tmp_path / "report"
    target.mkdir()
    (target / "report.md").write_text("old")
    (target / "report.html").write_text("old")
    with pytest.raises(OSError), staged_folder(target) as stage:
        (stage / "report.md").write_text("new")
        raise OSError(28, "No space left on device")
    assert snapshot(target) == {"report.html": b"old", "report.md": b"old"}
    with staged_folder(target) as stage:
        (stage / "report.md").write_text("new")
        (stage / "report.html").write_text("new")
        assert snapshot(target) == {"report.html": b"old", "report.md": b"old"}
    assert snapshot(target) == {"report.html": b"new", "report.md": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_staging_folder_of_a_killed_process_is_cleared(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    left = tmp_path / f"{STAGING_PREFIX}{dead}-abcd1234"
    left.mkdir()
    (left / "report.md").write_text("half")
    with staged_folder(tmp_path / "report") as stage:
        (stage / "report.md").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]

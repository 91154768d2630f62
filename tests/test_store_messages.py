"""The store's messages tell the truth: a run that could not be stored is never logged ok, a
results folder that cannot be written is refused in one line before the sweep, and a read-only
store is read, not blamed. Real bench-run and bench-report processes throughout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
ONE_RUN = ["dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[16]"]


def cli(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(a writable folder, the same folder mounted read-only): needs root and bind mounts."""
    source, view = tmp_path / "source", tmp_path / "view"
    source.mkdir()
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        again = ["mount", "-o", "remount,bind,ro", str(view)]
        if subprocess.run(again, capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield source, view
    finally:
        subprocess.run(["umount", str(view)], capture_output=True)


def test_a_run_that_cannot_be_stored_is_not_logged_ok_and_leaves_no_orphan(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "runs").write_text("")  # the record cannot be written (as on a full disk)
    done = cli("bench-run", *ONE_RUN, f"results_dir={results}", "report=false", cwd=tmp_path)
    out = done.stdout + done.stderr
    assert "Could not write run" in out
    assert "ok accuracy=" not in out, out
    assert "ok, not stored (see the error above)" in out
    assert "1 run(s) were executed but could not be stored" in out
    assert "Executed 1 new run(s) (1 not stored)" in out
    assert done.returncode == 1, out
    assert list((results / "predictions").glob("*")) == []  # written first, then removed


def test_on_a_full_disk_no_run_is_logged_ok(tmp_path: Path) -> None:
    """A 1 MB tmpfs filled to the last block: the sweep starts (its Hydra logs go elsewhere),
    every run executes, none can be stored, and none is said to be ok."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        results = disk / "results"
        (results / "runs").mkdir(parents=True)
        free = os.statvfs(disk)
        (disk / "filler").write_bytes(b"\0" * (free.f_bavail * free.f_frsize))
        done = cli(
            "bench-run",
            *ONE_RUN[:2],
            "seeds=[0,1]",
            "n_train=[16]",
            f"results_dir={results}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            "report=false",
            cwd=tmp_path,
        )
        out = done.stdout + done.stderr
        assert "No space left on device" in out
        assert "ok accuracy=" not in out, out
        assert out.count("ok, not stored (see the error above)") == 2, out
        assert "Executed 2 new run(s) (2 not stored)" in out, out
        assert done.returncode == 1, out
        assert not list((results / "runs").glob("*.json"))
        assert not list(results.glob("predictions/*.parquet"))
    finally:
        subprocess.run(["umount", str(disk)])


@pytest.mark.parametrize("where", ["parent_is_a_file", "read_only"])
def test_a_results_folder_that_cannot_be_written_is_refused_in_one_line(
    tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    if where == "read_only":
        _, view = request.getfixturevalue("read_only")
        results = view / "results"
        cause = f"{results} cannot be written (Read-only file system)"
    else:
        (tmp_path / "afile").write_text("")
        results = tmp_path / "afile" / "results"
        cause = f"{tmp_path / 'afile'} is a file, not a folder"
    done = cli("bench-run", *ONE_RUN, f"results_dir={results}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"bench-run: nothing was run; results_dir: {cause}"]


def test_a_finished_sweep_on_a_read_only_store_has_nothing_to_do(
    tmp_path: Path, read_only: tuple[Path, Path]
) -> None:
    source, view = read_only
    first = cli("bench-run", *ONE_RUN, f"results_dir={source / 'store'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = cli("bench-run", *ONE_RUN, f"results_dir={view / 'store'}", cwd=tmp_path)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert "Nothing new to run" in out
    assert "stopped early" not in out and "Traceback" not in out, out
    # A sweep with a run still to do cannot be done there: refused, not started.
    two_seeds = [*ONE_RUN[:2], "seeds=[0,1]", "n_train=[16]"]
    more = cli("bench-run", *two_seeds, f"results_dir={view / 'store'}", cwd=tmp_path)
    assert more.returncode == 2 and "Read-only file system" in more.stderr, more.stderr


def test_bench_report_on_a_read_only_store_says_so_in_one_line(
    tmp_path: Path, read_only: tuple[Path, Path]
) -> None:
    source, view = read_only
    store = source / "store"
    ran = cli("bench-run", *ONE_RUN, f"results_dir={store}", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    before = (store / "report" / "report.html").read_bytes()
    done = cli("bench-report", str(view / "store"), cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"bench-report: cannot write the report to {view / 'store' / 'report'}: Read-only file "
        "system; the previous report (if any) is unchanged"
    ]
    assert (store / "report" / "report.html").read_bytes() == before
    shutil.rmtree(store / "report")

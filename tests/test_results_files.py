"""The results store with foreign files in it and colleagues sharing it."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from bench.report import write_report
from bench.results import ResultsStore, load_results
from bench.runner import run_job


@pytest.fixture
def small_store(compose_run: Callable[..., DictConfig]) -> Path:
    cfg = compose_run("dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[16]")
    run_job(cfg)
    return Path(cfg.results_dir)


def test_a_json_file_that_is_not_a_record_is_skipped_and_named(small_store: Path) -> None:
    foreign = small_store / "runs" / "notes.json"
    foreign.write_text("[1, 2]")
    (small_store / "runs" / "broken.json").write_text("{not json")
    frame = load_results(small_store)
    assert len(frame) == 1 and frame.loc[0, "status"] == "ok"
    named = dict(frame.attrs["unreadable"])
    assert "not a run record (a JSON list)" in named[str(foreign)]
    assert len(named) == 2
    report = write_report(small_store)
    text = (report / "report.md").read_text()
    assert "2 unreadable file(s) in runs/ were skipped" in text and "notes.json" in text
    assert "notes.json" in (report / "report.html").read_text()


def test_a_foreign_json_with_a_status_is_not_a_run(small_store: Path) -> None:
    """A file that says `{"status": "ok"}` but names no run is listed as unreadable, never
    counted as a run (nor in the report's counts)."""
    foreign = small_store / "runs" / "status.json"
    foreign.write_text('{"status": "ok"}')
    odd = small_store / "runs" / "odd.json"
    odd.write_text('{"status": "great", "run_stem": "x", "dataset": "d", "method": "m"}')
    frame = load_results(small_store)
    assert len(frame) == 1
    named = dict(frame.attrs["unreadable"])
    assert named[str(foreign)] == "not a run record (no run_stem, dataset, method)"
    assert named[str(odd)] == "not a run record (status 'great')"
    assert len(ResultsStore(small_store).runs()) == 1
    text = (write_report(small_store) / "report.md").read_text()
    assert "2 unreadable file(s) in runs/ were skipped" in text


def test_a_missing_results_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"results directory .*typo does not exist"):
        load_results(tmp_path / "typo")


def test_records_respect_the_umask(tmp_path: Path) -> None:
    # A fresh interpreter under umask 002 (a shared group folder): files are group-writable.
    code = (
        "import os, sys; os.umask(0o002);"
        "from bench.results import ResultsStore;"
        "ResultsStore(sys.argv[1])"
        ".save({'run_stem': 'r', 'dataset': 'd', 'method': 'm', 'status': 'ok'})"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    mode = stat.S_IMODE((tmp_path / "runs" / "r.json").stat().st_mode)
    assert mode == 0o664, oct(mode)
    stored = ResultsStore(tmp_path).load("r")
    assert stored is not None and (stored["run_stem"], stored["status"]) == ("r", "ok")

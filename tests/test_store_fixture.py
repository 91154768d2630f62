"""A results store written by an earlier `main` still loads, resumes and reports the same.

tests/fixtures/store_6a90002/ holds runs/ and predictions/ as `bench-run` wrote them at commit
c8ac52d (after 6a90002; the record layout of both), with the commands in `SWEEPS` plus one
failed run (`method=random_forest method.params.n_estimators=-5`) and one unavailable run
(`method=tabpfn`, no weights): classical methods at two seeds and three sizes (n_train=0 is
skipped), and llm_icl with the embedded Gemma 3 270M. tests/fixtures/store_6a90002_report/
holds what that code made of it: `load_results` (load_results.json) and `bench-report`'s
per-dataset table (callcenter.md) and report.md.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.config import compose_config
from bench.results import LEADING_COLUMNS, load_results
from bench.runner import run_job

FIXTURES = Path(__file__).parent / "fixtures"
STORE = FIXTURES / "store_6a90002"
EXPECTED = FIXTURES / "store_6a90002_report"
BIN = Path(sys.executable).parent
TEST_ROWS = "split.max_test_rows=40"
# The sweeps whose runs all finished (ok or skipped): resuming them executes nothing.
SWEEPS = {
    "classical": [
        "-m",
        "dataset=callcenter",
        "method=majority,logreg,xgboost",
        "seeds=[0,1]",
        "n_train=[0,16,64]",
        TEST_ROWS,
    ],
    "llm_icl": ["dataset=callcenter", "method=llm_icl", "seeds=[0,1]", "n_train=[16]", TEST_ROWS],
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A copy of the stored results: a test may write into it."""
    return Path(shutil.copytree(STORE, tmp_path / "store"))


def plain(value: Any) -> Any:
    """A frame cell as the snapshot holds it (JSON: NaN as null, numpy scalars as Python's)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def test_the_old_store_loads_into_the_same_frame(store: Path) -> None:
    expected = json.loads((EXPECTED / "load_results.json").read_text())
    frame = load_results(store)
    assert (
        list(frame.columns[: len(LEADING_COLUMNS)]) == expected["columns"][: len(LEADING_COLUMNS)]
    )
    assert set(expected["columns"]) <= set(frame.columns)  # columns may be added, none lost
    assert len(frame) == len(expected["rows"])
    for row, old in zip(frame.to_dict(orient="records"), expected["rows"], strict=True):
        assert {c: plain(row[c]) for c in old} == old, old["run_stem"]
    for column, dtype in expected["dtypes"].items():
        assert str(frame[column].dtype) == dtype, column


def test_resuming_the_old_sweeps_in_process_executes_nothing(store: Path) -> None:
    before = {p.name: p.read_bytes() for p in (store / "runs").glob("*.json")}
    for method in ("majority", "logreg", "xgboost"):
        cfg = compose_config(
            [
                "dataset=callcenter",
                f"method={method}",
                "seeds=[0,1]",
                "n_train=[0,16,64]",
                TEST_ROWS,
                f"results_dir={store}",
            ]
        )
        summary = run_job(cfg)
        assert (sum(summary.executed.values()), summary.already_done) == (0, 6), method
    cfg = compose_config([*SWEEPS["llm_icl"], f"results_dir={store}"])
    summary = run_job(cfg)
    assert (sum(summary.executed.values()), summary.already_done) == (0, 2)
    assert {p.name: p.read_bytes() for p in (store / "runs").glob("*.json")} == before


@pytest.mark.e2e
def test_bench_run_resumes_the_old_sweeps_without_executing_anything(
    store: Path, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in (store / "runs").glob("*.json")}
    for name, args in SWEEPS.items():
        done = subprocess.run(
            [str(BIN / "bench-run"), *args, f"results_dir={store}", "report=false"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Executed 0 new run(s)" in done.stdout, (name, done.stdout)
        assert "Nothing new to run" in done.stdout, name
    assert {p.name: p.read_bytes() for p in (store / "runs").glob("*.json")} == before


def table_rows(markdown: str) -> list[str]:
    """The Markdown table rows of a page, spacing normalised."""
    return [
        re.sub(r"\s+", " ", line.strip()) for line in markdown.splitlines() if line.startswith("|")
    ]


NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


@pytest.mark.e2e
def test_bench_report_writes_the_same_tables_and_numbers(store: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "bench-report"), str(store)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = store / "report"
    # the per-dataset table, byte for byte
    assert (report / "callcenter.md").read_text() == (EXPECTED / "callcenter.md").read_text()
    old = (EXPECTED / "report.md").read_text()
    new = (report / "report.md").read_text()
    # every table row of the old page (verdict table, costs, skipped and failed runs) ...
    missing = [row for row in table_rows(old) if row not in table_rows(new)]
    assert not missing, missing
    # ... and the numbers of its verdicts, in order
    verdicts = [line for line in old.splitlines() if line.startswith("- With ")]
    assert verdicts
    for line in verdicts:
        numbers = NUMBER.findall(line)
        found = next((n for n in new.splitlines() if NUMBER.findall(n) == numbers), None)
        assert found is not None, line
    runs = re.search(r"Runs: \d+ \([^)]*\)", old)
    assert runs is not None and runs.group(0) in new

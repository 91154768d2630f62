"""The report's retrieval control on a real sweep: `llm_icl_knn` with the embedded Gemma at a
tiny size and `knn` on the same rows, run by `bench-run`, reported by `bench-report`: LLM - kNN
with the paired bootstrap of bench/report/paired.py over the same test rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.report.compare import N_BOOT, PredictionReader
from bench.report.content import collect
from bench.report.paired import paired_bootstrap
from bench.report.retrieval import RETRIEVAL_NOTE, retrieval_blocks, retrieval_table
from bench.report.runs import prepare_runs
from bench.report.stats import ALPHA
from bench.results import load_results

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
LLM_LABEL = "llm_icl_knn (local_gemma3_270m)"
TEST_ROWS = 30
K = 4  # shots and voters: few, so that the prompts stay short on 2 shared cores


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seed, 64 training rows, 30 test rows: the retrieval LLM with 4 shots and its control
    with k set to match."""
    root = tmp_path_factory.mktemp("retrieval")
    results = root / "results"
    common = [
        "dataset=callcenter",
        "n_train=[64]",
        "seeds=[0]",
        f"split.max_test_rows={TEST_ROWS}",
        f"results_dir={results}",
        f"llm.cache_path={root / 'cache.sqlite'}",
    ]
    for method, k, report in (
        ("llm_icl_knn", "max_shots", "report=false"),
        ("knn", "k", "report=true"),
    ):
        done = subprocess.run(
            [str(BIN / "bench-run"), f"method={method}", f"method.params.{k}={K}", *common, report],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return results


def test_the_report_shows_llm_minus_knn_with_a_paired_interval(sweep: Path) -> None:
    report = (sweep / "report" / "report.md").read_text()
    assert "### What the LLM adds beyond its neighbours' labels" in report
    assert RETRIEVAL_NOTE.split(":")[0] in report
    line = next(row for row in report.splitlines() if row.startswith(f"| {LLM_LABEL} | 64 |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == str(K)  # k: the LLM's shots, the kNN's voters
    assert cells[4].startswith("knn: 0.")
    assert f", {TEST_ROWS} rows)" in cells[5] and " to " in cells[5]
    assert (
        "What the LLM adds beyond its neighbours" in (sweep / "report" / "report.html").read_text()
    )


def test_the_interval_is_the_paired_bootstrap_over_the_same_test_rows(sweep: Path) -> None:
    runs = prepare_runs(load_results(sweep)).runs
    reader = PredictionReader(sweep)
    table = retrieval_table(runs, "roc_auc", reader)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["label"], row["control"], row["k"], row["seeds"]) == (LLM_LABEL, "knn", K, 1)
    llm, knn = (runs[runs["method"] == m].iloc[0] for m in ("llm_icl_knn", "knn"))
    assert llm["details"]["selection"] == "knn" and knn["details"]["k"] == K
    assert llm["train_rows_hash"] == knn["train_rows_hash"]
    pa, pb = reader.read(llm), reader.read(knn)
    merged = pa.merge(pb, on="row", suffixes=("_a", "_b"))
    assert len(merged) == len(pa) == len(pb) == TEST_ROWS
    y = (merged["y_true_a"] == "yes").to_numpy(dtype=int)
    direct = paired_bootstrap(
        [(y, merged["proba_yes_a"].to_numpy(), merged["proba_yes_b"].to_numpy())],
        "roc_auc",
        n_boot=N_BOOT,
        alpha=ALPHA,
    )
    assert row["difference"] == pytest.approx(llm["roc_auc"] - knn["roc_auc"])
    assert (row["low"], row["high"]) == pytest.approx((direct.low, direct.high))
    assert row["basis"] == "rows" and row["n_rows"] == TEST_ROWS
    assert row["low"] < row["difference"] < row["high"]


def test_a_knn_with_another_k_is_named_not_paired(sweep: Path) -> None:
    runs = prepare_runs(load_results(sweep)).runs
    for i in runs.index[runs["method"] == "knn"]:
        runs.at[i, "details"] = {**runs.at[i, "details"], "k": 16}
    table = retrieval_table(runs, "roc_auc", PredictionReader(sweep))
    row = table.iloc[0]
    assert row["seeds"] == 0 and np.isnan(row["difference"])
    assert row["unpaired"] == f"seed 0: k differs (LLM {K}, kNN 16)"


def test_other_training_or_test_rows_are_not_paired_and_no_control_is_said(sweep: Path) -> None:
    runs = prepare_runs(load_results(sweep)).runs
    moved = runs.assign(
        train_rows_hash=runs["train_rows_hash"].where(runs["method"] != "knn", "another draw")
    )
    assert retrieval_table(moved, "roc_auc", PredictionReader(sweep)).iloc[0]["unpaired"] == (
        "seed 0: other training rows"
    )
    other_test = runs.assign(
        test_rows_hash=runs["test_rows_hash"].where(runs["method"] != "knn", "another draw")
    )
    row = retrieval_table(other_test, "roc_auc", PredictionReader(sweep)).iloc[0]
    assert (row["unpaired"], row["seeds"]) == ("seed 0: other test rows", 0)
    alone = runs[runs["method"] != "knn"]
    row = retrieval_table(alone, "roc_auc", PredictionReader(sweep)).iloc[0]
    assert row["control"] is None and row["seeds"] == 0


def test_runs_without_retrieval_add_no_block(sweep: Path) -> None:
    """A store without a retrieval LLM run (or written before runs kept details) is unchanged."""
    section = collect(sweep).datasets[0]
    assert retrieval_blocks(section)
    section.runs = section.runs[section.runs["method"] == "knn"]
    assert retrieval_blocks(section) == []
    section.runs = section.runs.drop(columns=["details"])
    assert retrieval_blocks(section) == []

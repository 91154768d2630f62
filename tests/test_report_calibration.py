"""The report on runs scored without logprobs (bench/report/calibration.py, runs.py labels).

Real runs (`run_job`, llm_icl on callcenter) against the loopback server (tests/loopback.py):
one scored by logprobs, one by `auto` behind a proxy that strips the logprobs (so verbalized),
one `sampled`, all of the same LLM, and logreg for the verdict. The report must keep them
apart as three methods, mark the two without logprobs, and show their ECE and Brier.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from loopback import LLMServer, stripping_logprobs
from omegaconf import DictConfig

from bench.llm.scoring import NOT_LOGPROBS, scored_by
from bench.report import write_report
from bench.report.calibration import CALIBRATION_TITLE, calibration_rows
from bench.report.runs import method_labels, prepare_runs
from bench.report.verdict import dataset_verdict
from bench.results import ResultsStore, load_results
from bench.runner import run_job

Compose = Callable[..., DictConfig]
TEST_ROWS = 16
LLM = "openai_compatible"


def _job(url: str, server: LLMServer, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "dataset=callcenter",
        "method=llm_icl",
        "seeds=[0]",
        "n_train=[8]",
        f"split.max_test_rows={TEST_ROWS}",
        "llm=openai_compatible",
        "llm.api=chat",
        f"llm.base_url={url}",
        f"llm.model={server.model}",
        f"llm.cache_path={tmp_path / 'cache.sqlite'}",
        "llm.max_retries=0",
        "llm.timeout_s=600",  # a loaded test machine: slow, not broken
        *extra,
    ]


def test_labels_name_the_scoring_only_when_it_is_not_logprobs() -> None:
    runs = pd.DataFrame(
        {
            "method": ["llm_icl", "llm_icl", "llm_icl", "logreg"],
            "llm": [LLM, LLM, LLM, None],
            "serializer": ["list", "list", "list", None],
            "details": [
                {"scoring": {"logprobs": 10}},
                {"scoring": {"verbalized": 10}},
                None,  # a record from before the scoring was counted
                {},
            ],
        }
    )
    assert list(method_labels(runs)) == [
        f"llm_icl ({LLM})",
        f"llm_icl ({LLM}, verbalized{NOT_LOGPROBS})",
        f"llm_icl ({LLM})",
        "logreg",
    ]
    assert scored_by({"scoring": {"logprobs": 9, "generation": 1}}) == "logprobs"
    assert scored_by({"scoring": {"logprobs": 1, "generation": 9}}) == "generation"


@pytest.mark.e2e
def test_runs_without_logprobs_are_marked_and_kept_apart(
    llm_server: LLMServer,
    fault_proxy: Callable[..., Any],
    compose_run: Compose,
    tmp_path: Path,
) -> None:
    stripped = fault_proxy(llm_server, rewrite=stripping_logprobs)
    server = llm_server.base_url
    jobs = [
        _job(server, llm_server, tmp_path),  # logprobs
        # SmolLM2 states no probability: let every answer count as unparsed, not fail the run
        _job(stripped.url, llm_server, tmp_path, "llm.max_invalid_share=1.0"),  # auto
        _job(server, llm_server, tmp_path, "llm.scoring=sampled", "llm.scoring_samples=3"),
    ]
    for job in jobs:
        cfg = compose_run(*job)
        assert dict(run_job(cfg).executed) == {"ok": 1}
    cfg = compose_run(
        "dataset=callcenter", "method=logreg", "seeds=[0]", "n_train=[8]",
        f"split.max_test_rows={TEST_ROWS}",
    )  # fmt: skip
    run_job(cfg)

    records = {scored_by(r.get("details")): r for r in ResultsStore(cfg.results_dir).records()}
    assert set(records) == {"logprobs", "verbalized", "sampled"}  # logreg has no scoring
    auto = records["verbalized"]  # auto, behind the stripping proxy: recorded as verbalized
    assert auto["spec"]["llm"].get("scoring", "auto") == "auto"  # the default stays out
    assert auto["details"]["scoring"] == {"verbalized": TEST_ROWS}
    assert auto["details"]["unparsed_answers"] == auto["details"]["invalid_answers"]
    sampled = records["sampled"]["details"]
    assert sampled["scoring"] == {"sampled": TEST_ROWS}
    assert 0 <= sampled["unparsed_answers"] <= 3 * TEST_ROWS
    assert "unparsed_answers" not in records["logprobs"]["details"]  # unchanged record

    prepared = prepare_runs(load_results(cfg.results_dir)).runs
    icl = prepared[prepared["method"].eq("llm_icl")]
    verbalized = f"llm_icl ({LLM}, verbalized{NOT_LOGPROBS})"
    sampled_label = f"llm_icl ({LLM}, sampled{NOT_LOGPROBS})"
    assert set(icl["label"]) == {f"llm_icl ({LLM})", verbalized, sampled_label}
    verdict = dataset_verdict(prepared, "roc_auc", "callcenter")
    (comparison,) = verdict.comparisons
    assert comparison.llm in set(icl["label"])  # one method of the three, never a pool
    # the comparison's mean is that one label's own score
    own = icl.loc[icl["label"].eq(comparison.llm), "roc_auc"].mean()
    assert comparison.llm_mean == pytest.approx(own)

    rows = calibration_rows(prepared, "roc_auc")
    by_label = {row[0]: row for row in rows}
    assert set(by_label) == set(icl["label"])  # the logprob run of that LLM, for comparison
    assert by_label[verbalized][2] == f"verbalized{NOT_LOGPROBS}"
    ece = icl.loc[icl["label"].eq(sampled_label), "ece"].iloc[0]
    assert by_label[sampled_label][4] == f"{ece:.3f}"
    assert by_label[verbalized][7] == f"{auto['details']['invalid_answers']} of {TEST_ROWS}"
    assert by_label[f"llm_icl ({LLM})"][6:8] == ("-", "-")

    report = (write_report(cfg.results_dir) / "report.md").read_text()
    lines = [re.sub(r"\s+", " ", line.strip()) for line in report.splitlines()]
    assert CALIBRATION_TITLE in report
    marked = f"| {verbalized} | 8 | verbalized{NOT_LOGPROBS} |"
    assert any(line.startswith(marked) for line in lines)
    assert any("| ECE | Brier | unparsed | uniform rows |" in line for line in lines)
    assert f"{NOT_LOGPROBS} marks a method whose probabilities were not read" in report

"""Answers that name no class (issue 27, item 1): a run whose LLM answers are unusable is not ok.

Against the real loopback server (tests/loopback.py) with a proxy in front that rewrites every
answer: a refusal (`refusing`), or a word where a letter was asked (`answering`). Above
`llm.max_invalid_share` the run is `failed` with the count and an example answer; at or below it
the run is ok and says how many answers were guessed and how (record, log line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from loopback import REFUSAL, LLMServer, refusing
from omegaconf import DictConfig

from bench.report import write_report
from bench.results import ResultsStore
from bench.runner import run_job

Compose = Callable[..., DictConfig]
TEST_ROWS = 10


def _records(cfg: DictConfig) -> list[dict[str, Any]]:
    return list(ResultsStore(cfg.results_dir).records())


def _endpoint(proxy_url: str, server: LLMServer, tmp_path: Path) -> list[str]:
    return [
        "llm=openai_compatible",
        f"llm.base_url={proxy_url}",
        f"llm.model={server.model}",
        f"llm.cache_path={tmp_path / 'cache.sqlite'}",
        "llm.max_retries=0",
    ]


def _job(method: str, *extra: str) -> list[str]:
    return [
        "dataset=callcenter",
        f"method={method}",
        "seeds=[0]",
        "n_train=[8]",
        f"split.max_test_rows={TEST_ROWS}",
        *extra,
    ]


def answering(word: str) -> Callable[[dict], dict]:
    """A proxy `rewrite`: every answer is `word`, with no logprobs (a model that answers a class
    name where the prompt asked for a letter)."""

    def rewrite(answer: dict) -> dict:
        for choice in answer.get("choices", []):
            choice["logprobs"] = None
            if "message" in choice:
                choice["message"]["content"] = word
            else:
                choice["text"] = word
        return answer

    return rewrite


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["llm_icl", "llm_distill", "llm_icl_tuned"])
def test_refused_answers_fail_the_run_with_the_count_and_an_example(
    method: str,
    llm_server: LLMServer,
    fault_proxy: Callable[..., Any],
    compose_run: Compose,
    tmp_path: Path,
) -> None:
    proxy = fault_proxy(llm_server, rewrite=refusing)
    extra = ["method.params.n_unlabelled=10"] if method == "llm_distill" else []
    if method == "llm_icl_tuned":
        extra = ["method.params.search.max_candidates=1", "method.params.search.rewrites=0"]
    cfg = compose_run(*_job(method, *extra), *_endpoint(proxy.url, llm_server, tmp_path))
    summary = run_job(cfg)
    assert dict(summary.executed) == {"failed": 1}
    (record,) = _records(cfg)
    assert record["status"] == "failed"
    error = record["error"]
    assert "answers could not be read as a class (limit llm.max_invalid_share=0.2)" in error
    assert repr(REFUSAL) in error  # an example answer
    details = record["details"]
    if method == "llm_distill":  # the teacher's answers are the silver labels
        details = details["teacher"]
    assert details["invalid_answers"] == sum(details["scoring"].values()) > 0


@pytest.mark.e2e
def test_below_the_limit_the_run_says_how_many_were_guessed(
    llm_server: LLMServer,
    fault_proxy: Callable[..., Any],
    compose_run: Compose,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = fault_proxy(llm_server, rewrite=refusing)
    cfg = compose_run(
        *_job("llm_icl"),
        *_endpoint(proxy.url, llm_server, tmp_path),
        "llm.max_invalid_share=1.0",
    )
    with caplog.at_level(logging.INFO, logger="bench"):
        assert dict(run_job(cfg).executed) == {"ok": 1}
    (record,) = _records(cfg)
    guessed = record["details"]["guessed"]
    assert guessed.startswith(f"{TEST_ROWS} of {TEST_ROWS} answers could not be read as a class")
    assert "uniform guess (1/2 each class)" in guessed and repr(REFUSAL) in guessed
    ok_lines = [r.getMessage() for r in caplog.records if ": ok accuracy=" in r.getMessage()]
    assert ok_lines and guessed in ok_lines[-1]
    report = (write_report(cfg.results_dir) / "report.md").read_text()
    assert "Unreadable answers" in report
    assert f"n_train=8, seed=0: {TEST_ROWS} of {TEST_ROWS} answers guessed (100%)" in report


@pytest.mark.e2e
def test_letters_answered_with_words_fail_the_run(
    llm_server: LLMServer,
    fault_proxy: Callable[..., Any],
    compose_run: Compose,
    user_conf_dir: Path,
    tmp_path: Path,
) -> None:
    # Class names that share their first word fall back to answer letters (A, B).
    rows = 40
    path = tmp_path / "renewals.csv"
    lines = ["tenure,plan,outcome"] + [
        f"{i % 11},{('basic', 'pro')[i % 2]},{('not churned', 'not renewed')[i % 3 == 0]}"
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    (user_conf_dir / "dataset" / "renewals.yaml").write_text(
        f"name: renewals\nsource: csv\nparams: {{path: '{path}'}}\ntarget: outcome\n"
    )
    proxy = fault_proxy(llm_server, rewrite=answering("not renewed"))
    cfg = compose_run(
        "dataset=renewals",
        "method=llm_icl",
        "seeds=[0]",
        "n_train=[8]",
        *_endpoint(proxy.url, llm_server, tmp_path),
        conf_dir=user_conf_dir,
    )
    assert dict(run_job(cfg).executed) == {"failed": 1}
    (record,) = _records(cfg)
    assert record["details"]["verbalizer"] == {"not churned": "A", "not renewed": "B"}
    assert "answers could not be read as a class" in record["error"]
    assert "e.g. 'not renewed'" in record["error"]


def test_the_limit_is_a_share_checked_before_anything_runs() -> None:
    from bench.config import compose_config
    from bench.preflight import job_problems

    job = ["dataset=callcenter", "method=llm_icl"]
    assert not [p for p in job_problems(compose_config(job)) if "max_invalid_share" in p]
    for bad in ("1.5", "-0.1"):
        problems = job_problems(compose_config([*job, f"llm.max_invalid_share={bad}"]))
        assert any(p.startswith(f"llm.max_invalid_share={bad} is out of range") for p in problems)


def test_the_default_limit_keeps_stored_run_ids() -> None:
    """A run stored before the setting existed keeps its id at the default; another limit
    records another run (it can turn ok into failed)."""
    from bench.config import compose_config
    from bench.spec import specs_for

    job = ["dataset=callcenter", "method=llm_icl", "seeds=[0]", "n_train=[8]"]

    def stems(*extra: str) -> list[str]:
        return [s.stem for s in specs_for(compose_config([*job, *extra]))]

    assert stems() == stems("llm.max_invalid_share=0.2")
    assert stems() != stems("llm.max_invalid_share=0.5")
    determinants = specs_for(compose_config(job))[0].determinants
    assert "max_invalid_share" not in determinants["llm"]

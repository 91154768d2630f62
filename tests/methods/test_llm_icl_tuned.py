"""llm_icl_tuned with the real embedded model: the search records its candidates, stays in its
budget, chooses by validation only, and never sees a test label (shown by changing them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bench.data.dataset import Task
from bench.methods.llm_icl_tuned import LLMICLTunedClassifier, SearchSettings
from bench.runner import execute_run, specs_for

SMALL = {
    "folds": 1,
    "max_validation_rows": 8,
    "max_candidates": 3,
    "rewrites": 1,
    "max_llm_calls": 40,
}


def _tuned(cfg_llm: dict[str, Any], task: Task, **search: Any) -> LLMICLTunedClassifier:
    return LLMICLTunedClassifier(
        search={**SMALL, **search},
        llm=cfg_llm,
        serializer={"name": "csv_table", "format": "csv", "shared_header": True},
        class_labels=task.class_labels,
        target=task.target,
        task_description=task.description,
        seed=0,
    )


@pytest.fixture(scope="module")
def gemma() -> dict[str, Any]:
    from omegaconf import OmegaConf

    from bench.config import load_llm_config

    cfg = load_llm_config("local_gemma3_270m", key="llm")
    cfg.cache = False  # every candidate is computed: the budget counts real calls
    cfg.n_ctx = 4096
    return OmegaConf.to_container(cfg, resolve=True)


def test_the_search_records_its_candidates_within_budget(
    gemma: dict[str, Any], callcenter_task: Task
) -> None:
    X, y = callcenter_task.X.iloc[:32], callcenter_task.y.iloc[:32]
    model = _tuned(gemma, callcenter_task).fit(X, y)
    info = model.search_info_
    scored = [c for c in info["candidates"] if c["llm_calls"] > 0]
    assert 1 <= len(scored) <= SMALL["max_candidates"]
    assert info["llm_calls"] <= SMALL["max_llm_calls"]
    assert info["validation_rows"] == 8 and info["shot_rows"] == 24
    assert all(c["llm_calls"] == 8 for c in scored)  # one call per validation row
    best = max(scored, key=lambda c: c["validation_score"])
    assert info["validation_score"] == best["validation_score"]
    assert info["chosen"] == best["name"]  # greedy, strict improvements: the first best
    assert model.model_.k_ == 32  # the winner is refitted on every training row
    proba = model.predict_proba(callcenter_task.X.iloc[100:110])
    assert proba.shape == (10, 2) and np.allclose(proba.sum(axis=1), 1)
    usage = model.run_report().usage
    assert usage["requests"] >= info["llm_calls"]  # search calls + the 10 test rows


def test_a_zero_budget_scores_the_configured_prompt_only(
    gemma: dict[str, Any], callcenter_task: Task
) -> None:
    X, y = callcenter_task.X.iloc[:32], callcenter_task.y.iloc[:32]
    model = _tuned(gemma, callcenter_task, max_candidates=1).fit(X, y)
    assert [c["name"] for c in model.search_info_["candidates"]] == ["configured"]
    assert model.search_info_["chosen"] == "configured"


def test_cross_validation_scores_every_row_once(
    gemma: dict[str, Any], callcenter_task: Task
) -> None:
    X, y = callcenter_task.X.iloc[:24], callcenter_task.y.iloc[:24]
    model = _tuned(gemma, callcenter_task, folds="auto", max_candidates=2, max_llm_calls=60)
    info = model.fit(X, y).search_info_  # 24 rows: "auto" is 2-fold cross-validation
    assert (info["folds"], info["validation_rows"], info["shot_rows"]) == (2, 24, 12)
    scored = [c for c in info["candidates"] if c["llm_calls"] > 0]
    assert [c["llm_calls"] for c in scored] == [24, 24]  # a third would pass 60 calls
    assert info["llm_calls"] == 48


def test_bad_search_settings_name_their_key() -> None:
    problems = SearchSettings(validation=1.5, max_candidates=0, folds="many").problems()
    assert any("method.params.search.folds='many'" in p for p in problems)
    assert any("method.params.search.validation=1.5" in p for p in problems)
    assert any("method.params.search.max_candidates=0" in p for p in problems)


def test_changing_the_test_labels_does_not_change_the_chosen_prompt(
    compose_run: Callable[..., Any], callcenter_task: Task
) -> None:
    cfg = compose_run(
        "dataset=callcenter",
        "method=llm_icl_tuned",
        "serializer=csv_table",
        "seeds=[0]",
        "n_train=[24]",
        "split.max_test_rows=12",
        "llm.cache=false",
        "llm.n_ctx=4096",
        *(f"method.params.search.{k}={v}" for k, v in SMALL.items()),
    )
    (spec,) = specs_for(cfg)
    from bench.runner import _split_or_error

    split = _split_or_error(callcenter_task, spec)
    flipped_y = callcenter_task.y.copy()
    test = flipped_y.index[split.test_rows]
    labels = callcenter_task.class_labels
    other = dict(zip(labels, labels[::-1], strict=True))
    flipped_y[test] = flipped_y[test].map(other)
    flipped = dataclasses.replace(callcenter_task, y=flipped_y)

    original, _ = execute_run(spec, None, callcenter_task, split)
    changed, _ = execute_run(spec, None, flipped, split)
    assert original.status == changed.status == "ok"
    assert original.details is not None and changed.details is not None
    search, search_flipped = original.details["search"], changed.details["search"]
    assert search["chosen"] == search_flipped["chosen"]
    assert [c["validation_score"] for c in search["candidates"]] == [
        c["validation_score"] for c in search_flipped["candidates"]
    ]
    assert search["instruction"] == search_flipped["instruction"]
    # ... while the test score, computed from the flipped labels, does change
    assert original.metrics["accuracy"] + changed.metrics["accuracy"] == pytest.approx(1.0)


def test_a_degenerate_rewrite_is_recorded_not_scored() -> None:
    from bench.methods.llm_icl_tuned import _unusable

    # what Gemma 270M proposed on callcenter at 256 rows: it won on 64 validation rows by 0.008
    repeated = " ".join(
        f"{i}. The customer's issue was resolved on this contact." for i in range(6)
    )
    assert _unusable(repeated) == "the proposed instruction repeats itself: not scored"
    assert _unusable("") == "the optimizer proposed nothing"
    assert _unusable("Long queue waits make a first-contact resolution less likely.") == ""


def test_a_binary_search_metric_scores_the_datasets_positive_class() -> None:
    import pandas as pd

    from bench.methods.auto import validation_score as _score

    y = pd.Series(["yes", "no", "no", "no"])
    proba = np.array([[0.3, 0.7], [0.8, 0.2], [0.4, 0.6], [0.9, 0.1]])  # columns: no, yes
    classes = np.array(["no", "yes"])
    assert _score("precision", y, proba, classes, "yes") == 0.5  # 2 predicted yes, 1 right
    assert _score("precision", y, proba, classes, "no") == 1.0


# Every alternative is tried before a rewrite: room for the seven candidates, four validation
# rows each (12 shot rows), then one rewrite.
REWRITING = {
    "min_validation_rows": 4,
    "max_validation_rows": 4,
    "max_candidates": 9,
    "max_llm_calls": 100,
}


def test_every_llm_call_of_the_search_is_counted_and_budgeted(
    gemma: dict[str, Any], callcenter_task: Task
) -> None:
    """The prompt recorder sees every request any backend is asked: the search's count, its
    reported usage and the budget all hold every one (a rewrite used to predict the validation
    rows again for its examples of mistakes, outside all three)."""
    from bench.llm.prompt_log import PromptLog, recording

    X, y = callcenter_task.X.iloc[:16], callcenter_task.y.iloc[:16]
    log = PromptLog()
    with recording(log, "fit"):
        model = _tuned(gemma, callcenter_task, **REWRITING).fit(X, y)
    info = model.search_info_
    assert info["candidates"][-1]["name"] == "rewrite_1"
    assert [e["call"] for e in log.entries].count("generate") == 1  # the rewrite
    assert len(log.entries) == info["llm_calls"] <= REWRITING["max_llm_calls"]
    assert model.run_report().usage["requests"] == len(log.entries)  # cache off: all sent


def test_an_optimizer_failure_is_recorded_as_such(
    gemma: dict[str, Any], callcenter_task: Task
) -> None:
    """An optimizer LLM that cannot be reached (a closed loopback port): the rewrite records
    the error and the call, and the search goes on with what it has."""
    from omegaconf import OmegaConf

    from bench.config import compose_config
    from bench.llm.server import free_port

    unreachable = compose_config(
        [
            "llm=openai_compatible",
            f"llm.base_url=http://127.0.0.1:{free_port()}/v1",
            "llm.max_retries=0",
            "llm.timeout_s=5",
            "llm.cache=false",
        ]
    ).llm
    optimizer = OmegaConf.to_container(unreachable, resolve=True)
    X, y = callcenter_task.X.iloc[:16], callcenter_task.y.iloc[:16]
    model = _tuned(gemma, callcenter_task, **REWRITING, optimizer_llm=optimizer).fit(X, y)
    rewrite = model.search_info_["candidates"][-1]
    assert rewrite["name"] == "rewrite_1" and rewrite["llm_calls"] == 0
    assert rewrite["error"].startswith("the optimizer failed: "), rewrite["error"]
    scored = sum(c["llm_calls"] for c in model.search_info_["candidates"])
    assert model.search_info_["llm_calls"] == scored + 1  # the failed call counts too
    assert model.search_info_["chosen"] != "rewrite_1"


def test_a_refused_budget_fails_the_search_instead_of_losing_a_candidate(
    gemma: dict[str, Any], callcenter_task: Task, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`llm.budget_usd` refusing a call (here: $1 a prompt token, a budget of $1) is not a
    candidate that lost: the search stops and the run fails with the budget's message, for a
    scoring call and for the optimizer's rewrite (both used to be recorded and the search went
    on choosing among what it could afford)."""
    from bench.llm import budget as budget_module
    from bench.llm.budget import BudgetReached

    monkeypatch.setattr(budget_module, "_ACTIVE", None)  # this test's refusals stay its own
    monkeypatch.setattr(budget_module, "_PROCESS", None)
    budgeted = {**gemma, "budget_usd": 1.0, "prices": {**gemma["prices"], "input_per_m": 1e6}}
    X, y = callcenter_task.X.iloc[:16], callcenter_task.y.iloc[:16]
    model = _tuned(budgeted, callcenter_task, **REWRITING)
    with pytest.raises(BudgetReached, match=r"llm\.budget_usd"):
        model.fit(X, y)
    (tried,) = model.run_ledger().details["search"]["candidates"]  # the first one, then stop
    assert tried["name"] == "configured" and tried["llm_calls"] == 0

    settings = {**REWRITING, "max_candidates": 1, "rewrites": 0, "optimizer_llm": budgeted}
    model = _tuned(gemma, callcenter_task, **settings).fit(X, y)  # scored on the free model
    search = model._settings()
    fold = model._folds(X, y, search)[0]
    with pytest.raises(BudgetReached, match=r"llm\.budget_usd"):
        model._rewrite(search, model.best_, fold)


def test_set_params_changes_what_fit_tries(gemma: dict[str, Any], callcenter_task: Task) -> None:
    """The configured prompt's settings are the estimator's own parameters (scikit-learn's
    rules): set_params reaches get_params, clone and fit."""
    from sklearn.base import clone

    model = _tuned(gemma, callcenter_task, **{**REWRITING, "max_candidates": 1, "rewrites": 0})
    model.set_params(max_shots=3)
    assert model.get_params()["max_shots"] == 3
    assert clone(model).get_params()["max_shots"] == 3
    model.fit(callcenter_task.X.iloc[:16], callcenter_task.y.iloc[:16])
    assert model.model_.k_ == 3  # the refitted winner, with the configured 3 shots
    assert model.search_info_["chosen"] == "configured"

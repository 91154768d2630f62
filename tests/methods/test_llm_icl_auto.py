"""llm_icl_auto with the real embedded Gemma 3 270M at a tiny size: the serializer is picked on
validation rows drawn from the training rows, every LLM call is counted (the prompt recorder's
count is the recorded usage), no prompt holds a test row beside an answer, and the sweep's own
`serializer` is not part of the method's runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from test_protocol_sweep import CUE, prompts_of, query_row, rows_beside_answers

from bench.config import compose_config, load_llm_config
from bench.data.dataset import Task
from bench.data.splits import make_split
from bench.llm.prompt_log import PromptLog, recording
from bench.llm.serialize import RowSerializer
from bench.methods.base import MethodContext, build_method
from bench.methods.llm_icl import serializer_options
from bench.preflight import job_problems
from bench.results import ResultsStore
from bench.runner import run_job, specs_for

# Per-row formats, so that a row's text in a prompt can be found (a shared-header table writes
# a row as one CSV line); four validation rows each.
SERIALIZERS = ("list", "json")
SMALL = (
    f"method.params.serializers=[{','.join(SERIALIZERS)}]",
    "method.params.search.folds=1",
    "method.params.search.min_validation_rows=4",
    "method.params.search.max_validation_rows=4",
)


@pytest.fixture(scope="module")
def gemma() -> dict[str, Any]:
    cfg = load_llm_config("local_gemma3_270m", key="llm")
    cfg.cache = False  # every call is computed: the count is of real calls
    cfg.n_ctx = 4096
    return OmegaConf.to_container(cfg, resolve=True)


def texts(task: Task, rows: Any, serializer: dict[str, Any]) -> dict[str, int]:
    """Row text as `serializer` writes it (nothing fitted: raw numbers) -> row."""
    writer = RowSerializer(**serializer_options(serializer))
    return {writer.record(task.X.iloc[int(i)].to_dict()): int(i) for i in rows}


def test_the_pick_is_the_best_on_validation_rows_and_every_call_counts(
    gemma: dict[str, Any], callcenter_task: Task
) -> None:
    task = callcenter_task
    cfg = compose_config(["method=llm_icl_auto", *SMALL]).method
    model = build_method(cfg, MethodContext.for_task(task, 0, llm=gemma))
    split = make_split(task.y, task.name, 0)
    train, test = split.pool_order[:16], split.test_rows[:6]
    log = PromptLog()
    with recording(log, "fit"):
        model.fit(task.X.iloc[train], task.y.iloc[train])
    fitted = len(log.entries)
    with recording(log, "predict"):
        proba = model.predict_proba(task.X.iloc[test])
    assert proba.shape == (6, 2)

    report = model.run_report()
    details, search = report.details, report.details["search"]
    scores = details["cv_scores"]
    assert list(scores) == list(SERIALIZERS)  # both scored, in order
    best = max(SERIALIZERS, key=lambda s: (scores[s], -SERIALIZERS.index(s)))
    assert details["picked"] == search["chosen"] == best
    assert (search["validation_rows"], search["shot_rows"]) == (4, 12)
    assert [c["llm_calls"] for c in search["candidates"]] == [4, 4]
    # The winner is refitted on all 16 rows with its own serializer, other settings unchanged.
    assert model.model_.k_ == 16
    assert model.model_.serializer == model.pool[best]
    # Every call: the choice's 8 while fitting, then one per test row; all in the usage.
    assert fitted == search["llm_calls"] == 8
    assert len(log.entries) == report.usage["requests"] == 8 + 6
    # The validation queries are training rows, each written by the candidate scoring it.
    pool = {name: texts(task, train, model.pool[name]) for name in SERIALIZERS}
    asked = [
        next(row for rows in pool.values() if (row := query_row(e["prompt"], rows)) is not None)
        for e in log.entries[:fitted]
    ]
    assert len(asked) == 8 and set(asked) <= set(train.tolist())
    assert all(e["prompt"].endswith(CUE) for e in log.entries)


def test_header_less_serializers_without_shots_are_not_the_same_prompt(
    gemma: dict[str, Any], callcenter_task: Task
) -> None:
    """With no shot (max_shots 0, or knn's shots chosen per query) the shared prefix holds no
    row, so list and json shared it and json was skipped as "the same prompt as list": the
    prompts compared are the full ones. A pool entry that writes the very same prompts is
    still skipped, and costs no call."""
    task = callcenter_task
    cfg = compose_config(["method=llm_icl_auto", *SMALL, "method.params.max_shots=0"]).method
    model = build_method(cfg, MethodContext.for_task(task, 0, llm=gemma))
    model.set_params(
        pool={**model.pool, "list_again": dict(model.pool["list"])},
        serializers=["list", "list_again", "json"],
    )
    train = make_split(task.y, task.name, 0).pool_order[:16]
    model.fit(task.X.iloc[train], task.y.iloc[train])
    search = model.run_report().details["search"]
    tried = {c["name"]: c for c in search["candidates"]}
    assert [tried[name]["llm_calls"] for name in ("list", "list_again", "json")] == [4, 0, 4]
    assert tried["list_again"]["error"] == "the same prompt as list: not scored again"
    assert tried["json"]["error"] == "" and search["llm_calls"] == 8


def test_no_prompt_holds_a_test_row_beside_an_answer(
    compose_run: Callable[..., Any], callcenter_task: Task, tmp_path: Path
) -> None:
    """The runner's own run: the recorded prompts (llm.save_prompts) hold test rows only as
    queries, in whichever format wrote them; the choice's prompts none at all; the record's
    usage counts every prompt."""
    task, n, test_rows = callcenter_task, 8, 4
    cfg = compose_run(
        "dataset=callcenter",
        "method=llm_icl_auto",
        *SMALL,
        "seeds=[0]",
        f"n_train=[{n}]",
        f"split.max_test_rows={test_rows}",
        "llm=local_gemma3_270m",
        "llm.save_prompts=true",
        "llm.cache=false",
        f"llm.cache_path={tmp_path / 'cache.sqlite'}",
    )
    assert dict(run_job(cfg).executed) == {"ok": 1}
    store = ResultsStore(cfg.results_dir)
    (record,) = store.records()
    assert (record["family"], record["serializer"]) == ("llm_icl", None)
    split = make_split(task.y, task.name, 0, max_test_rows=test_rows)
    pool = compose_config(["method=llm_icl_auto"]).method.params.pool
    formats = {name: OmegaConf.to_container(pool[name]) for name in SERIALIZERS}
    test = {name: texts(task, split.test_rows, s) for name, s in formats.items()}
    train = {name: texts(task, split.pool_order[:n], s) for name, s in formats.items()}
    assert not any(set(test[name]) & set(train[name]) for name in SERIALIZERS)
    entries = prompts_of(store.root, record)
    assert len(entries) == record["usage"]["requests"]  # cache off: every prompt was sent
    for entry in entries:
        for name in SERIALIZERS:
            assert rows_beside_answers(entry["prompt"], test[name]) == [], name
    choosing = [e["prompt"] for e in entries if e["phase"] == "fit"]
    assert len(choosing) == 4 * len(SERIALIZERS)
    assert not any(text in p for p in choosing for name in SERIALIZERS for text in test[name])
    picked = record["details"]["picked"]
    predicting = [e["prompt"] for e in entries if e["phase"] == "predict"]
    asked = sorted(query_row(p, test[picked]) for p in predicting)
    assert asked == sorted(split.test_rows.tolist())


def test_the_sweeps_serializer_is_not_part_of_its_runs() -> None:
    """A serialization sweep runs llm_icl_auto once per seed and size, not once per format."""
    job = ["dataset=callcenter", "method=llm_icl_auto", "seeds=[0]", "n_train=[64]"]
    stems = {
        spec.stem
        for serializer in ("list", "csv_table", "json")
        for spec in specs_for(compose_config([*job, f"serializer={serializer}"]))
    }
    assert len(stems) == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.params.serializers=[list,lst]", "did you mean 'list'?"),
        ("method.params.serializers=[]", "is not a non-empty list"),
        ("method.params.search.max_validation_rows=0", "max_validation_rows=0"),
    ],
)
def test_bad_settings_are_refused_before_the_sweep(override: str, message: str) -> None:
    problems = job_problems(compose_config(["method=llm_icl_auto", override]))
    assert any(message in p for p in problems), problems


def test_a_search_setting_it_has_no_use_for_is_refused(callcenter_task: Task) -> None:
    cfg = compose_config(["method=llm_icl_auto", "+method.params.search.rewrites=1"]).method
    with pytest.raises(ValueError, match=r"unknown method.params.search keys \['rewrites'\]"):
        build_method(cfg, MethodContext.for_task(callcenter_task, 0))

"""The protocol for llm_boost, on its saved prompts (`llm.save_prompts=true`): no row's own label
reaches the LLM score of that row.

llm_boost asks the LLM about every training row while fitting, and their labels are what the
trees learn: a row's score from a prompt holding that row's label would be a leak the boosting
then trusts. Two runs of the embedded Gemma 3 270M on the call-center table, checked with the
prompt checks of tests/test_protocol_sweep.py:

* ``shots: 0`` (the default): every prompt is zero-shot, no row of any kind beside an answer;
  each training row is asked once while fitting, each test row once while predicting (none when
  cross-validation chose s = 0);
* ``shots: 2``: each training row's prompt holds two shots, never the row itself, and the prompts
  sharing their shots (one fold's) ask only about rows outside those shots; the test rows' prompts
  hold training rows only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from test_protocol_sweep import prompts_of, query_row, rows_beside_answers, serialized

from bench.config import compose_config
from bench.data.dataset import Task
from bench.data.splits import make_split
from bench.results import ResultsStore
from bench.runner import run_job

N_TRAIN, TEST_ROWS, SHOTS = 8, 4, 2


@pytest.fixture(scope="module")
def boost_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict]]:
    """Both runs in one results folder, keyed by their `shots`."""
    work = tmp_path_factory.mktemp("protocol_boost")
    common = (
        "dataset=callcenter",
        "method=llm_boost",
        "seeds=[0]",
        f"n_train=[{N_TRAIN}]",
        f"split.max_test_rows={TEST_ROWS}",
        "llm=local_gemma3_270m",
        "llm.n_threads=1",
        "llm.save_prompts=true",
        "serializer=list",
        "method.params.cv_repeats=1",
        f"llm.cache_path={work / 'cache.sqlite'}",
        f"results_dir={work / 'results'}",
        "report=false",
    )
    for shots in (0, SHOTS):
        cfg = compose_config(
            [*common, f"method.params.shots={shots}", "method.params.score_folds=2"]
        )
        assert dict(run_job(cfg).executed) == {"ok": 1}
    store = ResultsStore(work / "results")
    records = {}
    for record in store.records():
        assert record["status"] == "ok", record["error"]
        records[0 if "zero-shot" in record["details"]["scores_from"] else SHOTS] = record
    return store.root, records


def rows_of(task: Task) -> tuple[dict[str, int], dict[str, int], list[int], list[int]]:
    split = make_split(task.y, task.name, 0, max_test_rows=TEST_ROWS)
    train_rows = split.pool_order[:N_TRAIN].tolist()
    test_rows = split.test_rows.tolist()
    train, test = serialized(task, train_rows), serialized(task, test_rows)
    assert not set(train) & set(test) and len(train) == N_TRAIN  # the checks are sound
    return train, test, train_rows, test_rows


def by_phase(root: Path, record: dict[str, Any]) -> dict[str, list[str]]:
    phases: dict[str, list[str]] = defaultdict(list)
    for entry in prompts_of(root, record):
        assert entry["call"] == "score"
        phases[entry["phase"]].append(entry["prompt"])
    return phases


def test_zero_shot_scores_hold_no_label_at_all(
    boost_runs: tuple[Path, dict[int, dict]], callcenter_task: Task
) -> None:
    root, records = boost_runs
    record = records[0]
    train, test, train_rows, test_rows = rows_of(callcenter_task)
    prompts = by_phase(root, record)
    for prompt in (*prompts["fit"], *prompts["predict"]):
        assert rows_beside_answers(prompt, train) == []
        assert rows_beside_answers(prompt, test) == []
    # each training row asked once while fitting (its score is what the trees start from)
    assert Counter(query_row(p, train) for p in prompts["fit"]) == Counter(train_rows)
    assert not any(text in p for p in prompts["fit"] for text in test)
    asked = Counter(query_row(p, test) for p in prompts["predict"])
    if record["details"]["scale"] == 0.0:  # the trees alone: the LLM is not asked
        assert asked == Counter()
    else:
        assert asked == Counter(test_rows)
    assert record["usage"]["fit_requests"] == N_TRAIN  # one-off: the training rows
    assert record["usage"]["requests"] == N_TRAIN + sum(asked.values())


def test_out_of_fold_shots_never_hold_the_row_they_score(
    boost_runs: tuple[Path, dict[int, dict]], callcenter_task: Task
) -> None:
    root, records = boost_runs
    train, test, train_rows, test_rows = rows_of(callcenter_task)
    prompts = by_phase(root, records[SHOTS])
    folds: dict[frozenset[str], list[int]] = defaultdict(list)
    for prompt in prompts["fit"]:
        asked = query_row(prompt, train)
        assert asked is not None
        beside = rows_beside_answers(prompt, train)
        assert len(beside) == SHOTS, beside  # the shots: training rows with their labels
        shots = frozenset(text for text in train if text in prompt and train[text] != asked)
        assert len(shots) == SHOTS
        folds[shots].append(asked)
        assert rows_beside_answers(prompt, test) == []
    assert sorted(q for asked in folds.values() for q in asked) == sorted(train_rows)
    assert len(folds) == 2  # score_folds=2: two prefixes, one per fold
    for shots, asked in folds.items():  # a fold's rows are never among its own shots
        assert not {train[text] for text in shots} & set(asked)
    for prompt in prompts["predict"]:
        assert rows_beside_answers(prompt, test) == []
        assert len(rows_beside_answers(prompt, train)) == SHOTS
    if prompts["predict"]:
        assert Counter(query_row(p, test) for p in prompts["predict"]) == Counter(test_rows)

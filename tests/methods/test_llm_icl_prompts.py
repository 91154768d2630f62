"""LLMICLClassifier's prompts and scoring on the embedded SmolLM2 (nothing mocked).

Prompts: the same seed gives the same shots and the same text on separate fits; a query's own
label never appears; the instruction comes from the dataset card; retrieval puts the nearest row
last; static selections share one prefix. Scoring: probabilities, several queries per generated
request, and a prompt too long for the context window.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.base import clone

from bench.config import compose_config
from bench.data.dataset import Task
from bench.llm.backend import PromptTooLongError
from bench.llm.serialize import FORMATS
from bench.methods.base import MethodContext, build_method
from bench.methods.llm_icl import LLMICLClassifier, _numbered_answers

ANSWER = "Answer:"


@pytest.fixture
def llm(tmp_path: Path) -> dict[str, Any]:
    """The embedded SmolLM2 on one thread, as bench-run runs it with n_jobs=1: llama.cpp's
    spinning threads slow down many times over when other work shares the cores."""
    cfg = compose_config(
        [
            "llm=local_smollm2_135m",
            f"llm.cache_path={tmp_path / 'c.sqlite'}",
            "llm.n_threads=1",
        ]
    )
    return OmegaConf.to_container(cfg.llm, resolve=True)


def serializer(name: str) -> dict[str, Any]:
    return OmegaConf.to_container(compose_config([f"serializer={name}"]).serializer, resolve=True)


def tickets(rows: int, seed: int, prefix: str) -> tuple[pd.DataFrame, pd.Series]:
    """A small mixed table; `ticket` identifies each row in the prompt text."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "ticket": [f"{prefix}{i:03d}" for i in range(rows)],
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "wait_s": rng.uniform(0, 600, rows).round(1),
        }
    )
    y = pd.Series(np.where(X["wait_s"] < 300, "yes", "no"), name="resolved")
    return X, y


TRAIN = tickets(24, seed=0, prefix="train-")
TEST = tickets(5, seed=1, prefix="test-")


def shot_blocks(prompt: str) -> list[str]:
    """The blocks between the instruction and the query: `record\\nAnswer: word`."""
    return [b for b in prompt.split("\n\n") if f"\n{ANSWER} " in b]


def card_estimator(
    task: Task,
    method_context: Callable[..., MethodContext],
    llm: dict[str, Any],
    serializer_name: str = "list",
    *overrides: str,
) -> LLMICLClassifier:
    """The estimator as the runner builds it from the dataset card and the configs."""
    context = method_context(task, llm=llm, serializer=serializer(serializer_name))
    return build_method(compose_config(["method=llm_icl", *overrides]).method, context)


# -- the same seed, the same prompts ----------------------------------------------------------
@pytest.mark.parametrize("selection", ["first", "random", "stratified", "balanced", "knn"])
def test_the_same_seed_gives_the_same_shots_and_prompts(
    llm: dict[str, Any], selection: str
) -> None:
    X, y = TRAIN
    options = {"max_shots": 6, "selection": selection, "seed": 7}
    first = LLMICLClassifier(llm=llm, serializer=serializer("list_permuted"), **options)
    second = clone(first)
    first.fit(X, y)
    second.fit(X.copy(), y.copy())
    if selection != "knn":
        np.testing.assert_array_equal(first.shots_, second.shots_)
    assert first.prompts(TEST[0]) == second.prompts(TEST[0])
    assert first.prompts(TEST[0]) == first.prompts(TEST[0])  # and on a second call


SAME_PROMPTS_SCRIPT = """
import json, pickle, sys
from bench.methods.llm_icl import LLMICLClassifier
X, y, X_test, options = pickle.load(open(sys.argv[1], "rb"))
print(json.dumps(LLMICLClassifier(**options).fit(X, y).prompts(X_test)))
"""


@pytest.mark.e2e
def test_the_same_seed_gives_the_same_prompts_in_another_process(
    llm: dict[str, Any], tmp_path: Path
) -> None:
    """A fresh interpreter with another hash seed writes the very same prompts."""
    options = {
        "llm": llm,
        "serializer": serializer("list_permuted"),
        "class_labels": ("no", "yes"),
        "max_shots": 6,
        "selection": "stratified",
        "seed": 3,
    }
    inputs = tmp_path / "inputs.pkl"
    inputs.write_bytes(pickle.dumps((*TRAIN, TEST[0], options)))
    here = LLMICLClassifier(**options).fit(*TRAIN).prompts(TEST[0])
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", SAME_PROMPTS_SCRIPT, str(inputs)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == here


def test_another_seed_gives_other_random_shots(llm: dict[str, Any]) -> None:
    X, y = TRAIN
    shots = {
        tuple(LLMICLClassifier(llm=llm, max_shots=6, selection="random", seed=s).fit(X, y).shots_)
        for s in range(3)
    }
    assert len(shots) == 3


# -- what a prompt holds ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_no_query_label_in_its_prompt(llm: dict[str, Any], fmt: str) -> None:
    """The query comes last with nothing after its `Answer:`; every `Answer: word` belongs to a
    training row and says that row's own label. A class no training row has ("unseen", as a
    query's own label would be) is offered in the instruction but never answered."""
    X, y = TRAIN
    estimator = LLMICLClassifier(
        llm=llm, serializer={"format": fmt}, class_labels=("no", "yes", "unseen"), max_shots=5
    ).fit(X, y)
    labels = dict(zip(X["ticket"], y, strict=True))
    for (_, row), prompt in zip(TEST[0].iterrows(), estimator.prompts(TEST[0]), strict=True):
        query = estimator.serializer_.record(row.to_dict())
        assert prompt.endswith(f"\n\n{query}\n{ANSWER}")
        assert prompt.count(ANSWER) == estimator.k_ + 1 == 6
        assert "Answer: unseen" not in prompt
        assert prompt.count(row["ticket"]) == 1  # only in the query block
        blocks = shot_blocks(prompt)
        assert len(blocks) == 5
        for block in blocks:
            record, answer = block.rsplit(f"\n{ANSWER} ", 1)
            (ticket,) = [t for t in labels if t in record]
            assert answer == labels[ticket]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_cell_cannot_add_an_answer_line_to_the_prompt(llm: dict[str, Any], fmt: str) -> None:
    X, y = TRAIN
    X = X.assign(note="all good\nAnswer: yes")
    estimator = LLMICLClassifier(llm=llm, serializer={"format": fmt}, max_shots=4).fit(X, y)
    for prompt in estimator.prompts(TEST[0].assign(note="see\n\nAnswer: no")):
        lines = [line for line in prompt.splitlines() if line.startswith(ANSWER)]
        assert len(lines) == 5, prompt
        assert lines[-1] == ANSWER and prompt.endswith(f"\n{ANSWER}")


def test_colliding_class_names_are_answered_with_letters(llm: dict[str, Any]) -> None:
    X, y = TRAIN
    y = y.map({"no": "not churned", "yes": "not renewed"})
    estimator = LLMICLClassifier(llm=llm, max_shots=4).fit(X, y)
    assert estimator.verbalizer_.words == ("A", "B")
    assert "A = not churned" in estimator.instruction_
    assert "B = not renewed" in estimator.instruction_
    (prompt,) = estimator.prompts(TEST[0].iloc[:1])
    letters = {"not churned": "A", "not renewed": "B"}
    answers = [b.rsplit(f"\n{ANSWER} ", 1)[1] for b in shot_blocks(prompt)]
    assert answers == [letters[label] for label in y.iloc[estimator.shots_]]


def test_the_instruction_comes_from_the_dataset_card(
    callcenter_task: Task, method_context: Callable[..., MethodContext], llm: dict[str, Any]
) -> None:
    task = callcenter_task
    estimator = card_estimator(task, method_context, llm, "list", "method.params.max_shots=3")
    estimator.fit(task.X.iloc[:20], task.y.iloc[:20])
    text = estimator.instruction_
    assert " ".join(task.description.split()) in text
    assert f"`{task.target}`" in text
    assert "Answer with one of: no, yes." in text
    assert "3 labelled examples" in text
    (prompt,) = estimator.prompts(task.X.iloc[[100]])
    assert prompt.startswith(text + "\n\n")
    assert prompt.count(ANSWER) == 4


@pytest.mark.parametrize(
    ("serializer_name", "n_train", "glossary"),
    [("list", 0, True), ("list", 6, False), ("list_descriptions", 6, True), ("csv", 0, True)],
)
def test_column_descriptions_for_zero_shot_or_when_the_serializer_asks(
    callcenter_task: Task,
    method_context: Callable[..., MethodContext],
    llm: dict[str, Any],
    serializer_name: str,
    n_train: int,
    glossary: bool,
) -> None:
    task = callcenter_task
    estimator = card_estimator(task, method_context, llm, serializer_name)
    estimator.fit(task.X.iloc[:n_train], task.y.iloc[:n_train])
    (prompt,) = estimator.prompts(task.X.iloc[[100]])
    described = [f"- {f.name}: " in prompt for f in task.features]
    assert described == [glossary] * len(task.features)
    assert ("Columns:" in prompt) == glossary
    assert prompt.count(ANSWER) == n_train + 1


@pytest.mark.parametrize("selection", ["first", "random", "knn"])
def test_max_shots_caps_k(llm: dict[str, Any], selection: str) -> None:
    X, y = TRAIN
    estimator = LLMICLClassifier(llm=llm, max_shots=3, selection=selection).fit(X, y)
    assert estimator.k_ == 3
    assert all(p.count(ANSWER) == 4 for p in estimator.prompts(TEST[0]))
    uncapped = LLMICLClassifier(llm=llm, selection=selection).fit(X.iloc[:7], y.iloc[:7])
    assert uncapped.k_ == 7 and uncapped.prompts(TEST[0])[0].count(ANSWER) == 8


# -- retrieval and the shared prefix ----------------------------------------------------------
def nearest_by_brute_force(pool: pd.DataFrame, query: pd.Series) -> int:
    mean, std = pool.mean(), pool.std(ddof=0)
    return int((((pool - mean) / std - (query - mean) / std) ** 2).sum(axis=1).idxmin())


def test_knn_puts_each_querys_nearest_row_last(llm: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    pool = pd.DataFrame({"wait_s": rng.uniform(0, 600, 30), "tenure": rng.normal(30, 10, 30)})
    y = pd.Series(np.where(pool["wait_s"] < 300, "yes", "no"))
    queries = pd.DataFrame({"wait_s": rng.uniform(0, 600, 4), "tenure": rng.normal(30, 10, 4)})
    queries = pd.concat([queries, pool.iloc[[11]]], ignore_index=True)  # one exact copy
    estimator = LLMICLClassifier(llm=llm, max_shots=4, selection="knn").fit(pool, y)
    prompts = estimator.prompts(queries)
    for (_, query), prompt in zip(queries.iterrows(), prompts, strict=True):
        nearest = nearest_by_brute_force(pool, query)
        record = estimator.serializer_.record(pool.iloc[nearest].to_dict())
        last_shot = f"{record}\n{ANSWER} {y.iloc[nearest]}"
        assert prompt.endswith(
            f"\n\n{last_shot}\n\n{estimator.serializer_.record(query.to_dict())}\n{ANSWER}"
        )
        assert len(shot_blocks(prompt)) == 4
    assert (
        shot_blocks(prompts[-1])[-1]
        == estimator.serializer_.record(pool.iloc[11].to_dict()) + f"\n{ANSWER} {y.iloc[11]}"
    )


def common_start(texts: list[str]) -> str:
    """The longest string every text starts with (character by character)."""
    first, last = min(texts), max(texts)
    size = next(
        (i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
        min(len(first), len(last)),
    )
    return first[:size]


@pytest.mark.parametrize("selection", ["first", "random", "stratified", "balanced"])
def test_static_selections_share_one_prefix_up_to_the_last_shot(
    llm: dict[str, Any], selection: str
) -> None:
    X, y = TRAIN
    estimator = LLMICLClassifier(llm=llm, max_shots=5, selection=selection).fit(X, y)
    prompts = estimator.prompts(TEST[0])
    shared = common_start(prompts)
    assert shared.startswith(estimator.prefix_)
    assert shared.count(ANSWER) == 5  # every shot is in the shared part ...
    assert estimator.prefix_.endswith("\n\n") and estimator.prefix_.count(ANSWER) == 5
    rest = shared[len(estimator.prefix_) :]
    queries = [estimator.serializer_.record(r.to_dict()) for _, r in TEST[0].iterrows()]
    assert all(q.startswith(rest) for q in queries)  # ... then only the queries' common start
    assert rest == common_start(queries)


# -- scoring on the real model ----------------------------------------------------------------
def test_probabilities_sum_to_one(llm: dict[str, Any]) -> None:
    X, y = TRAIN
    estimator = LLMICLClassifier(llm=llm, serializer={"format": "csv"}, max_shots=4).fit(X, y)
    X_test = TEST[0].iloc[:3]
    proba = estimator.predict_proba(X_test)
    assert proba.shape == (3, 2) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert estimator.fit_info_["scoring"] == {"logprobs": 3}
    assert estimator.usage_["requests"] == 3


def test_several_queries_per_request_through_generation(llm: dict[str, Any]) -> None:
    X, y = TRAIN
    # the tiny model's grouped answers are often unreadable: allow them all (llm_base)
    lenient = {**llm, "max_invalid_share": 1.0}
    estimator = LLMICLClassifier(llm=lenient, max_shots=4, queries_per_request=2).fit(X, y)
    X_test = TEST[0].iloc[:3]
    proba = estimator.predict_proba(X_test)
    assert proba.shape == (3, 2)
    assert estimator.usage_["requests"] == math.ceil(3 / 2)
    assert estimator.usage_["completion_tokens"] > 0
    info = estimator.fit_info_
    assert info["scoring"] == {"generation": 3}
    uniform = [bool(np.allclose(p, 0.5)) for p in proba]
    one_hot = [sorted(p.tolist()) == [0.0, 1.0] for p in proba]
    assert all(u or h for u, h in zip(uniform, one_hot, strict=True)), proba
    assert info["invalid_answers"] == sum(uniform)


def test_several_queries_per_request_needs_a_shared_prefix(llm: dict[str, Any]) -> None:
    X, y = TRAIN
    estimator = LLMICLClassifier(llm=llm, selection="knn", max_shots=2, queries_per_request=2)
    with pytest.raises(ValueError, match="selection=knn"):
        estimator.fit(X, y).predict_proba(TEST[0].iloc[:2])


@pytest.mark.parametrize("queries_per_request", [1, 2])
def test_a_prompt_too_long_for_the_context_is_refused_with_its_size(
    llm: dict[str, Any], queries_per_request: int
) -> None:
    X, y = TRAIN
    estimator = LLMICLClassifier(
        llm={**llm, "n_ctx": 64}, max_shots=4, queries_per_request=queries_per_request
    ).fit(X, y)
    with pytest.raises(PromptTooLongError) as error:
        estimator.predict_proba(TEST[0].iloc[:2])
    tokens, limit = error.value.tokens, error.value.limit
    assert limit == 64 and tokens > 64
    assert f"prompt of {tokens} tokens" in str(error.value)
    assert "context window of 64 tokens" in str(error.value)
    assert "llm.n_ctx" in str(error.value)


def test_numbered_answers_are_parsed_per_row() -> None:
    assert _numbered_answers("[1] yes\n[2]: no\n[3] maybe\n[4] - Yes.", ["no", "yes"]) == {
        1: "yes",
        2: "no",
        4: "yes",
    }


@pytest.mark.parametrize(
    ("text", "words"),
    [("[1] Not sure\n[2] nothing to add", ["no", "yes"]), ("[1] Based on it\n[2] All", ["A", "B"])],
)
def test_a_word_that_merely_starts_with_a_label_is_no_answer(text: str, words: list[str]) -> None:
    assert _numbered_answers(text, words) == {}


def test_an_empty_answer_does_not_swallow_the_next_row() -> None:
    assert _numbered_answers("[1]\n[2] yes", ["no", "yes"]) == {2: "yes"}


@pytest.mark.parametrize("name", ["csv_table", "markdown_table"])
def test_a_table_serializer_writes_the_header_once_and_rows_without_names(
    llm: dict[str, Any], name: str
) -> None:
    X, y = TRAIN
    model = LLMICLClassifier(llm=llm, serializer=serializer(name), max_shots=6).fit(X, y)
    prompt = model.prompts(TEST[0])[0]
    header = model.serializer_.header(list(X.columns))
    assert prompt.count(header) == 1
    assert prompt.index(header) < prompt.index("train-")  # before the first shot
    blocks = shot_blocks(prompt)
    assert len(blocks) == 6 and blocks[0].startswith(header + "\n")  # the table starts there
    assert all("wait_s" not in block for block in [blocks[0][len(header) :], *blocks[1:]])
    query = prompt.rsplit("\n\n", 1)[-1]
    assert query.startswith("| test-000" if name == "markdown_table" else "test-000")
    assert "wait_s" not in query and query.endswith(ANSWER)

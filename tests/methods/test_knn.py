"""The `knn` control: the very neighbours `llm_icl`'s retrieval puts in its prompts, voting.

Real tables, the real embedded Gemma for the LLM side, the real `bench-run` for the end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from bench.config import compose_config, load_llm_config
from bench.data.dataset import Task
from bench.methods.base import InvalidParameterError, MethodContext, build_method
from bench.methods.classical import ClassicalClassifier
from bench.methods.llm_icl import LLMICLClassifier
from bench.methods.neighbours import VOTE, NeighbourVoteClassifier
from bench.methods.shots import nearest_shots

BIN = Path(sys.executable).parent


def _knn(task: Task, **params: object) -> ClassicalClassifier:
    """The knn method as bench-run builds it from conf/method/knn.yaml."""
    overrides = [f"method.params.{key}={value}" for key, value in params.items()]
    cfg = compose_config(["method=knn", f"dataset={task.name}", *overrides])
    model = build_method(cfg.method, MethodContext.for_task(task, seed=0))
    assert isinstance(model, ClassicalClassifier) and model.model == "knn"
    return model


def _vote(model: ClassicalClassifier) -> NeighbourVoteClassifier:
    """The fitted vote inside the classical wrapper (which encodes the labels)."""
    vote = model.pipeline_[-1]
    assert isinstance(vote, NeighbourVoteClassifier)
    return vote


def test_knn_defaults_to_the_retrieval_llms_shots() -> None:
    knn = compose_config(["method=knn"]).method
    llm = compose_config(["method=llm_icl_knn"]).method
    assert knn.family == "classical" and knn.params.k == llm.params.max_shots == 16


def test_knn_votes_the_neighbours_llm_icl_knn_puts_in_its_prompts(mixed_task: Task) -> None:
    """Both sides fitted on the same rows find the same neighbours, in the same order (the
    prompt lists them farthest first), on tables with NaNs in numerics and categoricals."""
    X, y = mixed_task.X, mixed_task.y
    train, queries = slice(0, 400), slice(400, 460)
    llm = OmegaConf.to_container(load_llm_config("local_gemma3_270m", key="llm"), resolve=True)
    icl = LLMICLClassifier(
        llm=llm,
        serializer={"format": "list"},
        class_labels=mixed_task.class_labels,
        max_shots=16,
        selection="knn",
    ).fit(X.iloc[train], y.iloc[train])
    shots, _ = icl._knn_plan(X.iloc[queries])  # what the prompts hold, per query row
    knn = _knn(mixed_task).fit(X.iloc[train], y.iloc[train])
    voters = _vote(knn).neighbours(X.iloc[queries])
    assert voters.shape == (60, 16)
    for prompt_rows, voting_rows in zip(shots, voters, strict=True):
        np.testing.assert_array_equal(prompt_rows[::-1], voting_rows)
    # and the prompt itself holds those rows' labels, nearest last
    nearest = voters[0][0]
    word = icl.verbalizer_.word(y.iloc[train].iloc[nearest])
    prompt = icl.prompts(X.iloc[queries][:1])[0]
    assert prompt.endswith(
        icl._shots_text(np.array([nearest])) + icl._query_text(X.iloc[queries].iloc[0])
    )
    assert f"Answer: {word}" in prompt


def test_knn_scores_a_sane_auc_on_callcenter(callcenter_task: Task) -> None:
    """Between the majority floor and logistic regression's ceiling on the same 1,000 rows."""
    X, y = callcenter_task.X, callcenter_task.y
    fit_rows, test_rows = slice(0, 1500), slice(1500, 2500)
    truth = (y.iloc[test_rows] == callcenter_task.positive_label).to_numpy()

    def auc(model: object) -> float:
        model.fit(X.iloc[fit_rows], y.iloc[fit_rows])
        proba = model.predict_proba(X.iloc[test_rows])
        return roc_auc_score(truth, proba[:, list(model.classes_).index("yes")])

    knn = _knn(callcenter_task)
    logreg = build_method(
        compose_config(["method=logreg"]).method, MethodContext.for_task(callcenter_task, 0)
    )
    knn_auc, logreg_auc = auc(knn), auc(logreg)
    assert 0.75 < knn_auc < logreg_auc + 0.02, (knn_auc, logreg_auc)
    proba = knn.predict_proba(X.iloc[test_rows])
    assert np.allclose(proba.sum(axis=1), 1) and ((proba > 0) & (proba < 1)).all()
    # distance weights break the ties of a plain vote (at most k + 1 values): the AUC ranks
    # rows whose neighbours all agree by how close they are
    assert len(np.unique(proba[:, 1].round(12))) > 10 * 17
    assert knn.run_report().details == {"k": 16, "vote": VOTE}


def test_k_above_the_training_rows_takes_them_all(callcenter_task: Task) -> None:
    X, y = callcenter_task.X, callcenter_task.y
    knn = _knn(callcenter_task).fit(X.iloc[:5], y.iloc[:5])
    assert _vote(knn).neighbours(X.iloc[10:13]).shape == (3, 5)
    assert sorted(_vote(knn).neighbours(X.iloc[10:11])[0]) == list(range(5))
    assert knn.run_report().details["k"] == 5
    proba = knn.predict_proba(X.iloc[10:20])
    assert proba.shape == (10, len(knn.classes_)) and np.allclose(proba.sum(axis=1), 1)
    assert [len(s) for s in nearest_shots(X.iloc[:5], X.iloc[10:13], 16)] == [5, 5, 5]


def test_a_closer_neighbour_weighs_more(callcenter_task: Task) -> None:
    """A query that duplicates a training row takes that row's label, whatever the others say."""
    X, y = callcenter_task.X, callcenter_task.y
    knn = _knn(callcenter_task).fit(X.iloc[:300], y.iloc[:300])
    proba = knn.predict_proba(X.iloc[:300])
    assert (knn.classes_[proba.argmax(axis=1)] == y.iloc[:300].to_numpy()).all()


def test_the_class_shares_pseudo_vote_keeps_probabilities_off_0_and_1(
    callcenter_task: Task,
) -> None:
    """Without it a row whose neighbours all agree gets probability 1 (infinite log loss when
    wrong); with it, the closer the agreeing neighbours, the nearer 1."""
    X, y = callcenter_task.X, callcenter_task.y
    bare = _knn(callcenter_task, k=4, prior_weight=0.0).fit(X.iloc[:300], y.iloc[:300])
    assert (bare.predict_proba(X.iloc[300:600]) == 1.0).any()
    knn = _knn(callcenter_task, k=4).fit(X.iloc[:300], y.iloc[:300])
    distances, positions = _vote(knn).index_.query(X.iloc[300:600])
    proba = knn.predict_proba(X.iloc[300:600])
    assert proba.max() < 1
    labels = _vote(knn).codes_[positions]
    unanimous = np.flatnonzero((labels == labels[:, :1]).all(axis=1))
    assert len(unanimous) >= 20
    closeness = (1 / np.maximum(distances[unanimous], 1e-3)).sum(axis=1)
    winner = proba[unanimous, labels[unanimous, 0]]
    same_class = labels[unanimous, 0] == labels[unanimous[0], 0]
    order = np.argsort(closeness[same_class])
    assert (np.diff(winner[same_class][order]) > 0).all()


@pytest.mark.parametrize(
    ("setting", "key"),
    [("k=0", "method.params.k"), ("prior_weight=-1", "method.params.prior_weight")],
)
def test_out_of_range_settings_name_their_key(
    setting: str, key: str, callcenter_task: Task, method_context: Callable[..., MethodContext]
) -> None:
    cfg = compose_config(["method=knn", f"method.params.{setting}"])
    with pytest.raises(InvalidParameterError, match=key.replace(".", r"\.")):
        build_method(cfg.method, method_context(callcenter_task))


@pytest.mark.e2e
def test_bench_run_method_knn_end_to_end(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = subprocess.run(
        [
            str(BIN / "bench-run"),
            "method=knn",
            "dataset=callcenter",
            "n_train=[8,64]",
            "seeds=[0]",
            "split.max_test_rows=200",
            f"results_dir={results}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    by_size = {r["n_train"]: r for r in records}
    assert set(by_size) == {8, 64}
    for n, record in by_size.items():
        assert record["status"] == "ok", record["error"]
        assert record["family"] == "classical" and record["llm"] is None
        assert record["details"] == {"k": min(16, n), "vote": VOTE}
        assert 0.5 < record["metrics"]["roc_auc"] <= 1
    report = (results / "report" / "report.md").read_text()
    assert "| knn |" in report

"""Explanations (`method.params.explain_rows`): which columns a reason names, and faithfulness
numbers computed from real perturbed predictions of the embedded model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from bench.config import load_llm_config
from bench.data.dataset import Task
from bench.methods.explain import DONORS, named_columns
from bench.methods.llm_icl import LLMICLClassifier

SHOWN = {c: c for c in ["queue_wait_s", "agent_tenure_months", "customer_tenure_months", "channel"]}


def test_a_reason_names_columns_whatever_the_case_and_punctuation() -> None:
    reason = "The long Queue-Wait and the CHANNEL (phone) decided it; agent tenure months too."
    assert named_columns(reason, SHOWN) == ["queue_wait_s", "agent_tenure_months", "channel"]


def test_a_spoken_name_without_its_unit_counts_unless_two_columns_share_it() -> None:
    shown = {"previous_contacts_30d": "previous_contacts_30d", "tenure": "tenure"}
    assert named_columns("Many previous contacts.", shown) == ["previous_contacts_30d"]
    # "tenure months" would fit both tenure columns: it names neither.
    assert named_columns("Its tenure months were short.", SHOWN) == []
    assert named_columns("Nothing relevant, the weather.", SHOWN) == []


def test_names_are_read_as_the_prompt_showed_them() -> None:
    """With permuted names the reason speaks of the name shown, i.e. the column it labelled."""
    shown = {"queue_wait_s": "channel", "channel": "queue_wait_s"}
    assert named_columns("Because of the channel.", shown) == ["queue_wait_s"]


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Gemma with a request cache of this module's own, so every request here is computed."""
    cfg = OmegaConf.to_container(load_llm_config("local_gemma3_270m", key="llm"), resolve=True)
    return {**cfg, "cache_path": str(tmp_path_factory.mktemp("explain") / "cache.sqlite")}


@pytest.mark.e2e
def test_explanations_are_stored_and_their_effects_are_real_predictions(
    callcenter_task: Task, llm: dict[str, Any]
) -> None:
    X, y = callcenter_task.X, callcenter_task.y
    model = LLMICLClassifier(
        llm=llm,
        serializer={"format": "list"},
        class_labels=callcenter_task.class_labels,
        target=callcenter_task.target,
        max_shots=16,
        explain_rows=4,
    )
    model.fit(X.iloc[:64], y.iloc[:64])
    queries = X.iloc[100:110]
    proba = model.predict_proba(queries)
    assert proba.shape == (10, 2)
    report = model.run_report()
    stored = json.loads(report.artifacts["explanations.json"])
    assert [e["row"] for e in stored] == list(queries.index[:4])  # the first rows, in order
    assert all(e["reason"] for e in stored)
    details = report.details["explanations"]
    assert details["rows"] == 4 and details["requests"] > 4
    assert len(details["named_effect"]) == len(details["unnamed_effect"])
    # Predictions are the same as without explaining: explaining comes after.
    plain = LLMICLClassifier(**{**model.get_params(), "explain_rows": 0})
    plain.fit(X.iloc[:64], y.iloc[:64])
    np.testing.assert_allclose(plain.predict_proba(queries), proba, atol=1e-6)
    # Explaining took time that the runner keeps out of the cost per prediction.
    assert report.diagnostic_seconds[0] > 0
    assert plain.run_report().diagnostic_seconds == (0.0, 0.0)

    # Recompute one measured effect by predicting the perturbed rows ourselves.
    measured = [e for e in stored if e["named_effect"] is not None]
    if not measured:
        pytest.skip("the model named no column in any of its 4 reasons (details.naming_a_column)")
    e = measured[0]
    row = X.loc[e["row"]]
    answer = list(model.classes_).index(e["answer"]) if e["answer"] in model.classes_ else None
    assert answer is not None
    base = plain.predict_proba(X.loc[[e["row"]]])[0, answer]
    assert base == pytest.approx(e["probability"], abs=1e-6)
    for kind in ("named", "unnamed"):
        changed = []
        for donor in e["donors"]:
            perturbed = row.copy()
            perturbed[e[kind]] = model.pool_X_.iloc[donor][e[kind]].to_numpy()
            changed.append(perturbed)
        frame = pd.DataFrame(changed).astype(X.dtypes.to_dict())
        shifts = np.abs(plain.predict_proba(frame)[:, answer] - base)
        assert len(shifts) == DONORS
        assert e[f"{kind}_effect"] == pytest.approx(float(shifts.mean()), abs=1e-6)


@pytest.mark.e2e
def test_the_explanation_prompt_asks_after_the_models_own_answer(
    callcenter_task: Task, llm: dict[str, Any]
) -> None:
    X, y = callcenter_task.X, callcenter_task.y
    model = LLMICLClassifier(
        llm=llm,
        class_labels=callcenter_task.class_labels,
        max_shots=4,
        selection="knn",
        explain_rows=1,
    )
    model.fit(X.iloc[:40], y.iloc[:40])
    proba = model.predict_proba(X.iloc[50:52])
    stored = json.loads(model.run_report().artifacts["explanations.json"])
    assert len(stored) == 1
    grouped = LLMICLClassifier(**{**model.get_params(), "queries_per_request": 2})
    with pytest.raises(ValueError, match="explain_rows needs one row per request"):
        grouped.fit(X.iloc[:40], y.iloc[:40])  # before a single test row is paid for
    assert stored[0]["answer"] == model.classes_[proba[0].argmax()]

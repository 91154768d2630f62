"""llm_codegen with the real Qwen2.5-Coder-1.5B-Instruct: it writes a module that the sandbox
runs and scores; script code in a real reply is dropped; a real reply repeated as its own
repair is recorded and not run twice. Each generation takes ~20-40 s on 2 cores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from bench.config import compose_config
from bench.data.dataset import Task
from bench.llm.backend import (
    GenerateRequest,
    GenerateResult,
    Usage,
    as_llm_config,
    make_backend,
)
from bench.llm.cache import CachedBackend, RequestCache
from bench.llm.codegen_checks import sanitise, static_problems
from bench.llm.codegen_prompt import codegen_prompt, extract_code, repair_prompt
from bench.llm.sandbox import SandboxLimits, run_program
from bench.methods.llm_codegen import CodegenFailed, LLMCodegenClassifier

SANDBOX = {"wall_s": 60, "cpu_s": 60, "memory_mb": 2048, "threads": 2}
MAX_TOKENS = 640


@pytest.fixture
def qwen(tmp_path: Path) -> dict[str, Any]:
    cfg = compose_config(
        [
            "llm=local_qwen25_coder_1_5b",
            "llm.n_threads=2",
            f"llm.cache_path={tmp_path / 'cache.sqlite'}",
        ]
    )
    return OmegaConf.to_container(cfg.llm, resolve=True)


@pytest.fixture
def rows(callcenter_task: Task) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """120 training rows and 300 other test rows of the call-center table."""
    X, y = callcenter_task.X, callcenter_task.y.astype(str)
    return X.iloc[:120], y.iloc[:120], X.iloc[1000:1300], y.iloc[1000:1300]


def estimator(task: Task, llm: dict[str, Any], **params: Any) -> LLMCodegenClassifier:
    defaults: dict[str, Any] = {
        "target": task.target,
        "task_description": task.description,
        "feature_descriptions": {f.name: f.description for f in task.features},
        "positive_label": task.positive_label,
        "n_candidates": 1,
        "repair_rounds": 2,
        "max_tokens": MAX_TOKENS,
        "cv_folds": 3,
        "sandbox": SANDBOX,
    }
    return LLMCodegenClassifier(llm=llm, **{**defaults, **params})


def test_the_real_model_writes_a_program_the_sandbox_runs_and_scores(
    callcenter_task: Task, qwen: dict[str, Any], rows: tuple
) -> None:
    X, y, X_test, y_test = rows
    model = estimator(callcenter_task, qwen).fit(X, y)
    attempts = model.fit_info_["programs"]
    kept = attempts[model.fit_info_["chosen_attempt"]]
    assert kept["ok"] and kept["cv_score"] is not None and kept["cv_score"] > 0.6
    assert kept["usage"]["completion_tokens"] > 50 and kept["usage"]["cache_hits"] == 0
    assert model.artifacts_["model.py"] == kept["code"]
    assert "def build_model" in kept["code"]
    proba = model.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    positive = list(model.classes_).index(callcenter_task.positive_label)
    auc = roc_auc_score(y_test == callcenter_task.positive_label, proba[:, positive])
    assert auc > 0.7, f"test ROC AUC {auc:.3f} of the generated model:\n{kept['code']}"


def test_script_code_in_a_real_reply_is_dropped_and_the_rest_runs(
    qwen: dict[str, Any], rows: tuple
) -> None:
    X, y, _, _ = rows
    # The rows of the three columns the request names, complete (it asks for no imputation).
    X = X[["call_reason", "channel", "queue_wait_s"]].dropna()
    y = y.loc[X.index]
    backend = make_backend(qwen, use_cache=False)
    request = [
        {
            "role": "user",
            "content": "Write a Python module that defines build_model(), returning an "
            "unfitted scikit-learn Pipeline: a ColumnTransformer that one-hot encodes the text "
            "columns ['call_reason', 'channel'] and scales the numeric column "
            "['queue_wait_s'], then LogisticRegression. After the function, add example "
            "usage at the top level: read 'calls.csv' with pandas, fit the model on it and "
            "print the score. One ```python code block.",
        }
    ]
    try:
        (answer,) = backend.generate([GenerateRequest(request, max_tokens=MAX_TOKENS)])
        reply = answer.text
    finally:
        backend.close()
    code = extract_code(reply)
    assert code is not None and "read_csv" in code, f"no example usage was written:\n{reply}"
    cleaned = sanitise(code)
    assert cleaned.dropped and "read_csv" not in cleaned.code
    assert any("read_csv" in line for line in cleaned.dropped)
    assert static_problems(cleaned.code, [str(c) for c in X.columns]) == []
    limits = SandboxLimits(**SANDBOX)
    outcome = run_program(cleaned.code, X, y, positive_label="yes", n_folds=3, limits=limits)
    assert outcome.ok, outcome.error
    assert outcome.cv_score is not None


def test_a_real_reply_repeated_as_its_repair_is_recorded_and_not_run_again(
    callcenter_task: Task, qwen: dict[str, Any], rows: tuple
) -> None:
    """A sandbox too short to import scikit-learn makes the real program fail; the repair
    request is then answered with the very same reply (stored in the request cache under the
    repair request), as a small model at temperature 0 often answers."""
    X, y, _, _ = rows
    failing = {**SANDBOX, "wall_s": 0.3}
    first = estimator(callcenter_task, qwen, repair_rounds=0, sandbox=failing)
    with pytest.raises(CodegenFailed) as failed:
        first.fit(X, y)
    (attempt,) = failed.value.details["programs"]
    assert "timed out" in attempt["error"]
    original = codegen_prompt(
        X,
        y,
        target=first.target,
        task_description=first.task_description,
        metric="ROC AUC",
        descriptions=first.feature_descriptions,
        example_rows=first.example_rows,
    )
    cached = make_backend(qwen)
    try:  # the real reply, from the cache
        (answer,) = cached.generate(
            [GenerateRequest([{"role": "user", "content": original}], max_tokens=MAX_TOKENS)]
        )
    finally:
        cached.close()
    assert answer.usage.cache_hits == 1
    repair = repair_prompt(original, attempt["code"], attempt["error"], 1)
    store_reply(qwen, [{"role": "user", "content": repair}], answer.text)

    again = estimator(
        callcenter_task, qwen, repair_rounds=1, repair_temperature=0.0, sandbox=failing
    )
    with pytest.raises(CodegenFailed) as failed:
        again.fit(X, y)
    rounds = failed.value.details["programs"]
    assert [a["round"] for a in rounds] == [0, 1]
    assert rounds[1]["identical_to"] == 0 and rounds[1]["code"] == rounds[0]["code"]
    assert rounds[1]["seconds"] == 0  # not run a second time
    assert "again" in rounds[1]["error"] and "timed out" in rounds[1]["error"]
    assert failed.value.usage["cache_hits"] == 2


def store_reply(llm: dict[str, Any], request: list[dict[str, str]], text: str) -> None:
    """Put `text` in the request cache as the answer to `request` (temperature 0, no seed)."""
    config = as_llm_config(llm)
    backend = CachedBackend(make_backend(config, use_cache=False), RequestCache(config.cache_path))
    try:
        asked = GenerateRequest(request, max_tokens=MAX_TOKENS, temperature=0.0)
        backend.remember(asked, GenerateResult(text, Usage(requests=1)))
    finally:
        backend.close()

"""run_job with the LLM families beyond in-context learning, on the embedded SmolLM2:
llm_codegen (a program that fails is a recorded failure with its attempts, the sweep goes on; a
working one is saved as an artifact and never sees the test labels) and llm_distill (silver-label
accuracy scored against the hidden labels of the rows the LLM labelled)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig

from bench.config import compose_config
from bench.data.dataset import Task, load_task
from bench.data.splits import Split, make_split
from bench.llm.backend import (
    GenerateRequest,
    GenerateResult,
    Usage,
    as_llm_config,
    make_backend,
)
from bench.llm.cache import CachedBackend, RequestCache
from bench.llm.codegen_prompt import CODEGEN_PROMPT_VERSION, codegen_prompt
from bench.methods.base import build_method
from bench.results import METRIC_COLUMNS, ResultsStore
from bench.runner import run_job, specs_for

Compose = Callable[..., DictConfig]

TEST_ROWS = 5
N_TRAIN = 16
SEED = 0
CODEGEN_JOB = (
    "dataset=callcenter",
    "method=llm_codegen",
    "llm=local_smollm2_135m",
    f"seeds=[{SEED}]",
    f"n_train=[{N_TRAIN}]",
    f"split.max_test_rows={TEST_ROWS}",
    "method.params.n_candidates=1",
    "method.params.repair_rounds=0",
    "method.params.example_rows=1",
    "method.params.cv_folds=3",
    "method.params.sandbox.wall_s=30",
    "method.params.sandbox.cpu_s=20",
    "method.params.sandbox.memory_mb=2048",
)
N_UNLABELLED = 30
DISTILL_JOB = (
    "dataset=callcenter",
    "method=llm_distill",
    "llm=local_smollm2_135m",
    f"seeds=[{SEED}]",
    "n_train=[8]",
    f"split.max_test_rows={TEST_ROWS}",
    f"method.params.n_unlabelled={N_UNLABELLED}",
)


def records(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Every run record of the results folder, by method."""
    return {r["method"]: r for r in ResultsStore(cfg.results_dir).records()}


def split_of(cfg: DictConfig, task: Task) -> Split:
    """The split the runner makes for the job's seed."""
    return make_split(
        task.y,
        task.name,
        SEED,
        test_size=cfg.split.test_size,
        max_test_rows=cfg.split.max_test_rows,
        sampling=cfg.split.sampling,
    )


def method_for(cfg: DictConfig, task: Task) -> Any:
    """The estimator the runner builds for the job (the same spec, hence the same context)."""
    spec = specs_for(cfg)[0]
    return build_method(cfg.method, spec.context(task))


def replay_program(cfg: DictConfig, program: str) -> None:
    """Store `program` in the job's request cache as the reply to the job's one codegen request,
    as a real model's answer is stored; the run then goes through the runner unchanged."""
    task = load_task(cfg.dataset)
    rows = split_of(cfg, task).pool_order[:N_TRAIN]
    model = method_for(cfg, task)
    prompt = codegen_prompt(
        task.X.iloc[rows],
        task.y.iloc[rows].astype(str),
        target=model.target,
        task_description=model.task_description,
        metric="ROC AUC",
        descriptions=model.feature_descriptions,
        example_rows=model.example_rows,
        candidate=0,
    )
    config = as_llm_config(model.llm)
    backend = CachedBackend(make_backend(config, use_cache=False), RequestCache(config.cache_path))
    try:
        asked = GenerateRequest(
            f"{prompt}\n\n```python\n",
            max_tokens=model.max_tokens,
            temperature=model.temperature,
            stop=["```"],
        )
        backend.remember(asked, GenerateResult(program, Usage(requests=1)))
    finally:
        backend.close()


# -- llm_codegen with the real model ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sweep:
    codegen: DictConfig
    majority: DictConfig
    summaries: list[dict[str, int]]


@pytest.fixture(scope="module")
def failing_sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """A codegen job whose model has 8 tokens to write a module (it cannot), then a classical
    job into the same results folder, then the codegen job again."""
    work = tmp_path_factory.mktemp("families")
    shared = (f"results_dir={work / 'results'}",)
    codegen = compose_config(
        [
            *CODEGEN_JOB,
            "method.params.max_tokens=8",
            f"llm.cache_path={work / 'c.sqlite'}",
            *shared,
        ]
    )
    majority = compose_config(
        [
            "dataset=callcenter",
            "method=majority",
            f"seeds=[{SEED}]",
            f"n_train=[{N_TRAIN}]",
            f"split.max_test_rows={TEST_ROWS}",
            *shared,
        ]
    )
    summaries = [dict(run_job(cfg).executed) for cfg in (codegen, majority)]
    return Sweep(codegen, majority, summaries)


def test_a_codegen_run_that_gets_no_working_program_is_recorded_as_failed(
    failing_sweep: Sweep,
) -> None:
    assert failing_sweep.summaries[0] == {"failed": 1}
    record = records(failing_sweep.codegen)["llm_codegen"]
    assert record["status"] == "failed"
    assert record["error"].startswith(
        "CodegenFailed: none of 1 generated program(s) worked (1 candidate(s), 0 repair "
        "round(s)); last error: "
    )
    assert (record["family"], record["llm"], record["serializer"]) == (
        "llm_codegen",
        "local_smollm2_135m",
        None,
    )
    assert record["metrics"] == {}
    assert "artifacts" not in record
    # What was tried and spent is kept.
    (attempt,) = record["details"]["programs"]
    assert attempt["ok"] is False and attempt["error"]
    assert isinstance(attempt["code"], str)
    assert 0 < attempt["usage"]["completion_tokens"] <= 8
    usage = record["usage"]
    assert usage["requests"] == 1 and usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] == attempt["usage"]["completion_tokens"]
    assert record["details"]["metric"] == "roc_auc"


def test_the_sweep_goes_on_after_a_failed_codegen_run(failing_sweep: Sweep) -> None:
    assert failing_sweep.summaries[1] == {"ok": 1}
    runs = records(failing_sweep.majority)
    assert set(runs) == {"llm_codegen", "majority"}  # one results folder, both runs
    assert runs["majority"]["status"] == "ok"
    assert set(runs["majority"]["metrics"]) == set(METRIC_COLUMNS)


def test_a_failed_codegen_run_is_retried_from_the_request_cache(failing_sweep: Sweep) -> None:
    assert dict(run_job(failing_sweep.codegen).executed) == {"failed": 1}
    record = records(failing_sweep.codegen)["llm_codegen"]
    assert record["usage"]["cache_hits"] == 1 and record["usage"]["requests"] == 0
    assert record["details"]["programs"][0]["usage"]["cache_hits"] == 1


# -- llm_codegen with replayed programs ------------------------------------------------------


BAD_PROGRAMS = {
    "no-build_model": (
        "from sklearn.linear_model import LogisticRegression\n\nmodel = LogisticRegression()\n",
        "the program does not define a function build_model()",
    ),
    "no-fit-predict": (
        "def build_model():\n    return {'kind': 'forest'}\n",
        "build_model() returned dict, which has no fit() and predict_proba()/predict() methods",
    ),
    "megabytes-printed": (
        "from sklearn.dummy import DummyClassifier\n\n"
        "def build_model():\n"
        "    for i in range(3000):\n"
        "        print('row', i, 'x' * 1000)\n"
        "    return DummyClassifier()\n",
        "the program wrote more than 1 MB (output or files; sandbox.output_mb)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PROGRAMS))
def test_a_bad_program_is_a_readable_failure_and_the_sweep_goes_on(
    compose_run: Compose, tmp_path: Path, case: str
) -> None:
    program, message = BAD_PROGRAMS[case]
    cfg = compose_run(
        *CODEGEN_JOB,
        "method.params.max_tokens=64",
        "method.params.sandbox.output_mb=1",
        f"llm.cache_path={tmp_path / 'c.sqlite'}",
    )
    replay_program(cfg, program)
    assert dict(run_job(cfg).executed) == {"failed": 1}
    record = records(cfg)["llm_codegen"]
    assert record["error"].startswith("CodegenFailed: none of 1 generated program(s) worked")
    assert message in record["error"]
    (attempt,) = record["details"]["programs"]
    assert attempt["code"] == program
    assert message in attempt["error"]
    assert record["usage"]["cache_hits"] == 1, "the replayed program was not served"
    # Megabytes of output stay out of the record: only short tails are kept.
    stored = ResultsStore(cfg.results_dir).record_path(specs_for(cfg)[0].stem)
    assert stored.stat().st_size < 50_000
    majority = compose_run("dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[16]")
    assert dict(run_job(majority).executed) == {"ok": 1}


def leak_detector(test_labels: list[str], target: str) -> str:
    """A program whose build_model reads every file of its directory and fails if a label
    column, the test rows' labels or more rows than the training subset are in any of them."""
    return f"""\
import os

import pandas as pd
from sklearn.dummy import DummyClassifier

HIDDEN = {test_labels!r}

def build_model():
    for name in sorted(os.listdir(".")):
        if not os.path.isfile(name):
            continue
        open(name, "rb").read()
        if not name.endswith(".parquet"):
            continue
        frame = pd.read_parquet(name)
        if {target!r} in frame.columns:
            raise RuntimeError(f"LEAK: {{name}} has the target column")
        # a CV fold sees part of the training subset, the final fit all of it; never more
        if name == "train.parquet" and len(frame) > {N_TRAIN}:
            raise RuntimeError(f"LEAK: train.parquet has {{len(frame)}} rows")
        if name != "train.parquet" and "__target__" in frame.columns:
            raise RuntimeError(f"LEAK: {{name}} has a label column")
        for column in frame.columns:
            if frame[column].astype(str).tolist() == HIDDEN:
                raise RuntimeError(f"LEAK: column {{column}} of {{name}}")
    print("checked", sorted(os.listdir(".")))
    return DummyClassifier(strategy="prior")
"""


def test_a_working_program_is_saved_and_never_sees_the_test_labels(
    compose_run: Compose, tmp_path: Path, callcenter_task: Task
) -> None:
    cfg = compose_run(*CODEGEN_JOB, f"llm.cache_path={tmp_path / 'c.sqlite'}")
    split = split_of(cfg, callcenter_task)
    test_labels = callcenter_task.y.iloc[split.test_rows].astype(str).tolist()
    assert len(set(test_labels)) == 2  # both classes: a label column would stand out
    program = leak_detector(test_labels, callcenter_task.target)
    replay_program(cfg, program)
    assert dict(run_job(cfg).executed) == {"ok": 1}, records(cfg)["llm_codegen"]["error"]

    record = records(cfg)["llm_codegen"]
    details = record["details"]
    assert details["chosen_attempt"] == 0
    assert details["cv_score"] == pytest.approx(0.5)  # priors only
    assert details["predict_sandbox_s"] > 0
    assert "checked" in details["programs"][0]["stdout_tail"]
    stem = specs_for(cfg)[0].stem
    # the program, and the request-cache keys the run used (bench-bundle exports exactly those)
    assert record["artifacts"] == [
        f"artifacts/{stem}/model.py",
        f"artifacts/{stem}/cache_keys.txt",
    ]
    assert (Path(cfg.results_dir) / record["artifacts"][0]).read_text() == program
    predictions = ResultsStore(cfg.results_dir).predictions(record)
    assert len(predictions) == TEST_ROWS
    assert record["spec"]["prompt_version"] == f"codegen-{CODEGEN_PROMPT_VERSION}"


# Passes cross-validation (fits on fewer rows than N_TRAIN) but fails once fitted on them all.
FAILS_WHEN_PREDICTING = f"""\
import numpy as np
from sklearn.dummy import DummyClassifier

class Fragile(DummyClassifier):
    def predict_proba(self, X):
        if self.n_rows_ == {N_TRAIN}:
            raise ValueError("unseen category 'premium' in column plan")
        return super().predict_proba(X)

    def fit(self, X, y):
        self.n_rows_ = len(X)
        return super().fit(X, y)

def build_model():
    return Fragile()
"""


def test_a_program_that_fails_when_predicting_is_a_failed_run_with_its_program_kept(
    compose_run: Compose, tmp_path: Path
) -> None:
    cfg = compose_run(*CODEGEN_JOB, f"llm.cache_path={tmp_path / 'c.sqlite'}")
    replay_program(cfg, FAILS_WHEN_PREDICTING)
    assert dict(run_job(cfg).executed) == {"failed": 1}
    record = records(cfg)["llm_codegen"]
    assert record["error"].startswith(
        "RuntimeError: the chosen program failed when predicting: "
    ), record["error"]
    assert "unseen category 'premium' in column plan" in record["error"]
    assert record["details"]["programs"][0]["ok"] is True  # it did pass cross-validation
    assert record["details"]["chosen_attempt"] == 0
    assert record["usage"]["cache_hits"] == 1
    assert (Path(cfg.results_dir) / record["artifacts"][0]).read_text() == FAILS_WHEN_PREDICTING


# -- llm_distill -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Distilled:
    cfg: DictConfig
    summary: dict[str, int]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory: pytest.TempPathFactory) -> Distilled:
    work = tmp_path_factory.mktemp("distill_job")
    cfg = compose_config(
        [*DISTILL_JOB, f"llm.cache_path={work / 'c.sqlite'}", f"results_dir={work / 'results'}"]
    )
    return Distilled(cfg, dict(run_job(cfg).executed))


def test_a_distillation_run_records_silver_accuracy_and_labelling_cost(
    distilled: Distilled,
) -> None:
    assert distilled.summary == {"ok": 1}
    record = records(distilled.cfg)["llm_distill"]
    assert (record["family"], record["serializer"]) == (
        "llm_distill",
        distilled.cfg.serializer.name,
    )
    assert record["n_test"] == TEST_ROWS
    details = record["details"]
    assert 0.0 <= details["silver_accuracy"] <= 1.0
    assert details["unlabelled_rows"] == N_UNLABELLED
    assert sum(details["silver_label_counts"].values()) == N_UNLABELLED
    assert details["student_rows"] == 8 + N_UNLABELLED
    usage = record["usage"]
    assert usage["requests"] == N_UNLABELLED
    assert details["labelling_usd_per_1k_rows"] == 0.0
    assert details["labelling_seconds_per_1k_rows"] == pytest.approx(
        usage["llm_seconds"] * 1000 / N_UNLABELLED
    )
    assert len(ResultsStore(distilled.cfg.results_dir).predictions(record)) == TEST_ROWS


def test_silver_accuracy_is_that_of_the_rows_after_the_training_subset(
    distilled: Distilled, callcenter_task: Task
) -> None:
    """Label the next rows of the pool again with the same teacher: every question is answered
    from the request cache (so the run asked about exactly these rows), and the accuracy of the
    answers against the hidden labels is the recorded one."""
    task, cfg = callcenter_task, distilled.cfg
    split = split_of(cfg, task)
    train, unlabelled = split.pool_order[:8], split.pool_order[8 : 8 + N_UNLABELLED]
    assert not set(unlabelled) & set(train)
    assert not set(unlabelled) & set(split.test_rows)
    model = method_for(cfg, task).fit(
        task.X.iloc[train], task.y.iloc[train], X_unlabelled=task.X.iloc[unlabelled]
    )
    assert model.usage_["cache_hits"] == N_UNLABELLED and model.usage_["requests"] == 0
    details = records(cfg)["llm_distill"]["details"]
    truth = task.y.iloc[unlabelled].astype(str).to_numpy()
    assert details["silver_accuracy"] == pytest.approx(np.mean(model.silver_labels_ == truth))
    assert details["silver_label_counts"] == model.fit_info_["silver_label_counts"]


def test_no_unlabelled_rows_left_in_the_pool_is_a_skipped_run(compose_run: Compose) -> None:
    cfg = compose_run(*DISTILL_JOB, "n_train=[all]")
    assert dict(run_job(cfg).executed) == {"skipped": 1}
    record = records(cfg)["llm_distill"]
    assert "has only 0 left" in record["error"]
    assert f"method.params.n_unlabelled={N_UNLABELLED}" in record["error"]
    assert record["usage"]["requests"] == 0


def test_fewer_unlabelled_rows_left_than_asked_for_is_a_skipped_run(
    compose_run: Compose, tmp_path: Path, user_conf_dir: Path, small_csv: Path
) -> None:
    (user_conf_dir / "dataset" / "customers.yaml").write_text(
        f"name: customers\nsource: csv\nparams: {{path: '{small_csv}'}}\ntarget: churned\n"
        "drop_columns: [customer_id]\n"
    )
    job = (
        "dataset=customers",
        "method=llm_distill",
        "llm=local_smollm2_135m",
        "seeds=[0]",
        f"method.params.n_unlabelled={N_UNLABELLED}",
        "method.params.teacher_shots=zero",  # keep the prompts short
        f"llm.cache_path={tmp_path / 'c.sqlite'}",
    )
    probe = compose_run(*job, "n_train=[8]", conf_dir=user_conf_dir)
    left = 5
    n_train = split_of(probe, load_task(probe.dataset)).pool_size - left
    cfg = compose_run(*job, f"n_train=[{n_train}]", conf_dir=user_conf_dir)
    run_job(cfg)
    record = records(cfg)["llm_distill"]
    assert record["status"] == "skipped", record["details"].get("unlabelled_rows")


# -- run identity ----------------------------------------------------------------------------


def stem(compose_run: Compose, *overrides: str) -> str:
    cfg = compose_run("dataset=callcenter", "seeds=[0]", "n_train=[16]", *overrides)
    return specs_for(cfg)[0].stem


def test_codegen_run_ids_follow_the_llm_and_the_method_but_not_the_serializer(
    compose_run: Compose,
) -> None:
    base = ("method=llm_codegen", "llm=local_smollm2_135m")
    reference = stem(compose_run, *base, "serializer=list")
    assert stem(compose_run, *base, "serializer=csv") == reference  # it writes no rows as text
    for changed in (
        "llm=local_gemma3_270m",
        "method.params.n_candidates=2",
        "method.params.max_tokens=256",
        "method.params.sandbox.memory_mb=1024",
    ):
        assert stem(compose_run, *base, changed) != reference, changed
    spec = specs_for(compose_run("dataset=callcenter", *base))[0]
    assert spec.serializer is None and "serializer" not in spec.determinants
    assert spec.determinants["prompt_version"] == f"codegen-{CODEGEN_PROMPT_VERSION}"


def test_distill_run_ids_follow_the_serializer(compose_run: Compose) -> None:
    base = ("method=llm_distill", "llm=local_smollm2_135m")
    assert stem(compose_run, *base, "serializer=csv") != stem(compose_run, *base, "serializer=list")
    assert stem(compose_run, *base, "method.params.n_unlabelled=50") != stem(compose_run, *base)
    cfg = compose_run("dataset=callcenter", *base)
    assert specs_for(cfg)[0].serializer == cfg.serializer.name

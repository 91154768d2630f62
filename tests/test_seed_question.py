"""experiment=seed_question: it composes to the thread's scenario, and a miniature of it runs end
to end with the real embedded model (retrieval from the whole pool, distillation from 1,000
labelled rows, classical methods at both sizes), then reports."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.config import compose_config
from bench.methods.llm_icl import LLMICLClassifier
from bench.methods.shots import nearest_shots, shared_prefix_layout
from bench.preflight import plan_sweep

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def test_seed_question_composes_to_50k_pool_and_10k_test_rows() -> None:
    cfg = compose_config(["experiment=seed_question", "method=llm_icl_knn_all"])
    assert cfg.dataset.params.rows == 60000
    assert round(cfg.split.test_size * 60000) == 10002 and cfg.split.max_test_rows == 10000
    assert list(cfg.method.n_train) == [50000] and cfg.method.params.knn_layout == "shared_prefix"
    distill = compose_config(["experiment=seed_question", "method=llm_distill_1k"]).method
    assert list(distill.n_train) == [1000] and distill.params.n_unlabelled == 49000
    plan = plan_sweep(["experiment=seed_question"])
    assert plan.problems == []
    stems = sorted(plan.run_stems)
    # the LLM methods run once each at their pinned size, the 6 classical ones at both sizes
    assert sum("llm_icl_knn_all__n50000" in s for s in stems) == 1
    assert sum("llm_distill_1k__n1000" in s for s in stems) == 1
    assert len(stems) == 2 + 7 * 2
    small = compose_config(["experiment=seed_question_small", "method=llm_distill_1k_small"])
    assert small.split.max_test_rows == 600 and small.method.params.n_unlabelled == 4000


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "bench-run"), *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_a_miniature_seed_question_runs_end_to_end(tmp_path: Path) -> None:
    results = tmp_path / "results"
    common = [
        "experiment=seed_question_small",
        "dataset.params.rows=1500",  # a pool of 1,490 rows, 10 test rows
        "n_train=[1000,all]",
        "split.max_test_rows=10",
        f"results_dir={results}",
        "llm.cache=false",
        "report=false",
    ]
    # the pool is smaller than 50,000 here: retrieval from all of it
    _run(*common, "method=llm_icl_knn_all", "method.n_train=[all]", cwd=tmp_path)
    _run(*common, "method=logreg", cwd=tmp_path)
    _run(
        *common,
        "method=llm_distill_1k_small",
        "method.params.n_unlabelled=24",
        "report=true",
        cwd=tmp_path,
    )
    records = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    by = {(r["method"], r["n_train"]): r for r in records}
    assert {r["status"] for r in records} == {"ok"}, [r["error"] for r in records]
    assert set(by) == {
        ("llm_icl_knn_all", 1490),
        ("logreg", 1000),
        ("logreg", 1490),
        ("llm_distill_1k_small", 1000),
    }
    knn = by[("llm_icl_knn_all", 1490)]
    assert knn["details"]["shots"] == 16 and knn["details"]["selection"] == "knn"
    assert 0 < knn["details"]["prefix_reuse"] < 1  # the shared instruction at least
    assert by[("llm_distill_1k_small", 1000)]["details"]["unlabelled_rows"] == 24
    report = (results / "report" / "report.md").read_text()
    assert "With 1,000 labelled rows, llm_distill_1k_small (local_gemma3_270m)" in report
    assert "With 1,490 labelled rows, llm_icl_knn_all (local_gemma3_270m)" in report


def test_shared_prefix_layout_keeps_each_querys_shots_and_shares_more_of_them(
    callcenter_task,
) -> None:
    """The layout only reorders: every query keeps its own neighbours, and consecutive prompts
    share more shots than in the popularity order alone, and more text than unordered."""
    from omegaconf import OmegaConf

    from bench.config import load_llm_config

    X = callcenter_task.X
    neighbours = nearest_shots(X.iloc[:1500], X.iloc[1500:2100], 8)
    laid, order = shared_prefix_layout(neighbours)
    assert sorted(order) == list(range(len(neighbours)))
    assert all(sorted(a) == sorted(b) for a, b in zip(laid, neighbours, strict=True))
    counts = np.bincount(np.concatenate(neighbours))
    popular = [sorted(n, key=lambda i: (-counts[i], i)) for n in neighbours]
    assert _shared_shots(laid, order) > _shared_shots(popular, order)

    llm = OmegaConf.to_container(load_llm_config("local_gemma3_270m", key="llm"), resolve=True)
    model = LLMICLClassifier(
        llm=llm,
        serializer={"format": "csv", "shared_header": True},
        class_labels=callcenter_task.class_labels,
        max_shots=4,
        selection="knn",
        knn_layout="shared_prefix",
    )
    model.fit(X.iloc[:300], callcenter_task.y.iloc[:300])
    queries = X.iloc[300:340]
    _, sent = model._knn_plan(queries)
    prompts = model.prompts(queries)
    shared = sum(len(_common_prefix(prompts[a], prompts[b])) for a, b in itertools.pairwise(sent))
    unordered = sum(len(_common_prefix(a, b)) for a, b in itertools.pairwise(prompts))
    assert shared > unordered


def _shared_shots(shots: list[np.ndarray], order: np.ndarray) -> int:
    total = 0
    for a, b in itertools.pairwise(order):
        total += len(_common_prefix(list(shots[a]), list(shots[b])))
    return total


def _common_prefix(a: Any, b: Any) -> Any:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]

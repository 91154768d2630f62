"""A small synthetic results store whose every number is known, for the report's tests
(tests/test_report_synthetic.py, tests/test_report_synthetic_verdict.py).

Two binary datasets, 3 seeds. `alpha`: a paid LLM (usd > 0) that ties the classical methods at
16 and 64 rows and loses at 256, plus zero-shot runs. `beta`: the same LLM label without fees,
significantly better at 16 rows, tied at 64. Expected values are worked out by hand in the
tests' comments (t quantile for 2 df: 4.302653; for 5 df: 2.570582).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.cost import cost_per_1k
from bench.report.runs import prepare_runs
from bench.results import ResultsStore, load_results

LLM = "llm_icl (gpt-4o-mini)"
SEEDS = (0, 1, 2)

# AUC per seed: dataset -> method -> n_train -> (seed 0, 1, 2)
AUC: dict[str, dict[str, dict[int, tuple[float, ...]]]] = {
    "alpha": {
        "majority": {16: (0.5,) * 3, 64: (0.5,) * 3, 256: (0.5,) * 3},
        "logreg": {16: (0.78, 0.82, 0.80), 64: (0.70, 0.71, 0.72), 256: (0.85, 0.86, 0.87)},
        "lightgbm": {16: (0.70, 0.72, 0.74), 64: (0.78, 0.80, 0.82), 256: (0.88, 0.90, 0.92)},
        "llm_icl": {
            0: (0.60, 0.62, 0.64),
            16: (0.80, 0.81, 0.82),
            64: (0.79, 0.80, 0.83),
            256: (0.80, 0.81, 0.82),
        },
    },
    "beta": {
        "majority": {16: (0.5,) * 3, 64: (0.5,) * 3},
        "logreg": {16: (0.60, 0.62, 0.64), 64: (0.70, 0.72, 0.74)},
        "lightgbm": {16: (0.55, 0.56, 0.57), 64: (0.75, 0.76, 0.77)},
        "llm_icl": {16: (0.70, 0.71, 0.72), 64: (0.73, 0.75, 0.77)},
    },
}
# CPU seconds of a classical run: dataset -> method -> n_train
CPU = {
    "alpha": {"majority": {16: 0.002, 64: 0.002, 256: 0.002}, "logreg": 0.1, "lightgbm": 0.4},
    "beta": {
        "majority": {16: 0.001, 64: 0.002},
        "logreg": {16: 0.05, 64: 0.06},
        "lightgbm": {16: 0.2, 64: 0.3},
    },
}
N_TEST = {"alpha": 200, "beta": 100}


def record(
    dataset: str,
    method: str,
    n_train: int,
    seed: int,
    auc: float | None,
    *,
    status: str = "ok",
    error: str | None = None,
    stem: str = "",
    finished: str = "2026-01-02T00:00:00+00:00",
    **usage: Any,
) -> dict[str, Any]:
    """A run record in the store's format (bench.runner writes the same fields)."""
    family = "llm_icl" if method.startswith("llm_") else "classical"
    cpu = usage.pop("cpu_s", 0.0)
    # A quarter of a classical run's CPU time is predicting (marginal), the rest fitting.
    timing = {
        "fit_s": 0.0,
        "predict_s": 0.0,
        "wall_s": 1.0,
        "cpu_s": cpu,
        "fit_cpu_s": 0.75 * cpu,
        "predict_cpu_s": 0.25 * cpu,
    }
    metrics = {} if auc is None else {"roc_auc": auc, "accuracy": auc - 0.1, "log_loss": 1 - auc}
    return {
        "experiment": "synthetic",
        "dataset": dataset,
        "method": method,
        "family": family,
        "serializer": "list" if family == "llm_icl" else None,
        "llm": "gpt-4o-mini" if family == "llm_icl" else None,
        "n_train": n_train,
        "seed": seed,
        "status": status,
        "error": error,
        "metrics": metrics,
        "timing": timing,
        "usage": {
            "requests": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cached_tokens": 0,
            "cache_hits": 0,
            "usd": 0.0,
            "llm_seconds": 0.0,
            **usage,
        },
        "n_test": N_TEST[dataset],
        "class_labels": ["no", "yes"],
        "details": {"shots": n_train} if family == "llm_icl" else {},
        "finished_at": finished,
        "run_stem": stem or f"{dataset}__{method}__n{n_train}__s{seed}__x",
    }


def synthetic_records() -> list[dict[str, Any]]:
    records = []
    for dataset, methods in AUC.items():
        for method, curve in methods.items():
            for n_train, values in curve.items():
                for seed, auc in zip(SEEDS, values, strict=True):
                    if method != "llm_icl":
                        cpu = CPU[dataset][method]
                        cpu = cpu[n_train] if isinstance(cpu, dict) else cpu
                        records.append(record(dataset, method, n_train, seed, auc, cpu_s=cpu))
                        continue
                    # alpha pays $0.003 and 0.2 s per answer; beta runs locally for 0.1 s.
                    rows = N_TEST[dataset]
                    paid = dataset == "alpha"
                    usage = {
                        "requests": rows,
                        "prompt_tokens": 1000,
                        "completion_tokens": 10,
                        "usd": 0.003 * rows if paid else 0.0,
                        "llm_seconds": (0.2 if paid else 0.1) * rows,
                    }
                    if paid and n_train == 256 and seed == 1:  # half the answers from the cache
                        usage.update(requests=100, cache_hits=100, usd=0.3, llm_seconds=20.0)
                    if paid and n_train == 256 and seed == 2:  # every answer from the cache
                        usage.update(requests=0, cache_hits=200, usd=0.0, llm_seconds=0.0)
                        usage.update(prompt_tokens=0, completion_tokens=0)
                    records.append(record(dataset, method, n_train, seed, auc, **usage))
    for method in ("majority", "logreg", "lightgbm"):  # classical methods need rows
        for seed in SEEDS:
            reason = f"method '{method}' needs training rows (n_train=0)"
            records.append(record("alpha", method, 0, seed, None, status="skipped", error=reason))
    records.append(
        record(
            "alpha",
            "xgboost",
            16,
            0,
            None,
            status="failed",
            error="ValueError: boom\nTraceback (most recent call last): ...",
        )
    )
    # An older record of the same cell with other settings: the newer one must win.
    records.append(
        record(
            "beta",
            "lightgbm",
            16,
            0,
            0.99,
            cpu_s=0.2,
            stem="beta__lightgbm__n16__s0__older",
            finished="2026-01-01T00:00:00+00:00",
        )
    )
    return records


def write_store(path: Path) -> Path:
    """The synthetic store written into the empty folder `path`."""
    results = ResultsStore(path)
    for rec in synthetic_records():
        results.save(rec)
    return path


def report_runs(store: Path) -> pd.DataFrame:
    """The store's runs as the report prepares them (superseded records dropped, cost per 1k)."""
    return cost_per_1k(prepare_runs(load_results(store)).runs, store)

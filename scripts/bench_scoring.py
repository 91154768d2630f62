#!/usr/bin/env python
"""Benchmark `llm.scoring`: probabilities without logprobs against logprobs, on the same rows.

Runs the real harness (`run_job`, one run per scoring mode) with `llm_icl` on `callcenter` at
64 shots with the embedded chat model, every mode on the same training and test rows and a
fresh request cache (so the seconds are computed, not cache hits). Reads the store back: per
mode AUC, ECE, Brier, parse failures (rows scored uniform, generations unread), tokens and
seconds per test row; and between each mode and logprobs the paired bootstrap difference of
AUC, ECE and Brier over the same rows (bench/report/paired.py). `auto` equals `logprobs` on
the in-process model (it always returns logprobs), so it is not measured separately here.

Prints JSON and writes it to --out:

    nice -n 10 .venv/bin/python scripts/bench_scoring.py --test-rows 150 \
        --out results/bench_scoring.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.config import compose_config
from bench.metrics import expected_calibration_error
from bench.report.paired import paired_bootstrap
from bench.results import ResultsStore
from bench.runner import run_job

MODES = ("logprobs", "verbalized", "sampled")


def _ece(y: np.ndarray, score: np.ndarray) -> float:
    return expected_calibration_error(y.astype(int), np.c_[1 - score, score])


def warm_up(args: argparse.Namespace) -> float:
    """Evaluate the run's shared prefix (instruction and shots) once, uncached, on one test row,
    so no mode's seconds per row carry that one-off cost (the in-process model is loaded once
    per process and keeps the prefix in its KV cache); its seconds."""
    from omegaconf import OmegaConf

    from bench.data.dataset import load_task
    from bench.data.splits import make_split
    from bench.methods.base import MethodContext
    from bench.methods.llm_icl import build_llm_icl

    cfg = compose_config(
        ["dataset=callcenter", "method=llm_icl", f"llm={args.llm}", f"llm.n_threads={args.threads}"]
    )
    task = load_task(cfg.dataset)
    split = make_split(task.y, task.name, seed=args.seed, max_test_rows=args.test_rows)
    shots = split.subset(args.shots, task.y).rows
    llm = {**OmegaConf.to_container(cfg.llm, resolve=True), "cache": False}
    serializer = OmegaConf.to_container(cfg.serializer, resolve=True)
    context = MethodContext.for_task(task, args.seed, llm=llm, serializer=serializer)
    model = build_llm_icl(cfg.method, context).fit(task.X.iloc[shots], task.y.iloc[shots])
    start = time.perf_counter()
    model.predict_proba(task.X.iloc[split.test_rows[:1]])
    return time.perf_counter() - start


def run_mode(mode: str, args: argparse.Namespace, results: Path) -> dict[str, Any]:
    """One run of `mode` into `results`; its record."""
    cfg = compose_config(
        [
            "dataset=callcenter",
            "method=llm_icl",
            f"llm={args.llm}",
            f"llm.scoring={mode}",
            f"llm.scoring_samples={args.samples}",
            f"llm.n_threads={args.threads}",
            f"llm.cache_path={results / 'cache.sqlite'}",
            "llm.max_invalid_share=1.0",  # measure the parse failures, do not fail on them
            f"seeds=[{args.seed}]",
            f"n_train=[{args.shots}]",
            f"split.max_test_rows={args.test_rows}",
            f"results_dir={results}",
            "report=false",
        ]
    )
    start = time.perf_counter()
    run_job(cfg)
    wall = time.perf_counter() - start
    records = [r for r in ResultsStore(results).records() if _mode_of(r) == mode]
    record = max(records, key=lambda r: r.get("finished_at") or "")
    record["_wall_s"] = wall
    return record


def _mode_of(record: dict[str, Any]) -> str:
    return str(((record.get("spec") or {}).get("llm") or {}).get("scoring", "auto"))


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    n = int(record.get("n_test") or 0) or 1
    usage, metrics, details = record["usage"], record["metrics"], record.get("details") or {}
    fit = {k: usage.get(f"fit_{k}", 0) for k in ("requests",)}
    return {
        "status": record["status"],
        "error": record.get("error"),
        "test_rows": n,
        "auc": round(metrics.get("roc_auc", float("nan")), 4),
        "ece": round(metrics.get("ece", float("nan")), 4),
        "brier": round(metrics.get("brier", float("nan")), 4),
        "scoring": details.get("scoring"),
        "rows_scored_uniform": details.get("invalid_answers"),
        "unparsed_generations": details.get("unparsed_answers", 0),
        "requests_per_row": round((usage["requests"] - fit["requests"]) / n, 2),
        "prompt_tokens_per_row": round(usage["prompt_tokens"] / n, 1),
        "evaluated_prompt_tokens_per_row": round(
            (usage["prompt_tokens"] - usage["cached_tokens"]) / n, 1
        ),
        "completion_tokens_per_row": round(usage["completion_tokens"] / n, 2),
        "seconds_per_row": round(record["timing"]["predict_s"] / n, 3),
        "run_wall_s": round(record["_wall_s"], 1),
        "example": details.get("invalid_example"),
    }


def paired(results: Path, records: dict[str, dict[str, Any]], boot: int) -> dict[str, Any]:
    """Each mode minus logprobs on the same rows: AUC, Brier, ECE (95% paired bootstrap)."""

    def scores(record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frame = pd.read_parquet(results / record["predictions_file"]).sort_values("row")
        positive = record["positive_label"]
        return (
            frame["row"].to_numpy(),
            (frame["y_true"].astype(str) == positive).to_numpy().astype(float),
            frame[f"proba_{positive}"].to_numpy(),
        )

    rows, y, reference = scores(records["logprobs"])
    out: dict[str, Any] = {}
    for mode, record in records.items():
        if mode == "logprobs" or record["status"] != "ok":
            continue
        rows_b, y_b, score = scores(record)
        assert np.array_equal(rows, rows_b) and np.array_equal(y, y_b), "not the same rows"
        out[f"{mode} - logprobs"] = {
            name: _interval(paired_bootstrap([(y, score, reference)], metric, n_boot=boot))
            for name, metric in (("auc", "roc_auc"), ("brier", "brier"), ("ece", _ece))
        }
    return out


def _interval(interval: Any) -> dict[str, float]:
    return {
        "estimate": round(interval.estimate, 4),
        "low": round(interval.low, 4),
        "high": round(interval.high, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="local_qwen25_coder_1_5b")
    parser.add_argument("--shots", type=int, default=64)
    parser.add_argument("--test-rows", type=int, default=150)
    parser.add_argument("--samples", type=int, default=8, help="llm.scoring_samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="llm.n_threads")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--no-warm-up", dest="warm_up", action="store_false", help="the first mode pays the prefix"
    )
    parser.add_argument(
        "--summarize-only", action="store_true", help="read the runs in --results, run nothing"
    )
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--results", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=Path("results/bench_scoring.json"))
    args = parser.parse_args()

    results = args.results or Path(tempfile.mkdtemp(prefix="bench_scoring_"))
    modes = [m for m in args.modes.split(",") if m]
    if args.summarize_only:  # the runs a killed or finished measurement left in --results
        warm_s = None
        stored = ResultsStore(results).records()
        records = {m: r for m in modes for r in stored if _mode_of(r) == m and r["status"] == "ok"}
        for record in records.values():
            record["_wall_s"] = record["timing"]["wall_s"]
    else:
        warm_s = warm_up(args) if args.warm_up else None
        records = {mode: run_mode(mode, args, results) for mode in modes}
    summary = {
        "warm_up_s": None if warm_s is None else round(warm_s, 1),
        "llm": args.llm,
        "dataset": "callcenter",
        "shots": args.shots,
        "seed": args.seed,
        "scoring_samples": args.samples,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "results": str(results),
        "modes": {mode: summarize(record) for mode, record in records.items()},
    }
    if "logprobs" in records and records["logprobs"]["status"] == "ok":
        summary["paired_vs_logprobs"] = paired(results, records, args.boot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

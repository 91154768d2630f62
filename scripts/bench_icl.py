#!/usr/bin/env python
"""Benchmark in-context learning at scale: 500 shots, 1,000 test rows, prefix reuse vs naive.

With prefix reuse (what the harness does) the instruction and the 500 shots are evaluated once
and each test row costs only its own tokens. The naive way evaluates the whole prompt for every
test row; it is measured on a sample of rows (KV cache cleared before each) and extrapolated.

Prints JSON (and writes it to --out) with speedup_vs_naive (naive seconds per prediction / reuse
seconds per prediction), tokens_per_prediction and naive_tokens_per_prediction (prompt tokens
evaluated per prediction).

    .venv/bin/python scripts/bench_icl.py --out results/bench_icl.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from bench.config import compose_config
from bench.data.dataset import load_task
from bench.data.splits import make_split
from bench.llm.llamacpp_backend import LlamaCppBackend
from bench.llm.requests import ScoreRequest
from bench.methods.llm_icl import LLMICLClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=500)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--naive-sample", type=int, default=4, help="rows scored the naive way")
    # Values only: 500 call-center shots in the `list` format (about 33k tokens) overflow Gemma's
    # 32k window; without column names they take about 14k.
    parser.add_argument(
        "--serializer", default="list_values_only", help="a config in conf/serializer/"
    )
    parser.add_argument("--llm", default="local_gemma3_270m")
    parser.add_argument("--n-ctx", type=int, default=32768)
    parser.add_argument("--out", type=Path, default=Path("results/bench_icl.json"))
    args = parser.parse_args()

    cfg = compose_config(
        [
            "dataset=callcenter",
            f"llm={args.llm}",
            f"serializer={args.serializer}",
            f"llm.n_ctx={args.n_ctx}",
        ]
    )
    task = load_task(cfg.dataset)
    split = make_split(task.y, task.name, seed=0, max_test_rows=args.test_rows)
    shots = split.subset(args.shots, task.y).rows
    test = split.test_rows[: args.test_rows]
    llm = {**OmegaConf.to_container(cfg.llm, resolve=True), "cache": False}
    model = LLMICLClassifier(
        llm=llm,
        serializer=OmegaConf.to_container(cfg.serializer, resolve=True),
        class_labels=task.class_labels,
        target=task.target,
        task_description=task.description,
        feature_descriptions={f.name: f.description for f in task.features},
    ).fit(task.X.iloc[shots], task.y.iloc[shots])
    X_test = task.X.iloc[test]

    start = time.perf_counter()
    model.predict_proba(X_test)
    reuse_s = time.perf_counter() - start
    usage = model.usage_
    evaluated = usage["prompt_tokens"] - usage["cached_tokens"]

    backend = LlamaCppBackend(cfg.llm)  # the same loaded model (one per process)
    prompts = model.prompts(X_test.iloc[: args.naive_sample])
    answers = model.verbalizer_.answers()
    naive_s, naive_tokens = [], []
    for prompt in prompts:
        backend.llm.reset()  # forget the KV cache: evaluate the whole prompt again
        t0 = time.perf_counter()
        (result,) = backend.score([ScoreRequest(prompt, answers)])
        naive_s.append(time.perf_counter() - t0)
        naive_tokens.append(result.usage.prompt_tokens)

    n = len(X_test)
    per_prediction = reuse_s / n
    naive_per_prediction = sum(naive_s) / len(naive_s)
    result = {
        "llm": args.llm,
        "serializer": args.serializer,
        "shots": len(shots),
        "test_rows": n,
        "prompt_tokens": int(usage["prompt_tokens"] / n),
        "reuse_wall_s": round(reuse_s, 1),
        "reuse_s_per_prediction": round(per_prediction, 4),
        "tokens_per_prediction": round(evaluated / n, 1),
        "naive_sample": len(naive_s),
        "naive_s_per_prediction": round(naive_per_prediction, 3),
        "naive_wall_s_extrapolated": round(naive_per_prediction * n, 1),
        "naive_tokens_per_prediction": round(sum(naive_tokens) / len(naive_tokens), 1),
        "speedup_vs_naive": round(naive_per_prediction / per_prediction, 1),
        "token_reduction": round(sum(naive_tokens) / len(naive_tokens) / (evaluated / n), 1),
        "cpus": os.cpu_count(),
        "target": {"speedup_vs_naive": ">= 20"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark the embedded LLM path: scored queries per second, prefix reuse, harness overhead.

Scores N query rows behind one shared ~1,300-token prefix (52 short serialized call-center rows)
with Gemma 3 270M, three ways, side by side in one process on one loaded model:

* harness: `LlamaCppBackend.score` (what every LLM method calls), cache off;
* direct: the same prompts through llama-cpp-python by hand (tokenize, evaluate the tokens after
  the common prefix, read the last position's logits) -- the floor the harness is compared to;
* no reuse: the harness with the KV cache cleared before every query, i.e. re-evaluating the
  whole prompt each time.

Prints JSON (and writes it to --out): queries_per_s, prefix_reuse_speedup (no-reuse seconds per
query / reuse seconds per query) and overhead_ratio (harness wall time / direct wall time).

    .venv/bin/python scripts/bench_llm.py --queries 40 --out results/bench_llm.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from bench.config import compose_config
from bench.data.callcenter import generate_callcenter
from bench.llm.llamacpp_backend import LlamaCppBackend
from bench.llm.requests import ScoreRequest

LABELS = [" yes", " no"]


def build_prompts(n_shots: int, n_queries: int) -> tuple[str, list[str]]:
    frame = generate_callcenter(rows=n_shots + n_queries, seed=1)
    # Three short columns: 52 shots make a prefix of about 1,300 Gemma tokens.
    features = frame[["call_reason", "channel", "previous_contacts_30d"]]

    def row(i: int) -> str:
        return ", ".join(f"{k}: {v}" for k, v in features.iloc[i].items())

    shots = "\n".join(f"{row(i)} -> resolved: {frame['resolved'].iloc[i]}" for i in range(n_shots))
    prefix = f"Was the customer's issue resolved on this contact?\n{shots}\n"
    return prefix, [f"{prefix}{row(n_shots + q)} -> resolved:" for q in range(n_queries)]


def direct_scores(llm, prompts: list[str]) -> list[np.ndarray]:
    """llama-cpp-python by hand: common-prefix reuse, last-position logits, first label token."""
    import llama_cpp

    label_ids = [llm.tokenize(label.encode(), add_bos=False, special=False)[0] for label in LABELS]
    out = []
    for prompt in prompts:
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=False)
        keep = 0
        limit = min(llm.n_tokens, len(tokens) - 1)
        while keep < limit and llm.input_ids[keep] == tokens[keep]:
            keep += 1
        llm.n_tokens = keep
        llm.eval(tokens[keep:])
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)
        )
        chosen = logits[label_ids].astype(np.float64)
        out.append(np.exp(chosen - chosen.max()) / np.exp(chosen - chosen.max()).sum())
    return out


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="local_gemma3_270m")
    parser.add_argument("--shots", type=int, default=52, help="rows in the shared prefix")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--no-reuse-queries", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="alternating harness/direct rounds")
    parser.add_argument("--out", type=Path, default=Path("results/bench_llm.json"))
    args = parser.parse_args()

    backend = LlamaCppBackend(compose_config([f"llm={args.llm}"]).llm)
    llm = backend.llm
    prefix, prompts = build_prompts(args.shots, args.queries + 1)
    warm, queries = prompts[0], prompts[1:]
    prefix_tokens = backend.count_tokens(prefix)
    asked = [ScoreRequest(query, LABELS) for query in queries]
    # evaluates the shared prefix once
    first_s, _ = timed(backend.score, [ScoreRequest(warm, LABELS)])

    harness_s, direct_s = [], []
    for _ in range(args.repeats):  # alternate, so both see the same machine conditions
        seconds, harness = timed(backend.score, asked)
        harness_s.append(seconds)
        seconds, direct = timed(direct_scores, llm, queries)
        direct_s.append(seconds)
    agree = max(abs(h.probs[LABELS[0]] - d[0]) for h, d in zip(harness, direct, strict=True))

    no_reuse = []
    for prompt in queries[: args.no_reuse_queries]:
        llm.reset()  # forget the KV cache: the whole prompt is evaluated again
        seconds, _ = timed(backend.score, [ScoreRequest(prompt, LABELS)])
        no_reuse.append(seconds)

    reuse_per_query = statistics.median(harness_s) / len(queries)
    result = {
        "llm": args.llm,
        "prefix_tokens": prefix_tokens,
        "prompt_tokens": backend.count_tokens(queries[0]),
        "queries": len(queries),
        "first_query_s": round(first_s, 3),
        "reuse_s_per_query": round(reuse_per_query, 4),
        "no_reuse_s_per_query": round(statistics.median(no_reuse), 4),
        "queries_per_s": round(1 / reuse_per_query, 2),
        "prefix_reuse_speedup": round(statistics.median(no_reuse) / reuse_per_query, 1),
        "harness_s": [round(s, 3) for s in harness_s],
        "direct_s": [round(s, 3) for s in direct_s],
        "overhead_ratio": round(statistics.median(harness_s) / statistics.median(direct_s), 3),
        "max_probability_difference_harness_vs_direct": float(f"{agree:.2e}"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.machine(),
        },
        "targets": {
            "queries_per_s": ">= 5",
            "prefix_reuse_speedup": ">= 10",
            "overhead_ratio": "<= 1.10",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark llm_embed's cost: rows embedded per second next to rows scored per second.

For each embedded LLM, the same serialized callcenter rows are embedded (llama.cpp's embedding
mode, mean pooling: what `method=llm_embed` does) and scored as in-context queries without shots
(what `method=llm_icl` does per test row), in one process, so the ratio compares like with like.
The request cache is off. Prints a Markdown table and writes JSON (--out).

    .venv/bin/python scripts/bench_embed.py --out results/bench_embed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.config import compose_config
from bench.data.dataset import load_task
from bench.llm.backend import EmbedRequest, ScoreRequest, make_backend
from bench.llm.serialize import RowSerializer


def measure(llm: str, texts: list[str], threads: int) -> dict[str, float]:
    cfg = compose_config([f"llm={llm}", "llm.cache=false", f"llm.n_threads={threads}"]).llm
    backend = make_backend(cfg)
    asked = [EmbedRequest(text) for text in texts]
    backend.embed(asked[:2])  # load the weights outside the timing
    start = time.perf_counter()
    tokens = sum(r.usage.prompt_tokens for r in backend.embed(asked))
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    backend.score([ScoreRequest(f"{t}\nAnswer:", [" yes", " no"]) for t in texts])
    score_s = time.perf_counter() - start
    return {
        "rows": len(texts),
        "tokens": tokens,
        "embed_rows_per_s": len(texts) / embed_s,
        "embed_tokens_per_s": tokens / embed_s,
        "score_rows_per_s": len(texts) / score_s,
        "embed_vs_score": score_s / embed_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llms", nargs="+", default=["local_gemma3_270m", "local_smollm2_135m"])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/bench_embed.json"))
    args = parser.parse_args()
    task = load_task(compose_config(["dataset=callcenter"]).dataset)
    rows = task.X.iloc[: args.rows]
    serializer = RowSerializer("list").fit(rows)
    texts = [serializer.record(row.to_dict()) for _, row in rows.iterrows()]
    results = {llm: measure(llm, texts, args.threads) for llm in args.llms}
    print("| llm | rows/s embedded | tokens/s embedded | rows/s scored | embed / score speed |")
    print("|---|---:|---:|---:|---:|")
    for llm, r in results.items():
        print(
            f"| {llm} | {r['embed_rows_per_s']:.1f} | {r['embed_tokens_per_s']:.0f} | "
            f"{r['score_rows_per_s']:.1f} | {r['embed_vs_score']:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

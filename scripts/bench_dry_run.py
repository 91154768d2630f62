"""Measure the dry run (bench/dry_run.py) against real runs, and the hosted-model estimate.

1. llm_icl on callcenter with the embedded Gemma 3 270M at a few training sizes: the dry run's
   prompt tokens, cacheable tokens, USD (with prices set on the config) and seconds against
   what the real run then records (a temporary results store, the request cache off).
2. The estimate for models without an offline tokenizer (bench/llm/tokens.py: o200k_base with a
   token per digit), plain o200k_base and characters / 4 against each embedded GGUF tokenizer
   on the same prompts (llm_icl prompts of callcenter and mlc_churn in four serializations,
   planned by the dry run's backend).

    .venv/bin/python scripts/bench_dry_run.py --out results/bench_dry_run.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.config import compose_config
from bench.data.dataset import load_task
from bench.dry_run import RunPlan, plan_job, planning
from bench.job import run_job, split_or_error
from bench.llm.backend import make_backend
from bench.llm.tokens import token_counter
from bench.results import ResultsStore
from bench.runner import execute_run
from bench.spec import specs_for

PRICES = ["llm.prices.input_per_m=2.5", "llm.prices.cached_input_per_m=1.25"]
GGUF_LLMS = ["local_gemma3_270m", "local_smollm2_135m", "local_qwen25_coder_0_5b"]


def against_real_runs(sizes: list[int], test_rows: int, threads: int) -> list[dict[str, Any]]:
    """Dry run, then the real run, of llm_icl on callcenter at each size (seed 0)."""
    out = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            overrides = [
                "dataset=callcenter",
                "method=llm_icl",
                f"n_train=[{n}]",
                "seeds=[0]",
                f"split.max_test_rows={test_rows}",
                f"results_dir={tmp}/results",
                "llm.cache=false",
                f"llm.n_threads={threads}",
                *PRICES,
            ]
            started = time.perf_counter()
            job = plan_job(compose_config([*overrides, "dry_run=true"]))
            planning_s = time.perf_counter() - started
            (tally,) = job.tallies.values()
            run_job(compose_config(overrides))
            (record,) = ResultsStore(f"{tmp}/results").runs()
            real = record.usage.totals
            out.append(
                {
                    "n_train": n,
                    "test_rows": test_rows,
                    "dry_run_seconds": round(planning_s, 2),
                    "prompt_tokens": {
                        "dry": tally.usage.prompt_tokens,
                        "real": real["prompt_tokens"],
                    },
                    "cached_tokens": {
                        "dry": tally.usage.cached_tokens,
                        "real": real["cached_tokens"],
                    },
                    "usd": {"dry": tally.usage.usd, "real": real["usd"]},
                    "llm_seconds": {
                        "dry": round(tally.seconds, 1),
                        "real": round(real["llm_seconds"], 1),
                    },
                    "prompt_error": _error(tally.usage.prompt_tokens, real["prompt_tokens"]),
                    "usd_error": _error(tally.usage.usd, real["usd"]),
                    "seconds_error": _error(tally.seconds, real["llm_seconds"]),
                }
            )
            print(json.dumps(out[-1]), flush=True)
    return out


def planned_prompts(dataset: str, serializer: str, n: int, test_rows: int) -> list[str]:
    """The prompts llm_icl would send (planned with Gemma: no model runs)."""
    cfg = compose_config(
        [
            f"dataset={dataset}",
            "method=llm_icl",
            f"serializer={serializer}",
            f"n_train=[{n}]",
            "seeds=[0]",
            f"split.max_test_rows={test_rows}",
            "llm.cache=false",
            "llm.save_prompts=true",
        ]
    )
    (spec,) = specs_for(cfg)
    task = load_task(cfg.dataset)
    with planning(RunPlan()):
        record, _ = execute_run(spec, None, task, split_or_error(task, spec))
    lines = (record.files or {}).get("prompts.jsonl", "").splitlines()
    return [json.loads(line)["prompt"] for line in lines]


def estimate_errors(test_rows: int) -> dict[str, Any]:
    """o200k_base and characters / 4 against each GGUF tokenizer, by prompt set."""
    counter = token_counter("any-other-model")  # the estimate: o200k_base, a token per digit
    plain = token_counter("gpt-4o")  # o200k_base as it is
    backends = {}
    for name in GGUF_LLMS:
        try:
            backend = make_backend(compose_config([f"llm={name}"]).llm, use_cache=False)
            backend.count_tokens("probe")
            backends[name] = backend
        except Exception as error:  # a model whose extra is not installed
            print(f"skipping {name}: {error}")
    out: dict[str, Any] = {}
    for dataset in ("callcenter", "mlc_churn"):
        for serializer in ("list", "csv_table", "json", "text"):
            prompts = planned_prompts(dataset, serializer, 16, test_rows)
            proxy = sum(len(counter.encode(p)) for p in prompts)
            o200k = sum(len(plain.encode(p)) for p in prompts)
            chars = sum(len(p) // 4 for p in prompts)
            found = {}
            for name, backend in backends.items():
                own = sum(backend.count_tokens(p) for p in prompts)
                found[name] = {
                    "tokens": own,
                    "estimate_error": _error(proxy, own),
                    "o200k_error": _error(o200k, own),
                    "chars4_error": _error(chars, own),
                }
            out[f"{dataset}/{serializer}"] = {"prompts": len(prompts), "estimate": proxy, **found}
            print(dataset, serializer, json.dumps(found), flush=True)
    return out


def _error(estimate: float, truth: float) -> float | None:
    return None if not truth else round((estimate - truth) / truth, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--test-rows", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/bench_dry_run.json"))
    args = parser.parse_args()
    result = {
        "real_runs": against_real_runs(args.sizes, args.test_rows, args.threads),
        "estimate": estimate_errors(args.test_rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

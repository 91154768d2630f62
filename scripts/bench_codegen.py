#!/usr/bin/env python
"""Benchmark LLM-written models: does the embedded coder write programs that work and compete?

Runs the real harness (`bench-run`, one sweep per LLM) with `llm_codegen`, `lightgbm` and
`logreg` on the same rows of each dataset x seed at one training size, then reads the store and
reports, per LLM: the share of runs whose generated program worked, the test ROC AUC of
`llm_codegen` next to `lightgbm` and `logreg` on the same rows, the gap to the better of the two
(codegen minus best; the target is a median within 0.03), and seconds and tokens per run.

Prints a Markdown table and writes JSON (--out). A rerun reuses the finished runs in --results.

    .venv/bin/python scripts/bench_codegen.py --out results/bench_codegen.json
    .venv/bin/python scripts/bench_codegen.py --llms local_qwen25_coder_1_5b --seeds 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench.paths import PROJECT_ROOT
from bench.results import load_results

DATASETS = ["callcenter", "mlc_churn", "credit_data", "attrition"]
LLMS = ["local_qwen25_coder_1_5b", "local_qwen25_coder_0_5b"]
BASELINES = ["lightgbm", "logreg"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llms", nargs="+", default=LLMS)
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=256)
    parser.add_argument("--n-jobs", type=int, default=2, help="threads of the LLM and the fits")
    parser.add_argument("--results", type=Path, default=Path("results/bench_codegen"))
    parser.add_argument("--out", type=Path, default=Path("results/bench_codegen.json"))
    args = parser.parse_args()

    results = args.results if args.results.is_absolute() else PROJECT_ROOT / args.results
    sweep_seconds = {}
    for llm in args.llms:
        start = time.perf_counter()
        command = [
            str(Path(sys.executable).with_name("bench-run")),
            "-m",
            "experiment_name=bench_codegen",
            f"results_dir={results}",
            f"dataset={','.join(args.datasets)}",
            f"method=llm_codegen,{','.join(BASELINES)}",
            f"llm={llm}",
            f"seeds=[{','.join(map(str, args.seeds))}]",
            f"n_train=[{args.n_train}]",
            f"n_jobs={args.n_jobs}",
        ]
        print("bench_codegen:", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=PROJECT_ROOT)
        sweep_seconds[llm] = round(time.perf_counter() - start, 1)

    frame = load_results(results)
    frame = frame[frame["n_train"].astype(str) == str(args.n_train)]
    frame = frame[frame["dataset"].isin(args.datasets) & frame["seed"].isin(args.seeds)]
    report = {
        "n_train": args.n_train,
        "datasets": args.datasets,
        "seeds": args.seeds,
        "sweep_seconds": sweep_seconds,
        "llms": {llm: summarise(frame, llm) for llm in args.llms},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(markdown(report))
    print(f"bench_codegen: wrote {args.out}")


def summarise(frame: pd.DataFrame, llm: str) -> dict:
    """Working share, AUCs next to the baselines on the same rows, seconds and tokens per run."""
    codegen = frame[(frame["method"] == "llm_codegen") & (frame["llm"] == llm)]
    baselines = frame[frame["method"].isin(BASELINES)]
    runs = []
    for row in codegen.itertuples():
        same = baselines[(baselines["dataset"] == row.dataset) & (baselines["seed"] == row.seed)]
        auc = {m: _auc(same[same["method"] == m]) for m in BASELINES}
        best = max((v for v in auc.values() if v is not None), default=None)
        ok = row.status == "ok"
        runs.append(
            {
                "dataset": row.dataset,
                "seed": int(row.seed),
                "status": row.status,
                "roc_auc": row.roc_auc if ok else None,
                **{f"{m}_roc_auc": auc[m] for m in BASELINES},
                "gap_to_best": row.roc_auc - best if ok and best is not None else None,
                "wall_s": row.wall_s,
                "tokens": _tokens(row),
                "programs": len((row.details or {}).get("programs", [])),
                "error": None if ok else str(row.error)[:300],
            }
        )
    gaps = [r["gap_to_best"] for r in runs if r["gap_to_best"] is not None]
    return {
        "runs": len(runs),
        "working": sum(r["status"] == "ok" for r in runs),
        "working_share": sum(r["status"] == "ok" for r in runs) / len(runs) if runs else None,
        "median_gap_to_best": statistics.median(gaps) if gaps else None,
        "median_wall_s": statistics.median(r["wall_s"] for r in runs) if runs else None,
        "median_tokens": statistics.median(r["tokens"] for r in runs) if runs else None,
        "per_run": runs,
    }


def _auc(rows: pd.DataFrame) -> float | None:
    ok = rows[rows["status"] == "ok"]
    return float(ok["roc_auc"].iloc[0]) if len(ok) else None


def _tokens(row: object) -> int:
    return int(
        (getattr(row, "prompt_tokens", 0) or 0) + (getattr(row, "completion_tokens", 0) or 0)
    )


def markdown(report: dict) -> str:
    lines = [
        "| llm | dataset | seed | status | codegen AUC | lightgbm | logreg | gap to best | s "
        "| tokens |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value: object) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    for llm, summary in report["llms"].items():
        for r in summary["per_run"]:
            lines.append(
                f"| {llm} | {r['dataset']} | {r['seed']} | {r['status']} | {cell(r['roc_auc'])} | "
                f"{cell(r['lightgbm_roc_auc'])} | {cell(r['logreg_roc_auc'])} | "
                f"{cell(r['gap_to_best'])} | {r['wall_s']:.0f} | {r['tokens']} |"
            )
    lines.append("")
    for llm, summary in report["llms"].items():
        lines.append(
            f"{llm}: {summary['working']}/{summary['runs']} runs with a working program; "
            "median gap to the better of lightgbm/logreg "
            f"{cell(summary['median_gap_to_best'])}; median {cell(summary['median_wall_s'])} s "
            f"and {summary['median_tokens']} tokens per run"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Measure LLM-Boost: is the LLM and the trees together better than either alone?

Runs the real harness (`bench-run`, one sweep per seed and method, into one results folder)
with `xgboost`, `xgboost_tuned`, `llm_boost` and `llm_icl` (at n = 0 too: the LLM's zero-shot
AUC on the test rows) on the same rows of each dataset x training size, then reads the store and
reports, per dataset and size: the test ROC AUC of each method (mean over the seeds that
finished), the LLM's own AUC on the training rows (zero-shot, from llm_boost's record), the
scales cross-validation chose, and llm_boost minus the best of its parts (the trees, plain or
tuned, and the LLM, with shots or zero-shot), "about" within `--margin`. Then, per size, the
paired 95% interval of llm_boost minus each part on the same test rows (bench/report/compare.py:
the row-level bootstrap over seeds and rows; the report's own comparison), per dataset and
pooled over the datasets: "clearly worse" means the whole interval is below 0. The report's
verdict comes from `bench-report` on the same folder.

Seeds run one after another, each over every dataset and size, so a measurement cut short still
holds whole seeds. A rerun reuses the finished runs. Prints a Markdown table and writes JSON.

    nice -n 10 .venv/bin/python scripts/bench_boost.py --out results/bench_boost.json
    .venv/bin/python scripts/bench_boost.py --collect-only --out results/bench_boost.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from bench.paths import PROJECT_ROOT
from bench.report.compare import PredictionReader, compare_runs
from bench.results import load_results

DATASETS = ["callcenter", "mlc_churn", "attrition", "credit_data"]
# cheapest first: a cut keeps the baselines. xgboost_tuned: llm_boost tunes its trees too (a
# small grid), so a gain over plain xgboost at s = 0 is tuning, not the LLM
METHODS = ["xgboost", "xgboost_tuned", "llm_boost", "llm_icl"]


def run_sweeps(args: argparse.Namespace, results: Path) -> None:
    """One bench-run per (seed, method) over every dataset and size; finished runs are kept."""
    bench_run = Path(sys.executable).with_name("bench-run")
    for seed in args.seeds:
        for method in args.methods:
            # llm_icl at n = 0 asks the LLM zero-shot about the test rows: the same prompts as
            # llm_boost's test rows (request-cache hits), i.e. the LLM's own test AUC
            sizes = [0, *args.sizes] if method == "llm_icl" else args.sizes
            command = [
                str(bench_run),
                "-m",
                f"dataset={','.join(args.datasets)}",
                f"method={method}",
                f"seeds=[{seed}]",
                f"n_train=[{','.join(map(str, sizes))}]",
                f"split.max_test_rows={args.test_rows}",
                f"llm={args.llm}",
                "llm.n_threads=1",
                "llm.n_ctx=8192",  # llm_icl at 256+ rows of wide tables is skipped, not run
                "serializer=csv_table",
                "n_jobs=1",
                "hydra/launcher=basic",
                f"experiment_name={results.name}",
                f"results_dir={results}",
                "report=false",
            ]
            print(" ".join(command[1:]), flush=True)
            subprocess.run(command, cwd=PROJECT_ROOT, check=False)


def _detail(details: Any, key: str) -> Any:
    return details.get(key) if isinstance(details, dict) else None


def _mean(wide: pd.DataFrame, method: str) -> float | None:
    """A method's mean AUC over the seeds it finished (None if none)."""
    if method not in wide or wide[method].isna().all():
        return None
    return float(wide[method].mean())


def _mean_of(values: pd.Series, keys: list[tuple[str, int]]) -> float | None:
    found = [float(values[k]) for k in keys if k in values.index]
    return sum(found) / len(found) if found else None


def collect(
    results: Path, margin: float, with_icl: bool = True
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Per (dataset, n_train): mean test AUC per method over the seeds every method finished
    (`with_icl` False: llm_icl is not waited for, its mean is over the seeds it finished)."""
    runs = load_results(results)
    ok = runs[(runs["status"] == "ok") & runs["method"].isin(METHODS)].copy()
    ok["auc"] = ok["roc_auc"]
    boost = ok[ok["method"] == "llm_boost"].copy()
    boost["llm_train_auc"] = boost["details"].map(lambda d: _detail(d, "llm_train_auc"))
    boost["scale"] = boost["details"].map(lambda d: _detail(d, "scale"))
    boost["cv_trees"] = boost["details"].map(lambda d: _detail(d, "cv_auc_trees_alone"))
    boost["cv_llm"] = boost["details"].map(lambda d: _detail(d, "cv_auc_prior_alone"))
    zero = ok[(ok["method"] == "llm_icl") & (ok["n_train"] == 0)].set_index(["dataset", "seed"])
    rows = []
    for (dataset, n), group in ok[ok["n_train"] > 0].groupby(["dataset", "n_train"]):
        wide = group.pivot_table(index="seed", columns="method", values="auc")
        if "llm_boost" not in wide or "xgboost" not in wide:
            continue
        # the seeds every method finished; llm_icl only where it ran at all (a prompt longer
        # than the context window is a skipped run)
        need = [
            m
            for m in METHODS
            if m in wide and (m != "llm_icl" or (with_icl and wide[m].notna().any()))
        ]
        both = wide.dropna(subset=need)
        if both.empty:
            continue
        mine = boost[(boost["dataset"] == dataset) & (boost["n_train"] == n)].set_index("seed")
        mine = mine.loc[both.index]
        zero_shot = _mean_of(zero["auc"], [(dataset, s) for s in both.index])
        row: dict[str, Any] = {
            "dataset": dataset,
            "n_train": int(n),
            "seeds": [int(s) for s in both.index],
            **{m: _mean(both, m) for m in METHODS},
            "llm_icl_seeds": int(both["llm_icl"].notna().sum()) if "llm_icl" in both else 0,
            "llm_zero_shot_test": zero_shot,
            "llm_train_auc": float(mine["llm_train_auc"].mean()),
            "scales": mine["scale"].tolist(),
            "cv_auc_trees_alone": float(mine["cv_trees"].astype(float).mean()),
            "cv_auc_llm_alone": float(mine["cv_llm"].astype(float).mean()),
        }
        # its parts: the trees (plain and tuned, as llm_boost tunes its own) and the LLM (with
        # the run's rows as shots, and the zero-shot score llm_boost starts from)
        parts = {m: row[m] for m in ("xgboost", "xgboost_tuned", "llm_icl") if row[m] is not None}
        if zero_shot is not None:
            parts["llm_zero_shot"] = zero_shot
        best = max(parts, key=parts.__getitem__)
        row["best_part"] = best
        row["vs_best_part"] = row["llm_boost"] - parts[best]
        row["outcome"] = (
            "better than every part"
            if row["vs_best_part"] > margin
            else f"worse than {best}"
            if row["vs_best_part"] < -margin
            else f"about {best}"
        )
        rows.append(row)
    return ok, rows


# llm_boost against each of its parts, on the same test rows (llm_icl at n = 0: the LLM's
# zero-shot score, what llm_boost starts from)
PARTS = {
    "xgboost": "xgboost",
    "xgboost_tuned": "xgboost_tuned",
    "llm zero-shot": "llm_icl@0",
    "llm_icl": "llm_icl",
}


def _runs_of(ok: pd.DataFrame, part: str, n: int) -> pd.DataFrame:
    method, _, at = part.partition("@")
    size = int(at) if at else n
    return ok[(ok["method"] == method) & (ok["n_train"] == size)]


def paired(ok: pd.DataFrame, results: Path) -> list[dict[str, Any]]:
    """Per size, per dataset and over all datasets: llm_boost minus each part (test AUC), the
    paired interval over the (dataset, seed) pairs both finished."""
    reader = PredictionReader(results)
    out = []
    for n in sorted(int(v) for v in ok.loc[ok["method"] == "llm_boost", "n_train"].unique()):
        boost = ok[(ok["method"] == "llm_boost") & (ok["n_train"] == n)]
        for dataset in [*sorted(boost["dataset"].unique()), "all"]:
            mine = boost if dataset == "all" else boost[boost["dataset"] == dataset]
            row: dict[str, Any] = {"n_train": n, "dataset": dataset}
            for name, part in PARTS.items():
                other = _runs_of(ok, part, n)
                if dataset != "all":
                    other = other[other["dataset"] == dataset]
                both = mine.merge(other[["dataset", "seed"]], on=["dataset", "seed"])
                if both.empty:
                    row[name] = None
                    continue
                interval = compare_runs(mine, other, "roc_auc", ["dataset", "seed"], reader)
                row[name] = {
                    "estimate": interval.estimate,
                    "low": interval.low,
                    "high": interval.high,
                    "pairs": interval.n_seeds,
                    "interval": interval.method,
                }
            out.append(row)
    return out


def paired_markdown(rows: list[dict[str, Any]]) -> str:
    def cell(value: dict[str, Any] | None) -> str:
        if value is None:
            return "—"
        mark = " **worse**" if value["high"] < 0 else " **better**" if value["low"] > 0 else ""
        return (
            f"{value['estimate']:+.3f} [{value['low']:+.3f}, {value['high']:+.3f}] "
            f"({value['pairs']}){mark}"
        )

    lines = [
        "| n | dataset | " + " | ".join(f"− {name}" for name in PARTS) + " |",
        "|---:|---|" + "---|" * len(PARTS),
    ]
    for r in rows:
        cells = " | ".join(cell(r[name]) for name in PARTS)
        lines.append(f"| {r['n_train']} | {r['dataset']} | {cells} |")
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]]) -> str:
    def f(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = [
        "| dataset | n | seeds | llm_boost | xgboost | xgboost_tuned | llm_icl "
        "| LLM zero-shot: train / test | chosen s | llm_boost vs best part |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        scales = ", ".join(str(s) for s in r["scales"])
        lines.append(
            f"| {r['dataset']} | {r['n_train']} | {len(r['seeds'])} | {f(r['llm_boost'])} "
            f"| {f(r['xgboost'])} | {f(r['xgboost_tuned'])} | {f(r['llm_icl'])} "
            f"| {f(r['llm_train_auc'])} / {f(r['llm_zero_shot_test'])} | {scales} "
            f"| {r['vs_best_part']:+.3f}: {r['outcome']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--sizes", nargs="+", type=int, default=[16, 64, 256, 1024])
    parser.add_argument("--test-rows", type=int, default=100)
    parser.add_argument("--llm", default="local_gemma3_270m")
    parser.add_argument("--margin", type=float, default=0.01, help="AUC: 'about the same'")
    parser.add_argument("--results", type=Path, default=Path("results/boost_measure"))
    parser.add_argument("--out", type=Path, default=Path("results/bench_boost.json"))
    parser.add_argument("--collect-only", action="store_true", help="only read the store")
    args = parser.parse_args()

    results = args.results if args.results.is_absolute() else PROJECT_ROOT / args.results
    if not args.collect_only:
        run_sweeps(args, results)
    ok, rows = collect(results, args.margin)
    _, more_seeds = collect(results, args.margin, with_icl=False)
    intervals = paired(ok, results)
    table = markdown(rows)
    print(table)
    print("\nWithout waiting for llm_icl (its AUC over the seeds it finished):")
    print(markdown(more_seeds))
    print(
        "\nllm_boost minus each part, test AUC, paired 95% interval over (dataset, seed) pairs "
        "(pairs in brackets):"
    )
    print(paired_markdown(intervals))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "settings": {**vars(args), "results": str(results), "out": str(args.out)},
                "rows": rows,
                "markdown": table,
                "rows_without_waiting_for_llm_icl": more_seeds,
                "paired": intervals,
            },
            indent=1,
            default=str,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Seconds per llm_codegen candidate in the sandbox, before and after per-fold processes.

One candidate costs a 5-fold cross-validation plus the final fit that predicts the test rows.
The old sandbox (a git revision's bench/llm/sandbox*.py, run from a temporary copy) did the
whole cross-validation in one confined process; the current one starts one bubblewrap process
per fold and scores outside. Both run here, side by side, on callcenter at n=256 (seed 0).

    .venv/bin/python scripts/bench_sandbox.py --out results/bench_sandbox.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.config import compose_config  # noqa: E402
from bench.data.dataset import load_task  # noqa: E402
from bench.data.splits import make_split  # noqa: E402
from bench.llm import sandbox as current  # noqa: E402

PROGRAM = """
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

def build_model():
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    prep = ColumnTransformer([
        ("num", numeric, make_column_selector(dtype_include="number")),
        ("cat", categorical, make_column_selector(dtype_exclude="number")),
    ])
    return make_pipeline(prep, LogisticRegression(max_iter=1000))
"""


def old_sandbox(revision: str, folder: Path):
    """The sandbox module as it was at `revision`, imported from a temporary copy."""
    for name in ("sandbox.py", "sandbox_child.py", "sandbox_confine.sh"):
        text = subprocess.run(
            ["git", "show", f"{revision}:bench/llm/{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (folder / name).write_text(text)
    spec = importlib.util.spec_from_file_location("old_sandbox", folder / "sandbox.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_sandbox"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def candidate_seconds(module, X, y, X_test, repeats: int) -> dict:
    times, scores = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        cv = module.run_program(PROGRAM, X, y, metric="roc_auc", positive_label="yes")
        final = module.run_program(PROGRAM, X, y, X_test)
        times.append(time.perf_counter() - start)
        assert cv.ok and final.ok, (cv.error, final.error)
        scores.append(cv.cv_score)
    return {
        "seconds_per_candidate": times,
        "median_s": median(times),
        "cv_score": scores[0],
        "isolation": cv.isolation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="630cca6", help="git revision of the old sandbox")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="results/bench_sandbox.json")
    args = parser.parse_args()

    task = load_task(compose_config(["dataset=callcenter"]).dataset)
    split = make_split(task.y, task.name, 0)
    rows = split.subset(256, task.y).rows
    X, y = task.X.iloc[rows], task.y.iloc[rows]
    X_test = task.X.iloc[split.test_rows]
    with tempfile.TemporaryDirectory() as tmp:
        before = candidate_seconds(old_sandbox(args.before, Path(tmp)), X, y, X_test, args.repeats)
    after = candidate_seconds(current, X, y, X_test, args.repeats)
    report = {
        "dataset": "callcenter",
        "n_train": 256,
        "n_test": len(X_test),
        "before": {"revision": args.before, **before},
        "after": after,
        "ratio_after_over_before": after["median_s"] / before["median_s"],
    }
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("before", "after")}, indent=2))
    print(
        f"before: {before['median_s']:.2f} s/candidate ({before['isolation']}), "
        f"after: {after['median_s']:.2f} s/candidate ({after['isolation']})"
    )


if __name__ == "__main__":
    main()

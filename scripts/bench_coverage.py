"""Coverage of the verdict's intervals when the report picks the best of each side.

A simulated sweep: k LLM-based variants and m classical methods score the same test rows of
3 seeds (100 rows a seed, 40 positive, as the quick sweep). Binormal scores: method i's
positives score N(mu_i, 1), negatives N(0, 1), so its true AUC is Phi(mu_i / sqrt 2); every
method shares a latent row effect (correlation 0.5), so comparisons are truly paired.

Two truths: `all equal` (every mu = 1.0, AUC 0.760) and `one better` (LLM variant 0 has mu 1.5,
AUC 0.856; classical method 0 mu 1.3, AUC 0.821; the rest 1.0). Two intervals, each from the
report's own code:
- `best on test rows` (adjusted false): today's line, the paired bootstrap of the best mean of
  each side on all rows; the truth it should cover is the true difference of the two picked.
- `cross-fitted` (adjusted true): bench.report.selection.cross_fit; its truth is the true
  difference of the halves' picks, averaged over the two halves.
In both truths these are also the true best-vs-best difference (`best_vs_best` coverage).

    .venv/bin/python scripts/bench_coverage.py --sweeps 500 --out coverage.json
prints (and writes with --out) a JSON list of {interval, k, m, truth, adjusted, sweeps,
coverage, best_vs_best}.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from bench.report.paired import metric_values, paired_bootstrap
from bench.report.selection import cross_fit, pick

SEEDS, ROWS, POSITIVES, RHO, N_BOOT = 3, 100, 40, 0.5, 1000
TRUTHS = {"all equal": (1.0, 1.0), "one better": (1.5, 1.3)}  # mu of LLM 0 and classical 0
BASE_MU = 1.0


def separations(k: int, m: int, truth: str) -> tuple[np.ndarray, np.ndarray]:
    """mu per LLM variant and per classical method."""
    top_llm, top_classical = TRUTHS[truth]
    llm, classical = np.full(k, BASE_MU), np.full(m, BASE_MU)
    llm[0], classical[0] = top_llm, top_classical
    return llm, classical


def true_auc(mu: np.ndarray) -> np.ndarray:
    return stats.norm.cdf(mu / math.sqrt(2))


def draw_sweep(rng: np.random.Generator, mu_llm: np.ndarray, mu_classical: np.ndarray):
    """One simulated sweep: per seed (y, LLM scores k x n, classical scores m x n)."""
    sweep = []
    y = np.r_[np.ones(POSITIVES, int), np.zeros(ROWS - POSITIVES, int)]
    mu = np.r_[mu_llm, mu_classical]
    for _ in range(SEEDS):
        shared = math.sqrt(RHO) * rng.normal(size=ROWS)
        noise = math.sqrt(1 - RHO) * rng.normal(size=(len(mu), ROWS))
        scores = mu[:, None] * y + shared + noise
        sweep.append((y, scores[: len(mu_llm)], scores[len(mu_llm) :]))
    return sweep


def simulate(k: int, m: int, truth: str, sweeps: int, seed: int = 0) -> list[dict]:
    """Coverage of both intervals over `sweeps` simulated sweeps of one (k, m, truth)."""
    rng = np.random.default_rng([seed, k, m, len(truth)])
    mu_llm, mu_classical = separations(k, m, truth)
    auc_llm, auc_classical = true_auc(mu_llm), true_auc(mu_classical)
    best_vs_best = float(auc_llm.max() - auc_classical.max())
    hits = {False: [0, 0], True: [0, 0]}  # adjusted -> [picked pair, best vs best]
    for i in range(sweeps):
        sweep = draw_sweep(rng, mu_llm, mu_classical)
        means = [
            np.mean([metric_values("roc_auc", y, s[side]) for y, *s in sweep], axis=0)
            for side in (0, 1)
        ]
        a, b = pick(means[0]), pick(means[1])
        plain = paired_bootstrap(
            [(y, llm[a], classical[b]) for y, llm, classical in sweep], "roc_auc", N_BOOT, seed=i
        )
        fit = cross_fit(sweep, "roc_auc", n_boot=N_BOOT, seed=i)
        target = float(
            np.mean(
                [
                    auc_llm[p] - auc_classical[q]
                    for p, q in zip(fit.llm.picks, fit.classical.picks, strict=True)
                ]
            )
        )
        for adjusted, iv, truth_value in (
            (False, plain, float(auc_llm[a] - auc_classical[b])),
            (True, fit.interval, target),
        ):
            hits[adjusted][0] += int(iv.low <= truth_value <= iv.high)
            hits[adjusted][1] += int(iv.low <= best_vs_best <= iv.high)
    return [
        {
            "interval": "cross-fitted" if adjusted else "best on test rows",
            "k": k,
            "m": m,
            "truth": truth,
            "adjusted": adjusted,
            "sweeps": sweeps,
            "coverage": round(hits[adjusted][0] / sweeps, 3),
            "best_vs_best": round(hits[adjusted][1] / sweeps, 3),
        }
        for adjusted in (False, True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=500)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 12])
    parser.add_argument("--m", type=int, nargs="+", default=[1, 9])
    parser.add_argument("--truth", nargs="+", default=list(TRUTHS), choices=list(TRUTHS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = []
    for truth in args.truth:
        for k in args.k:
            for m in args.m:
                results += simulate(k, m, truth, args.sweeps)
                print(json.dumps(results[-2:]), flush=True)
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

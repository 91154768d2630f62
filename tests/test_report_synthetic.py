"""The report on a small synthetic results store whose every number is known.

Two binary datasets, 3 seeds. `alpha`: a paid LLM (usd > 0) that ties the classical methods at
16 and 64 rows and loses at 256, plus zero-shot runs. `beta`: the same LLM label without fees,
significantly better at 16 rows, tied at 64. Expected values are worked out by hand in the
comments (t quantile for 2 df: 4.302653; for 5 df: 2.570582).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.report import write_report
from bench.report.content import collect
from bench.report.cost import cost_per_1k
from bench.report.plots import shot_positions
from bench.report.ranks import rank_grid, rank_table
from bench.report.runs import prepare_runs
from bench.report.summary import summarize_runs
from bench.report.tables import summary_grid, summary_table, to_latex, to_markdown
from bench.report.verdict import dataset_verdict, overall_verdicts
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


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic")
    results = ResultsStore(path)
    for rec in synthetic_records():
        results.save(rec)
    return path


@pytest.fixture(scope="module")
def runs(store: Path) -> pd.DataFrame:
    return cost_per_1k(prepare_runs(load_results(store)).runs, store)


def _row(markdown: str, method: str) -> list[str]:
    line = next(x for x in markdown.splitlines() if f"| {method} |" in x)
    return [c.strip() for c in line.strip("|").split("|")][2:]


# --- tables ---------------------------------------------------------------------------------


def test_table_numbers_bold_and_daggers(runs: pd.DataFrame) -> None:
    table = summary_table(runs[runs["dataset"] == "alpha"], "roc_auc")
    markdown = to_markdown(table)
    assert markdown.splitlines()[0] == "| family | method | n=0 | n=16 | n=64 | n=256 |"
    # half-widths: 4.302653 x sd / sqrt(3); sd 0.02 -> 0.050, sd 0.01 -> 0.025
    assert _row(markdown, "majority") == ["-", "0.500 ± 0.000", "0.500 ± 0.000", "0.500 ± 0.000"]
    # n=16: best llm 0.810; logreg's paired gap (+0.02, -0.01, +0.02 below the best) has
    # p = 0.42 -> †; lightgbm (0.09 below, sd 0.01) and majority are significantly worse.
    assert _row(markdown, "logreg") == [
        "-",
        "0.800 ± 0.050†",
        "0.710 ± 0.025",
        "0.860 ± 0.025",  # 256: gap 0.04, sd 0.01 -> p = 0.020, last in Holm's order: not †
    ]
    # n=64: lightgbm 0.800 vs best 0.807: gaps (0.01, 0, 0.01), t = 2, p = 0.18 -> †
    assert _row(markdown, "lightgbm") == [
        "-",
        "0.720 ± 0.050",
        "0.800 ± 0.050†",
        "**0.900 ± 0.050**",
    ]
    # sd of (0.79, 0.80, 0.83) = 0.02082 -> 0.052
    assert _row(markdown, LLM) == [
        "**0.620 ± 0.050**",
        "**0.810 ± 0.025**",
        "**0.807 ± 0.052**",
        "0.810 ± 0.025",
    ]
    # Families are grouped: classical first (majority leading), then llm_icl.
    lines = markdown.splitlines()[2:]
    assert [line.split("|")[1].strip() for line in lines] == ["classical", "", "", "llm_icl"]


def test_table_columns_and_superseded_record(runs: pd.DataFrame) -> None:
    table = summary_table(runs[runs["dataset"] == "beta"], "roc_auc")
    cell = table[(table["method"] == "lightgbm") & (table["n_train"] == 16)].iloc[0]
    # the older 0.99 record of seed 0 is ignored: (0.55, 0.56, 0.57)
    assert cell["mean"] == pytest.approx(0.56)
    assert cell["std"] == pytest.approx(0.01)
    assert cell["seeds"] == 3
    assert cell["ci"] == pytest.approx(4.302653 * 0.01 / np.sqrt(3), abs=1e-6)


def test_lower_is_better_metric_bolds_the_minimum(runs: pd.DataFrame) -> None:
    table = summary_table(runs[runs["dataset"] == "beta"], "log_loss")  # = 1 - AUC here
    markdown = to_markdown(table)
    assert _row(markdown, LLM)[0] == "**0.290 ± 0.025**"  # n=16: 1 - 0.71
    assert _row(markdown, "lightgbm")[1] == "**0.240 ± 0.025**"  # n=64: 1 - 0.76


def test_untestable_methods_are_not_called_worse(tmp_path: Path) -> None:
    """The best has one seed: nothing can be shown worse than it, so nothing is unmarked."""
    results = ResultsStore(tmp_path)
    results.save(record("beta", "llm_icl", 16, 0, 0.9, requests=100, llm_seconds=1.0))
    for seed, auc in zip(SEEDS, (0.70, 0.71, 0.72), strict=True):
        results.save(record("beta", "logreg", 16, seed, auc, cpu_s=0.05))
    table = summary_table(load_results(tmp_path), "roc_auc")
    assert _row(to_markdown(table), "logreg") == ["0.710 ± 0.025†"]
    assert _row(to_markdown(table), LLM) == ["**0.900**"]  # one seed: no interval
    assert np.isnan(table.loc[table["method"] == "logreg", "p_holm"].iloc[0])


def test_latex_is_booktabs_with_escaped_names(runs: pd.DataFrame) -> None:
    table = summary_table(runs[runs["dataset"] == "alpha"], "roc_auc")
    latex = to_latex(table, "alpha: AUC 100% of_it", "tab:alpha")
    for needle in (r"\toprule", r"\midrule", r"\bottomrule", r"\label{tab:alpha}"):
        assert needle in latex
    assert r"100\% of\_it" in latex
    assert r"\multicolumn{5}{l}{\textit{llm\_icl}} \\" in latex
    assert r"\quad llm\_icl (gpt-4o-mini) & \textbf{0.620 $\pm$ 0.050}" in latex
    assert r"0.800 $\pm$ 0.050$^\dagger$" in latex
    assert latex.isascii()  # pdflatex without unicode packages: ±, †, α, dashes spelled out


def test_html_table_marks_best_and_tied(runs: pd.DataFrame) -> None:
    html = summary_grid(summary_table(runs[runs["dataset"] == "alpha"], "roc_auc")).to_html()
    assert '<td class="best"><strong>0.900 ± 0.050</strong></td>' in html
    assert '<td class="tied">0.800 ± 0.050<sup>†</sup></td>' in html
    assert '<tr class="group"><th colspan="5">llm_icl</th></tr>' in html


def test_in_context_points_sit_at_their_shot_count(runs: pd.DataFrame) -> None:
    beta = runs[runs["dataset"] == "beta"].copy()
    capped = (beta["method"] == "llm_icl") & (beta["n_train"] == 64)
    beta.loc[capped, "details"] = pd.Series(
        [{"shots": 50}] * int(capped.sum()), index=beta.index[capped]
    )
    table = shot_positions(summary_table(beta, "roc_auc"), beta)
    x = table.set_index(["method", "n_train"])["x"]
    assert x[(LLM, 64)] == 50.0  # max_shots capped k below n_train
    assert x[(LLM, 16)] == 16.0 and x[("lightgbm", 64)] == 64.0


# --- ranks ----------------------------------------------------------------------------------


def test_ranks_and_win_rates(runs: pd.DataFrame) -> None:
    ranks = rank_table(runs, {"alpha": "roc_auc", "beta": "roc_auc"})
    got = {
        (r.method, r.n_train): (r.mean_rank, round(r.win_rate, 4), r.datasets)
        for r in ranks.itertuples()
        if r.n_train in (16, 64)
    }
    # n=16, both datasets: llm 1st, logreg 2nd, lightgbm 3rd, majority 4th.
    assert got[(LLM, 16)] == (1.0, 1.0, 2)
    assert got[("logreg", 16)] == (2.0, round(4 / 6, 4), 2)
    assert got[("lightgbm", 16)] == (3.0, round(2 / 6, 4), 2)
    assert got[("majority", 16)] == (4.0, 0.0, 2)
    # n=64: alpha llm > lightgbm > logreg; beta lightgbm > llm > logreg.
    assert got[(LLM, 64)] == (1.5, round(5 / 6, 4), 2)
    assert got[("lightgbm", 64)] == (1.5, round(5 / 6, 4), 2)
    assert got[("logreg", 64)] == (3.0, round(2 / 6, 4), 2)
    best = ranks[ranks["best"]]
    assert sorted(zip(best["n_train"], best["method"], strict=True)) == [
        (0, LLM),
        (16, LLM),
        (64, "lightgbm"),
        (64, LLM),
        (256, "lightgbm"),
    ]
    # n=256 exists on alpha only: 3 seed pairs, Wilcoxon p >= 0.25, so every method is †.
    at_256 = ranks[(ranks["n_train"] == 256) & ~ranks["best"]]
    assert at_256["tied"].all() and (at_256["pairs"] == 3).all()
    markdown = rank_grid(ranks).to_markdown()
    # n=16: 6 pairs, all in the LLM's favour: exact p = 2 / 2^6 = 0.031, but Holm over the 3
    # comparisons makes it at least 0.094: not significant, so lightgbm is marked †.
    assert _row(markdown, "lightgbm") == [
        "-",
        "3.00 / 33%†",
        "**1.50 / 83%**",
        "**1.00 / 100%**",
    ]
    assert _row(markdown, LLM)[0] == "**1.00 / -**"  # alone at n=0: nothing to win against


# --- cost and Pareto ------------------------------------------------------------------------


def test_cost_per_1k_scales_cached_answers(runs: pd.DataFrame) -> None:
    llm = runs[(runs["dataset"] == "alpha") & (runs["method"] == "llm_icl")]
    at_256 = llm[llm["n_train"] == 256].set_index("seed")
    # $0.6 and 40 s for 200 rows -> $3 and 200 s per 1,000; the half-cached seed scales by 2.
    assert at_256.loc[0, "marginal_usd_per_1k"] == pytest.approx(3.0)
    assert at_256.loc[1, "marginal_usd_per_1k"] == pytest.approx(3.0)
    assert at_256.loc[1, "marginal_seconds_per_1k"] == pytest.approx(200.0)
    assert np.isnan(at_256.loc[2, "marginal_usd_per_1k"])
    assert np.isnan(at_256.loc[2, "marginal_seconds_per_1k"])
    # a quarter of lightgbm's CPU predicts: 0.2 / 0.3 s x 0.25 per 100 rows
    lgbm = runs[(runs["dataset"] == "beta") & (runs["method"] == "lightgbm")]
    assert sorted(lgbm["marginal_seconds_per_1k"].round(6)) == [0.5, 0.5, 0.5, 0.75, 0.75, 0.75]
    assert sorted(lgbm["one_off_seconds"].round(6)) == [0.15, 0.15, 0.15, 0.225, 0.225, 0.225]


def test_n_test_falls_back_to_the_predictions_file(tmp_path: Path) -> None:
    rec = record("beta", "logreg", 16, 0, 0.6, cpu_s=0.2)
    del rec["n_test"]
    predictions = pd.DataFrame({"row": range(50), "y_true": ["no"] * 50})
    ResultsStore(tmp_path).save(rec, predictions)
    frame = cost_per_1k(prepare_runs(load_results(tmp_path)).runs, tmp_path)
    # 0.05 s of predicting / 50 rows
    assert frame["marginal_seconds_per_1k"].tolist() == [pytest.approx(1.0)]


def test_pareto_fronts(store: Path) -> None:
    sections = {s.name: s for s in collect(store).datasets}
    beta = sections["beta"]
    assert beta.unit == "seconds"
    front = beta.pareto
    # majority@16 (0.01 s), logreg@16 (0.5 s, 0.62), logreg@64 (0.6 s, 0.72),
    # lightgbm@64 (3 s, 0.76); llm (100 s) is beaten by lightgbm@64 at both sizes.
    assert list(zip(front["label"], front["n_train"], strict=True)) == [
        ("majority", 16),
        ("logreg", 16),
        ("logreg", 64),
        ("lightgbm", 64),
    ]
    alpha = sections["alpha"]
    assert alpha.unit == "usd"  # the LLM paid fees; classical runs cost $0
    assert list(zip(alpha.pareto["label"], alpha.pareto["n_train"], strict=True)) == [
        ("lightgbm", 256)
    ]


# --- verdicts -------------------------------------------------------------------------------


SEED_LEVEL = "t-interval over 3 seeds: per-row predictions are missing or unreadable"
PICKS_NOT_RUN = (
    "The training-row picks (classical_auto and llm_icl_auto, which choose on the training rows "
    "only) were not run in this sweep: each size compares the best of each side on the test rows."
)
# The deciding intervals of one verdict hold jointly (Bonferroni over its sizes): with 3 sizes
# each is a 1 - 0.05/3 t-interval, t(2) = 7.649 instead of 4.303 (x 1.778); with 2 sizes
# t(2) = 6.205 (x 1.442).


def test_dataset_verdict_alpha(runs: pd.DataFrame) -> None:
    verdict = dataset_verdict(runs[runs["dataset"] == "alpha"], "roc_auc", "alpha")
    assert verdict.classical_from == 256
    assert [c.category for c in verdict.comparisons] == ["inconclusive", "good enough", "worse"]
    assert verdict.headline == (
        "With a margin of 0.02 AUC, the LLM is good enough at 64 rows; classical models are "
        "better from 256 rows on; undecided at 16 rows (see below)."
    )
    # Marginal cost per day at 10M: the LLM's $3 per 1,000 -> $30,000; logreg predicts with
    # 0.025 s of CPU per 200 rows -> 0.125 s per 1,000 -> 1,250 s = 0.35 h a day; lightgbm 1.4 h.
    assert verdict.lines == [
        "With 0 labelled rows (zero-shot), the best LLM-based method, llm_icl (gpt-4o-mini), "
        "scores 0.620 AUC; classical methods need training rows.",
        # diffs (+0.02, -0.01, +0.02): mean 0.010, sd 0.01732, half-width 0.043 (0.076
        # jointly); the lower end is below -0.02 and the upper above 0. To show "good enough"
        # the joint half-width must drop below 0.03: t(5; 1 - 0.05/6) x 0.01732 / sqrt(6) =
        # 0.025 -> 6 seeds (5 give 0.031).
        "With 16 labelled rows, llm_icl (gpt-4o-mini) scores 0.810 AUC and logreg 0.800: "
        "inconclusive (LLM - classical = +0.010, 95% CI -0.033 to +0.053 (-0.066 to +0.086 "
        f"jointly over 3 sizes), {SEED_LEVEL}); about 6 seeds (now 3) would decide whether it "
        "is good enough (within 0.02). At 10,000,000 predictions a day, llm_icl (gpt-4o-mini) "
        "costs $30,000 a day; logreg needs 0.35 compute hours.",
        # diffs (0.01, 0, 0.01): mean 0.0067, half-width 0.0143: lower end above -0.02
        "With 64 labelled rows, llm_icl (gpt-4o-mini) scores 0.807 AUC and lightgbm 0.800: the "
        "LLM is good enough (LLM - classical = +0.007, 95% CI -0.008 to +0.021 (-0.019 to "
        f"+0.032 jointly over 3 sizes), {SEED_LEVEL}). At 10,000,000 predictions a day, llm_icl "
        "(gpt-4o-mini) costs $30,000 a day; lightgbm needs 1.4 compute hours.",
        # diffs (-0.08, -0.09, -0.10): half-width 0.0248; the all-cached seed has no cost
        "With 256 labelled rows, llm_icl (gpt-4o-mini) scores 0.810 AUC and lightgbm 0.900: the "
        "LLM is worse (LLM - classical = -0.090, 95% CI -0.115 to -0.065 (-0.134 to -0.046 "
        f"jointly over 3 sizes), {SEED_LEVEL}). At 10,000,000 predictions a day, llm_icl "
        "(gpt-4o-mini) costs $30,000 a day; lightgbm needs 1.4 compute hours.",
        "Not adjusted for picking the best of each side on the test rows at 16, 64 and 256 "
        "rows: per-row predictions are missing or unreadable.",
        PICKS_NOT_RUN,
    ]


def test_dataset_verdict_beta(runs: pd.DataFrame) -> None:
    verdict = dataset_verdict(runs[runs["dataset"] == "beta"], "roc_auc", "beta")
    assert verdict.classical_from is None
    assert verdict.headline == (
        "With a margin of 0.02 AUC, the LLM is good enough at 16 rows (better at 16 rows); "
        "undecided at 64 rows (see below)."
    )
    # The local LLM: 10 s of LLM calls per 100 rows -> 100 s per 1,000 -> 1e6 s = 280 h a day.
    assert verdict.lines == [
        "With 16 labelled rows, llm_icl (gpt-4o-mini) scores 0.710 AUC and logreg 0.620: the "
        "LLM is better (LLM - classical = +0.090, 95% CI +0.065 to +0.115 (+0.054 to +0.126 "
        f"jointly over 2 sizes), {SEED_LEVEL}). At 10,000,000 predictions a day, llm_icl "
        "(gpt-4o-mini) needs 280 compute hours a day; logreg needs 0.35 compute hours.",
        # diffs (-0.02, -0.01, 0): CI -0.010 +- 0.0248 (0.036 jointly); to clear -0.02 the
        # joint half-width must drop below 0.01 = sd: t(n-1; 1 - 0.05/4) < sqrt(n) first at
        # n = 9 (2.75 < 3); the estimate scales the 7 seeds one interval needs by the normal
        # quantiles' ratio squared (1.18^2): about 10.
        "With 64 labelled rows, llm_icl (gpt-4o-mini) scores 0.750 AUC and lightgbm 0.760: "
        "inconclusive (LLM - classical = -0.010, 95% CI -0.035 to +0.015 (-0.046 to +0.026 "
        f"jointly over 2 sizes), {SEED_LEVEL}); about 10 seeds (now 3) would decide whether it "
        "is good enough (within 0.02). At 10,000,000 predictions a day, llm_icl (gpt-4o-mini) "
        "needs 280 compute hours a day; lightgbm needs 2.1 compute hours.",
        "Not adjusted for picking the best of each side on the test rows at 16 and 64 rows: "
        "per-row predictions are missing or unreadable.",
        PICKS_NOT_RUN,
    ]


def test_a_wider_margin_turns_undecided_into_good_enough(runs: pd.DataFrame) -> None:
    from bench.config import ReportConfig

    beta = runs[runs["dataset"] == "beta"]
    verdict = dataset_verdict(beta, "roc_auc", "beta", ReportConfig(margin=0.05))
    assert [c.category for c in verdict.comparisons] == ["better", "good enough"]
    assert "(at most 0.05 worse)" in verdict.lines[1]  # the estimate is below 0


def test_verdict_on_a_lower_is_better_metric(runs: pd.DataFrame) -> None:
    verdict = dataset_verdict(runs[runs["dataset"] == "beta"], "log_loss", "beta")
    first = verdict.lines[0]
    assert verdict.comparisons[0].category == "better"  # a lower loss
    assert first.startswith(
        "With 16 labelled rows, llm_icl (gpt-4o-mini) scores 0.290 log loss and logreg 0.380: "
        "the LLM is better (LLM - classical = -0.090, 95% CI -0.115 to -0.065"
    )


def test_overall_verdict_pools_dataset_seed_pairs(runs: pd.DataFrame) -> None:
    (verdict,) = overall_verdicts(runs, {"alpha": "roc_auc", "beta": "roc_auc"})
    assert verdict.scope == "2 datasets (roc_auc)"
    assert [c.n_train for c in verdict.comparisons] == [16, 64, 256]  # n=0: no classical
    # 16 rows: +0.002 to +0.098 on its own, -0.016 to +0.116 jointly over the 3 sizes: no
    # longer "better", still "good enough"
    assert [c.category for c in verdict.comparisons] == ["good enough", "good enough", "worse"]
    assert verdict.headline == (
        "With a margin of 0.02 AUC, the LLM is good enough at 16 and 64 rows; classical models "
        "are better from 256 rows on."
    )
    # n=16: 6 pairs (0.02, -0.01, 0.02, 0.10, 0.09, 0.08): mean 0.05, sd 0.045607,
    # half-width 2.570582 x 0.045607 / sqrt(6) = 0.0479.
    assert verdict.lines[0].startswith(
        "With 16 labelled rows, llm_icl (gpt-4o-mini) scores 0.760 AUC and logreg 0.710: the "
        "LLM is good enough (LLM - classical = +0.050, 95% CI +0.002 to +0.098 (-0.016 to "
        "+0.116 jointly over 3 sizes), t-interval over 6 dataset x seed groups: per-row "
        "predictions are missing or unreadable)."
    )
    # n=64: mean ranks llm 1.5 = lightgbm 1.5: the classical side is lightgbm.
    tie = verdict.comparisons[1]
    assert (tie.llm, tie.classical) == (LLM, "lightgbm")
    assert tie.interval.n_seeds == 6
    assert (round(tie.llm_mean, 3), round(tie.classical_mean, 3)) == (0.778, 0.78)
    assert (round(tie.interval.low, 3), round(tie.interval.high, 3)) == (-0.014, 0.011)


def test_overall_verdict_pools_only_datasets_with_the_same_metric(runs: pd.DataFrame) -> None:
    verdicts = overall_verdicts(runs, {"alpha": "roc_auc", "beta": "accuracy"})
    assert [v.scope for v in verdicts] == ["1 dataset (roc_auc)", "1 dataset (accuracy)"]
    # accuracy = AUC - 0.1 here, so beta's comparison at 16 rows keeps its +0.090 gap
    assert verdicts[1].comparisons[0].interval.estimate == pytest.approx(0.09)


# --- run summary ----------------------------------------------------------------------------


def test_run_summary(store: Path) -> None:
    prepared = prepare_runs(load_results(store))
    summary = summarize_runs(prepared.all_runs, prepared.superseded)
    # ok: alpha 3 classical x 9 + llm 12, beta 4 x 6, the older record; skipped: n=0 classical
    assert summary.counts == {"failed": 1, "ok": 64, "skipped": 9}
    assert summary.superseded == 1
    assert summary.skipped[0] == (
        "method 'lightgbm' needs training rows (n_train=0)",
        3,
        "alpha/lightgbm",
    )
    assert summary.failed == [
        {
            "dataset": "alpha",
            "method": "xgboost",
            "n_train": 16,
            "seed": 0,
            "status": "failed",
            "error": "ValueError: boom",
        }
    ]
    totals = summary.totals
    # alpha: 12 LLM runs, 200 requests each but n=256 seed 1 (100) and seed 2 (0); beta: 6 x 100
    assert totals["requests"] == 10 * 200 + 100 + 6 * 100
    assert totals["cache_hits"] == 300
    assert totals["prompt_tokens"] == 17 * 1000
    assert totals["usd"] == pytest.approx(10 * 0.6 + 0.3)


def test_report_without_finished_runs_lists_what_went_wrong(tmp_path: Path) -> None:
    results = ResultsStore(tmp_path)
    results.save(record("beta", "logreg", 16, 0, None, status="failed", error="OSError: disk"))
    results.save(record("beta", "llm_icl", 16, 0, None, status="skipped", error="too long"))
    markdown = (write_report(tmp_path) / "report.md").read_text()
    assert "Runs: 2 (1 failed, 1 skipped)." in markdown
    assert "No successful runs." in markdown
    assert "| beta | logreg | 16 | 0 | failed | OSError: disk |" in markdown
    assert "| 1 | too long | beta/llm_icl |" in markdown


# --- the written report ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_dir(store: Path) -> Path:
    return write_report(store)


def test_report_files(report_dir: Path) -> None:
    names = {p.name for p in report_dir.iterdir()}
    expected = {"report.md", "report.html", "ranks.md", "ranks.tex"}
    for dataset in ("alpha", "beta"):
        expected |= {f"{dataset}.md", f"{dataset}.tex", f"{dataset}.png", f"{dataset}_cost.png"}
    assert expected <= names
    for png in ("alpha.png", "beta_cost.png"):
        assert (report_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (report_dir / "report.md").read_text()
    assert markdown.index("## The answer") < markdown.index("## alpha")
    assert markdown.index("## beta") < markdown.index("## Run summary")
    for needle in (
        "## The answer",
        "- **alpha.** With a margin of 0.02 AUC, the LLM is good enough at 64 rows",
        "- **Across 2 datasets (roc_auc).** With a margin of 0.02 AUC, the LLM is good enough",
        "## Verdict across datasets",
        "classical models are better from 256 rows on",
        "### Cost to deploy",
        "| llm_icl (gpt-4o-mini) | 256 | 0.810 | $0 (0 s) | $3.0 (200 s) | $30,000 |",
        "| logreg | 64 | 0.720 | 0.045 s | 0.15 s | 0.42 compute-h |",
        "Runs: 74 (1 failed, 64 ok, 9 skipped).",
        "| 3 | method 'lightgbm' needs training rows (n_train=0) | alpha/lightgbm |",
        "| alpha | xgboost | 16 | 0 | failed | ValueError: boom |",
        "- lightgbm @256: $0 per 1,000 predictions, 0.900 AUC",
        "- logreg @64: 0.15 s per 1,000 predictions, 0.720 AUC",
        "300 answers from the request cache",
        "1 older run record(s) of a cell",
        "paired t-test",
        "Wilcoxon",
    ):
        assert needle in markdown, needle


def test_html_is_self_contained(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page
    assert page.count("<img ") == 4  # a learning curve and a cost plot per dataset
    for needle in ("Run summary", "Verdict across datasets", "alpha", "beta", "ValueError: boom"):
        assert needle in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return None


@pytest.mark.e2e
def test_html_renders_in_headless_chromium(report_dir: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # CI containers often run as root, where the sandbox refuses
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            (report_dir / "report.html").resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    colours = np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200  # text, tables and figures, not a blank or error page
    not_white = (pixels[..., :3] < 0.95).any(axis=-1).mean()
    assert not_white > 0.05

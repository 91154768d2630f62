"""The report's verdicts on the synthetic results store (tests/synthetic_store.py): joint
intervals over sizes, the picks line, margins, lower-is-better metrics and pooling."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from synthetic_store import (
    LLM,
    report_runs,
    write_store,
)

from bench.report.verdict import dataset_verdict, overall_verdicts


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def runs(store: Path) -> pd.DataFrame:
    return report_runs(store)


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

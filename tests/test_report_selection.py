"""Picking the best on the test rows, adjusted by cross-fitting; the training-row picks first.

Stores are written the way bench-run writes them (ResultsStore.save with a per-row predictions
frame: row, y_true, y_pred, proba_<class>), with several LLM serializers, several classical
methods and, where a test asks, the picks `classical_auto` and `llm_icl_auto` whose details
name what they picked.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from bench.config import ReportConfig
from bench.report.compare import PredictionReader
from bench.report.content import collect
from bench.report.paired import paired_bootstrap
from bench.report.picks import boost_scales
from bench.report.runs import prepare_runs
from bench.report.selection import cross_fit, halves
from bench.report.sentences import sentence
from bench.report.stats import joint_factor
from bench.report.verdict import NO_PICKS, dataset_verdict
from bench.results import ResultsStore, load_results

SEEDS = (0, 1, 2)
LABELS = ["no", "yes"]
SERIALIZERS = ("csv", "json", "list", "text")


# ---- the cross-fit on arrays -------------------------------------------------------------------


def _sweep(rng: np.random.Generator, mu_llm: list[float], mu_classical: list[float], n: int = 100):
    y = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
    out = []
    for _ in SEEDS:
        shared = rng.normal(size=n)
        llm = np.array([m * y + shared + rng.normal(size=n) for m in mu_llm])
        classical = np.array([m * y + shared + rng.normal(size=n) for m in mu_classical])
        out.append((y, llm, classical))
    return out


def test_halves_split_each_class_evenly() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0])
    h = halves(y)
    for value in (0, 1):
        counts = np.bincount(h[y == value], minlength=2)
        assert abs(counts[0] - counts[1]) <= 1


def test_the_adjusted_estimate_is_the_held_out_difference_of_the_halves_picks() -> None:
    sweep = _sweep(np.random.default_rng(1), [1.0, 1.1, 0.9], [1.2, 0.8])
    fit = cross_fit(sweep, "roc_auc", n_boot=500, seed=3)
    split = halves(sweep[0][0])

    def side_means(side: int, half: int) -> np.ndarray:
        rows = split == half
        return np.mean(
            [[roc_auc_score(y[rows], s[rows]) for s in sw[side]] for y, *sw in sweep], axis=0
        )

    for half in (0, 1):  # each half picks the best mean over seeds on its own rows
        assert fit.llm.picks[half] == int(np.argmax(side_means(0, half)))
        assert fit.classical.picks[half] == int(np.argmax(side_means(1, half)))
    per_seed = []
    for y, llm, classical in sweep:
        held = [
            roc_auc_score(y[split != h], llm[fit.llm.picks[h]][split != h])
            - roc_auc_score(y[split != h], classical[fit.classical.picks[h]][split != h])
            for h in (0, 1)
        ]
        per_seed.append(np.mean(held))
    assert fit.per_seed == pytest.approx(per_seed)
    assert fit.interval.estimate == pytest.approx(np.mean(per_seed))
    assert fit.interval.low < fit.interval.estimate < fit.interval.high
    assert (fit.interval.n_seeds, fit.interval.n_rows) == (3, 300)


def test_one_method_a_side_gives_the_paired_interval_of_all_rows() -> None:
    # Nothing to pick: the held-out halves together are every row, and the interval is about
    # as wide as the paired bootstrap's (each half's rows resampled on their own).
    sweep = _sweep(np.random.default_rng(5), [1.0], [1.4])
    fit = cross_fit(sweep, "roc_auc", n_boot=2000)
    plain = paired_bootstrap([(y, a[0], b[0]) for y, a, b in sweep], "roc_auc", 2000)
    assert fit.interval.estimate == pytest.approx(plain.estimate, abs=0.01)
    width, plain_width = fit.interval.high - fit.interval.low, plain.high - plain.low
    assert 0.85 * plain_width < width < 1.3 * plain_width


def test_a_clear_winner_is_picked_by_both_halves_and_hardly_flattered() -> None:
    sweep = _sweep(np.random.default_rng(2), [0.5, 2.5, 0.5], [0.5, 0.5, 2.0])
    fit = cross_fit(sweep, "roc_auc", n_boot=200)
    assert fit.llm.picks == (1, 1) and fit.llm.best == 1
    assert fit.classical.picks == (2, 2) and fit.classical.best == 2
    assert abs(fit.llm.flattery) < 0.01 and abs(fit.classical.flattery) < 0.01


def test_picking_the_best_of_many_equal_methods_flatters_that_side() -> None:
    # Twelve equally good LLM variants against one classical method: the best of twelve looks
    # better on the rows it was picked on than the halves' picks on rows they never saw.
    rng = np.random.default_rng(3)
    llm, classical = [], []
    for _ in range(20):
        fit = cross_fit(_sweep(rng, [1.0] * 12, [1.0]), "roc_auc", n_boot=50)
        llm.append(fit.llm.flattery)
        classical.append(fit.classical.flattery)
    assert np.mean(llm) > 0.02  # about one se of a variant's mean AUC
    assert np.mean(classical) == pytest.approx(0.0, abs=1e-12)  # one method: nothing to pick


def test_lower_is_better_metrics_pick_the_lowest() -> None:
    rng = np.random.default_rng(4)
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    good = np.clip(0.5 + 0.3 * (2 * y - 1) + rng.normal(0, 0.1, 60), 0.01, 0.99)
    bad = np.clip(0.5 + rng.normal(0, 0.1, 60), 0.01, 0.99)
    fit = cross_fit([(y, np.vstack([bad, good]), bad[None, :])], "log_loss", False, n_boot=200)
    assert fit.llm.picks == (1, 1) and fit.llm.best == 1
    assert fit.interval.high < 0  # the picked LLM's loss is lower


# ---- stores -------------------------------------------------------------------------------------


def _record(method: str, serializer: str | None, n_train: int, seed: int) -> dict[str, Any]:
    llm = method.startswith("llm")
    return {
        "experiment": "selection",
        "dataset": "d",
        "method": method,
        "family": "llm_boost" if method == "llm_boost" else "llm_icl" if llm else "classical",
        "serializer": serializer if method == "llm_icl" else None,
        "llm": "tiny" if llm else None,
        "n_train": n_train,
        "seed": seed,
        "status": "ok",
        "error": None,
        "metrics": {},
        "timing": {"fit_s": 0.1, "predict_s": 0.1, "wall_s": 0.3, "cpu_s": 0.2},
        "usage": {"requests": 0, "cache_hits": 0, "usd": 0.0, "llm_seconds": 0.0},
        "class_labels": LABELS,
        "positive_label": "yes",
        "details": {},
        "finished_at": "2026-01-01T00:00:00+00:00",
        "run_stem": f"d__{method}__{serializer}__n{n_train}__s{seed}",
    }


def _store(
    path: Path,
    picks: bool,
    sizes: tuple[int, ...] = (64,),
    n_test: int = 120,
    positives: dict[int, int] | None = None,
    boost: dict[int, float] | None = None,
) -> Path:
    """Four LLM serializers (json clearly best), logreg, xgboost (clearly best) and majority;
    with `picks`, classical_auto (picked xgboost: its scores) and llm_icl_auto (picked json).
    Half the test rows are "yes", or `positives[seed]` of them. With `boost` (seed -> the scale
    its CV chose), the LLM side is llm_boost alone, with json's scores."""
    store = ResultsStore(path)
    separation = {"csv": 0.6, "json": 1.6, "list": 0.6, "text": 0.6}
    classical = {"logreg": 1.0, "xgboost": 2.2, "majority": 0.0}
    for n_train in sizes:
        for seed in SEEDS:
            rng = np.random.default_rng(100 * n_train + seed)
            n_pos = (positives or {}).get(seed, n_test // 2)
            y = np.r_[np.ones(n_pos, int), np.zeros(n_test - n_pos, int)]
            shared = rng.normal(size=n_test)
            scores: dict[tuple[str, str | None], np.ndarray] = {}
            for name, mu in separation.items():
                scores[("llm_icl", name)] = mu * y + shared + rng.normal(size=n_test)
            for name, mu in classical.items():
                noise = rng.normal(size=n_test) if mu else np.zeros(n_test)
                scores[(name, None)] = mu * y + shared * bool(mu) + noise
            scores[("classical_auto", None)] = scores[("xgboost", None)]
            scores[("llm_icl_auto", "list")] = scores[("llm_icl", "json")]
            if boost is not None:
                scores = {key: z for key, z in scores.items() if not key[0].startswith("llm")}
                scores[("llm_boost", None)] = separation["json"] * y + shared
            for (method, serializer), z in scores.items():
                if method.endswith("_auto") and not picks:
                    continue
                p = 1 / (1 + np.exp(-z))
                record = _record(method, serializer, n_train, seed)
                record["metrics"] = {
                    "roc_auc": roc_auc_score(y, p),
                    "accuracy": float(((p >= 0.5) == (y == 1)).mean()),
                }
                if method == "classical_auto":
                    record["details"] = {"picked": "xgboost"}
                if method == "llm_icl_auto":
                    record["details"] = {"picked": "json"}
                if method == "llm_boost":
                    record["details"] = {"scale": (boost or {})[seed], "trees": {}}
                frame = pd.DataFrame(
                    {
                        "row": np.arange(n_test) + 1000 * seed,
                        "y_true": np.array(LABELS, dtype=object)[y],
                        "y_pred": np.where(p >= 0.5, "yes", "no"),
                        "proba_no": 1 - p,
                        "proba_yes": p,
                    }
                )
                store.save(record, frame)
    return path


def _verdict(path: Path, **settings: Any):
    runs = prepare_runs(load_results(path)).runs
    return dataset_verdict(runs, "roc_auc", "d", ReportConfig(**settings), PredictionReader(path))


def test_the_first_line_compares_the_training_row_picks(tmp_path: Path) -> None:
    verdict = _verdict(_store(tmp_path, picks=True))
    picked, ceiling = verdict.comparisons[0], verdict.ceilings[0]
    assert picked.kind == "picks" and ceiling.kind == "best"
    assert picked.llm.startswith("llm_icl_auto") and picked.classical == "classical_auto"
    assert ceiling.llm == "llm_icl (tiny, json)"
    assert ceiling.classical == "xgboost"
    first, second, third = verdict.lines[:3]
    assert first.startswith(
        "With 64 labelled rows, picked without the test rows: llm_icl_auto (tiny) "
        "(picked json in 3 of 3 runs) scores"
    )
    assert "classical_auto (picked xgboost in 3 of 3 runs)" in first
    assert second.startswith(f"With 64 labelled rows, {ceiling.llm} scores")
    assert third.startswith(
        "Adjusted for picking the best of 4 LLM-based and 3 classical methods on these test rows"
    )
    assert not any(line.startswith(NO_PICKS) for line in verdict.lines)
    # the picks decide the size; the headline groups their category
    assert verdict.sizes(picked.category) == [64]


def test_without_picks_the_best_line_comes_first_then_the_adjusted_one(tmp_path: Path) -> None:
    verdict = _verdict(_store(tmp_path, picks=False))
    (comparison,) = verdict.comparisons
    assert comparison.kind == "best" and comparison.decides == "adjusted"
    assert comparison.llm == "llm_icl (tiny, json)" and comparison.classical == "xgboost"
    adjusted = comparison.adjusted
    assert adjusted is not None and adjusted.interval is not None
    assert (adjusted.n_llm, adjusted.n_classical) == (4, 3)
    # json and xgboost are clearly best: both halves pick them
    assert adjusted.llm_picks == ("llm_icl (tiny, json)",) * 2
    assert adjusted.classical_picks == ("xgboost",) * 2
    assert comparison.category == verdict.comparisons[0].adjusted_category
    assert verdict.lines[0].startswith("With 64 labelled rows, llm_icl (tiny, json) scores")
    assert verdict.lines[1].startswith("Adjusted for picking the best of 4 LLM-based")
    assert "Picking the best flatters the LLM side by about" in verdict.lines[1]
    assert verdict.lines[-1] == (
        f"{NO_PICKS}, and the adjusted line under it takes that choice into account."
    )


def test_the_adjustment_reads_the_stored_rows(tmp_path: Path) -> None:
    path = _store(tmp_path, picks=False)
    runs = prepare_runs(load_results(path)).runs
    verdict = _verdict(path)
    sweep = []
    llm_labels = sorted(runs.loc[runs["family"].eq("llm_icl"), "label"].unique())
    classical_labels = sorted(runs.loc[runs["family"].eq("classical"), "label"].unique())
    for seed in SEEDS:
        at = runs[runs["seed"].eq(seed)]

        def proba(label: str, at: pd.DataFrame = at) -> pd.DataFrame:
            file = at.loc[at["label"].eq(label), "predictions_file"].iloc[0]
            return pd.read_parquet(path / file).sort_values("row")

        y = (proba(llm_labels[0])["y_true"] == "yes").astype(int).to_numpy()
        llm = np.array([proba(label)["proba_yes"].to_numpy() for label in llm_labels])
        classical = np.array([proba(label)["proba_yes"].to_numpy() for label in classical_labels])
        sweep.append((y, llm, classical))
    fit = cross_fit(sweep, "roc_auc", n_boot=2000)
    interval = verdict.comparisons[0].adjusted.interval
    assert (interval.estimate, interval.low, interval.high) == pytest.approx(
        (fit.interval.estimate, fit.interval.low, fit.interval.high)
    )


def test_sizes_are_decided_jointly(tmp_path: Path) -> None:
    verdict = _verdict(_store(tmp_path, picks=True, sizes=(16, 64)))
    assert [c.n_train for c in verdict.comparisons] == [16, 64]
    factor = joint_factor(2)
    for c in verdict.comparisons:
        iv, joint = c.interval, c.joint
        assert joint is not None and c.joint_sizes == 2
        assert joint.estimate - joint.low == pytest.approx((iv.estimate - iv.low) * factor)
        assert joint.high - joint.estimate == pytest.approx((iv.high - iv.estimate) * factor)
    line = next(line for line in verdict.lines if "picked without the test rows" in line)
    joint = verdict.comparisons[0].joint
    assert f"({joint.low:+.3f} to {joint.high:+.3f} jointly over 2 sizes)" in line


def test_without_per_row_predictions_the_line_says_it_is_not_adjusted(tmp_path: Path) -> None:
    path = _store(tmp_path, picks=False)
    for file in (path / "predictions").iterdir():
        file.unlink()
    verdict = _verdict(path)
    assert verdict.comparisons[0].decides == "interval"
    assert verdict.lines[1:] == [
        "Not adjusted for picking the best of each side on the test rows at 64 rows: per-row "
        "predictions are missing or unreadable.",
        f"{NO_PICKS}.",
    ]


def test_a_seed_with_3_rows_of_a_class_says_why_it_is_not_adjusted(tmp_path: Path) -> None:
    # Halves of 3 rows hold 1 and 2: one row of a class cannot carry the variance correction,
    # so the report says why the adjusted line is missing instead of failing.
    from bench.report import write_report

    path = _store(tmp_path, picks=False, positives={1: 3})
    verdict = _verdict(path)
    (comparison,) = verdict.comparisons
    assert comparison.adjusted is not None and comparison.adjusted.interval is None
    assert comparison.decides == "interval" and comparison.interval.testable
    why = (
        "Not adjusted for picking the best of each side on the test rows at 64 rows: a seed has "
        "only 3 test rows of a class; cross-fitting needs at least 4 (2 in each half)."
    )
    assert verdict.lines[1:] == [why, f"{NO_PICKS}."]
    assert why in (write_report(path) / "report.md").read_text()
    # 4 rows of the class are enough: each half holds 2
    four = _verdict(_store(tmp_path / "four", picks=False, positives={1: 4}))
    assert four.comparisons[0].adjusted.interval is not None


def test_the_cross_fit_refuses_a_seed_with_too_few_rows_of_a_class() -> None:
    (y, llm, classical), *_ = _sweep(np.random.default_rng(2), [1.0, 1.2], [1.1])
    y = np.r_[np.ones(3, int), np.zeros(len(y) - 3, int)]
    with pytest.raises(ValueError, match="only 3 test rows of a class; cross-fitting needs"):
        cross_fit([(y, llm, classical)], "roc_auc", n_boot=50)


def test_a_multiclass_auc_says_only_accuracy_can_be_adjusted(tmp_path: Path) -> None:
    path = _store(tmp_path, picks=False)
    for file in sorted((path / "predictions").iterdir()):  # a third class no method predicts
        frame = pd.read_parquet(file).assign(proba_maybe=0.0)
        frame.to_parquet(file)
    runs = prepare_runs(load_results(path)).runs
    runs["class_labels"] = [[*LABELS, "maybe"]] * len(runs)
    verdict = dataset_verdict(
        runs, "roc_auc", "d", ReportConfig(stats="seeds"), PredictionReader(path)
    )
    assert verdict.comparisons[0].adjusted.why == (
        "multiclass roc_auc cannot be adjusted for choosing the best (binary tasks: AUC, "
        "accuracy, log loss or Brier; multiclass: accuracy only)"
    )
    accuracy = dataset_verdict(
        runs, "accuracy", "d", ReportConfig(stats="seeds"), PredictionReader(path)
    )
    assert accuracy.comparisons[0].adjusted.interval is not None


def test_an_llm_boost_that_chose_s_0_says_it_predicted_with_the_trees_alone(
    tmp_path: Path,
) -> None:
    # As in experiment=boost: llm_boost the only LLM-based method, against classical_auto; its
    # CV chose s = 0 (no LLM asked for a test row) on seeds 0 and 2.
    path = _store(tmp_path, picks=True, boost={0: 0.0, 1: 0.5, 2: 0.0})
    verdict = _verdict(path)
    picked, ceiling = verdict.comparisons[0], verdict.ceilings[0]
    assert picked.kind == "picks" and picked.llm == ceiling.llm == "llm_boost (tiny)"
    assert verdict.lines[0].startswith(
        "With 64 labelled rows, picked without the test rows: llm_boost (tiny) (the only "
        "LLM-based method; s = 0 in 2 of 3 runs: the trees alone there) scores"
    )
    # the best-of-each-side line names it where the verdict passes the best's runs' scales
    runs = prepare_runs(load_results(path)).runs
    boosted = runs[runs["method"].eq("llm_boost")]
    assert boost_scales(boosted[boosted["seed"].ne(1)]) == "s = 0 in 2 of 2 runs: the trees alone"
    line = sentence(
        replace(ceiling, llm_picked=boost_scales(boosted)),
        "roc_auc",
        0.02,
        ("seed", "seeds"),
        ReportConfig(),
    )
    assert line.startswith(
        "With 64 labelled rows, llm_boost (tiny) (s = 0 in 2 of 3 runs: the trees alone there) "
        "scores"
    )
    # a boost that used the LLM everywhere, or another method, is named as before
    assert boost_scales(boosted[boosted["seed"].eq(1)]) == ""
    assert boost_scales(runs[runs["method"].eq("xgboost")]) == ""


# ---- a real small sweep ---------------------------------------------------------------------


@pytest.mark.e2e
def test_a_real_sweep_puts_the_training_row_picks_first(compose_run, tmp_path: Path) -> None:
    """bench-run's own runs: logreg, xgboost and classical_auto choosing between them; llm_icl
    (embedded Gemma 3 270M) with two serializers and llm_icl_auto choosing between the same
    two on validation rows from its training rows. The report's verdict reads that store."""
    from bench.report import write_report
    from bench.runner import run_job

    common = (
        "dataset=callcenter",
        "seeds=[0,1]",
        "n_train=[16]",
        "split.max_test_rows=24",
        "llm=local_gemma3_270m",
        "llm.n_ctx=4096",
        f"llm.cache_path={tmp_path / 'cache.sqlite'}",
    )
    jobs = [
        ("method=logreg",),
        ("method=xgboost",),
        ("method=classical_auto", "method.params.candidates=[logreg,xgboost]"),
        ("method=llm_icl", "serializer=list"),
        ("method=llm_icl", "serializer=json"),
        (
            "method=llm_icl_auto",
            "method.params.serializers=[list,json]",
            "method.params.search.folds=1",
            "method.params.search.min_validation_rows=4",
            "method.params.search.max_validation_rows=4",
        ),
    ]
    for job in jobs:
        cfg = compose_run(*common, *job)
        assert dict(run_job(cfg).executed) == {"ok": 2}, job
    path = Path(cfg.results_dir)
    (section,) = collect(path).datasets
    verdict = section.verdict
    (picked,) = verdict.comparisons
    assert picked.kind == "picks"
    assert picked.classical == "classical_auto" and picked.llm.startswith("llm_icl_auto")
    assert picked.classical_picked.startswith("picked ")
    (ceiling,) = verdict.ceilings
    assert ceiling.adjusted is not None and ceiling.adjusted.interval is not None
    assert (ceiling.adjusted.n_llm, ceiling.adjusted.n_classical) == (2, 2)
    first, second, third = verdict.lines[:3]
    assert first.startswith("With 16 labelled rows, picked without the test rows: llm_icl_auto")
    assert "paired over 48 test rows of 2 seeds" in first
    assert second.startswith(f"With 16 labelled rows, {ceiling.llm} scores")
    assert third.startswith("Adjusted for picking the best of 2 LLM-based and 2 classical")
    markdown = (write_report(path) / "report.md").read_text()
    assert all(line in markdown for line in verdict.lines)


def test_a_sides_only_method_is_its_pick(tmp_path: Path) -> None:
    # As in experiment=quick: classical_auto among the classical methods, one LLM-based method.
    path = _store(tmp_path, picks=True)
    runs = prepare_runs(load_results(path)).runs
    keep = ~runs["method"].eq("llm_icl_auto") & (
        runs["family"].eq("classical") | runs["serializer"].eq("csv")
    )
    runs = runs[keep]
    verdict = dataset_verdict(runs, "roc_auc", "d", ReportConfig(), PredictionReader(path))
    (picked,) = verdict.comparisons
    assert (picked.kind, picked.classical) == ("picks", "classical_auto")
    assert picked.llm_picked == "the only LLM-based method"
    assert verdict.lines[0].startswith(
        f"With 64 labelled rows, picked without the test rows: {picked.llm} (the only LLM-based "
        "method) scores"
    )
    # the ceiling chooses among the classical methods without classical_auto: 1 x 3
    assert verdict.lines[2].startswith(
        "Adjusted for picking the best of 1 LLM-based and 3 classical"
    )

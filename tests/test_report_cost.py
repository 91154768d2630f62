"""One-off and marginal costs, cost per day and break-even volumes on hand-built runs.

Every expected number is worked out by hand in the comments. Costs per 1,000 predictions are
phase cost / n_test x 1000.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.report.cost import (
    COST_COLUMNS,
    BreakEven,
    break_even,
    cost_per_1k,
    cost_points,
    cost_unit,
    deploy_costs,
    format_volume,
    with_pareto,
)
from bench.report.cost_figure import cost_plot
from bench.results import TIMING_COLUMNS, USAGE_COLUMNS, ResultsStore, load_results

NO_USAGE = {"requests": 0, "cache_hits": 0, "usd": 0.0, "llm_seconds": 0.0, "llm_wall_seconds": 0.0}
NO_FIT_USAGE = {f"fit_{key}": 0.0 for key in NO_USAGE}


def run(family: str, label: str, **fields: Any) -> dict[str, Any]:
    """A run as a row of `load_results` (timing and usage flattened), ok, 400 test rows; LLM
    wall seconds not given are its LLM seconds (as `read_record` fills them for old records)."""
    llm = fields.pop("llm", None)
    for latency in ("llm_seconds", "fit_llm_seconds"):
        wall = latency.replace("llm_seconds", "llm_wall_seconds")
        if latency in fields and wall not in fields:
            fields[wall] = fields[latency]
    return {
        "dataset": "d",
        "method": label.split(" ")[0],
        "family": family,
        "label": label,
        "llm": llm,
        "n_train": 64,
        "seed": 0,
        "status": "ok",
        "roc_auc": 0.8,
        "n_test": 400,
        **NO_USAGE,
        **fields,
    }


# New records, with the fit/predict split.
CLASSICAL = run(
    "classical", "lightgbm", fit_s=2.0, predict_s=0.5, cpu_s=6.2, fit_cpu_s=6.0,
    predict_cpu_s=0.2, **NO_FIT_USAGE,
)  # fmt: skip
# A paid API: 400 answers, $0.003 each, 80 s of LLM time in 50 s of wall time (an older
# record: its LLM wall seconds are its summed LLM seconds).
ICL = run(
    "llm_icl", "llm_icl (gpt)", llm="gpt", fit_s=0.1, predict_s=50.0, fit_cpu_s=0.1,
    predict_cpu_s=3.0, requests=400, usd=1.2, llm_seconds=80.0, **NO_FIT_USAGE,
)  # fmt: skip
# The program is written during fit (3 requests, 25 s, $0.06); predicting runs it: 200 rows.
CODEGEN = run(
    "llm_codegen", "llm_codegen (gpt)", llm="gpt", n_test=200, fit_s=30.0, predict_s=0.4,
    fit_cpu_s=1.0, predict_cpu_s=0.01, requests=3, usd=0.06, llm_seconds=25.0,
    fit_requests=3, fit_cache_hits=0, fit_usd=0.06, fit_llm_seconds=25.0,
)  # fmt: skip
# 1,000 rows labelled during fit ($30, 150 s); the student predicts 500 rows in 0.1 s.
DISTILL = run(
    "llm_distill", "llm_distill (gpt)", llm="gpt", n_test=500, fit_s=100.0, predict_s=0.1,
    fit_cpu_s=20.0, predict_cpu_s=0.1, requests=1000, usd=30.0, llm_seconds=150.0,
    fit_requests=1000, fit_cache_hits=0, fit_usd=30.0, fit_llm_seconds=150.0,
)  # fmt: skip


def costs(*rows: dict[str, Any], **options: Any) -> pd.DataFrame:
    return cost_per_1k(pd.DataFrame(list(rows)), **options)


def values(frame: pd.DataFrame, row: int = 0) -> list[float]:
    return frame.loc[row, COST_COLUMNS].astype(float).tolist()


# --- one-off vs marginal --------------------------------------------------------------------


def test_classical_costs_are_the_cpu_seconds_of_each_phase() -> None:
    # one-off: 6.0 CPU s of fit; marginal: 0.2 CPU s / 400 rows x 1000 = 0.5 s; no fees.
    assert values(costs(CLASSICAL)) == pytest.approx([6.0, 0.0, 0.5, 0.0])


def test_llm_icl_pays_its_llm_calls_per_prediction() -> None:
    # one-off: max(0.1 wall, 0 LLM) s, $0. marginal: max(50 wall, 80 LLM) = 80 s / 400 x 1000
    # = 200 s; $1.2 / 400 x 1000 = $3.
    assert values(costs(ICL)) == pytest.approx([0.1, 0.0, 200.0, 3.0])


def test_concurrent_llm_calls_cost_their_wall_time_not_their_sum() -> None:
    # 8 requests at a time: 400 s of latencies in 50 s of wall time, 48 s with requests in
    # flight; $1 of it usd_per_hour x the 48 s (bench/llm/cost.py). Marginal: max(50 wall,
    # 48 LLM wall) = 50 s / 400 x 1000 = 125 s, not 400 / 400 x 1000 = 1,000 s.
    icl = {**ICL, "llm_seconds": 400.0, "llm_wall_seconds": 48.0, "usd": 1.0}
    assert values(costs(icl)) == pytest.approx([0.1, 0.0, 125.0, 2.5])


def test_llm_codegen_pays_its_llm_calls_once() -> None:
    # one-off: max(30 wall, 25 LLM) = 30 s, $0.06; marginal: 0.4 s wall / 200 x 1000 = 2 s.
    assert values(costs(CODEGEN)) == pytest.approx([30.0, 0.06, 2.0, 0.0])


def test_llm_distill_pays_the_labelling_once() -> None:
    # one-off: max(100, 150) = 150 s, $30; marginal: the student, 0.1 s / 500 x 1000 = 0.2 s.
    assert values(costs(DISTILL)) == pytest.approx([150.0, 30.0, 0.2, 0.0])


def test_tabpfn_costs_are_wall_seconds() -> None:
    tabpfn = run("tabpfn", "tabpfn", fit_s=1.5, predict_s=4.0, fit_cpu_s=9.0, predict_cpu_s=30.0)
    assert values(costs(tabpfn)) == pytest.approx([1.5, 0.0, 10.0, 0.0])  # 4 / 400 x 1000


def test_cached_answers_are_costed_per_phase() -> None:
    # Fit computed 100 answers and took 300 from the cache: its cost x (100 + 300) / 100 = 4:
    # max(10 wall, 20 LLM) x 4 = 80 s, $0.5 x 4 = $2. Predict (the student) made no request.
    distill = run(
        "llm_distill", "llm_distill (gpt)", llm="gpt", fit_s=10.0, predict_s=0.2, fit_cpu_s=1.0,
        predict_cpu_s=0.2, requests=100, cache_hits=300, usd=0.5, llm_seconds=20.0,
        fit_requests=100, fit_cache_hits=300, fit_usd=0.5, fit_llm_seconds=20.0,
    )  # fmt: skip
    # Predict computed 200 answers of 400: max(30, 40) x 2 = 80 s / 400 x 1000 = 200 s;
    # $0.6 x 2 / 400 x 1000 = $3. Fit (no request) is not scaled.
    icl = {**ICL, "predict_s": 30.0, "requests": 200, "cache_hits": 200, "usd": 0.6}
    icl.update(llm_seconds=40.0, llm_wall_seconds=40.0)
    frame = costs(distill, icl)
    assert values(frame, 0) == pytest.approx([80.0, 2.0, 0.5, 0.0])
    assert values(frame, 1) == pytest.approx([0.1, 0.0, 200.0, 3.0])


def test_a_phase_answered_only_from_the_cache_has_no_cost() -> None:
    cached = {**DISTILL, "requests": 0, "cache_hits": 1000, "usd": 0.0, "llm_seconds": 0.0}
    cached.update(fit_requests=0, fit_cache_hits=1000, fit_usd=0.0, fit_llm_seconds=0.0)
    one_off_s, one_off_usd, marginal_s, marginal_usd = values(costs(cached))
    assert math.isnan(one_off_s) and math.isnan(one_off_usd)
    assert (marginal_s, marginal_usd) == pytest.approx((0.2, 0.0))  # the student still counts


def test_a_rerun_from_the_cache_costs_what_the_answers_cost_when_computed() -> None:
    # ICL again, every answer from cache entries that kept their cost (80 s, $1.2 in all)...
    rerun = {**ICL, "requests": 0, "cache_hits": 400, "usd": 0.0, "llm_seconds": 0.0}
    rerun.update(cached_llm_seconds=80.0, cached_usd=1.2, costed_cache_hits=400, predict_s=0.4)
    rerun.update(llm_wall_seconds=0.0, cached_llm_wall_seconds=80.0)
    assert values(costs(rerun))[2:] == pytest.approx(values(costs(ICL))[2:])
    # ... and with half the entries too old to say: the known half is scaled to all answers
    half = {**rerun, "cached_llm_seconds": 40.0, "cached_usd": 0.6, "costed_cache_hits": 200}
    half["cached_llm_wall_seconds"] = 40.0
    assert values(costs(half))[2:] == pytest.approx(values(costs(ICL))[2:])


def test_a_cpu_price_prices_the_phases_without_fees() -> None:
    # 3.6 USD per CPU hour = $0.001 per compute second; phases with fees keep their fees.
    frame = costs(CLASSICAL, ICL, CODEGEN, usd_per_cpu_hour=3.6)
    assert values(frame, 0) == pytest.approx([6.0, 0.006, 0.5, 0.0005])
    assert values(frame, 1) == pytest.approx([0.1, 0.0001, 200.0, 3.0])
    assert values(frame, 2) == pytest.approx([30.0, 0.06, 2.0, 0.002])
    with pytest.raises(ValueError, match="usd_per_cpu_hour"):
        costs(CLASSICAL, usd_per_cpu_hour=-1.0)


def old_store(root: Path, *rows: dict[str, Any]) -> pd.DataFrame:
    """`rows` written as run records without `version` (as the runner wrote them before the
    record was a type), read back by `load_results` in the order given."""
    for seed, row in enumerate(rows):
        stem = f"d__{row['method']}__n64__s{seed}__old"
        record = {
            **{k: row[k] for k in ("dataset", "method", "family", "llm", "n_train", "n_test")},
            "seed": seed,
            "status": "ok",
            "run_stem": stem,
            "metrics": {"roc_auc": row["roc_auc"]},
            "timing": {k: row[k] for k in TIMING_COLUMNS if k in row},
            "usage": {k: row[k] for k in USAGE_COLUMNS if k in row},
        }
        (root / "runs").mkdir(parents=True, exist_ok=True)
        (root / "runs" / f"{stem}.json").write_text(json.dumps(record))
    return load_results(root).sort_values("seed").reset_index(drop=True)


def test_old_records_fall_back_to_wall_time_and_the_family(tmp_path: Path) -> None:
    """Records written before the split: no fit_cpu_s/predict_cpu_s, no fit_* usage; the
    store's reader upgrades them (bench/record.py)."""
    split = [*NO_FIT_USAGE, "fit_requests", "fit_cache_hits", "fit_cpu_s", "predict_cpu_s"]

    def old(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in split}

    cached_codegen = {**old(CODEGEN), "requests": 0, "cache_hits": 3, "usd": 0.0}
    frame = cost_per_1k(
        old_store(
            tmp_path / "old", old(CLASSICAL), old(ICL), old(CODEGEN), old(DISTILL), cached_codegen
        )
    )
    assert values(frame, 0) == pytest.approx([2.0, 0.0, 1.25, 0.0])  # wall: 2 s, 0.5 / 400
    assert values(frame, 1) == pytest.approx([0.1, 0.0, 200.0, 3.0])  # LLM usage in predict
    assert values(frame, 2) == pytest.approx([30.0, 0.06, 2.0, 0.0])  # LLM usage in fit
    assert values(frame, 3) == pytest.approx([150.0, 30.0, 0.2, 0.0])
    one_off_s, _, marginal_s, _ = values(frame, 4)  # codegen's fit from the cache: unknown
    assert math.isnan(one_off_s) and marginal_s == pytest.approx(2.0)
    # Mixed with new records, the old rows (no fit_* fields) still fall back.
    mixed = cost_per_1k(old_store(tmp_path / "mixed", CLASSICAL, old(CODEGEN)))
    assert values(mixed, 1) == pytest.approx([30.0, 0.06, 2.0, 0.0])


def test_costs_read_from_a_results_store(tmp_path: Path) -> None:
    """The runner's record layout (timing and usage groups) reaches the cost columns."""
    usage = {key: DISTILL[key] for key in NO_USAGE} | {k: DISTILL[k] for k in NO_FIT_USAGE}
    timing = {key: DISTILL[key] for key in ("fit_s", "predict_s", "fit_cpu_s", "predict_cpu_s")}
    record = {
        **{k: DISTILL[k] for k in ("dataset", "method", "family", "llm", "n_train", "seed")},
        "experiment": "cost",
        "serializer": None,
        "status": "ok",
        "metrics": {"roc_auc": 0.8},
        "timing": {**timing, "cpu_s": 20.1, "wall_s": 100.1},
        "usage": usage,
        "n_test": 500,
        "run_stem": "d__llm_distill__n64__s0__x",
    }
    ResultsStore(tmp_path).save(record)
    frame = cost_per_1k(load_results(tmp_path), tmp_path)
    assert values(frame) == pytest.approx([150.0, 30.0, 0.2, 0.0])
    assert "usd_per_1k" not in frame.columns and "seconds_per_1k" not in frame.columns


# --- points, unit, Pareto -------------------------------------------------------------------


def test_points_average_seeds_and_the_front_uses_the_marginal_cost() -> None:
    seed1 = {**CLASSICAL, "seed": 1, "roc_auc": 0.9, "fit_cpu_s": 8.0, "predict_cpu_s": 0.6}
    frame = costs(CLASSICAL, seed1, ICL, CODEGEN)
    points = cost_points(frame, "roc_auc")
    assert list(points.columns) == ["family", "label", "n_train", "roc_auc", *COST_COLUMNS]
    lightgbm = points[points["label"] == "lightgbm"].iloc[0]
    # (0.8 + 0.9) / 2; one-off (6 + 8) / 2 = 7 s; marginal (0.5 + 1.5) / 2 = 1 s per 1,000.
    assert lightgbm[["roc_auc", "one_off_seconds", "marginal_seconds_per_1k"]].tolist() == (
        pytest.approx([0.85, 7.0, 1.0])
    )
    assert cost_unit(points) == "usd"  # the LLM paid fees
    assert cost_unit(cost_points(costs(CLASSICAL), "roc_auc")) == "seconds"
    assert cost_unit(cost_points(costs(CLASSICAL), "roc_auc"), usd_per_cpu_hour=1.0) == "usd"
    front = with_pareto(points, "roc_auc", "seconds").set_index("label")
    assert front["cost"].tolist() == pytest.approx([1.0, 2.0, 200.0])  # marginal s per 1,000
    assert front["one_off"].tolist() == pytest.approx([7.0, 30.0, 0.1])
    # lightgbm (1 s, 0.85) beats codegen and icl (dearer, 0.8).
    assert front["pareto"].tolist() == [True, False, False]


# --- deployment ---------------------------------------------------------------------------


def deployment_runs() -> pd.DataFrame:
    small = {**CLASSICAL, "n_train": 16, "roc_auc": 0.7, "predict_cpu_s": 4.0}
    majority = run("classical", "majority", fit_s=0.0, predict_s=0.0, fit_cpu_s=0.0,
                   predict_cpu_s=0.0)  # fmt: skip
    failed = {**ICL, "n_train": 256, "status": "failed", "roc_auc": np.nan}
    return costs(DISTILL, majority, ICL, small, CLASSICAL, CODEGEN, failed)


def test_deploy_costs_per_day_at_ten_million_predictions() -> None:
    table = deploy_costs(deployment_runs(), "roc_auc")
    assert table["label"].tolist() == [
        "lightgbm",
        "llm_icl (gpt)",
        "llm_codegen (gpt)",
        "llm_distill (gpt)",
    ]  # family order, no majority baseline
    assert table.columns.tolist() == [
        "family",
        "label",
        "n_train",
        "roc_auc",
        *COST_COLUMNS,
        "per_day_usd",
        "per_day_cpu_hours",
    ]
    assert table["n_train"].tolist() == [64, 64, 64, 64]  # the largest ok n_train (256 failed)
    # 10M a day = 10,000 x 1,000 predictions. icl: $3 x 10,000 = $30,000; 200 s x 10,000 / 3600.
    # lightgbm: 0.5 s x 10,000 / 3600; codegen 2 s; distill 0.2 s. Unpriced compute: no USD.
    assert table["per_day_cpu_hours"].tolist() == pytest.approx(
        [5000 / 3600, 2_000_000 / 3600, 20_000 / 3600, 2000 / 3600]
    )
    usd = table["per_day_usd"].tolist()
    assert usd[1] == pytest.approx(30_000.0)
    assert all(math.isnan(v) for v in (usd[0], usd[2], usd[3]))
    assert table.loc[3, "one_off_usd"] == pytest.approx(30.0)  # shown apart, not per day


def test_deploy_costs_with_a_cpu_price() -> None:
    # $0.001 per compute second: lightgbm 0.5 s per 1,000 -> 5,000 s a day -> $5.
    runs = deployment_runs().drop(columns=COST_COLUMNS)  # computed here, with the price
    table = deploy_costs(runs, "roc_auc", daily_predictions=10_000_000, usd_per_cpu_hour=3.6)
    assert table["per_day_usd"].tolist() == pytest.approx([5.0, 30_000.0, 20.0, 2.0])
    with pytest.raises(ValueError, match="daily_predictions"):
        deploy_costs(runs, "roc_auc", daily_predictions=0)


# --- break-even -----------------------------------------------------------------------------


def test_break_even_volume_in_usd() -> None:
    # Serving: $0 once + $0.003 per prediction; distilling: $30 once + $0 per prediction.
    # V = (30 - 0) / (0.003 - 0) = 10,000 predictions; at 10M a day, 0.001 days.
    icl16 = {**ICL, "n_train": 16}
    distill256 = {**DISTILL, "n_train": 256}  # no serving run at 256: compared at 64
    (result,) = break_even(costs(icl16, ICL, DISTILL, distill256, CLASSICAL), "roc_auc")
    assert result == BreakEven(
        llm="gpt",
        served="llm_icl (gpt)",
        distilled="llm_distill (gpt)",
        n_train=64,
        volume=pytest.approx(10_000.0),
        unit="usd",
        served_one_off=0.0,
        served_marginal=pytest.approx(0.003),
        distilled_one_off=30.0,
        distilled_marginal=0.0,
    )
    assert result.days(10_000_000) == pytest.approx(0.001)
    assert format_volume(result.volume) == "10 thousand predictions"


def test_break_even_in_seconds_and_never() -> None:
    # A free local LLM: compute seconds. Serving 0.1 s once + 0.2 s per prediction; distilling
    # 150 s once + 0.0002 s: V = (150 - 0.1) / (0.2 - 0.0002) = 750.25 predictions.
    local = {"llm": "local", "usd": 0.0, "fit_usd": 0.0}
    icl = {**ICL, **local, "label": "llm_icl (local)"}
    distill = {**DISTILL, **local, "label": "llm_distill (local)"}
    # A fast served LLM (0.04 s / 400 x 1000 = 0.1 s per 1,000) against a 0.2 s student: never.
    fast = {**ICL, "llm": "fast", "label": "llm_icl (fast)", "predict_s": 0.01}
    fast.update(llm_seconds=0.04, llm_wall_seconds=0.04, usd=0.0)
    slow = {**DISTILL, "llm": "fast", "label": "llm_distill (fast)", "usd": 0.0, "fit_usd": 0.0}
    by_llm = {r.llm: r for r in break_even(costs(icl, distill, fast, slow))}
    assert by_llm["local"].unit == "seconds"
    assert by_llm["local"].volume == pytest.approx(149.9 / 0.1998)
    assert by_llm["fast"].volume is None and by_llm["fast"].days(10_000_000) is None
    assert break_even(costs(CLASSICAL, ICL)) == []  # nothing distilled


def test_format_volume_reads_in_words() -> None:
    assert format_volume(1_234_567) == "1.2 million predictions"
    assert format_volume(999_700) == "1 million predictions"
    assert format_volume(850) == "850 predictions"
    assert format_volume(1) == "1 prediction"
    assert format_volume(3.2e9) == "3.2 billion predictions"
    assert format_volume(2_500_000, 10_000_000) == (
        "2.5 million predictions (6 hours at 10 million predictions a day)"
    )
    assert format_volume(235, 10_000_000).endswith("(2 seconds at 10 million predictions a day)")
    assert format_volume(45_000_000, 10_000_000).startswith("45 million predictions (4.5 days")
    assert format_volume(0.0) == "0 predictions"  # cheaper from the first prediction
    assert format_volume(None).startswith("never")


# --- figure ---------------------------------------------------------------------------------


def test_cost_plot_draws_both_panels(tmp_path: Path) -> None:
    points = cost_points(deployment_runs(), "roc_auc")
    unit = cost_unit(points)
    path = cost_plot(
        with_pareto(points, "roc_auc", unit), "roc_auc", unit, "d: cost", tmp_path / "c.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000  # two panels of lines and labels, not a blank canvas
    # A one-off cost unknown everywhere (all from the cache) leaves a labelled empty panel.
    unknown = with_pareto(points.assign(one_off_usd=np.nan), "roc_auc", unit)
    assert cost_plot(unknown, "roc_auc", unit, "d", tmp_path / "u.png").stat().st_size > 10_000

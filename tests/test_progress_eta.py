"""The sweep ETA estimates each remaining run from the finished runs most like it: same method
and training size, same method, same family (from the sweep's plan, bench/preflight.py), then
all runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.config import compose_config
from bench.preflight import SweepPlan, plan_sweep
from bench.progress import estimate_remaining, write_plan


def stems(method: str, count: int, n: int = 16, dataset: str = "cc") -> list[str]:
    """Stems of planned runs; `RUNS` learns the method and size of each (as preflight does)."""
    made = [f"{dataset}__{method}__n{n}__s{seed}__{method[:3]}" for seed in range(count)]
    RUNS.update({stem: [method, str(n)] for stem in made})
    return made


RUNS: dict[str, list[str]] = {}  # stem -> [method, n_train] of every stem made by `stems`


def finished(runs: list[tuple[str, float]]) -> list[bytes]:
    return [f"new {stem} {seconds}".encode() for stem, seconds in runs]


def test_a_method_not_yet_run_is_estimated_from_its_family() -> None:
    logreg, icl = stems("logreg", 5), stems("llm_icl", 1)
    tuned, knn = stems("lightgbm_tuned", 3), stems("llm_icl_knn", 2)
    plan = {
        "id": "p",
        "total": 11,
        "started": 1000.0,
        "stems": logreg + icl + tuned + knn,
        "runs": RUNS,
        "families": {
            "logreg": "classical",
            "llm_icl": "llm_icl",
            "lightgbm_tuned": "classical",
            "llm_icl_knn": "llm_icl",
        },
    }
    entries = finished([(s, 1.0) for s in logreg] + [(icl[0], 60.0)])
    # 65 run-seconds in 65 s: one run at a time. Three classical fits and two LLM runs remain,
    # not five runs at the average of 65/6 s each.
    assert estimate_remaining(plan, entries, now=1065.0) == pytest.approx(3 * 1 + 2 * 60)


def test_a_run_is_estimated_from_runs_of_its_method_at_the_same_training_size() -> None:
    small, large = stems("llm_icl", 2, n=16), stems("llm_icl", 3, n=1024)
    plan = {"id": "p", "total": 5, "started": 1000.0, "stems": small + large, "runs": RUNS}
    entries = finished([(small[0], 10.0), (small[1], 10.0), (large[0], 100.0)])
    # two 1024-row runs left: 100 s each, not the method's mean of 40 s
    assert estimate_remaining(plan, entries, now=1120.0) == pytest.approx(2 * 100)
    # a size the method has not run yet: the method's mean
    plan["stems"] = [*plan["stems"], *stems("llm_icl", 1, n=64)]
    plan["total"] = 6
    assert estimate_remaining(plan, entries, now=1120.0) == pytest.approx(2 * 100 + 40)


def test_a_dataset_named_with_double_underscores_is_estimated_by_its_runs() -> None:
    """The method and size of a run come from the plan, never from its file name: in
    `call__center__llm_icl__n16__...` the method is not `center`."""
    small = stems("llm_icl", 2, n=16, dataset="call__center")
    large = stems("llm_icl", 3, n=1024, dataset="call__center")
    plan = {"id": "p", "total": 5, "started": 1000.0, "stems": small + large, "runs": RUNS}
    entries = finished([(small[0], 10.0), (small[1], 10.0), (large[0], 100.0)])
    assert estimate_remaining(plan, entries, now=1120.0) == pytest.approx(2 * 100)


def test_the_plan_records_the_family_of_every_planned_method(tmp_path: Path) -> None:
    """The families come from the composed configs (preflight), `defaults` included:
    lightgbm_tuned is classical through lightgbm, llm_icl_knn is llm_icl."""
    argv = ["-m", "dataset=callcenter", "method=lightgbm_tuned,llm_icl_knn"]
    sweep = plan_sweep([*argv, "seeds=[0,1]", "n_train=[16]"])
    assert not sweep.problems
    cfg = compose_config(["dataset=callcenter", f"results_dir={tmp_path}"])
    path = write_plan(cfg, multirun=False, plan=sweep)
    assert path is not None
    plan = json.loads(path.read_text())
    assert plan["total"] == 4
    assert plan["families"] == {"lightgbm_tuned": "classical", "llm_icl_knn": "llm_icl"}


def test_without_a_plan_the_count_is_the_product_of_the_lists(tmp_path: Path) -> None:
    cfg = compose_config(["dataset=callcenter", f"results_dir={tmp_path}", "seeds=[0,1,2]"])
    path = write_plan(cfg, multirun=False, plan=SweepPlan([], frozenset()))
    assert path is not None
    assert json.loads(path.read_text())["total"] == 3 * len(cfg.n_train)


def test_the_plan_holds_the_method_and_size_of_each_run_as_composed(tmp_path: Path) -> None:
    """bench-run's plan (preflight's composed jobs) names each run's method and size, so a
    dataset named with `__` is estimated by its runs (the test above)."""
    argv = ["-m", "dataset=callcenter", "dataset.name=call__center", "method=logreg,majority"]
    sweep = plan_sweep([*argv, "seeds=[0]", "n_train=[16,all]"])
    assert not sweep.problems
    cfg = compose_config(["dataset=callcenter", f"results_dir={tmp_path}"])
    path = write_plan(cfg, multirun=True, plan=sweep)
    assert path is not None
    plan = json.loads(path.read_text())
    assert sorted(plan["runs"].values()) == [
        ["logreg", "16"],
        ["logreg", "all"],
        ["majority", "16"],
        ["majority", "all"],
    ]
    assert all(stem.startswith("call__center__") for stem in plan["runs"])

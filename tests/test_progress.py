"""Sweep progress lines: a sweep-wide count of finished runs over the planned total, an ETA, per
job counts when there is no plan; `planned_jobs` expands sweeps as Hydra's basic sweeper does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import DictConfig

from bench.config import register_configs
from bench.paths import CONF_DIR
from bench.progress import SweepProgress, planned_jobs

BENCH_RUN = Path(sys.executable).with_name("bench-run")
LINE = re.compile(r"\[sweep (\d+)/(\d+) runs, (\d+)%(?:, ETA (\d+)m(\d\d)s)?\]")


def multirun(args: tuple[str, ...] | list[str]) -> list[str]:
    """The arguments with `-m` first when they sweep a comma list (no experiment does it now)."""
    sweeps = any(
        "," in value and not value.startswith("[")
        for value in (a.partition("=")[2] for a in args if "=" in a)
    )
    return ["-m", *args] if sweeps and "-m" not in args else list(args)


def bench_run(*args: str, cwd: Path, status: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BENCH_RUN), *multirun(args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == status, done.stderr[-3000:]
    return done


def sweep_counts(output: str) -> list[tuple[int, int]]:
    """(done, total) of every progress line, checking each line's percent and ETA format."""
    counts = []
    for match in LINE.finditer(output):
        done, total, percent = int(match[1]), int(match[2]), int(match[3])
        assert percent == round(100 * done / total), match[0]
        if match[4] is not None:
            assert done < total and int(match[5]) < 60, match[0]
        counts.append((done, total))
    return counts


def counted(line: str) -> tuple[int, int]:
    match = LINE.fullmatch(line)
    assert match, line
    return int(match[1]), int(match[2])


# -- planned_jobs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose_multirun() -> Iterator:
    """Compose the config a multirun's callbacks see (hydra node included, sweeps allowed)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra

        def compose(*overrides: str) -> DictConfig:
            return hydra.compose_config(
                "config", list(overrides), run_mode=RunMode.MULTIRUN, with_log_configuration=False
            )

        yield compose


@pytest.mark.parametrize(
    ("overrides", "jobs"),
    [
        (("experiment=quick",), 2 * 11),  # 2 datasets x 11 methods
        (("experiment=classical",), 2 * 9),
        (("experiment=serialization",), 1 * 5 * 14),  # 3 methods and 2 picks
        # The command line wins over the experiment's list for the same key ...
        (("experiment=serialization", "serializer=list,csv"), 1 * 5 * 2),
        (("experiment=classical", "dataset=callcenter"), 1 * 9),
        (("experiment=classical", "method=logreg,xgboost", "dataset=callcenter"), 2),
        # ... and adds its own sweeps to the experiment's.
        (("experiment=families", "split.max_test_rows=50,100,200"), 2 * 9 * 3),
        (("experiment=classical", "seeds=[0,1,2,3]", "n_train=[8,16]"), 2 * 9),  # lists, no sweep
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
)
def test_planned_jobs_follow_the_experiment_and_the_command_line(
    compose_multirun, overrides: tuple[str, ...], jobs: int
) -> None:
    assert planned_jobs(compose_multirun(*overrides)) == jobs


# -- a real sweep ----------------------------------------------------------------------------
def test_a_parallel_sweep_counts_every_run_once_up_to_the_total(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = bench_run(
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "dataset=callcenter",
        "method=majority,logreg",
        "seeds=[0,1]",
        "n_train=[16,32,64]",
        "report=false",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    counts = sweep_counts(done.stdout + done.stderr)
    total = 2 * 2 * 3  # jobs x seeds x n_train
    assert len(counts) == total  # a line per run
    assert {t for _, t in counts} == {total}
    # Two jobs append at once, so a count may repeat, but the last run read says N/N.
    assert max(d for d, _ in counts) == total
    assert f"[sweep {total}/{total} runs, 100%]" in done.stdout + done.stderr
    plan = json.loads((results / ".sweep" / "plan.json").read_text())
    assert plan["total"] == total
    assert len((results / ".sweep" / f"{plan['id']}.done").read_text().splitlines()) == total


def test_a_sequential_sweep_counts_up_with_an_eta(tmp_path: Path) -> None:
    done = bench_run(
        "hydra/launcher=basic",
        "dataset=callcenter",
        "method=majority,logreg",
        "seeds=[0,1]",
        "n_train=[16,64]",
        "report=false",
        f"results_dir={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert sweep_counts(output) == [(d, 8) for d in range(1, 9)]
    assert re.search(r"\[sweep 5/8 runs, 62%, ETA \d+m\d\ds\] \[callcenter \| logreg\]", output)
    assert "[sweep 8/8 runs, 100%] [callcenter | logreg] seed=1 n_train=64: ok" in output


def test_a_single_run_counts_the_runs_of_its_job(tmp_path: Path) -> None:
    done = bench_run(
        "hydra.mode=RUN",
        "dataset=callcenter",
        "method=logreg",
        "seeds=[0,1]",
        "n_train=[16,32,64]",
        "report=false",
        f"results_dir={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    assert "Launching" not in done.stdout  # not a multirun
    assert sweep_counts(done.stdout + done.stderr) == [(d, 6) for d in range(1, 7)]


def test_runs_of_a_job_whose_dataset_fails_still_count(tmp_path: Path) -> None:
    done = bench_run(
        "hydra/launcher=basic",
        "dataset=callcenter",
        "method=logreg",
        "dataset.target=nope,resolved",  # the first job cannot load its data
        "seeds=[0]",
        "n_train=[16,64]",
        "report=false",
        f"results_dir={tmp_path / 'results'}",
        cwd=tmp_path,
        status=1,  # some runs failed
    )
    assert "Executed 4 new run(s) (2 failed, 2 ok)" in done.stdout
    assert sweep_counts(done.stdout + done.stderr)[-1] == (4, 4)


# -- SweepProgress itself --------------------------------------------------------------------
def write_plan(results: Path, total: int, started: float | None = None) -> str:
    plan = {"id": "p1", "total": total, "started": time.time() if started is None else started}
    (results / ".sweep").mkdir(parents=True)
    (results / ".sweep" / "plan.json").write_text(json.dumps(plan))
    return plan["id"]


def test_jobs_in_separate_processes_share_one_count(tmp_path: Path) -> None:
    write_plan(tmp_path, total=5)
    first, second = SweepProgress(tmp_path, 3), SweepProgress(tmp_path, 2)
    assert counted(first.tick("a", new=True)) == (1, 5)
    assert counted(second.tick("b", new=True)) == (2, 5)
    assert counted(first.tick("c", new=False)) == (3, 5)
    assert second.tick("d", new=True).startswith("[sweep 4/5 runs, 80%, ETA ")
    assert first.tick("e", new=True) == "[sweep 5/5 runs, 100%]"


def test_runs_found_done_give_no_eta(tmp_path: Path) -> None:
    write_plan(tmp_path, total=4)
    progress = SweepProgress(tmp_path, 4)
    assert progress.tick("a", new=False) == "[sweep 1/4 runs, 25%]"  # nothing executed yet


def test_without_a_plan_a_job_counts_its_own_runs(tmp_path: Path) -> None:
    progress = SweepProgress(tmp_path, 2)
    assert [progress.tick("a", True), progress.tick("b", True)] == [
        "[1/2 runs of this job]",
        "[2/2 runs of this job]",
    ]
    assert not (tmp_path / ".sweep").exists()


def test_a_plan_from_an_old_sweep_is_not_trusted(tmp_path: Path) -> None:
    write_plan(tmp_path, total=100, started=time.time() - 2 * 86_400)
    assert SweepProgress(tmp_path, 3).tick("a", True) == "[1/3 runs of this job]"


def test_the_eta_weighs_each_remaining_run_by_its_method() -> None:
    from bench.progress import estimate_remaining

    fast = [f"cc__logreg__n16__s{i}__x" for i in range(15)]
    slow = [f"cc__llm_icl__n16__s{i}__y" for i in range(3)]
    runs = {stem: [stem.split("__")[1], "16"] for stem in fast + slow}
    plan = {"id": "p", "total": 18, "started": 1000.0, "stems": fast + slow, "runs": runs}
    entries = [f"new {stem} 1.0".encode() for stem in fast[:10]] + [f"new {slow[0]} 60.0".encode()]
    # 70 run-seconds in 70 s of wall time: one run at a time; 2 LLM runs and 5 fits remain.
    assert estimate_remaining(plan, entries, now=1070.0) == pytest.approx(2 * 60 + 5 * 1)
    # The same work done by two parallel jobs in half the time: half the ETA.
    assert estimate_remaining(plan, entries, now=1035.0) == pytest.approx((2 * 60 + 5) / 2)
    # Runs found already done count as done and cost nothing.
    old = [f"old {stem}".encode() for stem in fast[10:]]
    assert estimate_remaining(plan, entries + old, now=1070.0) == pytest.approx(2 * 60)

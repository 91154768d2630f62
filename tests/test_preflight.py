"""bench-run refuses settings that can never work before anything runs, and its exit status
says whether every run of the sweep worked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.preflight import sweep_jobs, sweep_problems

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def bench_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bench-run"), *args, "report=false"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("n_train=[-5,16]", "n_train: -5 is not a row count"),
        ("split.test_size=1.5", "split.test_size=1.5 must be between 0 and 1"),
        ("split.sampling=foo", "split.sampling='foo' must be one of stratified, balanced"),
        ("method.params.max_shots=-1", "method.params.max_shots=-1 is out of range"),
    ],
)
def test_values_that_can_never_work_are_refused_before_anything_runs(
    tmp_path: Path, override: str, says: str
) -> None:
    results = tmp_path / "results"
    done = bench_run(
        "dataset=callcenter",
        "method=llm_icl",
        "seeds=[0]",
        "n_train=[16]",
        override,
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert says in done.stderr
    assert "nothing was run" in done.stderr
    assert not (results / "runs").exists() or not list((results / "runs").iterdir())


def test_a_bad_value_in_one_job_of_a_sweep_refuses_the_whole_sweep(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = bench_run(
        "-m",
        "dataset=callcenter",
        "method=majority,llm_icl",
        "method.params.max_shots=-1",
        "seeds=[0]",
        "n_train=[16]",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert not (results / "runs").exists()


def test_the_exit_status_is_non_zero_when_a_run_failed(tmp_path: Path) -> None:
    results = tmp_path / "results"
    ok = bench_run(
        "dataset=callcenter",
        "method=majority",
        "seeds=[0]",
        "n_train=[16]",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    # A dataset whose file is missing: every run fails, and the status says so.
    failed = bench_run(
        "dataset=callcenter",
        "method=majority",
        "seeds=[0]",
        "n_train=[16]",
        "dataset.source=csv",
        f"+dataset.params.path={tmp_path / 'missing.csv'}",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert failed.returncode == 1, failed.stdout[-2000:] + failed.stderr[-2000:]


def test_the_sweep_is_expanded_as_hydra_would() -> None:
    jobs = sweep_jobs(["experiment=classical"])
    assert len(jobs) > 1
    assert len({tuple(sorted(job)) for job in jobs}) == len(jobs)
    assert sweep_problems(["experiment=classical"]) == []
    assert sweep_problems(["dataset=callcenter", "method=logreg,llm_icl", "n_train=[x]"]) == [
        "n_train: 'x' is not a row count (an integer >= 0, or 'all')"
    ]


def test_the_summary_counts_only_this_sweeps_runs_and_says_when_none_could_be_stored(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    first = bench_run(
        "dataset=callcenter",
        "method=majority",
        "seeds=[0,1]",
        "n_train=[16]",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert first.returncode == 0
    other = bench_run(
        "dataset=callcenter",
        "method=logreg",
        "seeds=[0]",
        "n_train=[16]",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert "Executed 1 new run(s) (1 ok); 0 run(s) already in the store were reused." in (
        other.stdout
    )
    again = bench_run(
        "dataset=callcenter",
        "method=majority",
        "seeds=[0,1]",
        "n_train=[16]",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert "2 run(s) already in the store were reused" in again.stdout
    assert "Nothing new to run" in again.stdout
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    broken = bench_run(
        "dataset=callcenter",
        "method=majority",
        "seeds=[0]",
        "n_train=[16]",
        f"results_dir={blocker / 'results'}",
        cwd=tmp_path,
    )
    assert broken.returncode == 1
    assert "1 run(s) of this sweep were neither run nor found" in broken.stdout
    assert "Nothing new to run" not in broken.stdout


def test_help_starts_with_the_harness_usage(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "bench-run"), "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.startswith("bench-run: run a sweep")
    assert "status: 0 every run ok" in done.stdout
    assert "Configuration groups" in done.stdout  # Hydra's help follows


def test_a_methods_pinned_llm_and_the_context_window_are_checked() -> None:
    assert sweep_problems(["dataset=callcenter", "method=llm_codegen_local"]) == []
    (unknown,) = sweep_problems(
        ["dataset=callcenter", "method=llm_codegen_local", "method.llm=qwen"]
    )
    assert "method.llm" in unknown and "local_qwen25_coder_1_5b" in unknown  # the valid names
    (window,) = sweep_problems(["dataset=callcenter", "method=llm_icl", "llm.n_ctx=8k"])
    assert "llm.n_ctx must be `auto` or a positive number of tokens, got '8k'" in window


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("report.stats=rowz", "report.stats='rowz' is not one of rows, seeds"),
        ("report.margin=-0.1", "report.margin=-0.1 must be a number >= 0"),
        ("report.daily_predictions=0", "report.daily_predictions=0 must be > 0"),
        ("report.metric=aucc", "Did you mean 'roc_auc'?"),
    ],
)
def test_bad_report_settings_are_refused_before_the_sweep(override: str, says: str) -> None:
    problems = sweep_problems(["dataset=callcenter", "method=logreg", override])
    assert any(says in p for p in problems), problems


def test_report_false_and_report_settings_compose() -> None:
    assert sweep_problems(["dataset=callcenter", "method=logreg", "report=false"]) == []
    assert sweep_problems(["dataset=callcenter", "method=logreg", "report.margin=0.05"]) == []

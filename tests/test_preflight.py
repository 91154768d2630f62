"""bench-run refuses settings that can never work before anything runs, and its exit status
says whether every run of the sweep worked."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.preflight import sweep_jobs, sweep_problems
from bench.sweep import expand_jobs

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
    ("method", "override", "says"),
    [
        ("llm_icl", "n_train=[-5,16]", "n_train: -5 is not a row count"),
        ("llm_icl", "split.test_size=1.5", "split.test_size=1.5 must be between 0 and 1"),
        (
            "llm_icl",
            "split.sampling=foo",
            "split.sampling='foo' is not one of stratified, balanced",
        ),
        ("llm_icl", "method.params.max_shots=-1", "method.params.max_shots=-1 is out of range"),
        # Misspelt choices: each would otherwise fail every run of the sweep.
        (
            "llm_embed",
            "method.params.head=lgbm",
            "method.params.head='lgbm' is not one of logreg, lightgbm; did you mean 'lightgbm'?",
        ),
        (
            "llm_icl",
            "serializer.numbers=word",
            "serializer.numbers='word' is not one of raw, rounded, binned, words; did you mean "
            "'words'?",
        ),
        (
            "llm_icl",
            "method.params.selection=stratifed",
            "method.params.selection='stratifed' is not one of first, random, stratified, "
            "balanced, knn; did you mean 'stratified'?",
        ),
    ],
)
def test_values_that_can_never_work_are_refused_before_anything_runs(
    tmp_path: Path, method: str, override: str, says: str
) -> None:
    results = tmp_path / "results"
    done = bench_run(
        "dataset=callcenter",
        f"method={method}",
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


@pytest.mark.parametrize(
    ("method", "override", "key"),
    [
        ("llm_icl", "serializer.format=jsonl", "serializer.format"),
        ("llm_icl", "llm.api=completion", "llm.api"),
        ("llm_icl", "llm.backend=llama", "llm.backend"),
        ("llm_icl_knn_all", "method.params.knn_layout=shared", "method.params.knn_layout"),
        ("llm_icl_tuned", "method.params.selection=nearest", "method.params.selection"),
        # the prompt search's own group (method.params.search.*) is checked the same way
        ("llm_icl_tuned", "method.params.search.metric=auc", "method.params.search.metric"),
        ("llm_icl_tuned", "method.params.search.validation=1.5", "method.params.search.validation"),
        (
            "llm_icl_tuned",
            "method.params.search.max_candidates=0",
            "method.params.search.max_candidates",
        ),
        ("llm_distill", "method.params.teacher_shots=zeroshot", "method.params.teacher_shots"),
        ("llm_distill", "method.params.selection=balance", "method.params.selection"),
        ("logreg", "dataset.source=cvs", "dataset.source"),
        ("logreg", "dataset.features.channel.type=categoric", "dataset.features.channel.type"),
        ("logreg", "split.min_per_class=-1", "split.min_per_class"),
        ("logreg", "n_jobs=0", "n_jobs"),
    ],
)
def test_every_setting_with_fixed_values_is_checked(method: str, override: str, key: str) -> None:
    value = override.partition("=")[2]
    (problem,) = sweep_problems(["dataset=callcenter", f"method={method}", override])
    assert problem.startswith(f"{key}={value}") or problem.startswith(f"{key}='{value}'"), problem


def test_a_pinned_models_file_is_checked_and_named() -> None:
    assert sweep_problems(["dataset=callcenter", "method=llm_codegen_local", "llm.api=x"]) == [
        "llm.api='x' is not one of chat, completions"
    ]  # the pinned model's own file is fine: only the sweep's `llm` is wrong


@pytest.mark.parametrize(
    "overrides",
    [
        ["dataset=a,b", "method=logreg"],
        ["method=logreg,xgboost", "dataset=a,b", "+x=1,2", "seeds=[0,1]", "y=range(0,3)"],
        ["dataset=a", "method=majority,logreg", "dataset=c,d"],  # the later value wins
        ["n_train=choice(1,2)", "~report"],
    ],
)
def test_jobs_expand_as_hydras_basic_sweeper(overrides: list[str]) -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # the oracle only
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweep_params = {"method": "lightgbm,tabpfn", "split.max_test_rows": "50,100"}
    lines = [f"{key}={value}" for key, value in sweep_params.items()] + overrides
    parsed = OverridesParser.create().parse_overrides(lines)
    (hydras,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    assert expand_jobs(sweep_params, overrides) == hydras


def test_the_sweep_is_expanded_as_hydra_would() -> None:
    jobs = sweep_jobs(["experiment=classical"])
    assert len(jobs) == 2 * 9  # 2 datasets x 9 methods
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
    # A results folder that cannot be written is refused in one line before the sweep.
    assert broken.returncode == 2
    assert broken.stdout == ""
    assert broken.stderr.splitlines() == [
        f"bench-run: nothing was run; results_dir: {blocker} is a file, not a folder"
    ]


def test_a_value_of_the_wrong_type_says_why(tmp_path: Path) -> None:
    done = bench_run("dataset=callcenter", "method=majority", "seeds=[x]", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        "Error merging override seeds=[x]: Value 'x' of type 'str' could not be converted to "
        "Integer (key seeds[0])"
    ) in done.stderr


def test_help_starts_with_the_harness_usage(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "bench-run"), "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.startswith("bench-run: run a sweep")
    assert "status: 0 every run of this sweep ok" in done.stdout
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


def test_an_earlier_sweeps_orphan_settled_now_does_not_fail_this_sweep(tmp_path: Path) -> None:
    """A `running` marker of a dead process (an earlier sweep that crashed) is settled as failed
    by the next sweep in the same folder: that is not a failure of the next sweep's runs."""
    results = tmp_path / "results"
    crashed = bench_run(
        "dataset=callcenter",
        "method=logreg",
        "seeds=[0]",
        "n_train=[16]",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert crashed.returncode == 0, crashed.stderr[-2000:]
    (record_file,) = (results / "runs").glob("*.json")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid of this host whose process is gone
    record = json.loads(record_file.read_text())
    record.update(status="running", host=socket.gethostname(), pid=dead.pid)
    record_file.write_text(json.dumps(record))

    done = bench_run(
        "dataset=callcenter",
        "method=majority",
        "seeds=[0]",
        "n_train=[16]",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert json.loads(record_file.read_text())["status"] == "failed"  # settled by this sweep
    assert "Executed 1 new run(s) (1 ok)" in done.stdout
    assert "did not finish" not in done.stdout
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

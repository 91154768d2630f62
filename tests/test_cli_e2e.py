"""The real command-line tools, run as subprocesses on real data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import bench
from bench.config import compose_config, config_names
from bench.data.dataset import load_task
from bench.results import METRIC_COLUMNS, load_results

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
SWEEP = ["dataset=callcenter", "method=majority,xgboost", "seeds=[0,1]", "n_train=[16,256]"]
RUN_FIELDS = {
    "dataset",
    "method",
    "family",
    "llm",
    "serializer",
    "n_train",
    "seed",
    "status",
    "error",
    "metrics",
    "timing",
    "usage",
}
USAGE_FIELDS = {
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_hits",
    "usd",
    "llm_seconds",
    "llm_wall_seconds",  # the wall time of the LLM calls (concurrent ones counted once)
    "requests_sent",  # HTTP requests sent, retries included
    # what answers from the request cache cost when computed
    "cached_llm_seconds",
    "cached_usd",
    "cached_llm_wall_seconds",
    "costed_cache_hits",
    # spent during fit: the one-off part of the cost (bench/report/cost.py)
    "fit_llm_seconds",
    "fit_llm_wall_seconds",
    "fit_cached_llm_wall_seconds",
    "fit_usd",
    "fit_requests",
    "fit_cache_hits",
    "fit_cached_llm_seconds",
    "fit_cached_usd",
    "fit_costed_cache_hits",
}


def multirun(args: tuple[str, ...] | list[str]) -> list[str]:
    """The arguments with `-m` first when they sweep a comma list (no experiment does it now)."""
    sweeps = any(
        "," in value and not value.startswith("[")
        for value in (a.partition("=")[2] for a in args if "=" in a)
    )
    return ["-m", *args] if sweeps and "-m" not in args else list(args)


def cli(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a console script installed in the project's virtual environment."""
    return subprocess.run(
        [str(BIN / tool), *(multirun(args) if tool == "bench-run" else args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def sweep(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One small real sweep: 2 methods x 2 seeds x 2 training sizes on the call-center set."""
    work = tmp_path_factory.mktemp("sweep")
    results = work / "results"
    done = cli("bench-run", *SWEEP, f"results_dir={results}", cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return results, done


def test_sweep_writes_one_complete_record_per_run(
    sweep: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    results, _ = sweep
    files = sorted((results / "runs").glob("*.json"))
    assert len(files) == 2 * 2 * 2
    seen = set()
    for path in files:
        record = json.loads(path.read_text())
        assert set(record) >= RUN_FIELDS, path.name
        assert record["status"] == "ok", record["error"]
        assert set(record["metrics"]) == set(METRIC_COLUMNS)
        assert {"fit_s", "predict_s", "wall_s"} <= set(record["timing"])
        assert set(record["usage"]) == USAGE_FIELDS
        assert (results / record["predictions_file"]).is_file()
        seen.add((record["method"], record["seed"], record["n_train"]))
    assert seen == {(m, s, n) for m in ("majority", "xgboost") for s in (0, 1) for n in (16, 256)}


def test_sweep_prints_a_summary(sweep: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    results, done = sweep
    assert "Executed 8 new run(s) (8 ok)" in done.stdout
    assert [p.name for p in results.parent.iterdir()] == ["results"]  # nothing else in the cwd
    assert str(results) in done.stdout
    assert "Nothing new to run" not in done.stdout


def test_rerun_executes_nothing_new(
    sweep: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    results, _ = sweep
    before = {p.name: p.read_bytes() for p in (results / "runs").iterdir()}
    again = cli("bench-run", *SWEEP, f"results_dir={results}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing new to run" in again.stdout
    assert "Executed 0 new run(s)" in again.stdout
    assert {p.name: p.read_bytes() for p in (results / "runs").iterdir()} == before


def test_xgboost_beats_the_majority_baseline_with_256_rows(
    sweep: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    results, _ = sweep
    frame = load_results(results)
    at_256 = frame[frame["n_train"] == 256].pivot(index="seed", columns="method", values="accuracy")
    assert (at_256["xgboost"] > at_256["majority"]).all()
    # ... but never beyond what the label noise allows (with some slack for a 1,000-row test set).
    noise = compose_config(["dataset=callcenter"]).dataset.params.noise
    assert (at_256["xgboost"] < 1 - noise + 0.03).all()


def test_unknown_method_lists_valid_names_and_the_closest(tmp_path: Path) -> None:
    done = cli(
        "bench-run",
        "dataset=callcenter",
        "method=majority,xgbost",
        f"results_dir={tmp_path}/r",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "Did you mean 'xgboost'?" in done.stderr
    for name in config_names("method"):
        assert name in done.stderr
    assert not (tmp_path / "r").exists()  # nothing started


def test_unknown_dataset_is_refused_before_anything_runs(tmp_path: Path) -> None:
    done = cli("bench-run", "dataset=calcenter", f"results_dir={tmp_path}/r", cwd=tmp_path)
    assert done.returncode != 0
    assert "Did you mean 'callcenter'?" in done.stderr


def test_data_list_shows_every_dataset(tmp_path: Path) -> None:
    done = cli("bench-data", "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    listed = {line.split()[0] for line in lines[1:] if line.strip()}
    assert listed == set(config_names("dataset"))
    callcenter = next(line for line in lines if line.startswith("callcenter "))
    assert "resolved" in callcenter  # its target


def test_data_list_with_a_broken_card_lists_the_others_and_exits_1(tmp_path: Path) -> None:
    """Run from a copy of the project (its conf/ is read next to the package), so that the
    broken card never touches this checkout."""
    project = tmp_path / "project"
    root = Path(bench.__file__).parent.parent
    shutil.copytree(root / "bench", project / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "conf", project / "conf")
    card = (project / "conf" / "dataset" / "callcenter.yaml").read_text()
    (project / "conf" / "dataset" / "misspelt.yaml").write_text(
        card.replace("name: callcenter", "name: misspelt").replace("target:", "targt:", 1)
    )
    code = "import sys; from bench.cli import data_main; data_main(sys.argv[1:])"
    done = subprocess.run(
        [sys.executable, "-c", code, "list"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(project)},
    )
    assert done.returncode == 1, done.stderr
    assert "1 broken dataset card(s):" in done.stdout and "targt" in done.stdout
    assert any(line.startswith("callcenter ") for line in done.stdout.splitlines())


def test_data_show_describes_a_dataset(tmp_path: Path) -> None:
    done = cli("bench-data", "show", "callcenter", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    card = compose_config(["dataset=callcenter"]).dataset
    task = load_task(card)
    out = done.stdout
    assert f"attainable accuracy (known by construction): {1 - card.params.noise:.3f}" in out
    assert f"rows: {len(task.X)}" in out
    assert "leak columns dropped: handle_time_s" in out
    lines = out.splitlines()
    for feature in task.features:
        line = next(line for line in lines if line.startswith(f"{feature.name} "))
        assert f"{task.X[feature.name].isna().mean():.1%}" in line, feature.name
        assert feature.type in line
    share = task.y.value_counts(normalize=True)
    assert f"yes {share['yes']:.1%}" in out


def test_data_show_unknown_name_fails_with_suggestions(tmp_path: Path) -> None:
    done = cli("bench-data", "show", "callcentre", cwd=tmp_path)
    assert done.returncode != 0
    assert "Did you mean 'callcenter'?" in done.stderr
    for name in config_names("dataset"):
        assert name in done.stderr
    nope = cli("bench-data", "show", "nope", cwd=tmp_path)
    assert nope.returncode != 0
    assert "Valid names:" in nope.stderr


def test_sweep_results_are_a_tidy_table(
    sweep: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    results, _ = sweep
    frame = load_results(results)
    assert len(frame) == 8
    assert frame["status"].eq("ok").all()
    assert frame["experiment"].nunique() == 1
    assert pd.api.types.is_numeric_dtype(frame["accuracy"])


def test_a_broken_method_is_recorded_and_the_sweep_finishes(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = cli(
        "bench-run",
        "dataset=callcenter",
        "method=random_forest,majority",
        "++method.params.n_estimators=-5",  # majority has no such parameter and ignores it
        "seeds=[0]",
        "n_train=[16]",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr[-3000:]  # a run failed: the status says so
    assert "Executed 2 new run(s) (1 failed, 1 ok)" in done.stdout
    assert "Rerun to retry them" in done.stdout
    frame = load_results(results).set_index("method")
    assert frame.loc["random_forest", "status"] == "failed"
    assert "n_estimators" in frame.loc["random_forest", "error"]
    assert frame.loc["majority", "status"] == "ok"

"""Launchers: the same sweep gives the same results run by run whether its jobs run one after
another, in joblib or submitit processes, or as Ray tasks; a launcher that cannot work here is
refused before any run starts, with a message naming the setting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import OmegaConf

from bench.launchers import LauncherError, check_launcher, launcher_names
from bench.registry import UnknownNameError
from bench.results import ResultsStore

BENCH_RUN = Path(sys.executable).with_name("bench-run")
SWEEP = (
    "dataset=callcenter",
    "method=logreg,xgboost",
    "seeds=[0,1]",
    "n_train=[16,64]",
    "split.max_test_rows=100",
    "report=false",
)
RUNS = 2 * 2 * 2
PRESETS = ("local_processes", "ray_cluster", "ray_local", "slurm")
PLUGINS = ("joblib", "submitit_local", "submitit_slurm", "ray")


def multirun(args: tuple[str, ...] | list[str]) -> list[str]:
    """The arguments with `-m` first when they sweep a comma list (no experiment does it now)."""
    sweeps = any(
        "," in value and not value.startswith("[")
        for value in (a.partition("=")[2] for a in args if "=" in a)
    )
    return ["-m", *args] if sweeps and "-m" not in args else list(args)


def bench_run(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BENCH_RUN), *multirun(args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def sweep_results(results: Path) -> dict[str, dict[str, Any]]:
    """stem -> {status, metrics, predictions} of every run in a results folder."""
    store = ResultsStore(results)
    out = {}
    for record in store.records():
        out[record["run_stem"]] = {
            "status": record["status"],
            "metrics": record["metrics"],
            "predictions": store.predictions(record),
        }
    return out


def run_sweep(launcher: tuple[str, ...], work: Path, timeout: float = 300) -> Path:
    results = work / "results"
    done = bench_run(*launcher, *SWEEP, f"results_dir={results}", cwd=work, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"Executed {RUNS} new run(s) ({RUNS} ok)" in done.stdout, done.stdout[-2000:]
    return results


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The reference: every job one after another in the bench-run process."""
    results = run_sweep(("hydra/launcher=basic",), tmp_path_factory.mktemp("basic"))
    assert launcher_used(results) == "BasicLauncher"
    runs = sweep_results(results)
    assert len(runs) == RUNS
    assert {r["status"] for r in runs.values()} == {"ok"}
    return runs


def assert_same_runs(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    assert set(got) == set(want)  # the same run ids: nothing lost, nothing extra
    for stem, run in want.items():
        assert got[stem]["status"] == "ok", stem
        assert got[stem]["metrics"] == pytest.approx(run["metrics"], abs=1e-9, rel=0), stem
        pd.testing.assert_frame_equal(got[stem]["predictions"], run["predictions"], atol=1e-9)


def launcher_used(results: Path) -> str:
    """The launcher class the sweep ran with (so a silent fallback to another cannot pass)."""
    (multirun,) = (results / "logs").glob("*/multirun.yaml")
    return str(OmegaConf.load(multirun).hydra.launcher._target_).rpartition(".")[2]


def test_joblib_processes_give_the_sequential_results(
    sequential: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    results = run_sweep(("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), tmp_path)
    assert launcher_used(results) == "JoblibLauncher"
    assert_same_runs(sweep_results(results), sequential)


@pytest.mark.e2e
@pytest.mark.parametrize("launcher", ["local_processes", "submitit_local"])
def test_submitit_local_processes_give_the_sequential_results(
    sequential: dict[str, dict[str, Any]], tmp_path: Path, launcher: str
) -> None:
    results = run_sweep((f"hydra/launcher={launcher}",), tmp_path)
    assert launcher_used(results) == "LocalLauncher"  # submitit's local executor
    assert_same_runs(sweep_results(results), sequential)
    # submitit ran each job as its own process, with its own logs.
    assert len(list((results / "logs").glob("*/.submitit/*/*_result.pkl"))) == 2


@pytest.mark.e2e
def test_a_local_ray_cluster_gives_the_sequential_results(
    sequential: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    results = run_sweep(
        ("hydra/launcher=ray_local", "hydra.launcher.ray.init.num_cpus=2"), tmp_path, timeout=420
    )
    assert launcher_used(results) == "RayLauncher"
    assert_same_runs(sweep_results(results), sequential)


# -- refused before anything runs -----------------------------------------------------------
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def no_sbatch() -> dict[str, str]:
    """An environment whose PATH holds the project's tools and the system's, but no sbatch."""
    path = f"{BENCH_RUN.parent}:/usr/bin:/bin"
    if any((Path(d) / "sbatch").exists() for d in path.split(":")):
        pytest.skip("sbatch is installed here")
    return {**os.environ, "PATH": path}


def test_a_misspelt_launcher_names_the_setting_and_the_closest(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = bench_run("hydra/launcher=jobli", *SWEEP, f"results_dir={results}", cwd=tmp_path)
    assert done.returncode == 2
    assert "hydra/launcher" in done.stderr
    assert "Did you mean 'joblib'?" in done.stderr
    for name in (*PRESETS, *PLUGINS, "basic"):
        assert name in done.stderr
    assert not results.exists()


def test_slurm_without_sbatch_is_refused_before_any_run(
    tmp_path: Path, no_sbatch: dict[str, str]
) -> None:
    results = tmp_path / "results"
    done = bench_run(
        "hydra/launcher=slurm", *SWEEP, f"results_dir={results}", cwd=tmp_path, env=no_sbatch
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "hydra/launcher=slurm" in done.stderr and "sbatch" in done.stderr
    assert "local_processes" in done.stderr  # what to do instead
    assert "Traceback" not in done.stderr
    assert not results.exists()


def test_an_unanswering_ray_address_is_refused_fast(tmp_path: Path) -> None:
    results = tmp_path / "results"
    address = f"ray://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    done = bench_run(
        "hydra/launcher=ray_cluster",
        f"hydra.launcher.ray.init.address={address}",
        *SWEEP,
        f"results_dir={results}",
        cwd=tmp_path,
        timeout=60,
    )
    assert time.monotonic() - started < 30  # no hang waiting for a cluster
    assert done.returncode == 2, done.stderr[-2000:]
    assert "hydra.launcher.ray.init.address" in done.stderr and address in done.stderr
    assert "Traceback" not in done.stderr
    assert not results.exists()


def test_a_fake_sbatch_on_path_passes_the_slurm_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for launcher in ("slurm", "submitit_slurm"):
        with pytest.raises(LauncherError, match="sbatch"):
            check_launcher([f"hydra/launcher={launcher}"])
    sbatch = bin_dir / "sbatch"
    sbatch.write_text("#!/bin/sh\necho 'Submitted batch job 1'\n")
    sbatch.chmod(0o755)
    for launcher in ("slurm", "submitit_slurm"):
        check_launcher([f"hydra/launcher={launcher}", "hydra.launcher.partition=cpu"])


def test_a_ray_address_from_the_environment_is_checked(
    monkeypatch: pytest.MonkeyPatch, listening_port: int
) -> None:
    port = closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(LauncherError, match=r"hydra\.launcher\.ray\.init\.address") as error:
        check_launcher(["hydra/launcher=ray_cluster"])
    assert f"127.0.0.1:{port}" in str(error.value)
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{listening_port}")
    check_launcher(["hydra/launcher=ray_cluster"])  # something answers: passes


def test_an_address_that_is_no_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(LauncherError, match=r"hydra\.launcher\.ray\.init\.address=ray://:"):
        check_launcher(["hydra/launcher=ray_cluster", "hydra.launcher.ray.init.address=ray://:"])


def test_local_launchers_and_unrelated_overrides_pass_the_check() -> None:
    for argv in (
        [],
        ["dataset=callcenter", "method=logreg,xgboost"],
        ["hydra/launcher=basic"],
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=4"],
        ["hydra/launcher=local_processes"],
        ["hydra/launcher=ray_local"],
        ["experiment=classical"],
    ):
        check_launcher(argv)


def test_every_preset_and_plugin_is_a_launcher_name() -> None:
    usable, missing = launcher_names()
    assert missing == []  # the cluster extra is installed for the tests
    assert set(usable) >= {*PRESETS, *PLUGINS, "basic"}
    with pytest.raises(UnknownNameError, match="Did you mean 'ray_local'"):
        check_launcher(["hydra/launcher=ray_locl"])


def test_ray_cluster_without_any_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(LauncherError, match=r"hydra\.launcher\.ray\.init\.address"):
        check_launcher(["hydra/launcher=ray_cluster"])


def test_a_sweep_over_experiments_passes_the_launcher_check(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = bench_run(
        "-m",
        "experiment=classical,quick",
        "hydra/launcher=basic",
        "dataset=callcenter",
        "method=majority",
        "seeds=[0]",
        "n_train=[16]",
        "report=false",
        f"results_dir={results}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Executed 2 new run(s) (2 ok)" in done.stdout

"""run_job with llm_icl on the embedded SmolLM2: the serializer recorded and part of the run id,
bad settings (unknown serializer, colliding verbalizer, a table too wide for the context)
reported with the setting's name, not raised."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from bench.config import compose_config, config_names
from bench.results import ResultsStore
from bench.runner import run_job, specs_for

Compose = Callable[..., DictConfig]

TEST_ROWS = 6
JOB = (
    "dataset=callcenter",
    "method=llm_icl",
    "seeds=[0]",
    f"split.max_test_rows={TEST_ROWS}",
    "llm=local_smollm2_135m",
)
BENCH_RUN = Path(sys.executable).with_name("bench-run")


def records(cfg: DictConfig) -> dict[int | str, dict[str, Any]]:
    """The job's run records by requested n_train."""
    return {r["n_train_requested"]: r for r in ResultsStore(cfg.results_dir).records()}


@pytest.fixture(scope="module")
def csv_job(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    """One llm_icl job with the csv serializer, zero-shot and four shots, run once."""
    work = tmp_path_factory.mktemp("icl_job")
    cfg = compose_config(
        [
            *JOB,
            "serializer=csv",
            "n_train=[0,4]",
            f"llm.cache_path={work / 'c.sqlite'}",
            f"results_dir={work / 'results'}",
        ]
    )
    assert dict(run_job(cfg).executed) == {"ok": 2}
    return cfg


def test_records_name_the_serializer_and_the_llm(csv_job: DictConfig) -> None:
    runs = records(csv_job)
    assert set(runs) == {0, 4}
    for n_train, record in runs.items():
        assert record["status"] == "ok", record["error"]
        assert record["serializer"] == "csv"
        assert record["llm"] == "local_smollm2_135m"
        serializer = record["spec"]["serializer"]
        assert (serializer["name"], serializer["format"]) == ("csv", "csv")
        assert record["n_test"] == TEST_ROWS
        assert record["details"]["shots"] == n_train
        assert record["details"]["verbalizer"] == {"no": "no", "yes": "yes"}
        assert record["usage"]["requests"] == TEST_ROWS


def run_id(compose_run: Compose, *overrides: str) -> str:
    cfg = compose_run("dataset=callcenter", "seeds=[0]", "n_train=[8]", *overrides)
    return specs_for(cfg)[0].run_id


def test_run_ids_follow_the_serializer_and_the_icl_parameters(compose_run: Compose) -> None:
    icl = ("method=llm_icl", "llm=local_smollm2_135m")
    by_serializer = {
        name: run_id(compose_run, *icl, f"serializer={name}") for name in config_names("serializer")
    }
    assert len(set(by_serializer.values())) == len(by_serializer)
    base = run_id(compose_run, *icl, "serializer=csv")
    for changed in (
        "method.params.max_shots=2",
        "method.params.selection=random",
        "method.params.queries_per_request=2",
        "method.params.verbalizer={no: nope,yes: yep}",
        "serializer.precision=2",
        "llm=local_gemma3_270m",
    ):
        assert run_id(compose_run, *icl, "serializer=csv", changed) != base, changed
    assert run_id(compose_run, *icl, "serializer=csv") == base  # and stable


def test_settings_added_later_keep_the_ids_of_stored_runs(compose_run: Compose) -> None:
    """serializer.numbers and method.params.explain_rows came after runs were stored: at their
    defaults a run keeps the id it had before them (as computed by commit 0bbbf61)."""
    cfg = compose_config(["method=llm_icl", "dataset=callcenter", "n_train=[64]", "seeds=[0]"])
    assert specs_for(cfg)[0].run_id == "ed394b81324cd8a2"
    icl = ("method=llm_icl", "llm=local_smollm2_135m", "serializer=list")
    base = run_id(compose_run, *icl)
    assert run_id(compose_run, *icl, "serializer.numbers=raw") == base
    assert run_id(compose_run, *icl, "method.params.explain_rows=0") == base
    assert run_id(compose_run, *icl, "serializer.numbers=binned") != base
    assert run_id(compose_run, *icl, "method.params.explain_rows=4") != base


@pytest.mark.parametrize("method", ["logreg", "majority", "xgboost"])
def test_classical_run_ids_ignore_the_serializer_and_the_llm(
    compose_run: Compose, method: str
) -> None:
    ids = {
        run_id(compose_run, f"method={method}", f"serializer={serializer}", f"llm={llm}")
        for serializer in ("csv", "json", "list_values_only")
        for llm in ("local_smollm2_135m", "local_gemma3_270m")
    }
    assert len(ids) == 1
    spec = specs_for(compose_run(f"method={method}", "serializer=csv"))[0]
    assert spec.serializer is None and spec.llm is None
    assert "serializer" not in spec.determinants


@pytest.mark.e2e
def test_an_unknown_serializer_on_the_command_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BENCH_RUN), "serializer=jsn", "method=llm_icl", f"results_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    for name in config_names("serializer"):
        assert name in done.stderr
    assert "Did you mean 'json'" in done.stderr
    assert "serializer" in done.stderr
    assert not any(tmp_path.iterdir())  # nothing ran


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.params.verbalizer={no: maybe,yes: maybe}", r"method\.params\.verbalizer"),
        ("method.params.verbalizer={no: nope,perhaps: maybe}", r"method\.params\.verbalizer"),
        ("method.params.selection=nearest", r"method\.params\.selection"),
        ("serializer.format=jsn", r"serializer\.format"),
    ],
)
def test_a_bad_icl_setting_records_a_failed_run_naming_it(
    compose_run: Compose, tmp_path: Path, override: str, message: str
) -> None:
    cfg = compose_run(*JOB, "n_train=[4]", override, f"llm.cache_path={tmp_path / 'c.sqlite'}")
    assert dict(run_job(cfg).executed) == {"failed": 1}
    record = records(cfg)[4]
    assert record["status"] == "failed"
    assert re.search(message, record["error"]), record["error"]
    assert record["usage"]["requests"] == 0  # refused before asking the model anything


def test_a_table_too_wide_for_the_context_is_skipped_with_its_token_count(
    compose_run: Compose, tmp_path: Path
) -> None:
    cfg = compose_run(
        *JOB,
        "n_train=[64]",
        "serializer=list",
        "llm.n_ctx=128",
        f"llm.cache_path={tmp_path / 'c.sqlite'}",
    )
    assert dict(run_job(cfg).executed) == {"skipped": 1}
    record = records(cfg)[64]
    found = re.search(
        r"prompt of (\d+) tokens exceeds the context window of 128 tokens", record["error"]
    )
    assert found, record["error"]
    assert int(found.group(1)) > 64 * 10  # 64 shots of 7 columns each
    assert record["serializer"] == "list" and record["llm"] == "local_smollm2_135m"
    assert record["usage"]["requests"] == 0


def test_yes_no_keys_of_a_verbalizer_in_yaml_must_be_quoted(
    compose_run: Compose, user_conf_dir: Path, tmp_path: Path
) -> None:
    """YAML reads unquoted `yes`/`no` keys as booleans: the run fails naming the setting and the
    classes; quoted keys are the class names."""
    for name, words in (("plain", "{no: nope, yes: yep}"), ("quoted", '{"no": nope, "yes": yep}')):
        (user_conf_dir / "method" / f"llm_icl_{name}.yaml").write_text(
            f"defaults:\n  - llm_icl\n  - _self_\nname: llm_icl_{name}\n"
            f"params:\n  verbalizer: {words}\n"
        )
    quoted = compose_run("method=llm_icl_quoted", conf_dir=user_conf_dir)
    assert dict(quoted.method.params.verbalizer) == {"no": "nope", "yes": "yep"}
    cfg = compose_run(
        *(o for o in JOB if not o.startswith("method=")),
        "method=llm_icl_plain",
        "n_train=[4]",
        f"llm.cache_path={tmp_path / 'c.sqlite'}",
        conf_dir=user_conf_dir,
    )
    assert dict(run_job(cfg).executed) == {"failed": 1}
    error = records(cfg)[4]["error"]
    assert "method.params.verbalizer" in error and "no, yes" in error

"""The run record as a type: built by its constructors, stored in the layout the store has always
written, read back (and older layouts upgraded) by one reader."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import DictConfig

from bench import record as records
from bench.job import run_job
from bench.record import (
    RECORD_VERSION,
    NotARunRecord,
    RowsSeen,
    RunRecord,
    RunUsage,
    Timing,
    read_record,
)
from bench.results import ResultsStore, load_results
from bench.spec import specs_for

Compose = Callable[..., DictConfig]
FIXTURE = Path(__file__).parent / "fixtures" / "store_6a90002"
TEST_ROWS = "split.max_test_rows=40"  # the fixture's split
# Usage fields added after the fixture store was written (issue 27: the wall time of concurrent
# requests, every request sent); `read_record` fills them.
ADDED_USAGE = {
    "requests_sent",
    "llm_wall_seconds",
    "cached_llm_wall_seconds",
    "fit_llm_wall_seconds",
    "fit_cached_llm_wall_seconds",
}


def without_added(usage: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in usage.items() if k not in ADDED_USAGE}


def stored(stem_start: str) -> dict[str, Any]:
    """A record of the fixture store (written by an earlier main), by the start of its stem."""
    (path,) = (FIXTURE / "runs").glob(f"{stem_start}__*.json")
    return json.loads(path.read_text())


@pytest.fixture
def spec(compose_run: Compose) -> Any:
    return specs_for(
        compose_run("dataset=callcenter", "method=logreg", "seeds=[0]", "n_train=[16]")
    )[0]


def test_every_stored_layout_is_written_back_key_for_key() -> None:
    """ok, skipped, failed and unavailable records of the old store: the same keys in the same
    order and the same values, plus `version` (and the usage fields added since)."""
    for path in sorted((FIXTURE / "runs").glob("*.json")):
        old = json.loads(path.read_text())
        new = read_record(old, FIXTURE).to_dict()
        assert list(new) == [*old, "version"], path.name
        new["usage"] = without_added(new["usage"])
        assert {k: new[k] for k in old} == old, path.name
        assert new["version"] == RECORD_VERSION


def test_the_runner_writes_the_records_an_earlier_main_wrote(
    compose_run: Compose, tmp_path: Path
) -> None:
    """The same sweep today: the same run ids, rows, metrics and record layout."""
    cfg = compose_run(
        "dataset=callcenter", "method=logreg", "seeds=[0]", "n_train=[0,16]", TEST_ROWS
    )
    assert dict(run_job(cfg).executed) == {"ok": 1, "skipped": 1}
    new = {r["n_train"]: r for r in ResultsStore(cfg.results_dir).records()}
    for n_train in (0, 16):
        old = stored(f"callcenter__logreg__n{n_train}__s0")
        assert new[n_train]["run_stem"] == old["run_stem"]
        assert list(new[n_train]) == [*old, "version"]
        same = ("test_rows_hash", "train_rows_hash", "n_test", "error", "class_labels", "tags")
        assert {k: new[n_train][k] for k in same} == {k: old[k] for k in same}
    assert new[16]["metrics"] == old["metrics"]
    assert set(new[16]["timing"]) == set(old["timing"])
    assert (
        set(new[16]["usage"]) == set(stored("callcenter__logreg__n16__s0")["usage"]) | ADDED_USAGE
    )


def test_constructors_set_the_status_and_count_attempts(spec: Any) -> None:
    marker = records.running(spec, None)
    assert marker.status == "running" and marker.provenance.attempts == 1
    assert marker.provenance.host and marker.provenance.pid and marker.provenance.started_at
    assert marker.rows.n_train == 16 and not marker.rows.drawn
    failed = records.failed(spec, marker, "RuntimeError: boom", traceback="Traceback ...")
    assert (failed.status, failed.provenance.attempts, failed.error) == (
        "failed",
        2,
        "RuntimeError: boom",
    )
    unavailable = records.failed(spec, None, "no weights", status="unavailable")
    assert unavailable.status == "unavailable" and not unavailable.done
    skipped = records.skipped(spec, None, "n_train=16 exceeds the training pool")
    assert skipped.done and skipped.error.startswith("n_train=16")
    with pytest.raises(ValueError, match="failed or unavailable"):
        records.failed(spec, None, "x", status="ok")
    assert failed.identity.run_id == spec.run_id and failed.stem == spec.stem


def test_an_interrupted_marker_is_a_failed_run_that_says_when_it_started(spec: Any) -> None:
    marker = records.running(spec, None)
    died = records.interrupted(marker, "interrupted (KeyboardInterrupt)")
    assert died.status == "failed" and died.error == "interrupted (KeyboardInterrupt)"
    assert died.provenance.started_at == marker.provenance.started_at
    assert died.provenance.host == marker.provenance.host


def ok_record(spec: Any, **changes: Any) -> RunRecord:
    return records.ok(
        spec,
        None,
        data_fingerprint="f",
        tags={"zero_shot": False},
        rows=RowsSeen(16, 40, ["no", "yes"], "yes", "t", "r"),
        metrics={"accuracy": 0.5, "roc_auc": 0.6},
        timing=Timing(fit_s=1.0, predict_s=0.5, cpu_s=1.2, fit_cpu_s=1.0, predict_cpu_s=0.2),
        usage=RunUsage({**records.ZERO_USAGE, "requests": 3}, {"requests": 1.0}),
        details={"shots": 16},
        **changes,
    )


@pytest.mark.parametrize("kind", ["ok", "running", "skipped", "failed"])
def test_a_record_reads_back_as_itself(spec: Any, kind: str) -> None:
    made = {
        "ok": lambda: ok_record(spec),
        "running": lambda: records.running(spec, None),
        "skipped": lambda: records.skipped(
            spec, None, "why", rows=RowsSeen(0, 40, ["a"], None, "t")
        ),
        "failed": lambda: records.failed(
            spec, None, "E: x", traceback="tb", timing=Timing(wall_s=1)
        ),
    }[kind]()
    again = read_record(json.loads(json.dumps(made.to_dict())))
    assert again == made


def test_the_store_writes_artifact_files_and_lists_them(spec: Any, tmp_path: Path) -> None:
    """Artifacts are an explicit field of the record, not a side channel in the dict."""
    made = ok_record(spec, files={"model.py": "print(1)\n"})
    store = ResultsStore(tmp_path)
    store.save(made, pd.DataFrame({"row": [1], "y_true": ["no"]}))
    data = json.loads(store.record_path(spec.stem).read_text())
    assert data["artifacts"] == [f"artifacts/{spec.stem}/model.py"]
    assert (tmp_path / data["artifacts"][0]).read_text() == "print(1)\n"
    assert data["predictions_file"] == f"predictions/{spec.stem}.parquet"
    assert "files" not in data and "_artifacts" not in data
    again = store.read(spec.stem)
    assert again is not None and again.artifacts == tuple(data["artifacts"]) and not again.files


def test_an_older_layout_is_upgraded_in_one_place(tmp_path: Path) -> None:
    """A record from before the fit/predict split, without n_test and with a field this version
    does not know: the reader fills what the report needs, and loses nothing."""
    old = stored("callcenter__logreg__n16__s0")
    old["timing"] = {k: old["timing"][k] for k in ("fit_s", "predict_s", "cpu_s", "wall_s")}
    old["usage"] = {"requests": 3, "usd": 0.5}
    old["family"] = "llm_codegen"  # its LLM calls happen during fit
    for key in ("n_test", "class_labels", "positive_label"):
        del old[key]
    old["someones_field"] = [1, 2]
    shutil.copytree(FIXTURE / "predictions", tmp_path / "predictions")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / f"{old['run_stem']}.json").write_text(json.dumps(old))

    (run,) = ResultsStore(tmp_path).runs()
    assert run.timing.fit_cpu_s == old["timing"]["fit_s"]  # a phase's CPU is its wall time
    assert run.timing.predict_cpu_s == old["timing"]["predict_s"]
    assert run.usage.fit == {"requests": 3.0, "usd": 0.5} | {
        k: 0.0 for k in ("cache_hits", "llm_seconds", "cached_llm_seconds", "cached_usd")
    } | {"costed_cache_hits": 0.0, "llm_wall_seconds": 0.0, "cached_llm_wall_seconds": 0.0}
    assert run.usage.totals["prompt_tokens"] == 0  # usage fields it lacks are zero
    assert run.rows.n_test == 40  # the rows of its predictions file
    assert run.extra == {"someones_field": [1, 2]}
    row = load_results(tmp_path).iloc[0]
    assert (row["fit_requests"], row["fit_usd"], row["n_test"]) == (3.0, 0.5, 40)
    assert row["someones_field"] == [1, 2]


def test_an_old_llm_icl_record_spent_its_usage_predicting() -> None:
    old = stored("callcenter__llm_icl__n16__s0")
    old["usage"] = {k: v for k, v in old["usage"].items() if not k.startswith("fit_")}
    run = read_record(old)
    assert run.usage.fit is not None and set(run.usage.fit.values()) == {0.0}
    assert run.usage.totals["requests"] == 40


def test_a_record_is_read_by_its_attributes_only(spec: Any) -> None:
    """No dict shim: code reads `record.status`, and the stored layout is `to_dict()`."""
    made = ok_record(spec)
    assert made.status == "ok" and made.metrics["accuracy"] == 0.5
    assert made.traceback is None and made.usage.as_dict()["fit_requests"] == 1.0
    assert made.to_dict()["usage"]["fit_requests"] == 1.0
    with pytest.raises(TypeError):
        made["status"]  # type: ignore[index]
    assert not hasattr(made, "get")


def test_a_foreign_file_is_not_a_run_record() -> None:
    with pytest.raises(NotARunRecord, match=r"no run_stem, dataset, method"):
        read_record({"status": "ok"})
    with pytest.raises(NotARunRecord, match=r"a JSON list"):
        read_record([1, 2])  # type: ignore[arg-type]
    with pytest.raises(NotARunRecord, match=r"status 'great'"):
        read_record({"status": "great", "run_stem": "s", "dataset": "d", "method": "m"})

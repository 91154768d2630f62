"""The results store: atomic files, finished runs never lost, one tidy table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.results import LEADING_COLUMNS, ResultsStore, load_results, write_atomic


def make_record(stem: str, status: str = "ok", **fields: object) -> dict:
    dataset, method, n, seed, _ = stem.split("__")
    record = {
        "experiment": "unit",
        "dataset": dataset,
        "method": method,
        "family": "classical",
        "serializer": None,
        "llm": None,
        "n_train": int(n.removeprefix("n")),
        "seed": int(seed.removeprefix("s")),
        "status": status,
        "error": None if status in ("ok", "skipped") else "RuntimeError: boom",
        "metrics": {"accuracy": 0.75, "roc_auc": 0.8} if status == "ok" else {},
        "timing": {"fit_s": 0.1, "predict_s": 0.01, "wall_s": 0.2},
        "usage": {"requests": 0, "usd": 0.0},
        "run_stem": stem,
        "spec": {"method": {"params": {}}},
    }
    record.update(fields)
    return record


def leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


def test_write_atomic_writes_and_replaces_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "run.json"
    write_atomic(target, b'{"a": 1}')
    assert target.read_bytes() == b'{"a": 1}'
    write_atomic(target, b'{"a": 2}')
    assert target.read_bytes() == b'{"a": 2}'
    assert leftovers(tmp_path) == []
    assert [p.name for p in target.parent.iterdir()] == ["run.json"]


def test_write_atomic_failure_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_atomic(target, b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_save_writes_record_and_predictions(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    stem = "toy__logreg__n16__s0__abc"
    predictions = pd.DataFrame({"row": [3, 8], "y_true": ["a", "b"], "proba_a": [0.9, 0.2]})
    # numpy scalars, as metrics and counters often are, must serialise.
    record = make_record(stem, metrics={"accuracy": np.float64(0.5)}, n_test=np.int64(2))
    path = store.save(record, predictions)

    assert path == store.record_path(stem)
    stored = json.loads(path.read_text())
    assert stored["metrics"]["accuracy"] == 0.5
    assert stored["predictions_file"] == f"predictions/{stem}.parquet"
    pd.testing.assert_frame_equal(store.predictions(stored), predictions)
    assert store.load(stem) == stored
    assert leftovers(tmp_path) == []


def test_a_failed_retry_never_replaces_a_finished_run(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    stem = "toy__logreg__n16__s0__abc"
    store.save(make_record(stem, "ok"))
    where = store.save(make_record(stem, "failed"))

    assert where == tmp_path / "failures" / f"{stem}.json"
    assert store.load(stem)["status"] == "ok"
    assert json.loads(where.read_text())["status"] == "failed"
    assert len(store.records()) == 1


@pytest.mark.parametrize("finished", ["ok", "skipped"])
def test_unavailable_never_replaces_a_finished_run(tmp_path: Path, finished: str) -> None:
    store = ResultsStore(tmp_path)
    stem = "toy__tabpfn__n16__s0__abc"
    store.save(make_record(stem, finished))
    store.save(make_record(stem, "unavailable"))
    assert store.load(stem)["status"] == finished


def test_a_successful_retry_replaces_a_failed_run(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    stem = "toy__logreg__n16__s0__abc"
    store.save(make_record(stem, "failed"))
    store.save(make_record(stem, "failed", error="RuntimeError: again"))
    assert store.load(stem)["error"] == "RuntimeError: again"  # failures may replace failures
    store.save(make_record(stem, "ok"))
    assert store.load(stem)["status"] == "ok"
    assert not (tmp_path / "failures").exists()


@pytest.mark.parametrize("runs_folder", [True, False])
def test_load_results_of_no_runs_has_the_fixed_columns(tmp_path: Path, runs_folder: bool) -> None:
    path = tmp_path / "results"
    path.mkdir()
    if runs_folder:
        (path / "runs").mkdir()
    frame = load_results(path)
    assert frame.empty
    assert list(frame.columns[: len(LEADING_COLUMNS)]) == LEADING_COLUMNS
    assert {"accuracy", "roc_auc", "fit_s", "usd"} <= set(frame.columns)


def test_load_results_flattens_records_in_a_fixed_order(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    stems = [
        "toy__xgboost__n64__s1__aaa",
        "toy__logreg__n64__s0__bbb",
        "toy__logreg__n16__s1__ccc",
        "toy__logreg__n16__s0__ddd",
    ]
    for stem in stems:
        store.save(make_record(stem, custom_field=stem))
    frame = load_results(tmp_path)

    assert list(frame.columns[: len(LEADING_COLUMNS)]) == LEADING_COLUMNS
    assert frame["accuracy"].tolist() == [0.75] * 4  # metrics became columns
    assert "metrics" not in frame.columns and "spec" not in frame.columns
    assert "custom_field" in frame.columns  # nothing else is lost
    keys = list(zip(frame["method"], frame["n_train"], frame["seed"], strict=True))
    assert keys == sorted(keys)


def test_unreadable_records_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ResultsStore(tmp_path)
    store.save(make_record("toy__logreg__n16__s0__good"))
    broken = store.record_path("toy__logreg__n16__s1__bad")
    broken.write_text('{"status": "ok", "metrics": {')  # a truncated file

    with caplog.at_level(logging.WARNING, logger="bench.results"):
        frame = load_results(tmp_path)
    assert frame["run_stem"].tolist() == ["toy__logreg__n16__s0__good"]
    assert any(str(broken) in message for message in caplog.messages)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bench.results"):
        assert store.load("toy__logreg__n16__s1__bad") is None  # so the run is simply redone
    assert any(str(broken) in message for message in caplog.messages)


def test_load_results_is_the_public_python_entry_point() -> None:
    import bench

    assert bench.load_results is load_results

"""run_job on real configs and data: records, resume, identical rows, failures kept apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig
from sklearn.base import BaseEstimator, ClassifierMixin

from bench.data.dataset import Task
from bench.data.splits import make_split
from bench.methods.base import MethodContext, MethodReport
from bench.methods.classical import MAX_FOLDS
from bench.results import METRIC_COLUMNS, ResultsStore
from bench.runner import run_job, specs_for

Compose = Callable[..., DictConfig]


class RowRecorder(ClassifierMixin, BaseEstimator):
    """Predicts the training priors and writes down which rows and columns it was shown.

    `fail_flag`: while that file exists, fits on fewer than 32 rows raise, as a transient
    error (a lost connection, say) would.
    """

    def __init__(
        self, log_dir: str = "", name: str = "", seed: int = 0, fail_flag: str | None = None
    ) -> None:
        self.log_dir = log_dir
        self.name = name
        self.seed = seed
        self.fail_flag = fail_flag

    def fit(self, X: pd.DataFrame, y: pd.Series) -> RowRecorder:
        if self.fail_flag and Path(self.fail_flag).exists() and len(X) < 32:
            raise RuntimeError(f"transient failure on {len(X)} rows")
        self.classes_, counts = np.unique(np.asarray(y), return_counts=True)
        self.priors_ = counts / counts.sum()
        self.n_fit_ = len(X)
        self._log("fit", X)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        self._log("predict", X)
        # What an LLM method reports: one request per row, a token per feature value.
        self.usage_ = {"requests": len(X), "prompt_tokens": X.size}
        return np.tile(self.priors_, (len(X), 1))

    def run_report(self) -> MethodReport:
        return MethodReport(details={"n_fit": self.n_fit_}, usage=self.usage_)

    def _log(self, stage: str, X: pd.DataFrame) -> None:
        # The runner keeps the task's row positions as the index of the frames it passes.
        entry = {"rows": X.index.tolist(), "columns": list(X.columns)}
        path = Path(self.log_dir) / f"{self.name}_s{self.seed}_n{self.n_fit_}_{stage}.json"
        path.write_text(json.dumps(entry))


def build_row_recorder(cfg: DictConfig, context: MethodContext) -> RowRecorder:
    """A METHODS factory, referred to from a config as "module:attr"."""
    return RowRecorder(
        log_dir=cfg.params.log_dir,
        name=cfg.name,
        seed=context.seed,
        fail_flag=cfg.params.get("fail_flag"),
    )


def recorder_overrides(name: str, log_dir: Path, *extra: str) -> list[str]:
    log_dir.mkdir(parents=True, exist_ok=True)
    return [
        "method=majority",
        f"method.kind='{__name__}:build_row_recorder'",
        f"method.name={name}",
        f"+method.params.log_dir={log_dir}",
        *extra,
    ]


def read_log(log_dir: Path, name: str, seed: int, n: int, stage: str) -> dict[str, Any]:
    return json.loads((log_dir / f"{name}_s{seed}_n{n}_{stage}.json").read_text())


def records(cfg: DictConfig) -> list[dict[str, Any]]:
    return ResultsStore(cfg.results_dir).records()


def by_key(cfg: DictConfig) -> dict[tuple[str, int, int | str], dict[str, Any]]:
    return {(r["method"], r["seed"], r["n_train_requested"]): r for r in records(cfg)}


def test_run_job_writes_a_complete_record_per_run(
    compose_run: Compose, callcenter_task: Task
) -> None:
    cfg = compose_run("dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[16,64]")
    summary = run_job(cfg)
    assert dict(summary.executed) == {"ok": 2}
    assert summary.already_done == 0

    found = records(cfg)
    assert sorted(r["n_train"] for r in found) == [16, 64]
    store = ResultsStore(cfg.results_dir)
    for record in found:
        assert record["status"] == "ok"
        assert record["error"] is None
        assert (record["dataset"], record["method"], record["family"]) == (
            "callcenter",
            "majority",
            "classical",
        )
        assert record["seed"] == 0
        assert set(record["metrics"]) == set(METRIC_COLUMNS)
        assert {"fit_s", "predict_s", "wall_s"} <= set(record["timing"])
        assert record["usage"]["requests"] == 0 and record["usage"]["usd"] == 0
        assert record["data_fingerprint"] == callcenter_task.fingerprint
        assert record["attempts"] == 1
        assert record["run_stem"].startswith(f"callcenter__majority__n{record['n_train']}__s0__")
        predictions = store.predictions(record)
        assert len(predictions) == record["n_test"]
        assert {"row", "y_true", "y_pred", "proba_no", "proba_yes"} <= set(predictions.columns)


def test_majority_accuracy_is_the_test_majority_rate(compose_run: Compose) -> None:
    cfg = compose_run("dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[16,64]")
    run_job(cfg)
    store = ResultsStore(cfg.results_dir)
    for record in records(cfg):
        predictions = store.predictions(record)
        majority_rate = predictions["y_true"].value_counts(normalize=True).max()
        assert record["metrics"]["accuracy"] == pytest.approx(majority_rate)
        assert predictions["y_pred"].nunique() == 1
        assert predictions["y_pred"].iloc[0] == predictions["y_true"].mode().iloc[0]
        assert record["metrics"]["roc_auc"] == pytest.approx(0.5)
        assert record["metrics"]["balanced_accuracy"] == pytest.approx(0.5)


def test_a_second_run_executes_nothing_new(compose_run: Compose) -> None:
    cfg = compose_run("dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[16,64]")
    run_job(cfg)
    before = {p.name: p.read_bytes() for p in Path(cfg.results_dir, "runs").iterdir()}
    again = run_job(cfg)
    assert sum(again.executed.values()) == 0
    assert again.already_done == 2
    assert {p.name: p.read_bytes() for p in Path(cfg.results_dir, "runs").iterdir()} == before


def test_every_method_sees_identical_test_rows_and_nested_train_rows(
    compose_run: Compose, tmp_path: Path, callcenter_task: Task
) -> None:
    grid = ("dataset=callcenter", "seeds=[0,1]", "n_train=[16,64]")
    logs = tmp_path / "logs"
    for method in ("majority", "logreg"):
        run_job(compose_run(*grid, f"method={method}"))
    for name in ("recorder_a", "recorder_b"):
        summary = run_job(compose_run(*grid, *recorder_overrides(name, logs)))
        assert dict(summary.executed) == {"ok": 4}

    cfg = compose_run(*grid, "method=majority")
    store = ResultsStore(cfg.results_dir)
    runs = by_key(cfg)
    features = [f.name for f in callcenter_task.features]
    for seed in (0, 1):
        for n in (16, 64):
            tested = {
                m: store.predictions(runs[(m, seed, n)])
                for m in ("majority", "logreg", "recorder_a")
            }
            pd.testing.assert_frame_equal(
                tested["majority"][["row", "y_true"]], tested["logreg"][["row", "y_true"]]
            )
            predicted_on = read_log(logs, "recorder_a", seed, n, "predict")
            assert predicted_on["rows"] == tested["majority"]["row"].tolist()
            # The method sees the features only: no target, no identifier, no leak column.
            assert predicted_on["columns"] == features

            trained = [
                read_log(logs, m, seed, n, "fit")["rows"] for m in ("recorder_a", "recorder_b")
            ]
            assert trained[0] == trained[1]
            assert not set(trained[0]) & set(predicted_on["rows"])
        small = read_log(logs, "recorder_a", seed, 16, "fit")["rows"]
        large = read_log(logs, "recorder_a", seed, 64, "fit")["rows"]
        assert large[:16] == small
    assert read_log(logs, "recorder_a", 0, 64, "fit") != read_log(logs, "recorder_a", 1, 64, "fit")


def test_a_failing_run_is_recorded_and_the_others_go_on_then_retried(
    compose_run: Compose, tmp_path: Path
) -> None:
    flag = tmp_path / "network_down"
    flag.touch()
    overrides = recorder_overrides(
        "flaky",
        tmp_path / "logs",
        f"+method.params.fail_flag={flag}",
        "seeds=[0]",
        "n_train=[16,64]",
    )
    cfg = compose_run("dataset=callcenter", *overrides)
    first = run_job(cfg)
    assert dict(first.executed) == {"failed": 1, "ok": 1}
    failed = by_key(cfg)[("flaky", 0, 16)]
    assert failed["status"] == "failed"
    assert failed["error"] == "RuntimeError: transient failure on 16 rows"
    assert "RuntimeError" in failed["traceback"]
    assert "predictions_file" not in failed
    assert by_key(cfg)[("flaky", 0, 64)]["status"] == "ok"

    flag.unlink()  # the problem went away: a rerun retries only the failed run
    second = run_job(cfg)
    assert dict(second.executed) == {"ok": 1}
    assert second.already_done == 1
    retried = by_key(cfg)[("flaky", 0, 16)]
    assert retried["status"] == "ok"
    assert retried["error"] is None
    assert retried["attempts"] == 2


def test_invalid_method_parameter_fails_each_run_with_its_error(compose_run: Compose) -> None:
    cfg = compose_run(
        "dataset=callcenter",
        "method=random_forest",
        "method.params.n_estimators=-5",
        "seeds=[0]",
        "n_train=[16,64]",
    )
    summary = run_job(cfg)
    assert dict(summary.executed) == {"failed": 2}
    for record in records(cfg):
        assert record["status"] == "failed"
        assert "n_estimators" in record["error"]
        assert record["metrics"] == {}
    assert not Path(cfg.results_dir, "predictions").exists()
    assert dict(run_job(cfg).executed) == {"failed": 2}  # failures are retried, not reused


def test_impossible_training_sizes_are_skipped_with_the_reason(
    compose_run: Compose, callcenter_task: Task
) -> None:
    cfg = compose_run(
        "dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[0,100000,all]"
    )
    summary = run_job(cfg)
    assert dict(summary.executed) == {"skipped": 2, "ok": 1}
    runs = by_key(cfg)
    too_many = runs[("majority", 0, 100000)]
    assert too_many["status"] == "skipped"
    assert "exceeds the training pool" in too_many["error"]
    assert runs[("majority", 0, 0)]["status"] == "skipped"
    assert "needs training rows" in runs[("majority", 0, 0)]["error"]
    whole = runs[("majority", 0, "all")]
    assert whole["status"] == "ok"
    assert whole["n_train"] == len(callcenter_task.y) - whole["n_test"]
    # Skipped runs are finished: a rerun does not redo them.
    assert run_job(cfg).already_done == 3


def test_too_few_rows_of_a_class_is_skipped(compose_run: Compose) -> None:
    cfg = compose_run(
        "dataset=mlc_churn", "method=majority", "seeds=[0]", "n_train=[16]", "split.min_per_class=5"
    )
    assert dict(run_job(cfg).executed) == {"skipped": 1}
    assert "split.min_per_class" in records(cfg)[0]["error"]


def test_unloadable_dataset_records_failed_runs_naming_the_path(
    compose_run: Compose, user_conf_dir: Path, tmp_path: Path, small_csv: Path
) -> None:
    path = tmp_path / "incoming" / "customers.csv"
    (user_conf_dir / "dataset" / "customers.yaml").write_text(
        f"name: customers\nsource: csv\nparams: {{path: '{path}'}}\ntarget: churned\n"
        "drop_columns: [customer_id]\n"
    )
    cfg = compose_run(
        "dataset=customers",
        "method=majority",
        "seeds=[0,1]",
        "n_train=[16]",
        conf_dir=user_conf_dir,
    )
    summary = run_job(cfg)
    assert dict(summary.executed) == {"failed": 2}
    for record in records(cfg):
        assert record["status"] == "failed"
        assert str(path) in record["error"]
        assert "dataset.params.path" in record["error"]

    path.parent.mkdir()
    path.write_bytes(small_csv.read_bytes())  # the file arrives: the runs are retried
    assert dict(run_job(cfg).executed) == {"ok": 2}
    assert {r["status"] for r in records(cfg)} == {"ok"}


def test_changed_data_reruns_finished_runs(
    compose_run: Compose, user_conf_dir: Path, small_csv: Path
) -> None:
    (user_conf_dir / "dataset" / "customers.yaml").write_text(
        f"name: customers\nsource: csv\nparams: {{path: '{small_csv}'}}\ntarget: churned\n"
        "drop_columns: [customer_id]\n"
    )
    cfg = compose_run(
        "dataset=customers", "method=majority", "seeds=[0]", "n_train=[16]", conf_dir=user_conf_dir
    )
    assert dict(run_job(cfg).executed) == {"ok": 1}
    assert sum(run_job(cfg).executed.values()) == 0
    first = records(cfg)[0]["data_fingerprint"]

    frame = pd.read_csv(small_csv)
    frame.loc[0, "age"] += 1
    frame.to_csv(small_csv, index=False)
    assert dict(run_job(cfg).executed) == {"ok": 1}
    assert records(cfg)[0]["data_fingerprint"] != first


def test_run_ids_follow_everything_that_determines_a_result(compose_run: Compose) -> None:
    base = ("dataset=callcenter", "method=logreg", "seeds=[0]", "n_train=[16]")
    stem = specs_for(compose_run(*base))[0].stem
    assert specs_for(compose_run(*base))[0].stem == stem  # stable
    for change in ("method.params.C=0.5", "split.test_size=0.25", "dataset.params.noise=0.2"):
        assert specs_for(compose_run(*base, change))[0].stem != stem, change
    # The experiment name labels a run but does not change its result.
    assert specs_for(compose_run(*base, "experiment_name=other"))[0].stem == stem


def test_changing_a_determinant_executes_new_runs(compose_run: Compose) -> None:
    grid = ("dataset=callcenter", "method=majority", "seeds=[0]", "n_train=[16]")
    cfg = compose_run(*grid)
    run_job(cfg)
    changed = run_job(compose_run(*grid, "split.test_size=0.1"))
    assert dict(changed.executed) == {"ok": 1}
    rows, cap = cfg.dataset.params.rows, cfg.split.max_test_rows
    expected = sorted(min(round(share * rows), cap) for share in (0.1, cfg.split.test_size))
    assert sorted(r["n_test"] for r in records(cfg)) == expected


def test_method_usage_and_fit_info_reach_the_record(compose_run: Compose, tmp_path: Path) -> None:
    cfg = compose_run(
        "dataset=callcenter",
        *recorder_overrides("counter", tmp_path / "logs"),
        "seeds=[0]",
        "n_train=[16]",
    )
    run_job(cfg)
    (record,) = records(cfg)
    n_features = len(cfg.dataset.features)
    assert record["usage"]["requests"] == record["n_test"]
    assert record["usage"]["prompt_tokens"] == record["n_test"] * n_features
    assert record["usage"]["usd"] == 0  # fields a method does not report keep their zero
    assert record["details"] == {"n_fit": 16}


def test_tuned_method_records_its_cv_folds(compose_run: Compose, callcenter_task: Task) -> None:
    cfg = compose_run("dataset=callcenter", "method=logreg_tuned", "seeds=[0]", "n_train=[16]")
    run_job(cfg)
    (record,) = records(cfg)
    split = make_split(callcenter_task.y, "callcenter", 0)
    rows = split.subset(16, callcenter_task.y).rows
    rarest = callcenter_task.y.iloc[rows].value_counts().min()
    assert record["details"]["cv_folds"] == min(MAX_FOLDS, rarest)
    assert set(record["details"]["best_params"]) == set(cfg.method.search)


def test_a_dataset_that_cannot_be_split_records_failed_runs(
    compose_run: Compose, user_conf_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "rare.csv"
    labels = ["common"] * 30 + ["uncommon"] * 9 + ["unique"]
    pd.DataFrame({"x": range(len(labels)), "label": labels}).to_csv(path, index=False)
    (user_conf_dir / "dataset" / "rare.yaml").write_text(
        f"name: rare\nsource: csv\nparams: {{path: '{path}'}}\ntarget: label\n"
    )
    cfg = compose_run(
        "dataset=rare", "method=majority", "seeds=[0]", "n_train=[16]", conf_dir=user_conf_dir
    )
    summary = run_job(cfg)
    assert dict(summary.executed) == {"failed": 1}
    assert "unique" in records(cfg)[0]["error"]

"""Metrics from class probabilities, checked against scikit-learn and their definitions."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from bench.cli import report_main
from bench.config import compose_config
from bench.metrics import (
    METRICS,
    Metric,
    compute_metrics,
    expected_calibration_error,
    get_metric,
    higher_is_better,
    metric_label,
)
from bench.registry import UnknownNameError
from bench.report import write_report
from bench.results import METRIC_COLUMNS, ResultsStore, load_results
from bench.runner import run_job

NEW_METRICS = ("precision", "recall", "average_precision")  # added after stores existed


def random_proba(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    raw = rng.uniform(0.05, 1.0, size=(n, k))
    return raw / raw.sum(axis=1, keepdims=True)


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    # Informative but imperfect scores.
    p1 = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, len(y)), 0.02, 0.98)
    return y, np.column_stack([1 - p1, p1])


def test_binary_metrics_match_scikit_learn(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = binary
    pred = proba.argmax(axis=1)
    got = compute_metrics(y, proba, positive=1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, proba[:, 1]))
    assert 0 <= got["ece"] <= 1


def test_binary_auc_and_brier_do_not_depend_on_which_class_is_positive(
    binary: tuple[np.ndarray, np.ndarray],
) -> None:
    y, proba = binary
    as_one, as_zero = compute_metrics(y, proba, 1), compute_metrics(y, proba, 0)
    assert as_zero["roc_auc"] == pytest.approx(as_one["roc_auc"])
    assert as_zero["brier"] == pytest.approx(as_one["brier"])


def test_multiclass_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], [50, 30, 20])
    proba = random_proba(rng, len(y), 3)
    proba[np.arange(len(y)), y] += 0.5  # make the scores informative
    proba /= proba.sum(axis=1, keepdims=True)
    got = compute_metrics(y, proba, positive=2)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(axis=1)))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    onehot = np.eye(3)[y]
    assert got["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    assert 0.5 < got["roc_auc"] <= 1


def test_perfect_multiclass_scores_give_auc_one() -> None:
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    proba = np.eye(3)[y] * 0.8 + 0.2 / 3
    got = compute_metrics(y, proba, positive=0)
    assert got["roc_auc"] == pytest.approx(1.0)
    assert got["accuracy"] == 1.0
    assert got["f1_macro"] == pytest.approx(1.0)


def test_class_never_predicted_still_counts_in_macro_scores() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([[0.9, 0.1, 0.0]] * 3 + [[0.1, 0.9, 0.0]] * 3)
    got = compute_metrics(y, proba, positive=0)
    pred = proba.argmax(axis=1)
    expected = skm.f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0)
    assert got["f1_macro"] == pytest.approx(expected)


def test_ece_is_zero_for_confident_correct_predictions() -> None:
    y = np.array([0, 1, 2, 1, 0])
    assert expected_calibration_error(y, np.eye(3)[y]) == 0.0
    assert compute_metrics(y, np.eye(3)[y], positive=0)["ece"] == pytest.approx(0, abs=1e-9)


def test_ece_measures_the_gap_between_confidence_and_accuracy() -> None:
    y = np.array([1] * 7 + [0] * 3)
    calibrated = np.tile([0.3, 0.7], (10, 1))  # 70% confident, 70% right
    assert expected_calibration_error(y, calibrated) == pytest.approx(0.0)
    overconfident = np.tile([0.1, 0.9], (10, 1))  # 90% confident, 70% right
    assert expected_calibration_error(y, overconfident) == pytest.approx(0.2)


def test_zero_probabilities_give_a_finite_log_loss() -> None:
    y = np.array([0, 1])
    got = compute_metrics(y, np.array([[0.0, 1.0], [1.0, 0.0]]), positive=1)
    assert np.isfinite(got["log_loss"]) and got["log_loss"] > 10
    assert got["accuracy"] == 0.0


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn warns about the one label
def test_auc_of_a_single_class_test_set_is_nan() -> None:
    got = compute_metrics(np.array([1, 1, 1]), np.tile([0.4, 0.6], (3, 1)), positive=1)
    assert np.isnan(got["roc_auc"])
    assert got["accuracy"] == 1.0


def test_constant_scores_have_chance_auc() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    got = compute_metrics(y, np.tile([0.55, 0.45], (6, 1)), positive=1)
    assert got["roc_auc"] == pytest.approx(0.5)
    assert got["balanced_accuracy"] == pytest.approx(0.5)


def test_every_metric_is_listed_once_declares_its_direction_and_is_stored() -> None:
    names = [m.name for m in METRICS]
    assert len(set(names)) == len(names)
    assert names == METRIC_COLUMNS  # the results frame's metric columns are the same list
    for metric in METRICS:
        assert isinstance(metric, Metric)
        assert get_metric(metric.name) is metric
        assert metric_label(metric.name) == metric.label
    assert metric_label("roc_auc") == "AUC"
    assert higher_is_better("accuracy") and higher_is_better("roc_auc")
    assert not higher_is_better("log_loss")
    assert not higher_is_better("brier")
    assert not higher_is_better("ece")
    assert get_metric("log_loss").bounds == (0.0, None)
    assert get_metric("brier").bounds == (0.0, 2.0)
    for name in ("accuracy", "f1_macro", "precision", "recall", "roc_auc", "average_precision"):
        assert get_metric(name).bounds == (0.0, 1.0), name
        assert higher_is_better(name), name


def test_an_unknown_metric_names_the_option_and_the_closest_name() -> None:
    with pytest.raises(UnknownNameError, match=r"--metric.*Did you mean 'roc_auc'"):
        get_metric("roc_acu", key="--metric")


# --- precision and recall at the predicted label, average precision -----------------------------

# Binary, sorted by P(class 1): the argmax predicts class 1 for the first five rows.
PR_Y = np.array([1, 0, 1, 1, 0, 1, 0])
PR_P1 = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.3, 0.1])
PR_PROBA = np.column_stack([1 - PR_P1, PR_P1])


def test_precision_recall_and_average_precision_of_the_positive_class() -> None:
    got = compute_metrics(PR_Y, PR_PROBA, positive=1)
    # Predicted 1: rows 0-4, of which 0, 2, 3 are 1; the four 1s are rows 0, 2, 3, 5.
    assert got["precision"] == pytest.approx(3 / 5)
    assert got["recall"] == pytest.approx(3 / 4)
    # The 1s rank 1st, 3rd, 4th and 6th: precision there 1/1, 2/3, 3/4, 4/6.
    assert got["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 6) / 4)


def test_the_positive_class_is_the_one_scored() -> None:
    got = compute_metrics(PR_Y, PR_PROBA, positive=0)
    # Predicted 0: rows 5, 6, of which 6 is 0; the three 0s are rows 1, 4, 6.
    assert got["precision"] == pytest.approx(1 / 2)
    assert got["recall"] == pytest.approx(1 / 3)
    # By P(class 0) the 0s rank 1st (row 6), 3rd (row 4) and 6th (row 1).
    assert got["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    # AUC is symmetric in the classes, these are not.
    assert got["roc_auc"] == pytest.approx(compute_metrics(PR_Y, PR_PROBA, 1)["roc_auc"])


def test_no_predicted_positive_gives_precision_zero_without_a_warning() -> None:
    y = np.array([1, 0, 1, 0])
    proba = np.array([[0.6, 0.4], [0.9, 0.1], [0.7, 0.3], [0.8, 0.2]])  # always predicts 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's UndefinedMetricWarning would fail here
        got = compute_metrics(y, proba, positive=1)
    assert got["precision"] == 0.0
    assert got["recall"] == 0.0
    # The ranking is still perfect: the 1s have the highest P(class 1).
    assert got["average_precision"] == pytest.approx(1.0)


def test_average_precision_of_a_single_class_test_set_is_nan() -> None:
    y = np.array([1, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ap = get_metric("average_precision")(y, np.tile([0.4, 0.6], (3, 1)), 1)
    assert np.isnan(ap)


def test_multiclass_precision_and_recall_are_macro_averages() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    proba = np.eye(3)[pred] * 0.7 + 0.1
    got = compute_metrics(y, proba, positive=2)  # `positive` plays no part with 3 classes
    # Per class: precision 1/2, 2/3, 1/1; recall 1/2, 2/2, 1/2.
    assert got["precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert got["recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert got["recall"] == pytest.approx(got["balanced_accuracy"])  # every class present
    assert compute_metrics(y, proba, positive=0)["precision"] == got["precision"]


def test_multiclass_precision_counts_a_class_never_predicted_as_zero() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([[0.9, 0.1, 0.0]] * 3 + [[0.1, 0.9, 0.0]] * 3)  # never predicts 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = compute_metrics(y, proba, positive=0)
    # Predicted 0: rows 0-2 (two 0s); predicted 1: rows 3-5 (one 1); class 2: none.
    assert got["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert got["recall"] == pytest.approx((1 + 1 / 2 + 0) / 3)


def test_multiclass_average_precision_is_the_macro_mean_over_classes_present() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    # Column c ranks its class's rows first except that class 0's second row comes last.
    proba = np.array(
        [
            [0.6, 0.2, 0.2],
            [0.1, 0.8, 0.1],
            [0.1, 0.1, 0.8],
            [0.05, 0.5, 0.45],
            [0.3, 0.6, 0.1],
            [0.1, 0.2, 0.7],
        ]
    )
    # Class 0 by its column: rows 0 (0.6, a 0), 4, 1|2|5 ..., row 3 (0.05) last: 1/1, 2/6.
    # Classes 1 and 2 rank their two rows first: AP 1.
    expected = ((1 + 2 / 6) / 2 + 1 + 1) / 3
    assert get_metric("average_precision")(y, proba, 0) == pytest.approx(expected)
    # Without class 2 in the test rows, its column has no curve: the mean is over 0 and 1.
    keep = y != 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn warns "No positive class found" otherwise
        ap = get_metric("average_precision")(y[keep], proba[keep], 0)
    # Class 0 over rows 0, 1, 3, 4: 0.6 (a 0), 0.3, 0.1, 0.05 (a 0): 1/1, 2/4. Class 1: 1.
    assert ap == pytest.approx(((1 + 2 / 4) / 2 + 1) / 2)


# --- on a real run: the record, and a store written before these metrics ------------------------


@pytest.fixture(scope="module")
def credit_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """logreg and majority on credit_data, whose positive class `bad` is class 0 (a minority)."""
    path = tmp_path_factory.mktemp("metrics_store")
    for method in ("majority", "logreg"):
        overrides = ["dataset=credit_data", f"method={method}", "seeds=[0,1]", "n_train=[64]"]
        run_job(compose_config([*overrides, f"results_dir={path}", "report=false"]))
    return path


def test_a_run_record_scores_the_datasets_positive_label(credit_runs: Path) -> None:
    store = ResultsStore(credit_runs)
    logreg = [r for r in store.records() if r["method"] == "logreg"]
    assert len(logreg) == 2
    for record in logreg:
        assert record["class_labels"] == ["bad", "good"]
        rows = store.predictions(record)
        truth, pred = rows["y_true"], rows["y_pred"]
        metrics = record["metrics"]
        assert metrics["precision"] == pytest.approx(
            skm.precision_score(truth, pred, pos_label="bad")
        )
        assert metrics["recall"] == pytest.approx(skm.recall_score(truth, pred, pos_label="bad"))
        assert metrics["recall"] != pytest.approx(skm.recall_score(truth, pred, pos_label="good"))
        assert metrics["average_precision"] == pytest.approx(
            skm.average_precision_score(truth == "bad", rows["proba_bad"])
        )
    # The majority baseline never predicts the minority `bad`: precision 0, no crash.
    for record in (r for r in store.records() if r["method"] == "majority"):
        assert record["metrics"]["precision"] == 0.0 and record["metrics"]["recall"] == 0.0


@pytest.fixture(scope="module")
def old_store(credit_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same runs as a store written before precision, recall and average precision."""
    path = tmp_path_factory.mktemp("old_store") / "results"
    shutil.copytree(credit_runs, path)
    for file in (path / "runs").glob("*.json"):
        record = json.loads(file.read_text())
        record["metrics"] = {k: v for k, v in record["metrics"].items() if k not in NEW_METRICS}
        file.write_text(json.dumps(record))
    return path


def test_a_store_without_the_new_metrics_loads_and_reports(old_store: Path) -> None:
    runs = load_results(old_store)
    assert len(runs) == 4 and runs["status"].eq("ok").all()
    for name in NEW_METRICS:
        assert runs[name].isna().all() and runs[name].dtype == float
    report = (write_report(old_store) / "report.md").read_text()
    assert "roc_auc" in report and "| logreg | **" in report  # the default still works
    for name in NEW_METRICS:
        report = (write_report(old_store, name) / "report.md").read_text()
        assert f"No successful run has a value of {name}: runs recorded before" in report
        assert "No successful runs." not in report  # they did succeed
        html = (old_store / "report" / "report.html").read_text()
        assert f"No successful run has a value of {name}" in html


def test_the_report_cli_accepts_the_new_metrics(
    credit_runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_main([str(credit_runs), "--metric", "average_precision"])
    assert "Report written to" in capsys.readouterr().out
    report = (credit_runs / "report" / "report.md").read_text()
    assert "average precision (average_precision, higher is better)" in report
    assert "| logreg | **" in report
    runs = load_results(credit_runs)
    mean = runs[runs.method.eq("logreg")]["average_precision"].mean()
    assert f"{mean:.3f}" in report
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(credit_runs), "--metric", "avg_precision"])
    assert exit_info.value.code == 2
    assert "Did you mean 'average_precision'" in capsys.readouterr().err

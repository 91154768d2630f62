"""Per-seed splits: a stratified test set and nested, deterministic training subsets."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from bench.data.dataset import Task
from bench.data.splits import make_split, resolve_n_train

GRID = (1, 2, 16, 32, 64, 128, 256, 1024)


@pytest.fixture(scope="module")
def churn(load_dataset: Callable[[str], Task]) -> Task:
    """An imbalanced real table (about one churner in seven)."""
    return load_dataset("mlc_churn")


def test_test_set_and_pool_partition_the_rows(churn: Task) -> None:
    split = make_split(churn.y, churn.name, seed=0)
    test, pool = set(split.test_rows.tolist()), set(split.pool_order.tolist())
    assert not test & pool
    assert test | pool == set(range(len(churn.y)))
    assert len(split.pool_order) == len(pool)  # no row twice
    assert split.pool_size == len(churn.y) - len(split.test_rows)


def test_test_size_is_a_share_capped_at_max_test_rows(churn: Task) -> None:
    n = len(churn.y)
    assert len(make_split(churn.y, churn.name, 0, test_size=0.1).test_rows) == round(0.1 * n)
    capped = make_split(churn.y, churn.name, 0, test_size=0.5, max_test_rows=300)
    assert len(capped.test_rows) == 300


def test_test_set_is_stratified(churn: Task) -> None:
    split = make_split(churn.y, churn.name, seed=0)
    overall = churn.y.value_counts(normalize=True)
    in_test = churn.y.iloc[split.test_rows].value_counts()
    for label, share in overall.items():
        assert abs(in_test[label] - share * len(split.test_rows)) <= 1


def test_training_subsets_are_nested(churn: Task) -> None:
    split = make_split(churn.y, churn.name, seed=0)
    subsets = [split.subset(n, churn.y).rows for n in GRID]
    for smaller, larger in itertools.pairwise(subsets):
        assert set(smaller) <= set(larger)
        np.testing.assert_array_equal(larger[: len(smaller)], smaller)
    assert all(len(rows) == n for rows, n in zip(subsets, GRID, strict=True))


def test_stratified_subsets_keep_the_class_shares(churn: Task) -> None:
    split = make_split(churn.y, churn.name, seed=1)
    shares = churn.y.value_counts(normalize=True)
    for n in (16, 64, 256, 1024):
        counts = churn.y.iloc[split.subset(n, churn.y).rows].value_counts()
        for label, share in shares.items():
            assert abs(counts.get(label, 0) - share * n) <= 1.5, (n, label)


def test_balanced_subsets_have_equal_class_counts(churn: Task) -> None:
    split = make_split(churn.y, churn.name, seed=0, sampling="balanced")
    for n in (2, 16, 64, 256):
        counts = churn.y.iloc[split.subset(n, churn.y).rows].value_counts()
        assert counts.to_dict() == {label: n // 2 for label in churn.class_labels}, n
    # The test set stays stratified whatever the training sampling.
    stratified = make_split(churn.y, churn.name, seed=0)
    np.testing.assert_array_equal(split.test_rows, stratified.test_rows)


def test_split_is_deterministic_per_dataset_and_seed(churn: Task) -> None:
    a = make_split(churn.y, churn.name, seed=3)
    b = make_split(churn.y, churn.name, seed=3)
    np.testing.assert_array_equal(a.test_rows, b.test_rows)
    np.testing.assert_array_equal(a.pool_order, b.pool_order)


def test_split_differs_across_seeds_and_datasets(churn: Task) -> None:
    base = make_split(churn.y, churn.name, seed=0)
    other_seed = make_split(churn.y, churn.name, seed=1)
    other_name = make_split(churn.y, "another_dataset", seed=0)
    for other in (other_seed, other_name):
        assert not np.array_equal(base.test_rows, other.test_rows)
        assert not np.array_equal(base.pool_order[:64], other.pool_order[:64])


def test_subset_missing_a_class_is_skipped_with_the_reason(churn: Task) -> None:
    split = make_split(churn.y, churn.name, seed=0)
    one_row = split.subset(1, churn.y)  # one row holds one class, so the other has none
    assert one_row.skip_reason is not None
    assert "has 0 row(s)" in one_row.skip_reason
    assert "split.min_per_class" in one_row.skip_reason


def test_subset_with_too_few_rows_of_a_class_is_skipped(churn: Task) -> None:
    split = make_split(churn.y, churn.name, seed=0)
    # About 14% churners: 16 stratified rows hold 2 or 3 of them, fewer than 5.
    subset = split.subset(16, churn.y, min_per_class=5)
    assert subset.skip_reason is not None
    assert "'yes' has" in subset.skip_reason
    assert "needs >= 5" in subset.skip_reason
    assert split.subset(64, churn.y, min_per_class=5).skip_reason is None


def test_subset_larger_than_the_pool_is_skipped(churn: Task) -> None:
    split = make_split(churn.y, churn.name, seed=0)
    whole = split.subset(split.pool_size, churn.y)
    assert whole.skip_reason is None
    assert sorted(whole.rows) == sorted(split.pool_order)
    too_many = split.subset(split.pool_size + 1, churn.y)
    assert too_many.rows.size == 0
    assert f"exceeds the training pool of {split.pool_size} rows" in too_many.skip_reason


def test_zero_rows_is_a_valid_subset(churn: Task) -> None:
    subset = make_split(churn.y, churn.name, seed=0).subset(0, churn.y)
    assert subset.rows.size == 0
    assert subset.skip_reason is None


def test_multiclass_labels_split_cleanly() -> None:
    y = pd.Series(np.repeat(["a", "b", "c"], [300, 150, 50]))
    split = make_split(y, "three_classes", seed=0, sampling="balanced")
    assert set(y.iloc[split.test_rows]) == {"a", "b", "c"}
    counts = y.iloc[split.subset(90, y).rows].value_counts()
    assert counts.to_dict() == {"a": 30, "b": 30, "c": 30}


@pytest.mark.parametrize(
    ("value", "expected"), [("all", 4000), (" ALL ", 4000), ("32", 32), (64, 64), (0, 0)]
)
def test_resolve_n_train(value: int | str, expected: int) -> None:
    assert resolve_n_train(value, pool_size=4000) == expected


@pytest.mark.parametrize("value", ["most", -1, "-5"])
def test_resolve_n_train_rejects_bad_values(value: int | str) -> None:
    with pytest.raises(ValueError, match="n_train"):
        resolve_n_train(value, pool_size=4000)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"sampling": "random"}, "split.sampling"), ({"test_size": 1.5}, "split.test_size")],
)
def test_bad_split_settings_name_the_config_key(churn: Task, kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        make_split(churn.y, churn.name, seed=0, **kwargs)

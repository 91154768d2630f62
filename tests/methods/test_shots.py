"""Shot selection: static selections reproducible per seed with the promised class make-up;
retrieval returns the k nearest rows with the most similar last (checked by brute force)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from bench.methods.shots import SELECTIONS, nearest_shots, static_shots

STATIC = [s for s in SELECTIONS if s != "knn"]


def labels(counts: dict[str, int], seed: int = 0) -> pd.Series:
    """A shuffled label column with the given class counts."""
    values = [c for c, n in counts.items() for _ in range(n)]
    return pd.Series(np.random.default_rng(seed).permutation(np.array(values, dtype=object)))


SKEWED = labels({"no": 70, "yes": 25, "maybe": 5})


@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("k", [0, 1, 7, 16])
def test_k_distinct_positions_in_range_the_same_for_a_seed(selection: str, k: int) -> None:
    shots = static_shots(SKEWED, k, selection, seed=3)
    assert len(shots) == k == len(set(shots.tolist()))
    assert np.all((shots >= 0) & (shots < len(SKEWED)))
    assert shots.dtype.kind == "i"
    np.testing.assert_array_equal(shots, static_shots(SKEWED, k, selection, seed=3))


@pytest.mark.parametrize("selection", SELECTIONS)
def test_k_larger_than_the_pool_is_capped(selection: str) -> None:
    y = labels({"no": 4, "yes": 2})
    shots = static_shots(y, 50, selection, seed=0)
    assert sorted(shots.tolist()) == list(range(6))


def test_first_is_the_head_of_the_training_subset() -> None:
    np.testing.assert_array_equal(static_shots(SKEWED, 5, "first", seed=9), np.arange(5))


def test_random_differs_across_seeds() -> None:
    picks = {tuple(static_shots(SKEWED, 8, "random", seed=s)) for s in range(5)}
    assert len(picks) == 5


@pytest.mark.parametrize("k", [6, 9, 12, 30])
def test_balanced_gives_equal_class_counts_when_possible(k: int) -> None:
    y = labels({"no": 70, "yes": 25, "maybe": 15})
    for seed in range(3):
        counts = Counter(y.iloc[static_shots(y, k, "balanced", seed)])
        assert max(counts.values()) - min(counts.values()) <= (k % 3 != 0)
        assert sum(counts.values()) == k and set(counts) == {"no", "yes", "maybe"}


def test_balanced_fills_up_from_other_classes_when_one_runs_short() -> None:
    counts = Counter(SKEWED.iloc[static_shots(SKEWED, 30, "balanced", seed=0)])
    assert counts["maybe"] == 5 and counts["yes"] >= 10 and sum(counts.values()) == 30


@pytest.mark.parametrize("k", [1, 5, 10, 16, 33])
def test_stratified_keeps_the_class_proportions_within_one(k: int) -> None:
    share = SKEWED.value_counts(normalize=True)
    for seed in range(3):
        counts = Counter(SKEWED.iloc[static_shots(SKEWED, k, "stratified", seed)])
        assert sum(counts.values()) == k
        for label, p in share.items():
            assert abs(counts.get(label, 0) - k * p) < 1, (label, counts)


def test_an_unknown_selection_names_the_config_key() -> None:
    with pytest.raises(ValueError, match=r"method\.params\.selection") as error:
        static_shots(SKEWED, 4, "nearest", seed=0)
    for name in SELECTIONS:
        assert name in str(error.value)


# -- retrieval --------------------------------------------------------------------------------
def numeric_pool(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "wait_s": rng.uniform(0, 600, rows),  # a large scale: standardising matters
            "tenure": rng.normal(30, 10, rows),
            "calls": rng.integers(0, 5, rows).astype(float),
        }
    )


def brute_force_nearest(pool: pd.DataFrame, query: pd.Series, k: int) -> list[int]:
    """Euclidean distance on columns standardised with the pool's mean and (population) std."""
    mean, std = pool.mean(), pool.std(ddof=0)
    distance = (((pool - mean) / std - (query - mean) / std) ** 2).sum(axis=1)
    return distance.sort_values(kind="stable").index[:k].tolist()


def test_a_query_identical_to_a_pool_row_gets_that_row_last() -> None:
    pool = numeric_pool()
    queries = pool.iloc[[3, 17, 29]].reset_index(drop=True)
    for row, shots in zip([3, 17, 29], nearest_shots(pool, queries, k=5), strict=True):
        assert len(shots) == 5 and shots[-1] == row


def test_knn_returns_the_k_nearest_rows_farthest_first() -> None:
    pool = numeric_pool(rows=50, seed=1)
    queries = numeric_pool(rows=6, seed=2)
    for (_, query), shots in zip(queries.iterrows(), nearest_shots(pool, queries, 7), strict=True):
        nearest = brute_force_nearest(pool, query, 7)
        assert shots.tolist() == nearest[::-1]  # the most similar next to the query


def test_knn_on_mixed_data_with_missing_values() -> None:
    pool = pd.DataFrame(
        {
            "plan": ["basic", "pro", None, "plus", "basic", "pro"],
            "spend": [10.0, np.nan, 30.0, 40.0, 11.0, 60.0],
        }
    )
    queries = pool.iloc[[1, 2]].reset_index(drop=True)  # a missing number, a missing category
    shots = nearest_shots(pool, queries, k=3)
    assert [s[-1] for s in shots] == [1, 2]
    assert all(len(set(s.tolist())) == 3 for s in shots)


def test_knn_caps_k_at_the_pool_and_handles_zero() -> None:
    pool = numeric_pool(rows=4)
    assert [len(s) for s in nearest_shots(pool, pool.iloc[:2], k=10)] == [4, 4]
    assert [len(s) for s in nearest_shots(pool, pool.iloc[:2], k=0)] == [0, 0]


def test_knn_accepts_boolean_columns() -> None:
    pool = pd.DataFrame({"spend": [1.0, 2.0, 3.0, 4.0], "promo": [True, False, True, False]})
    assert nearest_shots(pool, pool.iloc[[2]], k=2)[0][-1] == 2

"""Per-seed test sets and nested, deterministic training subsets for learning curves.

For a given (dataset, seed) the rows are split once into a stratified test set and a training
pool; the pool is then put in a fixed *order* and the n-row training subset is the first n rows
of that order. Subsets are therefore nested (the 32-row set lies inside the 64-row set) and
identical for every method. The order interleaves the classes so that every prefix keeps the
class proportions ("stratified") or equal class counts ("balanced", as in TabLLM).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

__all__ = ["SAMPLINGS", "Split", "TrainSubset", "make_split", "resolve_n_train"]

SAMPLINGS = ("stratified", "balanced")


@dataclass(frozen=True)
class TrainSubset:
    n_train: int
    rows: np.ndarray  # row positions into the task's X / y
    skip_reason: str | None = None  # set when this subset cannot be used


@dataclass(frozen=True)
class Split:
    """The test rows and the ordered training pool of one (dataset, seed)."""

    seed: int
    test_rows: np.ndarray
    pool_order: np.ndarray  # training pool, in the order subsets are taken from

    @property
    def pool_size(self) -> int:
        return len(self.pool_order)

    def subset(self, n_train: int, y: pd.Series, min_per_class: int = 1) -> TrainSubset:
        """The first `n_train` rows of the pool, or a subset marked skipped with the reason."""
        if n_train > self.pool_size:
            reason = f"n_train={n_train} exceeds the training pool of {self.pool_size} rows"
            return TrainSubset(n_train, self.pool_order[:0], reason)
        rows = self.pool_order[:n_train]
        if n_train > 0:
            counts = y.iloc[rows].value_counts()
            short = [
                f"'{label}' has {counts.get(label, 0)}"
                for label in sorted(y.unique())
                if counts.get(label, 0) < min_per_class
            ]
            if short:
                reason = (
                    f"n_train={n_train} is too small: class {', '.join(short)} row(s), "
                    f"needs >= {min_per_class} (split.min_per_class)"
                )
                return TrainSubset(n_train, rows, reason)
        return TrainSubset(n_train, rows)


def derive_seed(dataset: str, seed: int) -> int:
    """A seed that depends on both the dataset and the user's seed, stable across runs."""
    return (zlib.crc32(dataset.encode()) * 1_000_003 + seed) % (2**32)


def make_split(
    y: pd.Series,
    dataset: str,
    seed: int,
    test_size: float = 0.2,
    max_test_rows: int = 1000,
    sampling: str = "stratified",
) -> Split:
    """Split row positions into a stratified test set and an ordered training pool."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"split.sampling must be one of {', '.join(SAMPLINGS)}, got '{sampling}'")
    if not 0 < test_size < 1:
        raise ValueError(f"split.test_size must be between 0 and 1, got {test_size}")
    n_test = max(min(round(test_size * len(y)), max_test_rows), y.nunique())
    rng_seed = derive_seed(dataset, seed)
    positions = np.arange(len(y))
    pool, test = train_test_split(
        positions, test_size=n_test, stratify=y.to_numpy(), random_state=rng_seed % (2**31)
    )
    rng = np.random.default_rng(rng_seed)
    order = _interleaved_order(y.to_numpy()[pool], rng, balanced=sampling == "balanced")
    return Split(seed=seed, test_rows=np.sort(test), pool_order=pool[order])


def _interleaved_order(labels: np.ndarray, rng: np.random.Generator, balanced: bool) -> np.ndarray:
    """An order of `labels` whose every prefix is (near) stratified or class-balanced.

    Each class is shuffled; its i-th row gets the key i / n_class (stratified) or i (balanced),
    jittered within its slot, and rows are taken in key order.
    """
    keys = np.empty(len(labels))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = rng.permutation(members)
        rank = np.arange(len(members)) + rng.random(len(members))
        keys[members] = rank if balanced else rank / len(members)
    return np.argsort(keys, kind="stable")


def resolve_n_train(value: int | str, pool_size: int) -> int:
    """An n_train grid value as a row count; "all" is the whole training pool."""
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return pool_size
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"n_train values must be integers or 'all', got '{value}'") from None
    if int(value) < 0:
        raise ValueError(f"n_train values must be >= 0, got {value}")
    return int(value)

"""The nearest training rows of a query row, and their vote: one definition for both users.

`llm_icl` with ``selection: knn`` (bench/methods/shots.py) writes each query's k nearest training
rows into its prompt; the classical `knn` method (conf/method/knn.yaml) votes those same rows'
labels. Both find them through `NeighbourIndex`, so the control votes exactly the rows the LLM
read, and "what the LLM adds beyond its neighbours' labels" is a like-for-like comparison.

The neighbourhood: numeric columns median-imputed and standardised, categorical ones (booleans
included) one-hot encoded -- the encoding logistic regression sees
(`bench.methods.classical.linear_preprocessor`) -- fitted on the training rows; Euclidean
distance; exact search (scikit-learn's `NearestNeighbors`).

The vote (`NeighbourVoteClassifier`): each neighbour votes for its label with weight
1 / max(distance, DISTANCE_FLOOR), and the training rows' class shares add one pseudo-vote of
weight `prior_weight`. So no probability is exactly 0 or 1 (log loss stays finite), and among
rows whose neighbours all agree the one with closer neighbours scores higher: the AUC ranks
them by how close the agreement is instead of tying them.

>>> from bench.data.callcenter import generate_callcenter
>>> frame = generate_callcenter(rows=300, seed=0)
>>> X, y = frame.drop(columns=["resolved", "handle_time_s"]), frame["resolved"]
>>> model = NeighbourVoteClassifier(k=16).fit(X.iloc[:200], y.iloc[:200])
>>> model.predict_proba(X.iloc[200:]).shape, model.neighbours(X.iloc[200:203]).shape
((100, 2), (3, 16))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from bench.methods.base import MethodReport, keep_params

__all__ = ["DISTANCE_FLOOR", "VOTE", "NeighbourIndex", "NeighbourVoteClassifier"]

# Exact duplicates of a query would get infinite weight; a thousandth of a standard deviation
# (the numeric columns' unit after scaling) keeps them decisive but finite.
DISTANCE_FLOOR = 1e-3
# details.vote of a `knn` run: how the report (bench/report/retrieval.py) tells the control apart.
VOTE = "distance_weighted"


class NeighbourIndex:
    """The training rows (`pool`), encoded once, searchable for each query row's k nearest
    (k above the pool's size: all of it)."""

    def __init__(self, pool: pd.DataFrame, k: int) -> None:
        from sklearn.neighbors import NearestNeighbors

        from bench.methods.classical import linear_preprocessor

        self.k = max(0, min(k, len(pool)))
        self._encoder = linear_preprocessor()
        self._index = None
        if self.k:
            points = self._encoder.fit_transform(_bools_as_text(pool))
            # k is given at fit: scikit-learn picks its search algorithm (and so the order of
            # equally distant rows) from it, as the retrieval always did
            self._index = NearestNeighbors(n_neighbors=self.k).fit(points)

    def query(self, queries: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(distances, positions into the pool), each of shape (queries, k), nearest first."""
        if self._index is None:
            empty = np.zeros((len(queries), 0))
            return empty, empty.astype(int)
        return self._index.kneighbors(self._encoder.transform(_bools_as_text(queries)))


def _bools_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    # Booleans are categories here (the imputers refuse bool dtype).
    bools = [c for c in frame.columns if pd.api.types.is_bool_dtype(frame[c])]
    return frame.astype({c: str for c in bools}) if bools else frame


class NeighbourVoteClassifier(ClassifierMixin, BaseEstimator):
    """k nearest training rows (`NeighbourIndex`) voting their labels, weighted by closeness.

    `k` above the number of training rows means all of them; `prior_weight` is the weight of
    the class shares' pseudo-vote, in the votes' unit (one neighbour at distance 1).
    """

    def __init__(self, k: int = 16, prior_weight: float = 1.0) -> None:
        keep_params(self, locals())

    def fit(self, X: pd.DataFrame, y: Any) -> NeighbourVoteClassifier:
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"method.params.k={self.k!r}: need an integer >= 1")
        if self.prior_weight < 0:
            raise ValueError(f"method.params.prior_weight={self.prior_weight!r}: need >= 0")
        labels = np.asarray(y)
        if len(labels) == 0:
            raise ValueError("knn needs at least one training row (n_train >= 1)")
        self.classes_, codes = np.unique(labels, return_inverse=True)
        self.codes_ = codes.reshape(-1)
        self.prior_ = np.bincount(self.codes_, minlength=len(self.classes_)) / len(labels)
        self.index_ = NeighbourIndex(X.reset_index(drop=True), self.k)
        self.k_ = self.index_.k
        return self

    def neighbours(self, X: pd.DataFrame) -> np.ndarray:
        """Positions (into the training rows) of each row's k nearest, nearest first."""
        return self.index_.query(X)[1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        distances, positions = self.index_.query(X)
        weights = 1.0 / np.maximum(distances, DISTANCE_FLOOR)
        votes = np.zeros((len(X), len(self.classes_)))
        rows = np.repeat(np.arange(len(X)), positions.shape[1])
        np.add.at(votes, (rows, self.codes_[positions].ravel()), weights.ravel())
        votes += self.prior_weight * self.prior_
        return votes / votes.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def run_report(self) -> MethodReport:
        """The k used (capped by the training rows) and the vote: the report pairs on both."""
        return MethodReport(details={"k": int(getattr(self, "k_", self.k)), "vote": VOTE})

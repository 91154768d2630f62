"""LLM embeddings as features: each serialized row's embedding, and a classical head on top.

Every row (training and test alike) is written by the run's row serializer
(bench/llm/serialize.py), fitted on the training rows only, and embedded by the LLM: in-process,
llama.cpp's embedding mode with mean pooling over the row's tokens; on a server, its
OpenAI-compatible ``/v1/embeddings``. Embeddings go through the request cache like every LLM
answer, one entry per text, so a rerun embeds nothing. A logistic regression (standardised
features, L2) or a LightGBM model learns the run's training rows from their embeddings and
predicts the test rows. The LLM cost is one embedding per training row, once, plus one per test
row (the marginal cost per 1,000 predictions).

>>> from bench.data.callcenter import generate_callcenter
>>> frame = generate_callcenter(rows=40, seed=0)
>>> X, y = frame.drop(columns=["resolved", "handle_time_s"]), frame["resolved"]
>>> llm = {"name": "local_gemma3_270m", "backend": "llamacpp", "model": "gemma-3-270m",
...        "model_path": "bench.llm.models:gemma3_270m_gguf", "cache": False, "n_threads": 2}
>>> model = LLMEmbedClassifier(llm=llm).fit(X, y)  # doctest: +SKIP
>>> model.predict_proba(X).shape  # doctest: +SKIP
(40, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bench.llm.backend import EmbedRequest, LLMBackend, make_backend
from bench.llm.serialize import RowSerializer
from bench.methods.base import Choice, MethodContext, MethodKind, MethodTags, Range, keep_params
from bench.methods.classical import ClassicalClassifier
from bench.methods.llm_base import LLMEstimator, RowProgress, aligned_proba, require_llm
from bench.methods.llm_icl import serializer_options

__all__ = ["EMBED_TEXT_VERSION", "HEADS", "LLM_EMBED", "LLMEmbedClassifier", "build_llm_embed"]

HEADS = ("logreg", "lightgbm")
# Part of the run id: bump when the text that is embedded or the pooling changes.
EMBED_TEXT_VERSION = "embed-1"
# Head parameters unless method.params.head_params says otherwise.
HEAD_DEFAULTS: dict[str, dict[str, Any]] = {
    "logreg": {"C": 1.0},
    "lightgbm": {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15},
}


class LLMEmbedClassifier(LLMEstimator):
    """A logistic regression (or LightGBM) on the LLM's embeddings of serialized rows.

    `llm` is an llm config (conf/llm/*.yaml as a dict) whose backend embeds; `serializer` a
    serializer config; `class_labels` the task's classes (a class absent from the training rows
    gets probability 0). `normalize` scales each embedding to unit length before the head.
    """

    def __init__(
        self,
        llm: dict[str, Any] | None = None,
        serializer: dict[str, Any] | None = None,
        class_labels: tuple[str, ...] = (),
        head: str = "logreg",
        head_params: dict[str, Any] | None = None,
        normalize: bool = True,
        batch_size: int = 64,
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        keep_params(self, locals())

    # -- estimator API ------------------------------------------------------------------------
    def _check_params(self) -> None:
        require_llm(self, self.llm)
        if self.head not in HEADS:
            raise ValueError(
                f"method.params.head={self.head!r} is not a head; use one of {', '.join(HEADS)}"
            )

    def _declared_classes(self) -> tuple[str, ...]:
        return self.class_labels

    def _fit(self, X: pd.DataFrame, labels: pd.Series) -> None:
        options = serializer_options(self.serializer)
        self.serializer_ = RowSerializer(**options, seed=self.seed).fit(X)
        features = self._features(X)
        self.n_dims_ = features.shape[1]
        params = {**HEAD_DEFAULTS[self.head], **(self.head_params or {})}
        self.head_ = ClassicalClassifier(
            model=self.head, params=params, random_state=self.seed, n_jobs=self.n_jobs
        ).fit(features, labels)
        self.run_ledger().details.update(
            head=self.head,
            head_params=params,
            dimensions=self.n_dims_,
            normalize=self.normalize,
            fit_rows_embedded=len(X),
            predict_rows_embedded=0,  # over every predict_proba since fit
        )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        features = self._features(X)
        proba = aligned_proba(
            self.head_.predict_proba(features), self.head_.classes_, self.classes_
        )
        self.run_ledger().details["predict_rows_embedded"] += len(X)
        return proba

    # -- embeddings ---------------------------------------------------------------------------
    def texts(self, X: pd.DataFrame) -> list[str]:
        """The text embedded for each row: the row as the serializer writes it."""
        header = self.serializer_.header(list(X.columns))
        prefix = f"{header}\n" if header else ""
        return [prefix + self.serializer_.record(row.to_dict()) for _, row in X.iterrows()]

    def _features(self, X: pd.DataFrame) -> pd.DataFrame:
        """The rows' embeddings as a numeric frame (unit length when `normalize`)."""
        vectors = self._embed(self.texts(X))
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1.0)
        columns = [f"e{i}" for i in range(vectors.shape[1])]
        return pd.DataFrame(vectors, columns=columns, index=X.index)

    def _embed(self, texts: list[str]) -> np.ndarray:
        ledger = self.run_ledger()
        backend = make_backend(self.llm)
        vectors: list[list[float]] = []
        progress = RowProgress("llm_embed: %d/%d rows embedded", len(texts))
        try:
            for start in range(0, len(texts), self.batch_size):
                progress.at(start)
                batch = texts[start : start + self.batch_size]
                for result in backend.embed([EmbedRequest(t) for t in batch]):
                    vectors.append(result.vector)
                    ledger.usage += result.usage
        finally:
            backend.close()
        return _as_matrix(vectors, backend)


def _as_matrix(vectors: list[list[float]], backend: LLMBackend) -> np.ndarray:
    """The vectors as one float matrix; vectors of different lengths name the llm config."""
    lengths = {len(v) for v in vectors}
    if len(lengths) > 1:
        raise ValueError(
            f"llm '{backend.config.name}' returned embeddings of different lengths "
            f"{sorted(lengths)}; is llm.model an embedding model?"
        )
    return np.asarray(vectors, dtype=float)


def build_llm_embed(cfg: DictConfig, context: MethodContext) -> LLMEmbedClassifier:
    """METHODS registry entry for `kind: llm_embed`."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    return LLMEmbedClassifier(
        llm=context.llm,
        serializer=context.serializer,
        class_labels=context.class_labels,
        seed=context.seed,
        n_jobs=context.n_jobs,
        **params,
    )


LLM_EMBED = MethodKind(
    build=build_llm_embed,
    tags=MethodTags(uses_llm=True, serializes_rows=True, prompt_version=EMBED_TEXT_VERSION),
    param_ranges={"batch_size": Range(low=1), "head": Choice(HEADS)},
)

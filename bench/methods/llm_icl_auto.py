"""In-context learning with its row serializer chosen on the training rows (`llm_icl_auto`).

The LLM side of the practitioner's pick (bench/methods/auto.py has the classical side): a
practitioner who ran a serialization sweep does not ship the format that scored best on the test
rows, they choose it on rows they hold. `llm_icl_auto` does this inside one run, with
`llm_icl_tuned`'s machinery (`ValidatedICL`): the run's n training rows are split (stratified)
into shots and validation rows; each candidate serializer (`serializers`, by default every format
of experiment=serialization) is an `LLMICLClassifier` fitted on the shot rows and scored on the
validation rows; the best is refitted on all n rows and predicts the test rows once. The test
rows never reach the choice: the runner hands a method its training rows only.

Every LLM call of the choice is counted in the run's usage (a one-off cost, as fit) and against
`search.max_llm_calls`; a candidate that does not fit the budget is not scored. The run's
`details` hold `picked` (the winning serializer's name), `cv_scores` (serializer -> validation
score) and, as `llm_icl_tuned`'s, `search` with every candidate. The sweep's own `serializer`
is not this method's: its runs are the same whatever `serializer=` says.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bench.config import SerializerConfig, config_names
from bench.llm.prompts import PROMPT_VERSION
from bench.methods.auto import ChoiceList, better, pool_names, selection_metric
from bench.methods.base import Choice, MethodContext, MethodKind, MethodTags, Range, keep_params
from bench.methods.llm_icl import prompt_context
from bench.methods.llm_icl_tuned import (
    SEARCH_RANGES,
    Candidate,
    SearchSettings,
    ValidatedICL,
    checked_search,
)
from bench.methods.shots import SELECTIONS

__all__ = ["LLM_ICL_AUTO", "LLMICLAutoClassifier", "build_llm_icl_auto"]

# The search settings of llm_icl_tuned this method has no use for: it rewrites no instruction.
UNUSED_SEARCH = ("rewrites", "optimizer_llm")
# The serializer configs a pick may choose from (conf/serializer/NAME.yaml).
SERIALIZER_NAMES = tuple(config_names("serializer"))

Fold = tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]


class LLMICLAutoClassifier(ValidatedICL):
    """`LLMICLClassifier` whose serializer is chosen by validation on the training rows.

    `pool` maps serializer names to serializer configs (conf/serializer/NAME.yaml as dicts);
    `serializers` names the candidates, in order (a tie goes to the earlier; None: all of the
    pool); `search` holds the `SearchSettings` of the validation split and budget (a dict);
    every other parameter is `LLMICLClassifier`'s, the same for each candidate.
    """

    method_name = "llm_icl_auto"

    def __init__(
        self,
        pool: dict[str, dict[str, Any]] | None = None,
        serializers: list[str] | None = None,
        search: dict[str, Any] | None = None,
        positive_label: str | None = None,
        *,
        llm: dict[str, Any] | None = None,
        class_labels: tuple[str, ...] = (),
        target: str = "label",
        task_description: str = "",
        feature_descriptions: dict[str, str] | None = None,
        max_shots: int | None = None,
        selection: str = "first",
        verbalizer: dict[str, str] | None = None,
        queries_per_request: int = 1,
        batch_size: int = 64,
        seed: int = 0,
        guidance: str | None = None,
        shot_order: str = "given",
        knn_layout: str = "similarity",
        explain_rows: int = 0,
    ) -> None:
        keep_params(self, locals())

    def _check_params(self) -> None:
        super()._check_params()
        self._names()

    def _names(self) -> list[str]:
        return pool_names(self.pool, self.serializers, "serializers")

    def _fit(self, X: pd.DataFrame, labels: pd.Series) -> None:
        super()._fit(X, labels)
        ledger = self.run_ledger()
        ledger.details["picked"] = self.best_.name
        ledger.details["cv_scores"] = {
            c.name: c.validation_score for c in self._search.candidates if c.llm_calls > 0
        }

    def _choose(
        self, X: pd.DataFrame, labels: pd.Series, settings: SearchSettings
    ) -> tuple[Candidate, list[Fold], str]:
        """Each serializer in turn, scored on the same folds while the budget lasts; the best
        (the first on a tie; the first if none could be scored)."""
        folds = self._folds(X, labels, settings)
        calls = sum(len(val_X) for _, _, val_X, _ in folds)  # per candidate
        metric = selection_metric(settings.metric, labels)
        pool = dict(self.pool or {})
        best: Candidate | None = None
        for name in self._names():
            if best is not None and not self._room(settings, calls):
                break
            candidate = self._try(Candidate(name, {"serializer": pool[name]}), folds, metric)
            if best is None or better(candidate.validation_score, best.validation_score, metric):
                candidate.kept, best = True, candidate
        assert best is not None  # _names() is never empty
        return best, folds, metric


def build_llm_icl_auto(cfg: DictConfig, context: MethodContext) -> LLMICLAutoClassifier:
    """METHODS registry entry for `kind: llm_icl_auto`."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    search = checked_search(dict(params.pop("search", None) or {}), unused=UNUSED_SEARCH)
    # Each candidate as the runner hands llm_icl its serializer: the schema's defaults filled in.
    pool = {
        name: OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(SerializerConfig), node))
        for name, node in dict(params.pop("pool", None) or {}).items()
    }
    shared = prompt_context(context)
    shared.pop("serializer")  # the sweep's serializer is not this method's
    return LLMICLAutoClassifier(
        pool=pool, search=search, positive_label=context.positive_label, **shared, **params
    )


LLM_ICL_AUTO = MethodKind(
    build=build_llm_icl_auto,
    # The candidate serializers are in the method's own params (its identity): the sweep's
    # `serializer` is not, so a serialization sweep runs this method once per seed and size.
    tags=MethodTags(
        zero_shot=False, uses_llm=True, serializes_rows=False, prompt_version=PROMPT_VERSION
    ),
    param_ranges={
        "serializers": ChoiceList(SERIALIZER_NAMES, allow_none=True),
        "max_shots": Range(low=0, allow_none=True),
        "batch_size": Range(low=1),
        "selection": Choice(SELECTIONS),
        **SEARCH_RANGES,
    },
)

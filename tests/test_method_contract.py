"""The method contract: the runner reads declared tags and `run_report()`, nothing else."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig
from sklearn.base import BaseEstimator, ClassifierMixin

from bench.methods.base import (
    InvalidParameterError,
    MethodContext,
    MethodKind,
    MethodReport,
    MethodTags,
    Range,
    build_method,
    method_kind,
)
from bench.paths import CONF_DIR
from bench.registry import METHODS
from bench.results import ResultsStore
from bench.runner import RunSpec, execute_run, run_job, specs_for

Compose = Callable[..., DictConfig]


class Prior(ClassifierMixin, BaseEstimator):
    """Training priors (uniform over the card's classes with no rows), with attributes named
    like the ones the old runner probed for: they must not reach the record."""

    supports_zero_shot = True  # an attribute, not a tag: must not make n_train=0 run
    n_unlabelled = 50  # likewise: no unlabelled rows unless the tags ask

    def __init__(self, class_labels: tuple[str, ...] = (), report: bool = False) -> None:
        self.class_labels = class_labels
        self.report = report

    def fit(self, X: pd.DataFrame, y: pd.Series, **fit_params: Any) -> Prior:
        assert not fit_params, f"the runner passed {sorted(fit_params)} without a tag asking"
        self.classes_ = np.array(sorted(self.class_labels), dtype=object)
        counts = np.array([np.sum(np.asarray(y) == c) for c in self.classes_], dtype=float) + 1
        self.prior_ = counts / counts.sum()
        self.usage_ = {"requests": 99}
        self.fit_info_ = {"probed": True}
        self.artifacts_ = {"probed.txt": "x"}
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.tile(self.prior_, (len(X), 1))


class ReportingPrior(Prior):
    def run_report(self) -> MethodReport:
        return MethodReport(
            details={"prior": self.prior_.tolist()},
            usage={"requests": 7},
            artifacts={"prior.txt": str(self.prior_.tolist())},
        )


def _build(cfg: DictConfig, context: MethodContext) -> Prior:
    cls = ReportingPrior if cfg.params.get("report") else Prior
    return cls(class_labels=context.class_labels)


PLAIN = MethodKind(build=_build)
ZERO_SHOT = MethodKind(build=_build, tags=MethodTags(zero_shot=True))


def _overrides(kind: str, *extra: str) -> list[str]:
    return [
        "dataset=callcenter",
        "method=majority",
        f"method.kind='{__name__}:{kind}'",
        f"method.name={kind.lower()}",
        "seeds=[0]",
        "n_train=[0,16]",
        *extra,
    ]


def _records(cfg: DictConfig) -> dict[int, dict[str, Any]]:
    return {r["n_train"]: r for r in ResultsStore(cfg.results_dir).records()}


def test_zero_shot_comes_from_the_tags_not_from_attributes(compose_run: Compose) -> None:
    plain = compose_run(*_overrides("PLAIN"))
    run_job(plain)
    records = _records(plain)
    assert records[0]["status"] == "skipped" and "needs training rows" in records[0]["error"]
    assert records[16]["status"] == "ok"
    tagged = compose_run(*_overrides("ZERO_SHOT"))
    run_job(tagged)
    assert _records(tagged)[0]["status"] == "ok"
    assert _records(tagged)[0]["tags"]["zero_shot"] is True


def test_the_record_holds_what_run_report_says_and_nothing_probed(compose_run: Compose) -> None:
    silent = compose_run(*_overrides("PLAIN"))
    run_job(silent)
    record = _records(silent)[16]
    assert record["usage"]["requests"] == 0 and record["details"] == {}
    store = ResultsStore(silent.results_dir)
    assert not list((store.root).rglob("probed.txt"))

    reporting = compose_run(*_overrides("PLAIN", "+method.params.report=true"))
    run_job(reporting)
    (record,) = [
        r
        for r in ResultsStore(reporting.results_dir).records()
        if r["spec"]["method"]["params"].get("report") and r["n_train"] == 16
    ]
    assert record["usage"]["requests"] == 7
    assert len(record["details"]["prior"]) == 2
    assert list(Path(reporting.results_dir).rglob("prior.txt"))


def test_a_run_executes_from_its_spec_alone(compose_run: Compose, callcenter_task: Any) -> None:
    assert "cfg" not in inspect.signature(execute_run).parameters
    cfg = compose_run("dataset=callcenter", "method=llm_icl", "n_jobs=2", "split.max_test_rows=50")
    spec = specs_for(cfg)[0]
    assert isinstance(spec, RunSpec)
    assert spec.tags == method_kind("llm_icl").tags
    assert spec.n_jobs == 2 and spec.split.max_test_rows == 50
    assert spec.llm_config["n_threads"] == 2  # an in-process model follows n_jobs
    assert spec.serializer_config["name"] == cfg.serializer.name
    context = spec.context(callcenter_task)
    assert context == MethodContext.for_task(
        callcenter_task, 0, n_jobs=2, llm=spec.llm_config, serializer=spec.serializer_config
    )
    # Only what the tags ask for joins a run's identity: a classical run ignores the llm.
    classical = [
        compose_run("method=logreg", f"llm={name}")
        for name in ("local_gemma3_270m", "local_smollm2_135m")
    ]
    assert specs_for(classical[0])[0].run_id == specs_for(classical[1])[0].run_id
    assert specs_for(classical[0])[0].llm_config is None


@pytest.mark.parametrize(
    ("method", "override", "key"),
    [
        ("llm_icl", "method.params.max_shots=-1", "method.params.max_shots"),
        ("llm_icl", "method.params.queries_per_request=0", "method.params.queries_per_request"),
        ("llm_distill", "method.params.n_unlabelled=0", "method.params.n_unlabelled"),
        ("llm_codegen", "method.params.temperature=3.5", "method.params.temperature"),
        ("llm_codegen", "method.params.cv_folds=1", "method.params.cv_folds"),
        ("tabpfn", "method.params.n_estimators=0", "method.params.n_estimators"),
    ],
)
def test_numeric_parameters_are_checked_when_the_method_is_built(
    compose_run: Compose, callcenter_task: Any, method: str, override: str, key: str
) -> None:
    cfg = compose_run(f"method={method}", override)
    context = specs_for(cfg)[0].context(callcenter_task)
    with pytest.raises(InvalidParameterError, match=rf"{key}=.* must be"):
        build_method(cfg.method, context)


def test_a_range_says_what_is_allowed() -> None:
    shots = Range(low=0, allow_none=True)
    assert shots.problem("k", None) is None and shots.problem("k", 3) is None
    assert shots.problem("k", -1) == "k=-1 is out of range: it must be an integer >= 0 (or null)"
    assert "is not an integer" in shots.problem("k", 2.5)
    assert "is not an integer" in shots.problem("k", True)
    temperature = Range(low=0, high=2, integer=False)
    assert temperature.problem("t", 0.7) is None and temperature.problem("t", 1) is None
    assert "<= 2" in temperature.problem("t", 2.5)


METHOD_CONFIGS = sorted(path.stem for path in (CONF_DIR / "method").glob("*.yaml"))


def test_the_method_configs_cover_every_registered_kind(compose_run: Compose) -> None:
    kinds = {compose_run(f"method={name}").method.kind for name in METHOD_CONFIGS}
    assert kinds == set(METHODS.names())


def _comparable(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters with estimator-valued ones (a distillation teacher) as (type, parameters)."""
    return {
        key: (type(value), _comparable(value.get_params(deep=False)))
        if isinstance(value, BaseEstimator)
        else value
        for key, value in params.items()
    }


@pytest.mark.parametrize("method", METHOD_CONFIGS)
def test_every_method_follows_scikit_learns_parameter_rules(
    compose_run: Compose, callcenter_task: Any, method: str
) -> None:
    """Built from its default config as the runner builds it, every estimator stores its
    parameters as given, and get_params / set_params / clone round-trip them (TabArena's one
    test over every registered method)."""
    from sklearn.base import clone
    from sklearn.utils.estimator_checks import (
        check_get_params_invariance,
        check_no_attributes_set_in_init,
        check_set_params,
    )

    cfg = compose_run(f"method={method}")
    estimator = build_method(cfg.method, specs_for(cfg)[0].context(callcenter_task))
    check_no_attributes_set_in_init(method, estimator)
    check_get_params_invariance(method, estimator)
    check_set_params(method, clone(estimator))
    params = estimator.get_params(deep=False)
    copy = clone(estimator)
    assert _comparable(copy.get_params(deep=False)) == _comparable(params)
    assert _comparable(clone(estimator).set_params(**params).get_params(deep=False)) == (
        _comparable(params)
    )
    # A changed parameter is what get_params (and so fit and clone) sees afterwards.
    name = next(key for key, value in params.items() if isinstance(value, int | float | str))
    changed = 7 if isinstance(params[name], int | float) else f"{params[name]}-changed"
    copy.set_params(**{name: changed})
    assert copy.get_params()[name] == changed == clone(copy).get_params()[name]

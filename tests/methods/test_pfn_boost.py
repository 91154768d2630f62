"""PFN-Boost through TabPFN's real code path on the tiny random checkpoint the TabPFN tests use:
the training rows' margins are TabPFN's out-of-fold predictions, the test rows' those of a TabPFN
fitted on every training row; without weights the run is `unavailable` with TabPFN's guidance.
Nothing is downloaded; the random checkpoint's predictions mean nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig
from sklearn.model_selection import StratifiedKFold
from test_tabpfn import no_downloads, train_test, write_random_checkpoint  # noqa: F401

from bench.config import compose_config
from bench.data.dataset import Task
from bench.methods.base import MethodContext, build_method
from bench.methods.boost import prior_margin
from bench.methods.pfn_boost import PFNBoostClassifier
from bench.methods.tabpfn import MODEL_PATH_KEY, TabPFNMethod
from bench.results import ResultsStore
from bench.runner import run_job

pytest.importorskip("tabpfn")
Compose = Callable[..., DictConfig]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("pfn_boost") / "tiny-random.ckpt")


def pfn_boost_config(checkpoint: Path | str, *overrides: str) -> DictConfig:
    return compose_config(
        [
            "method=pfn_boost",
            f"method.params.model_path={checkpoint}",
            "method.params.n_estimators=1",
            "method.params.device=cpu",
            "method.params.score_folds=3",
            "method.params.cv_repeats=1",
            *overrides,
        ]
    ).method


def test_training_margins_are_tabpfns_out_of_fold_predictions(
    callcenter_task: Task, checkpoint: Path, method_context: Callable[..., MethodContext]
) -> None:
    X, y, X_test = train_test(callcenter_task, n_train=48, n_test=30)
    model = build_method(pfn_boost_config(checkpoint), method_context(callcenter_task))
    assert isinstance(model, PFNBoostClassifier)
    model.fit(X, y)
    info = model.fit_info_
    assert info["scores_from"] == "TabPFN out of fold (3 folds)"
    assert info["tabpfn"]["checkpoint"] == str(checkpoint)
    assert info["tabpfn"]["n_train_rows"] == 48  # the test rows' TabPFN saw every row
    assert set(info["cv_by_scale"]) == {"0.0", "0.3", "1.0", "3.0", "10.0", "inf"}
    # The recorded prior AUC is that of predictions by TabPFNs that never saw the row's label:
    # the same folds, refitted here by hand.
    codes = (y.to_numpy() == "yes").astype(int)
    X_reset = X.reset_index(drop=True)
    oof = np.zeros(len(X))
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    for train, held_out in folds.split(X_reset, codes):
        fold = TabPFNMethod(model_path=str(checkpoint), n_estimators=1, device="cpu")
        fold.fit(X_reset.iloc[train], y.to_numpy()[train])
        oof[held_out] = fold.predict_proba(X_reset.iloc[held_out])[:, 1]
    from sklearn.metrics import roc_auc_score

    assert info["prior_train_auc"] == pytest.approx(roc_auc_score(codes, oof))
    proba = model.predict_proba(X_test)
    assert proba.shape == (30, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    if info["scale"] == "inf":  # TabPFN alone: its own probabilities
        np.testing.assert_allclose(proba, model.tabpfn_.predict_proba(X_test), atol=1e-6)
    elif info["scale"] != 0.0:  # the trees start from TabPFN's margin on the test rows
        boosted = model.boosted_
        shifted = boosted.model.predict_proba(
            boosted.encoder.transform(X_test), prior_margin(model.tabpfn_.predict_proba(X_test))
        )
        np.testing.assert_allclose(proba, shifted)


def test_without_weights_pfn_boost_is_unavailable_with_tabpfns_guidance(
    compose_run: Compose, tmp_path: Path
) -> None:
    missing = tmp_path / "weights" / "tabpfn.ckpt"
    cfg = compose_run(
        "dataset=callcenter",
        "method=pfn_boost",
        f"method.params.model_path={missing}",
        "seeds=[0]",
        "n_train=[16]",
    )
    assert dict(run_job(cfg).executed) == {"unavailable": 1}
    (record,) = ResultsStore(cfg.results_dir).records()
    assert (record["method"], record["family"]) == ("pfn_boost", "tabpfn")
    assert MODEL_PATH_KEY in record["error"] and "hf download" in record["error"]


def test_runner_scores_pfn_boost_with_a_checkpoint(compose_run: Compose, checkpoint: Path) -> None:
    cfg = compose_run(
        "dataset=credit_data",
        "method=pfn_boost",
        f"method.params.model_path={checkpoint}",
        "method.params.n_estimators=1",
        "method.params.device=cpu",
        "method.params.cv_repeats=1",
        "seeds=[0]",
        "n_train=[32]",
        "split.max_test_rows=60",
    )
    assert dict(run_job(cfg).executed) == {"ok": 1}
    (record,) = ResultsStore(cfg.results_dir).records()
    details = record["details"]
    assert details["cv_folds"] >= 2 and details["scale"] in (0.0, 0.3, 1.0, 3.0, 10.0, "inf")
    assert 0.0 <= record["metrics"]["roc_auc"] <= 1.0
    assert record["usage"]["requests"] == 0  # no LLM

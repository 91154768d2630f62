"""TabPFN through its real code path, on a tiny randomly initialised checkpoint saved in TabPFN's
own format: fit, probabilities, categorical columns, subsampling above the row limit, and the
`unavailable` record when no checkpoint exists. Nothing is downloaded.

The checkpoint's weights are random: its predictions mean nothing and exist only to test.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig
from sklearn.base import clone

from bench.config import compose_config
from bench.data.dataset import Task
from bench.data.splits import make_split
from bench.errors import RunSkipped, RunUnavailable
from bench.methods.base import MethodContext, build_method
from bench.methods.tabpfn import (
    MODEL_PATH_KEY,
    TabPFNMethod,
    find_checkpoint,
    resolve_device,
    stratified_subsample,
)
from bench.results import ResultsStore
from bench.runner import run_job

tabpfn = pytest.importorskip("tabpfn")
torch = pytest.importorskip("torch")

Compose = Callable[..., DictConfig]
FAST = {"n_estimators": 2, "device": "cpu"}


def write_random_checkpoint(path: Path, seed: int = 0) -> Path:
    """A tiny TabPFN v2 classifier (emsize 32, 2 layers) with random weights, saved as TabPFN
    saves its checkpoints, so `TabPFNClassifier(model_path=path)` loads it like real weights."""
    from tabpfn.architectures import ARCHITECTURES

    architecture = ARCHITECTURES["tabpfn_v2"]
    config, _ = architecture.parse_config(
        {"emsize": 32, "nlayers": 2, "nhead": 2, "max_num_classes": 10}
    )
    model = architecture.get_architecture(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # TabPFN zero-initialises its output projections, which would make every prediction
        # uniform and hide whether the data reaches the model.
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    checkpoint = {
        "state_dict": model.state_dict(),
        "config": dataclasses.asdict(config),
        "architecture_name": "tabpfn_v2",
    }
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("tabpfn") / "tiny-random.ckpt")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """TabPFN downloads (and asks for a licence login) only for a checkpoint it cannot find;
    make that path fail the test instead of reaching the network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("TabPFN tried to download a checkpoint")

    monkeypatch.setattr(tabpfn.model_loading, "download_model", refuse)
    monkeypatch.setattr("tabpfn.browser_auth.ensure_license_accepted", refuse)


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TabPFN's cache directory pointed at an empty folder (as TABPFN_MODEL_CACHE_DIR would)."""
    from tabpfn.settings import settings

    cache = tmp_path / "tabpfn-cache"
    cache.mkdir()
    monkeypatch.setattr(settings.tabpfn, "model_cache_dir", cache)
    return cache


def train_test(task: Task, n_train: int, n_test: int = 60, seed: int = 0):
    """A training subset and test rows as the runner takes them."""
    split = make_split(task.y, task.name, seed)
    rows = split.subset(n_train, task.y).rows
    test = split.test_rows[:n_test]
    return task.X.iloc[rows], task.y.iloc[rows], task.X.iloc[test]


def tabpfn_config(**params: object) -> DictConfig:
    overrides = [f"method.params.{key}={'null' if v is None else v}" for key, v in params.items()]
    return compose_config(["method=tabpfn", *overrides]).method


def test_fits_and_predicts_valid_distributions_on_mixed_tables(
    mixed_task: Task, checkpoint: Path, method_context: Callable[..., MethodContext]
) -> None:
    X_train, y_train, X_test = train_test(mixed_task, n_train=120)
    assert X_train.isna().any().any()  # NaNs reach the method
    model = build_method(tabpfn_config(model_path=checkpoint, **FAST), method_context(mixed_task))
    assert isinstance(model, TabPFNMethod)
    assert model.fit(X_train, y_train) is model
    proba = model.predict_proba(X_test)

    assert list(model.classes_) == list(mixed_task.class_labels)
    assert proba.shape == (len(X_test), mixed_task.n_classes)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.ptp(proba[:, 0]) > 1e-4  # rows differ: the data reaches the (random) model
    np.testing.assert_array_equal(model.predict(X_test), model.classes_[proba.argmax(axis=1)])

    info = model.fit_info_
    assert info["checkpoint"] == str(checkpoint)
    assert info["device"] == "cpu"
    assert info["n_estimators"] == 2
    assert info["n_features"] == X_train.shape[1]
    assert (info["n_train_rows"], info["n_rows_used"], info["subsampled"]) == (120, 120, False)
    assert info["max_train_rows"] == 1000  # TabPFN's CPU limit for a v2 checkpoint
    assert info["ignore_pretraining_limits"] is False


def test_categorical_columns_are_encoded_and_declared_to_tabpfn(
    mixed_task: Task, checkpoint: Path
) -> None:
    X_train, y_train, X_test = train_test(mixed_task, n_train=150)
    categorical = [c for c in X_train.columns if X_train[c].dtype == object]
    assert categorical
    model = TabPFNMethod(model_path=str(checkpoint), **FAST).fit(X_train, y_train)

    assert model.categorical_features_ == categorical
    assert model.fit_info_["categorical_features"] == categorical
    positions = [list(X_train.columns).index(c) for c in categorical]
    assert model.model_.categorical_features_indices_ == positions
    schema = model.model_.inferred_feature_schema_.features
    assert {i for i, f in enumerate(schema) if f.modality.value == "categorical"} >= set(positions)

    encoded = model.encode(X_test)
    assert encoded.dtype == float
    for column, i in zip(categorical, positions, strict=True):
        # Ordinal codes; a missing category stays missing instead of becoming a code.
        np.testing.assert_array_equal(np.isnan(encoded[:, i]), X_test[column].isna().to_numpy())
        codes = encoded[~np.isnan(encoded[:, i]), i]
        assert np.array_equal(codes, np.round(codes)) and codes.min() >= 0


def test_unseen_categories_bools_and_pandas_categoricals(checkpoint: Path) -> None:
    rng = np.random.default_rng(1)
    n = 80
    X = pd.DataFrame(
        {
            "plan": pd.Series(rng.choice(["basic", "plus", None], n), dtype=object),
            "region": pd.Categorical(rng.choice(["north", "south"], n)),
            "promo": rng.choice([True, False], n),
            "spend": rng.normal(50, 10, n),
        }
    )
    y = np.where(X["spend"] > 50, "yes", "no")
    model = TabPFNMethod(model_path=str(checkpoint), **FAST).fit(X, y)
    assert model.categorical_features_ == ["plan", "region", "promo"]
    assert model.model_.categorical_features_indices_ == [0, 1, 2]

    new = X.head(4).copy()
    new["plan"] = ["platinum", "basic", None, "plus"]  # an unseen category, a missing one
    encoded = model.encode(new)
    assert np.isnan(encoded[0, 0]) and np.isnan(encoded[2, 0])
    assert not np.isnan(encoded[[1, 3], 0]).any()
    proba = model.predict_proba(new)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_training_rows_above_the_limit_are_subsampled_and_recorded(
    callcenter_task: Task, checkpoint: Path
) -> None:
    X_train, y_train, X_test = train_test(callcenter_task, n_train=150)
    model = TabPFNMethod(model_path=str(checkpoint), max_train_rows=60, **FAST)
    model.fit(X_train, y_train)
    info = model.fit_info_
    assert (info["n_train_rows"], info["n_rows_used"], info["subsampled"]) == (150, 60, True)
    assert info["max_train_rows"] == 60
    assert model.model_.n_train_samples_ == 60  # what TabPFN itself was given
    # Stratified: each class keeps its share of the rows, to within one row.
    counts = y_train.value_counts()
    used = np.asarray(model.model_.class_counts_)
    np.testing.assert_allclose(used, counts.sort_index().to_numpy() * 60 / 150, atol=1)

    again = clone(model).fit(X_train, y_train)  # same seed: same rows, same predictions
    np.testing.assert_allclose(again.predict_proba(X_test), model.predict_proba(X_test))


def test_default_limit_is_tabpfns_cpu_limit_and_an_explicit_one_lifts_it(
    callcenter_task: Task, checkpoint: Path
) -> None:
    X, y = callcenter_task.X.iloc[:1100], callcenter_task.y.iloc[:1100]
    params = {"model_path": str(checkpoint), "n_estimators": 1, "device": "cpu"}

    capped = TabPFNMethod(**params).fit(X, y)
    assert capped.fit_info_["n_rows_used"] == 1000  # TabPFN refuses > 1,000 rows on CPU
    assert capped.fit_info_["subsampled"] is True
    assert capped.fit_info_["ignore_pretraining_limits"] is False

    lifted = TabPFNMethod(max_train_rows=1100, **params).fit(X, y)
    assert lifted.fit_info_["n_rows_used"] == 1100
    assert lifted.fit_info_["subsampled"] is False
    assert lifted.fit_info_["ignore_pretraining_limits"] is True


def test_stratified_subsample_keeps_every_class() -> None:
    codes = np.array([0] * 500 + [1] * 97 + [2] * 3 + [3])
    rows = stratified_subsample(codes, 50, seed=3)
    assert len(rows) == 50 == len(np.unique(rows))
    assert np.all(np.diff(rows) > 0)
    assert set(np.unique(codes[rows])) == {0, 1, 2, 3}  # even the one-row class
    np.testing.assert_array_equal(rows, stratified_subsample(codes, 50, seed=3))
    assert not np.array_equal(rows, stratified_subsample(codes, 50, seed=4))
    shares = np.bincount(codes[rows]) / 50
    np.testing.assert_allclose(shares[:2], [500 / 601, 97 / 601], atol=0.05)
    # Many rare classes: each keeps its one row, the rest goes to the large class.
    rare = np.array([0] * 1000 + list(range(1, 10)))
    assert np.bincount(rare[stratified_subsample(rare, 10, seed=0)]).tolist() == [1] * 10


def test_too_many_features_or_classes_are_skipped(checkpoint: Path) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    with pytest.raises(RunSkipped, match=r"method\.params\.max_features"):
        TabPFNMethod(model_path=str(checkpoint), max_features=2, **FAST).fit(X, ["x", "y"] * 30)
    eleven = [f"class{i}" for i in range(11)]
    with pytest.raises(RunSkipped, match="11 classes"):
        TabPFNMethod(model_path=str(checkpoint), **FAST).fit(X.iloc[:55], eleven * 5)


def test_fit_leaves_torch_threads_and_the_environment_as_they_were(checkpoint: Path) -> None:
    X = pd.DataFrame({"x": np.arange(40.0)})
    threads, env = torch.get_num_threads(), dict(os.environ)
    model = TabPFNMethod(model_path=str(checkpoint), n_jobs=1, **FAST)
    model.fit(X, ["a", "b"] * 20).predict_proba(X)
    assert torch.get_num_threads() == threads
    assert dict(os.environ) == env


def test_a_missing_checkpoint_file_is_unavailable_with_instructions(tmp_path: Path) -> None:
    missing = tmp_path / "weights" / "tabpfn.ckpt"
    model = TabPFNMethod(model_path=str(missing), **FAST)
    with pytest.raises(RunUnavailable) as raised:
        model.fit(pd.DataFrame({"x": [1.0, 2.0]}), ["a", "b"])
    message = str(raised.value)
    assert MODEL_PATH_KEY in message
    assert str(missing) in message
    assert "hf download" in message and "hf auth login" in message
    assert "huggingface.co/Prior-Labs/" in message


def test_no_checkpoint_in_tabpfns_cache_is_unavailable(empty_cache: Path) -> None:
    with pytest.raises(RunUnavailable) as raised:
        find_checkpoint(None)
    message = str(raised.value)
    assert f"{MODEL_PATH_KEY} is null" in message
    assert str(empty_cache) in message  # the folder it searched, and where to put the weights
    assert f"--local-dir {empty_cache}" in message


def test_a_checkpoint_in_tabpfns_cache_or_a_folder_is_found(
    empty_cache: Path, checkpoint: Path, tmp_path: Path
) -> None:
    from tabpfn.model_loading import ModelSource

    name = ModelSource.get_classifier_v2().default_filename
    (empty_cache / name).write_bytes(checkpoint.read_bytes())
    assert find_checkpoint(None) == empty_cache / name
    model = TabPFNMethod(**FAST).fit(pd.DataFrame({"x": np.arange(20.0)}), ["a", "b"] * 10)
    assert model.fit_info_["checkpoint"] == str(empty_cache / name)

    folder = tmp_path / "mine"
    folder.mkdir()
    with pytest.raises(RunUnavailable, match="No TabPFN classifier checkpoint in the folder"):
        find_checkpoint(str(folder))
    (folder / name).write_bytes(checkpoint.read_bytes())
    assert find_checkpoint(str(folder)) == folder / name


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_devices_resolve_to_the_cpu_without_a_gpu() -> None:
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(RunUnavailable, match=r"method\.params\.device=cuda"):
        resolve_device("cuda")


def test_runner_records_unavailable_without_weights_and_the_sweep_goes_on(
    compose_run: Compose, empty_cache: Path
) -> None:
    cfg = compose_run("dataset=callcenter", "method=tabpfn", "seeds=[0]", "n_train=[16,64]")
    summary = run_job(cfg)
    assert dict(summary.executed) == {"unavailable": 2}
    for record in ResultsStore(cfg.results_dir).records():
        assert (record["method"], record["family"], record["status"]) == (
            "tabpfn",
            "tabpfn",
            "unavailable",
        )
        assert MODEL_PATH_KEY in record["error"]
        assert str(empty_cache) in record["error"]
        assert record["metrics"] == {}


def test_runner_scores_tabpfn_with_a_checkpoint(compose_run: Compose, checkpoint: Path) -> None:
    cfg = compose_run(
        "dataset=credit_data",
        "method=tabpfn",
        f"method.params.model_path={checkpoint}",
        "method.params.n_estimators=1",
        "method.params.device=cpu",
        "seeds=[0]",
        "n_train=[32]",
        "split.max_test_rows=100",
    )
    assert dict(run_job(cfg).executed) == {"ok": 1}
    (record,) = ResultsStore(cfg.results_dir).records()
    assert record["status"] == "ok", record["error"]
    assert record["details"]["checkpoint"] == str(checkpoint)
    assert record["details"]["n_rows_used"] == 32
    assert 0.0 <= record["metrics"]["roc_auc"] <= 1.0  # a random model: the value means nothing

"""TabPFN, Prior Labs' pretrained tabular transformer, on the task's raw DataFrame.

`TabPFNMethod` wraps `tabpfn.TabPFNClassifier` as a method estimator: string and categorical
columns are ordinal-encoded (missing stays NaN) and declared to TabPFN by position, training sets
above TabPFN's row limit are subsampled (stratified, recorded in ``fit_info_``), and the
ensemble size, device and checkpoint come from the method config.

TabPFN's weights are gated downloads, and a run never downloads anything: the checkpoint is
`method.params.model_path` (a file, or a folder holding one of TabPFN's classifier checkpoints)
or, when that is null, one of those checkpoints in TabPFN's own cache directory. When none is
found the run raises `RunUnavailable` (recorded as `unavailable`) with instructions, and a
sweep goes on. TabPFN only reaches the network to download a checkpoint it cannot find, so
handing it a path that exists is what keeps it offline; it is also told never to open a browser
for its licence login.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder, OrdinalEncoder
from sklearn.utils.validation import check_is_fitted

from bench.errors import RunSkipped, RunUnavailable
from bench.methods.base import MethodContext, MethodKind, MethodReport, Range, keep_params
from bench.paths import resolve_project_path

__all__ = [
    "MODEL_PATH_KEY",
    "TABPFN",
    "TabPFNMethod",
    "build_tabpfn",
    "classifier_checkpoint_names",
    "find_checkpoint",
    "resolve_device",
    "stratified_subsample",
]

MODEL_PATH_KEY = "method.params.model_path"
GATED_MODELS_DOC = "https://docs.priorlabs.ai/how-to-access-gated-models"
SETUP_HINT = (
    "install it with `scripts/setup.sh dev,tabpfn` (a CPU build of torch first; with a GPU, "
    "see the README section 'TabPFN')"
)
# Where each TabPFN version's classifier checkpoints are listed (tabpfn.model_loading.ModelSource).
_SOURCES = {
    "v3.5": "get_v3_5",
    "v3.5-fast": "get_v3_5_fast",
    "v3": "get_classifier_v3",
    "v2.6": "get_classifier_v2_6",
    "v2.5": "get_classifier_v2_5",
    "v2": "get_classifier_v2",
}


class TabPFNMethod(ClassifierMixin, BaseEstimator):
    """TabPFN on a mixed-type DataFrame with NaNs; probabilities follow ``classes_``.

    ``max_train_rows`` / ``max_features`` default (None) to the checkpoint's own limits, the
    row limit being TabPFN's CPU limit when running on the CPU. A larger explicit
    ``max_train_rows`` lifts TabPFN's limits (``ignore_pretraining_limits``). The example
    needs real weights at ``model_path``:

    >>> from bench.data.callcenter import generate_callcenter
    >>> frame = generate_callcenter(rows=300, seed=0)
    >>> X, y = frame.drop(columns=["resolved", "handle_time_s"]), frame["resolved"]
    >>> model = TabPFNMethod(model_path="weights/tabpfn-v2-classifier.ckpt", n_estimators=4)
    >>> model.fit(X, y).predict_proba(X).shape  # doctest: +SKIP
    (300, 2)
    >>> model.fit_info_["categorical_features"]  # doctest: +SKIP
    ['call_reason', 'channel']
    """

    def __init__(
        self,
        n_estimators: int | str = 8,
        model_path: str | None = None,
        max_train_rows: int | None = None,
        max_features: int | None = None,
        device: str = "auto",
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        keep_params(self, locals())

    def fit(self, X: pd.DataFrame, y: Any) -> TabPFNMethod:
        _require_tabpfn()
        checkpoint = find_checkpoint(self.model_path)
        device = resolve_device(self.device)
        from tabpfn import TabPFNClassifier, __version__

        X = pd.DataFrame(X)
        self._labels = LabelEncoder().fit(np.asarray(y, dtype=object))
        self.classes_ = self._labels.classes_
        codes = self._labels.transform(np.asarray(y, dtype=object))
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        categorical = [i for i, column in enumerate(X.columns) if _is_categorical(X[column])]
        self.categorical_features_ = [str(X.columns[i]) for i in categorical]
        self._encoder = _fit_encoder(X, categorical)

        model = TabPFNClassifier(
            model_path=str(checkpoint),
            device=device,
            n_estimators=self.n_estimators,
            categorical_features_indices=categorical or None,
            random_state=self.random_state,
            n_preprocessing_jobs=max(1, self.n_jobs),
        )
        with _tabpfn_session(self.n_jobs):
            limits = model.get_inference_config()  # loads the checkpoint: its limits
        rows, max_rows, lifted = self._rows_within_limits(codes, X.shape[1], limits, device)
        model.set_params(ignore_pretraining_limits=lifted)
        with _tabpfn_session(self.n_jobs):
            model.fit(self.encode(X.iloc[rows]), codes[rows])
        self.model_ = model
        self.fit_info_: dict[str, Any] = {
            "checkpoint": str(checkpoint),
            "checkpoint_bytes": checkpoint.stat().st_size,
            "tabpfn_version": __version__,
            "device": device,
            "n_estimators": int(model.n_estimators_),
            "n_features": int(X.shape[1]),
            "categorical_features": self.categorical_features_,
            "n_train_rows": len(X),
            "n_rows_used": len(rows),
            "subsampled": len(rows) < len(X),
            "max_train_rows": max_rows,
            "ignore_pretraining_limits": lifted,
        }
        return self

    def _rows_within_limits(
        self, codes: np.ndarray, n_features: int, limits: Any, device: str
    ) -> tuple[np.ndarray, int, bool]:
        """The training rows to use (all, or a stratified subsample above the row limit), that
        limit, and whether it or the feature limit goes beyond TabPFN's own."""
        row_limit = _tabpfn_row_limit(limits, device)
        feature_limit = int(limits.MAX_NUMBER_OF_FEATURES)
        max_rows = int(self.max_train_rows) if self.max_train_rows else row_limit
        max_features = int(self.max_features) if self.max_features else feature_limit
        if n_features > max_features:
            raise RunSkipped(
                f"{n_features} features exceed TabPFN's limit of {max_features} "
                f"(method.params.max_features; the checkpoint's own limit is {feature_limit})"
            )
        if len(self.classes_) > limits.MAX_NUMBER_OF_CLASSES:
            raise RunSkipped(
                f"{len(self.classes_)} classes exceed the {limits.MAX_NUMBER_OF_CLASSES} "
                "this TabPFN checkpoint supports"
            )
        rows = np.arange(len(codes))
        if len(codes) > max_rows:
            rows = stratified_subsample(codes, max_rows, self.random_state)
        # An explicit limit above TabPFN's own is the user's choice, not an error.
        return rows, max_rows, max_rows > row_limit or max_features > feature_limit

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = pd.DataFrame(X)[list(self.feature_names_in_)]
        with _tabpfn_session(self.n_jobs):
            proba = self.model_.predict_proba(self.encode(X))
        # TabPFN's columns follow the class codes it was fitted on; place them in classes_.
        full = np.zeros((len(X), len(self.classes_)))
        full[:, np.asarray(self.model_.classes_, dtype=int)] = proba
        return full

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def run_report(self) -> MethodReport:
        """Device, rows and features used, and any subsampling."""
        return MethodReport(details=dict(getattr(self, "fit_info_", {})))

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """The float matrix TabPFN sees: numeric columns as they are, categorical ones as
        category codes (unseen categories become missing); missing values stay NaN."""
        out = np.empty(X.shape, dtype=float)
        for i, column in enumerate(X.columns):
            if i not in self._encoder:
                out[:, i] = pd.to_numeric(X[column], errors="coerce").to_numpy(dtype=float)
        for i, encoder in self._encoder.items():
            out[:, i] = encoder.transform(_as_objects(X.iloc[:, [i]]))[:, 0]
        return out


def _is_categorical(column: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column)


def _as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    # pandas NA / None become NaN, which OrdinalEncoder keeps as missing.
    return frame.astype(object).where(frame.notna(), np.nan)


def _fit_encoder(X: pd.DataFrame, categorical: list[int]) -> dict[int, OrdinalEncoder]:
    """One OrdinalEncoder per categorical column; unseen categories at predict time are NaN."""
    return {
        i: OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
        ).fit(_as_objects(X.iloc[:, [i]]))
        for i in categorical
    }


def stratified_subsample(codes: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` sorted row positions that keep every class and, as closely as possible, its share.

    Deterministic for a given seed. Each class gets at least one row; the rest are shared out
    by largest remainder.
    """
    classes, counts = np.unique(codes, return_counts=True)
    if size < len(classes):
        raise ValueError(f"cannot keep {len(classes)} classes in {size} rows")
    exact = counts * size / counts.sum()
    quota = np.minimum(counts, np.maximum(1, np.floor(exact).astype(int)))
    while quota.sum() > size:  # the one-row floor for rare classes overshot: trim the largest
        quota[np.argmax(quota)] -= 1
    for i in np.argsort(quota - exact, kind="stable"):  # largest remainder first
        if quota.sum() == size:
            break
        quota[i] += min(counts[i] - quota[i], size - quota.sum())
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(codes == label), n, replace=False)
        for label, n in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picks))


def _tabpfn_row_limit(limits: Any, device: str) -> int:
    """TabPFN's training-row limit: the checkpoint's, and on the CPU its (lower) CPU limit."""
    from tabpfn.settings import settings

    rows = int(limits.MAX_NUMBER_OF_SAMPLES)
    if device.startswith("cpu") and not settings.tabpfn.allow_cpu_large_dataset:
        rows = min(rows, int(limits.MAX_CPU_SAMPLES))
    return rows


@contextmanager
def _tabpfn_session(n_threads: int) -> Iterator[None]:
    """Torch computes with `n_threads` threads, and TabPFN may never open a login browser.

    Both are restored afterwards: the thread count is process-wide, and parallel jobs that
    each took every core would oversubscribe the machine.
    """
    import torch

    threads = torch.get_num_threads()
    browser = os.environ.get("TABPFN_NO_BROWSER")
    torch.set_num_threads(max(1, n_threads))
    os.environ["TABPFN_NO_BROWSER"] = "1"
    try:
        with warnings.catch_warnings():
            # Said on every CPU fit above 200 rows; the run's device is in fit_info_.
            warnings.filterwarnings("ignore", message="Running on CPU with more than")
            yield
    finally:
        torch.set_num_threads(threads)
        if browser is None:
            os.environ.pop("TABPFN_NO_BROWSER", None)
        else:
            os.environ["TABPFN_NO_BROWSER"] = browser


def _require_tabpfn() -> None:
    try:
        import tabpfn  # noqa: F401
    except ImportError as error:
        raise RunUnavailable(
            f"The tabpfn package is not installed ({error}): {SETUP_HINT}."
        ) from error


def resolve_device(device: str) -> str:
    """`auto`: the GPU when torch sees one, else the CPU; an unusable GPU is unavailable."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RunUnavailable(
            f"method.params.device={device} but torch {torch.__version__} sees no CUDA GPU; "
            "use device=auto or cpu, or install a CUDA build of torch (README section 'TabPFN')."
        )
    return device


def classifier_checkpoint_names() -> list[str]:
    """TabPFN's classifier checkpoint file names, its default version's default first."""
    from tabpfn.model_loading import ModelSource
    from tabpfn.settings import settings

    default = settings.tabpfn.model_version.value
    versions = [default, *(v for v in _SOURCES if v != default)]
    sources = [getattr(ModelSource, _SOURCES[v])() for v in versions if v in _SOURCES]
    names = [source.default_filename for source in sources]
    names += [name for source in sources for name in source.filenames if name not in names]
    return names


def _default_source() -> tuple[str, str]:
    """(Hugging Face repository, file) of TabPFN's default classifier checkpoint."""
    from tabpfn.model_loading import ModelSource
    from tabpfn.settings import settings

    source = getattr(ModelSource, _SOURCES.get(settings.tabpfn.model_version.value, "get_v3_5"))()
    return source.repo_id, source.default_filename


def _search(folder: Path) -> Path | None:
    return next(
        (folder / name for name in classifier_checkpoint_names() if (folder / name).is_file()),
        None,
    )


def find_checkpoint(model_path: str | None) -> Path:
    """The checkpoint file to load, or `RunUnavailable` saying how to obtain one and where.

    `model_path` is a checkpoint file or a folder holding one of TabPFN's classifier
    checkpoints (relative paths are taken from the project root); None searches TabPFN's
    cache directory (``TABPFN_MODEL_CACHE_DIR`` or the platform's user cache).
    """
    from tabpfn.model_loading import get_cache_dir

    if model_path:
        path = resolve_project_path(model_path)
        if path.is_file():
            return path
        found = _search(path) if path.is_dir() else None
        if found:
            return found
        if path.is_dir():
            what, where, then = (
                f"No TabPFN classifier checkpoint in the folder {path}",
                path,
                "the folder is searched for it.",
            )
        else:
            what, where, then = (
                f"TabPFN checkpoint not found at {path}",
                path.parent,
                f"then set {MODEL_PATH_KEY} to the downloaded file.",
            )
        raise RunUnavailable(
            f"{what} ({MODEL_PATH_KEY}={model_path}). {_how_to_obtain(where, then)}"
        )
    cache = Path(get_cache_dir())
    found = _search(cache) if cache.is_dir() else None
    if found:
        return found
    raise RunUnavailable(
        f"No TabPFN weights: {MODEL_PATH_KEY} is null and TabPFN's cache directory {cache} "
        f"holds none of its classifier checkpoints (e.g. {classifier_checkpoint_names()[0]}). "
        + _how_to_obtain(
            cache,
            "TabPFN's cache folder is searched for it (TABPFN_MODEL_CACHE_DIR moves that folder), "
            f"or set {MODEL_PATH_KEY}=/path/to/checkpoint.",
        )
    )


def _how_to_obtain(folder: Path, then: str) -> str:
    repo, filename = _default_source()
    return (
        "TabPFN's weights are gated downloads, and a run never downloads them. To obtain them, "
        f"accept the model's terms at https://huggingface.co/{repo} (see {GATED_MODELS_DOC}), "
        "log in with `hf auth login` (or set HF_TOKEN) and run "
        f"`hf download {repo} {filename} --local-dir {folder}` (any TabPFN classifier "
        f"checkpoint works, e.g. one from Prior-Labs/TabPFN-v2-clf); {then} "
        "Unavailable runs are retried by the next bench-run."
    )


def build_tabpfn(cfg: DictConfig, context: MethodContext) -> TabPFNMethod:
    """METHODS registry entry for `kind: tabpfn`."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    return TabPFNMethod(
        n_estimators=params.get("n_estimators", 8),
        model_path=params.get("model_path"),
        max_train_rows=params.get("max_train_rows"),
        max_features=params.get("max_features"),
        device=params.get("device", "auto"),
        random_state=context.seed,
        n_jobs=context.n_jobs,
    )


TABPFN = MethodKind(
    build=build_tabpfn,
    param_ranges={
        "n_estimators": Range(low=1),
        "max_train_rows": Range(low=1, allow_none=True),
        "max_features": Range(low=1, allow_none=True),
    },
)

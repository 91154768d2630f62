"""A Task: one table with its target, typed and described features, and class names.

A dataset config (conf/dataset/NAME.yaml) names a *source* that returns a raw DataFrame;
`load_task` turns that frame into a Task: it drops identifier and leak columns, types every
feature (numeric as float, categorical as string with NaN for missing), maps raw target values
to class names and checks everything the card declares against the actual table.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bench.registry import SOURCES

__all__ = ["DatasetError", "FeatureSpec", "Task", "load_task"]

log = logging.getLogger("bench")

FEATURE_TYPES = ("numeric", "categorical")


class DatasetError(ValueError):
    """A dataset card and its data disagree, or the data cannot be had."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: str  # numeric | categorical
    description: str


@dataclass
class Task:
    """A loaded dataset: features `X`, string labels `y` and their metadata."""

    name: str
    description: str
    X: pd.DataFrame
    y: pd.Series
    features: tuple[FeatureSpec, ...]
    class_labels: tuple[str, ...]
    positive_label: str | None
    target: str
    dropped_leak_columns: tuple[str, ...] = ()
    rows_without_target: int = 0  # rows dropped because their target cell was empty or blank
    meta: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. attainable accuracy of a synthetic set

    @property
    def n_classes(self) -> int:
        return len(self.class_labels)

    @property
    def fingerprint(self) -> str:
        """A hash of the data itself, so a changed file or package version reruns its runs."""
        hashed = pd.util.hash_pandas_object(pd.concat([self.X, self.y], axis=1), index=True)
        return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


def load_task(cfg: DictConfig | dict) -> Task:
    """Load the dataset described by a dataset config into a validated Task."""
    if isinstance(cfg, dict):  # a plain dict gets the schema's defaults and key checks
        from bench.config import DatasetConfig

        cfg = OmegaConf.merge(OmegaConf.structured(DatasetConfig), cfg)
    loader = SOURCES.get(cfg.source, key="dataset.source")
    params = OmegaConf.to_container(cfg.params, resolve=True)
    frame, meta = loader(**params)
    where = meta.get("origin", f"source '{cfg.source}'")
    return _task_from_frame(cfg, frame, meta, where)


def _task_from_frame(cfg: DictConfig, frame: pd.DataFrame, meta: dict, where: str) -> Task:
    columns = list(frame.columns)
    if cfg.target not in frame.columns:
        raise DatasetError(
            f"Dataset '{cfg.name}': target column '{cfg.target}' (dataset.target) is not in "
            f"{where}. Columns there: {', '.join(map(str, columns))}."
        )
    declared = [*cfg.drop_columns, *cfg.leak_columns, *cfg.features.keys()]
    missing = [c for c in declared if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"Dataset '{cfg.name}': column(s) {', '.join(missing)} declared in the card are not "
            f"in {where}."
        )
    leaks = [] if cfg.keep_leak_columns else list(cfg.leak_columns)
    # A blank or whitespace cell is a missing label, not a class named " ".
    y_raw = frame[cfg.target].map(lambda v: None if isinstance(v, str) and not v.strip() else v)
    unlabelled = int(y_raw.isna().sum())
    if unlabelled:
        keep = y_raw.notna()
        frame, y_raw = frame.loc[keep], y_raw.loc[keep]
        log.warning(
            "Dataset '%s': dropped %d of %d row(s) whose target '%s' (dataset.target) is empty "
            "or blank in %s",
            cfg.name,
            unlabelled,
            len(keep),
            cfg.target,
            where,
        )
    X = frame.drop(columns=[cfg.target, *cfg.drop_columns, *leaks]).reset_index(drop=True)
    y = _class_names(y_raw, cfg).reset_index(drop=True)
    _refuse_target_copies(X, y, cfg, where)

    specs = []
    for column in X.columns:
        declared_cfg = cfg.features.get(column)
        kind = (declared_cfg.type if declared_cfg else None) or _infer_type(X[column])
        if kind not in FEATURE_TYPES:
            raise DatasetError(
                f"Dataset '{cfg.name}': feature '{column}' has type '{kind}' "
                f"(dataset.features.{column}.type); use one of {', '.join(FEATURE_TYPES)}."
            )
        X[column] = _coerce(X[column], kind, cfg.name)
        description = declared_cfg.description if declared_cfg else ""
        specs.append(FeatureSpec(str(column), kind, description or str(column)))

    class_labels = tuple(sorted(y.unique()))
    if not class_labels:  # checked first: "classes are ." would say nothing
        raise DatasetError(
            f"Dataset '{cfg.name}': no rows with a value of target '{cfg.target}' "
            f"(dataset.target) in {where}"
        )
    positive = cfg.positive_label
    if positive is not None and positive not in class_labels:
        raise DatasetError(
            f"Dataset '{cfg.name}': positive_label '{positive}' is not a class of target "
            f"'{cfg.target}' in {where}; classes are {', '.join(class_labels)}."
        )
    if len(class_labels) < 2:
        raise DatasetError(f"Dataset '{cfg.name}': target '{cfg.target}' has a single class.")
    return Task(
        name=cfg.name,
        description=cfg.description,
        X=X,
        y=y,
        features=tuple(specs),
        class_labels=class_labels,
        positive_label=positive,
        target=cfg.target,
        dropped_leak_columns=tuple(leaks),
        rows_without_target=unlabelled,
        meta={k: v for k, v in meta.items() if k != "origin"},
    )


def _refuse_target_copies(X: pd.DataFrame, y: pd.Series, cfg: DictConfig, where: str) -> None:
    """A feature that is the target under another name (equal values, or a one-to-one recoding
    such as 0/1 for no/yes) would hand every method the answer: refuse it, naming it."""
    if y.nunique() < 2:
        return  # no or one class: refused below with its own message
    copies = []
    for column in X.columns:
        values = X[column]
        if values.isna().any() or values.nunique() != y.nunique():
            continue
        pairs = pd.DataFrame({"feature": values.map(_value_text).to_numpy(), "y": y.to_numpy()})
        if (pairs.groupby("feature")["y"].nunique() == 1).all() and (
            pairs.groupby("y")["feature"].nunique() == 1
        ).all():
            copies.append(str(column))
    if copies:
        raise DatasetError(
            f"Dataset '{cfg.name}': column(s) {', '.join(copies)} in {where} hold the target "
            f"'{cfg.target}' itself (the same value, or a one-to-one recoding of it, in every "
            "row): a method would be handed the answer. Drop them (dataset.drop_columns) or, "
            "if they are known only after the outcome, declare them dataset.leak_columns."
        )


def _class_names(y_raw: pd.Series, cfg: DictConfig) -> pd.Series:
    """Target values as strings, renamed through `label_names` where the card gives names."""
    as_text = y_raw.map(_value_text)
    names = dict(cfg.label_names)
    return as_text.map(lambda v: names.get(v, v)).astype(object)


def _value_text(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _infer_type(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return "categorical"
    return "numeric"


def _coerce(column: pd.Series, kind: str, dataset: str) -> pd.Series:
    """Numeric features become float64; categorical ones strings (object) with NaN for missing."""
    if kind == "numeric":
        converted = pd.to_numeric(column, errors="coerce").astype("float64")
        bad = converted.isna() & column.notna()
        if bad.any():
            example = column[bad].iloc[0]
            raise DatasetError(
                f"Dataset '{dataset}': feature '{column.name}' is declared numeric but holds "
                f"non-numeric values such as {example!r}; declare it categorical."
            )
        return converted
    return column.map(lambda v: v if pd.isna(v) else _value_text(v)).astype(object)

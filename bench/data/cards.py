"""Human-readable dataset cards for `bench-data list` and `bench-data show NAME`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from bench.config import check_choice, compose_config, config_names
from bench.data.dataset import load_task
from bench.paths import CONF_DIR

__all__ = [
    "BrokenCardError",
    "dataset_listing",
    "describe_dataset",
    "list_datasets",
    "load_card",
]


class BrokenCardError(ValueError):
    """A dataset card that does not compose (a misspelt key, a wrong type): names its file."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"dataset card {path} does not load: {reason}")
        self.path, self.reason = path, reason


def load_card(name: str, conf_dir: Path = CONF_DIR) -> DictConfig:
    """The composed card conf/dataset/NAME.yaml, or BrokenCardError with its file and reason."""
    check_choice("dataset", name, conf_dir)
    try:
        return compose_config([f"dataset={name}"], conf_dir=conf_dir).dataset
    except Exception as error:  # Hydra's composition errors share no narrower base class
        raise BrokenCardError(conf_dir / "dataset" / f"{name}.yaml", _reason(error)) from error


def _reason(error: Exception) -> str:
    """Hydra's message on one line, without its reference_type/object_type noise."""
    lines = str(error).splitlines()
    kept = [
        line.strip()
        for line in lines
        if not line.strip().startswith(("reference_type", "object_type"))
    ]
    return " ".join(" ".join(kept).split())


def list_datasets(conf_dir: Path = CONF_DIR) -> str:
    """One line per dataset config: name, source, target, description. A card that does not
    compose (a misspelt key, say) is listed as broken, with its file and Hydra's reason, and
    the other cards are still listed."""
    return dataset_listing(conf_dir)[0]


def dataset_listing(conf_dir: Path = CONF_DIR) -> tuple[str, int]:
    """`list_datasets`'s text and how many cards are broken (bench-data list then exits 1)."""
    rows, broken = [], []
    for name in config_names("dataset", conf_dir):
        try:
            card = load_card(name, conf_dir)
        except BrokenCardError as error:  # one bad card must not hide the good ones
            broken.append(f"  {error.path}: {error.reason}")
            rows.append((name, "BROKEN", "-", "this card does not load; see below"))
            continue
        description = " ".join(card.description.split())
        short = description if len(description) <= 90 else description[:87] + "..."
        rows.append((name, card.source, card.target, short))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'name':<{width}}  {'source':<10}  {'target':<10}  description"]
    lines += [f"{n:<{width}}  {s:<10}  {t:<10}  {d}" for n, s, t, d in rows]
    if broken:
        lines += ["", f"{len(broken)} broken dataset card(s):", *broken]
    return "\n".join(lines), len(broken)


def describe_dataset(name: str, conf_dir: Path = CONF_DIR) -> str:
    """Rows, columns, types, missing rates, class balance and descriptions of one dataset."""
    card = load_card(name, conf_dir)
    task = load_task(card)
    balance = task.y.value_counts(normalize=True).reindex(task.class_labels)
    lines = [
        f"{task.name}: {' '.join(task.description.split())}",
        f"source: {card.source} {dict(card.params)}",
        f"rows: {len(task.X)}   features: {len(task.features)}   target: {task.target}",
        "classes: "
        + ", ".join(f"{label} {share:.1%}" for label, share in balance.items())
        + (f"   (positive: {task.positive_label})" if task.positive_label else ""),
    ]
    if task.rows_without_target:
        lines.append(
            f"rows dropped: {task.rows_without_target} (their target '{task.target}' is empty or "
            "blank)"
        )
    if task.dropped_leak_columns:
        lines.append(f"leak columns dropped: {', '.join(task.dropped_leak_columns)}")
    if "attainable_accuracy" in task.meta:
        lines.append(
            f"attainable accuracy (known by construction): {task.meta['attainable_accuracy']:.3f}"
        )
    table = pd.DataFrame(
        {
            "feature": [f.name for f in task.features],
            "type": [f.type for f in task.features],
            "missing": [f"{task.X[f.name].isna().mean():.1%}" for f in task.features],
            "example": [_example(task.X[f.name]) for f in task.features],
            "description": [f.description for f in task.features],
        }
    )
    lines += ["", _left_aligned(table)]
    return "\n".join(lines)


def _left_aligned(table: pd.DataFrame) -> str:
    widths = {c: max(len(c), *(len(str(v)) for v in table[c])) for c in table.columns}
    rows = [list(table.columns), *table.astype(str).to_numpy().tolist()]
    return "\n".join(
        "  ".join(str(v).ljust(widths[c]) for v, c in zip(row, table.columns, strict=True)).rstrip()
        for row in rows
    )


def _example(column: pd.Series) -> str:
    values = column.dropna()
    return "" if values.empty else str(values.iloc[0])[:20]

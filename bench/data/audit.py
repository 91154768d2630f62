"""Leak audit: columns that alone predict the target too well, or are named like an aftermath.

Why: a column recorded after the outcome (a call's duration, a ticket's resolution code) is
not known when a prediction is needed, yet it makes every method look better than it can be
in deployment. The card declares such columns (`leak_columns`, dropped by default); this audit
finds the ones nobody declared, and shows how much the declared ones would have leaked.

What: on the training pool of seed 0 only (never its test rows), every feature, declared leak
columns included, gets a univariate score: the cross-validated ROC AUC (macro one-vs-rest for
several classes) of a one-column model. A categorical column (and a numeric one cut into
quantile bins) is encoded by its smoothed class rates computed on the *other* folds, so a
many-level column cannot score by memorising rows; a numeric column also scores its value
itself, in either direction, and keeps the better of the two. The same score with the target
shuffled (`n_permutations` times) is the chance baseline: its 95th percentile and a p-value.

A column is flagged when (a) it alone nearly determines the target: AUC >= `AUC_FLAG` and
above chance (p <= 0.05); or (b) its name or card description says it is measured after the
outcome (`AFTER_OUTCOME_WORDS`, matched on whole words). Flagged columns the card does not
declare are the suggested `leak_columns`; `bench-run` warns when a run uses one (`warn_leaks`)
and the report lists them (bench/report/audits.py reads the JSON file `cached_audit` writes).

>>> from bench.data.cards import load_card
>>> report = audit_task(load_card("callcenter"))  # doctest: +SKIP
>>> report.suggested_leak_columns, report.declared_leak_columns  # doctest: +SKIP
([], ['handle_time_s'])
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from scipy.stats import rankdata

from bench.data.dataset import Task, load_task
from bench.data.splits import make_split

__all__ = [
    "AFTER_OUTCOME_WORDS",
    "AUC_FLAG",
    "AuditReport",
    "FeatureAudit",
    "audit_file",
    "audit_task",
    "cached_audit",
    "describe_audit",
    "score_features",
    "warn_leaks",
]

log = logging.getLogger("bench")

# Bump when the scores or rules change, so cached audits are recomputed.
AUDIT_VERSION = 1
# A single real predictor of a real outcome rarely orders >= 99% of (positive, negative) pairs
# correctly; a recoding of the label (or a column present only for one class) does. The
# strongest legitimate single columns of the bundled datasets stay below it: breast_cancer's
# `worst perimeter` (measured on the image the diagnosis is read from) 0.976, ISLR Default's
# `balance` 0.947, the rest <= 0.80. A leak that only shifts a column (callcenter's
# `handle_time_s`, AUC 0.78) scores like an honest predictor: its name catches it, not its AUC.
AUC_FLAG = 0.99
P_FLAG = 0.05
N_PERMUTATIONS = 40
# A larger pool is audited on a fixed random sample of this many rows (standard error of an
# AUC about 0.004): on experiment=seed_question's 50,000-row pool the AUCs moved by <= 0.006
# and the audit took 3.5 s instead of 8 s.
MAX_ROWS = 20_000
N_FOLDS = 5
N_BINS = 16  # quantile bins of a numeric column for the rate encoding
SMOOTHING = 10.0  # pseudo-rows of the prior class rates in each level's rate
# Whole words (in snake_case or CamelCase names, and in descriptions) that say a column is
# known only after the outcome.
AFTER_OUTCOME_WORDS = (
    "duration",
    "outcome",
    "outcomes",
    "result",
    "results",
    "resolved",
    "resolution",
    "disposition",
    "after",
    "post",
    "handle time",
    "handling time",
    "wrap up",
    "wrapup",
)
# In free-text descriptions "after"/"post" are too common ("balance after the monthly
# payment"): only these phrases count there.
AFTER_OUTCOME_PHRASES = (
    r"(?:measured|recorded|known|logged|computed|available) (?:only )?after",
    r"after the (?:call|contact|outcome|event|decision|visit|fact|conversation) (?:ended|ends)",
    r"after the (?:outcome|fact|decision)",
    r"post[- ](?:call|contact|outcome|event|decision|visit|hoc)",
    r"depends on the (?:outcome|result|label|target)",
)
DESCRIPTION_WORDS = tuple(w for w in AFTER_OUTCOME_WORDS if w not in ("after", "post"))


@dataclass(frozen=True)
class FeatureAudit:
    """One column's audit: its univariate AUC, the chance baseline, and why it is flagged."""

    name: str
    type: str  # numeric | categorical
    auc: float  # cross-validated univariate ROC AUC (macro one-vs-rest for several classes)
    chance_p95: float  # 95th percentile of the AUC with the target shuffled
    p_value: float  # share of shuffles scoring at least `auc` (with the observed one counted)
    declared: bool  # in the card's leak_columns
    used: bool  # a feature of runs (declared leaks are dropped unless keep_leak_columns)
    reasons: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        if self.declared:
            return "declared leak (kept!)" if self.used else "declared leak (dropped)"
        return "FLAGGED" if self.reasons else "ok"


@dataclass(frozen=True)
class AuditReport:
    """The leak audit of one dataset, as `bench-data audit` prints it and the report shows it."""

    dataset: str
    target: str
    config_hash: str  # the dataset and split settings audited (see `audit_key`)
    data_fingerprint: str  # Task.fingerprint of the features runs see: a changed file reruns
    pool_rows: int  # rows audited: the training pool, or a sample of MAX_ROWS of it
    pool_size: int
    n_permutations: int
    seconds: float
    rows: tuple[FeatureAudit, ...]

    @property
    def flagged(self) -> list[FeatureAudit]:
        """Columns with a reason that the card does not declare."""
        return [row for row in self.rows if row.reasons and not row.declared]

    @property
    def suggested_leak_columns(self) -> list[str]:
        return [row.name for row in self.flagged]

    @property
    def declared_leak_columns(self) -> list[str]:
        return [row.name for row in self.rows if row.declared]

    def fix(self) -> str:
        """The card's leak_columns with the suggested ones added (an override keeps both)."""
        return f"[{','.join([*self.declared_leak_columns, *self.suggested_leak_columns])}]"

    def to_json(self) -> str:
        payload = {
            "kind": "leaks",
            "version": AUDIT_VERSION,
            **asdict(self),
            "suggested_leak_columns": self.suggested_leak_columns,
            "declared_leak_columns": self.declared_leak_columns,
        }
        return json.dumps(payload, indent=1, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> AuditReport:
        data = json.loads(text)
        rows = tuple(
            FeatureAudit(**{**row, "reasons": tuple(row["reasons"])}) for row in data["rows"]
        )
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k != "rows"}
        return cls(**fields, rows=rows)

    def table(self) -> str:
        """A plain-text table, strongest column first, and the suggestion."""
        head = ("feature", "type", "AUC", "chance95", "p", "status", "reason")
        body = [
            (
                r.name,
                r.type,
                f"{r.auc:.3f}",
                f"{r.chance_p95:.3f}",
                f"{r.p_value:.3f}",
                r.status,
                "; ".join(r.reasons),
            )
            for r in sorted(self.rows, key=lambda r: -r.auc)
        ]
        widths = [max(len(str(x)) for x in column) for column in zip(head, *body, strict=True)]
        sample = f"a sample of {self.pool_rows} of " if self.pool_rows < self.pool_size else ""
        lines = [
            f"leak audit of {self.dataset}: {len(self.rows)} column(s), target {self.target}, "
            f"{sample}{self.pool_size} training-pool rows of seed 0, {self.n_permutations} "
            f"shuffles ({self.seconds:.1f} s)",
            "",
            *(
                "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                for row in (head, *body)
            ),
            "",
        ]
        if self.suggested_leak_columns:
            lines.append(f"suggest: leak_columns: {self.fix()}")
        else:
            declared = ", ".join(self.declared_leak_columns)
            lines.append("no column flagged" + (f" (declared: {declared})" if declared else ""))
        return "\n".join(lines)


def audit_key(dataset: DictConfig, split: DictConfig | dict | None = None) -> str:
    """A hash of what the audit depends on: the dataset card, the test-set size, the rules."""
    split = split or {}
    payload = {
        "version": AUDIT_VERSION,
        "dataset": OmegaConf.to_container(dataset, resolve=True),
        "test_size": float(split.get("test_size", 0.2)),
        "max_test_rows": int(split.get("max_test_rows", 1000)),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def audit_task(
    dataset: DictConfig,
    split: DictConfig | dict | None = None,
    n_permutations: int = N_PERMUTATIONS,
) -> AuditReport:
    """Audit the dataset a card describes, its declared leak columns included."""
    started = time.perf_counter()
    split = split or {}
    kept = OmegaConf.merge(dataset, {"keep_leak_columns": True})
    task = load_task(kept)
    declared = set(dataset.leak_columns)
    used_by_runs = bool(dataset.keep_leak_columns)
    pool = np.sort(
        make_split(
            task.y,
            task.name,
            seed=0,
            test_size=float(split.get("test_size", 0.2)),
            max_test_rows=int(split.get("max_test_rows", 1000)),
        ).pool_order
    )
    audited = pool
    if len(pool) > MAX_ROWS:
        audited = np.sort(np.random.default_rng(0).choice(pool, MAX_ROWS, replace=False))
    rows = score_features(task, audited, declared, used_by_runs, n_permutations)
    seen = (
        task
        if used_by_runs
        else replace(task, X=task.X.drop(columns=sorted(declared), errors="ignore"))
    )
    return AuditReport(
        dataset=task.name,
        target=task.target,
        config_hash=audit_key(dataset, split),
        data_fingerprint=seen.fingerprint,
        pool_rows=len(audited),
        pool_size=len(pool),
        n_permutations=n_permutations,
        seconds=round(time.perf_counter() - started, 3),
        rows=rows,
    )


def score_features(
    task: Task,
    pool: np.ndarray,
    declared: set[str] | frozenset[str] = frozenset(),
    used_by_runs: bool = False,
    n_permutations: int = N_PERMUTATIONS,
) -> tuple[FeatureAudit, ...]:
    """Score and judge every feature of `task` on the rows `pool` alone (the training pool:
    nothing else, neither labels nor values, is read). `declared` are the card's leak columns,
    `used_by_runs` whether runs keep them (keep_leak_columns)."""
    y = task.y.iloc[pool].to_numpy()
    classes = np.asarray(task.class_labels, dtype=object)
    codes = np.searchsorted(classes, y)
    rng = np.random.default_rng(0)
    folds = rng.permutation(len(pool)) % N_FOLDS
    shuffled = np.stack([codes, *(rng.permutation(codes) for _ in range(n_permutations))])
    descriptions = {spec.name: spec.description for spec in task.features}
    rows = []
    for spec in task.features:
        column = task.X[spec.name].iloc[pool]
        scores = _univariate_auc(column, spec.type, shuffled, folds, len(classes))
        observed, chance = float(scores[0]), scores[1:]
        p_value = float((1 + np.sum(chance >= observed - 1e-12)) / (1 + len(chance)))
        p95 = float(np.quantile(chance, 0.95)) if len(chance) else float("nan")
        reasons = []
        if observed >= AUC_FLAG and p_value <= P_FLAG:
            reasons.append(f"alone predicts the target: AUC {observed:.3f}")
        word = _after_outcome_word(spec.name, descriptions.get(spec.name, ""))
        if word:
            reasons.append(f"{word} suggests it is measured after the outcome")
        is_declared = spec.name in declared
        rows.append(
            FeatureAudit(
                name=spec.name,
                type=spec.type,
                auc=observed,
                chance_p95=p95,
                p_value=p_value,
                declared=is_declared,
                used=used_by_runs or not is_declared,
                reasons=tuple(reasons),
            )
        )
    return tuple(rows)


def _univariate_auc(
    column: pd.Series, kind: str, targets: np.ndarray, folds: np.ndarray, n_classes: int
) -> np.ndarray:
    """The univariate AUC of `column` for each row of `targets` (class codes, one target per
    row: the real one first, then shuffles)."""
    levels = _levels(column, kind)
    scores = _rate_auc(levels, targets, folds, n_classes)
    values = column.to_numpy(dtype=float) if kind == "numeric" else None
    if values is not None and not np.isnan(values).all():
        filled = np.where(np.isnan(values), np.nanmedian(values), values)
        scores = np.maximum(scores, _value_auc(filled, targets, n_classes))
    return scores


def _levels(column: pd.Series, kind: str) -> np.ndarray:
    """Integer levels: categories, or quantile bins of a numeric column; missing has its own."""
    if kind != "numeric":
        return pd.factorize(column, use_na_sentinel=False)[0]
    values = column.to_numpy(dtype=float)
    present = ~np.isnan(values)
    if not present.any():
        return np.zeros(len(values), dtype=int)
    cuts = np.unique(np.quantile(values[present], np.linspace(0, 1, N_BINS + 1)[1:-1]))
    levels = np.searchsorted(cuts, values, side="right")
    levels[~present] = len(cuts) + 1
    return levels


def _rate_auc(
    levels: np.ndarray, targets: np.ndarray, folds: np.ndarray, n_classes: int
) -> np.ndarray:
    """AUC of out-of-fold smoothed class rates per level, for each target row."""
    n_targets = targets.shape[0]
    n_levels = int(levels.max()) + 1
    shape = (n_targets, N_FOLDS, n_levels, n_classes)
    flat = (
        np.arange(n_targets)[:, None] * (N_FOLDS * n_levels * n_classes)
        + (folds * n_levels * n_classes + levels * n_classes)[None, :]
        + targets
    )
    per_fold = np.bincount(flat.ravel(), minlength=int(np.prod(shape))).reshape(shape)
    total = per_fold.sum(axis=1, keepdims=True)
    other = (total - per_fold)[:, folds, levels, :]  # (targets, rows, classes): other folds
    class_other = (total.sum(axis=2) - per_fold.sum(axis=2))[:, folds, :]
    prior = class_other / class_other.sum(axis=2, keepdims=True)
    rates = (other + SMOOTHING * prior) / (other.sum(axis=2, keepdims=True) + SMOOTHING)
    return _macro_auc(lambda c: rates[:, :, c], targets, n_classes)


def _value_auc(values: np.ndarray, targets: np.ndarray, n_classes: int) -> np.ndarray:
    """AUC of the value itself, in whichever direction orders the classes better."""
    ranks = np.broadcast_to(rankdata(values), targets.shape)
    return _macro_auc(lambda c: ranks, targets, n_classes, either_direction=True)


def _macro_auc(
    score_of: Any, targets: np.ndarray, n_classes: int, either_direction: bool = False
) -> np.ndarray:
    """Mann-Whitney AUC of class c against the rest, averaged over classes (one class for a
    binary target: the two AUCs are equal)."""
    aucs = []
    for c in range(1 if n_classes == 2 else n_classes):
        positive = targets == c
        ranks = rankdata(score_of(c), axis=1)
        n_pos = positive.sum(axis=1)
        n_neg = positive.shape[1] - n_pos
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (np.sum(ranks * positive, axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        aucs.append(np.maximum(auc, 1 - auc) if either_direction else auc)
    return np.nanmean(np.stack(aucs), axis=0)


def _words(text: str) -> str:
    """`callDurationS` / `call_duration_s` / 'Call duration' -> ' call duration s '."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)
    return " " + " ".join(re.findall(r"[a-z0-9]+", spaced.lower())) + " "


def _after_outcome_word(name: str, description: str) -> str | None:
    """Where a column's name or description says it is measured after the outcome, or None."""
    in_name = _words(name)
    for word in AFTER_OUTCOME_WORDS:
        if f" {word} " in in_name:
            return f"name ('{word}')"
    in_text = _words(description)
    for word in DESCRIPTION_WORDS:
        if f" {word} " in in_text:
            return f"description ('{word}')"
    for phrase in AFTER_OUTCOME_PHRASES:
        found = re.search(rf"\b{phrase}\b", description, flags=re.IGNORECASE)
        if found:
            return f"description ('{found.group(0)}')"
    return None


def audit_file(results_dir: Path, dataset: str) -> Path:
    """Where a sweep keeps a dataset's audit, for its runs and its report."""
    return Path(results_dir) / "audits" / f"leaks__{dataset}.json"


def cached_audit(
    dataset: DictConfig, split: DictConfig | dict | None, results_dir: Path, fingerprint: str
) -> AuditReport:
    """The audit in `results_dir/audits/`, recomputed (and rewritten) only when the card, the
    split settings or the data changed: a sweep audits each dataset once, not once per job."""
    from bench.results import write_atomic

    path = audit_file(results_dir, dataset.name)
    key = audit_key(dataset, split)
    try:
        stored = AuditReport.from_json(path.read_text())
        if stored.config_hash == key and stored.data_fingerprint == fingerprint:
            return stored
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent, unreadable or from another version: recompute
    report = audit_task(dataset, split)
    try:
        write_atomic(path, report.to_json().encode())
    except OSError as error:  # the runs record their own storage problems
        log.debug("could not store the leak audit %s: %s", path, error)
    log.info("leak audit of %s: %.1f s, written to %s", report.dataset, report.seconds, path)
    return report


def warn_leaks(cfg: DictConfig, task: Task, results_dir: Path, label: str) -> None:
    """Log one warning when this job's features include a flagged, undeclared column."""
    try:
        report = cached_audit(cfg.dataset, cfg.get("split"), results_dir, task.fingerprint)
    except Exception as error:  # the audit is a courtesy: the runs go on without it
        log.warning("[%s] leak audit skipped: %s: %s", label, type(error).__name__, error)
        return
    features = set(task.X.columns)
    used = [row for row in report.flagged if row.name in features]
    if used:
        named = "; ".join(f"{row.name} ({', '.join(row.reasons)})" for row in used)
        log.warning(
            "[%s] possible leak: feature(s) %s. If known only after the outcome, drop them: "
            "dataset.leak_columns=%s (audit: %s)",
            label,
            named,
            report.fix(),
            audit_file(results_dir, report.dataset),
        )


def describe_audit(name: str, json_path: Path | None = None) -> str:
    """`bench-data audit NAME`: the audit table of conf/dataset/NAME.yaml; also as JSON."""
    from bench.config import compose_config
    from bench.data.cards import load_card

    card = load_card(name)
    report = audit_task(card, compose_config().split)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(report.to_json())
    return report.table()

"""A run's identity: everything that determines one run, resolved once from the configs.

A `RunSpec` is one (dataset, method, seed, n_train) of a job. Its `determinants` (the resolved
dataset, method and split configs, and the llm and serializer configs for methods that use
them) are hashed with the seed, the training size and `PROTOCOL_VERSION` into `run_id`, which
names the run's files in the results store: a rerun finds a finished run by it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.config import method_llm
from bench.data.dataset import Task
from bench.llm.identity import run_settings
from bench.methods.base import MethodContext, MethodTags, method_kind

__all__ = ["ADDED_DEFAULTS", "PROTOCOL_VERSION", "RunSpec", "SplitSettings", "specs_for"]

# Bump when a change to splitting or scoring makes old results incomparable; it is in every run id.
PROTOCOL_VERSION = 1
# Settings added after runs were stored, at the value that computes what those runs computed:
# left out of a run's id at that value, so adding a setting does not redo every stored run.
ADDED_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("serializer", "numbers"): "raw",
    ("method", "params", "explain_rows"): 0,
    ("llm", "max_invalid_share"): 0.2,
    # what runs stored before these settings computed: logprobs where the endpoint had them
    ("llm", "scoring"): "auto",
    ("llm", "scoring_samples"): 8,
    ("llm", "scoring_temperature"): 1.0,
}


@dataclass(frozen=True)
class SplitSettings:
    """The split configuration (conf: `split`)."""

    test_size: float = 0.2
    max_test_rows: int = 1000
    sampling: str = "stratified"
    min_per_class: int = 1


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run, resolved once from the configs: its identity in the
    store (`determinants`, hashed into `run_id`) and the settings it executes with. A run reads
    nothing else besides its task and split."""

    experiment: str
    dataset: str
    method: str
    family: str
    seed: int
    n_train: int | str  # as requested: an integer or "all"
    determinants: dict[str, Any]  # resolved dataset/method/split (and llm/serializer) configs
    llm: str | None = None
    serializer: str | None = None
    # How the run executes; resolved from the same configs, not part of its identity.
    tags: MethodTags = field(default_factory=MethodTags, compare=False)
    method_config: dict[str, Any] = field(default_factory=dict, compare=False)
    split: SplitSettings = field(default_factory=SplitSettings, compare=False)
    n_jobs: int = 1
    llm_config: dict[str, Any] | None = field(default=None, compare=False)
    serializer_config: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def run_id(self) -> str:
        payload = {
            "protocol": PROTOCOL_VERSION,
            "seed": self.seed,
            "n_train": self.n_train,
            **self.determinants,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def stem(self) -> str:
        return f"{self.dataset}__{self.method}__n{self.n_train}__s{self.seed}__{self.run_id}"

    @property
    def save_prompts(self) -> bool:
        """Whether the run keeps the prompts it sends (`llm.save_prompts`)."""
        return bool((self.llm_config or {}).get("save_prompts"))

    @property
    def n_unlabelled(self) -> int:
        """Unlabelled pool rows the method learns from (tag `wants_unlabelled`), else 0."""
        if not self.tags.wants_unlabelled:
            return 0
        return int(self.method_config.get("params", {}).get("n_unlabelled") or 0)

    def context(self, task: Task) -> MethodContext:
        return MethodContext.for_task(
            task,
            seed=self.seed,
            n_jobs=self.n_jobs,
            llm=self.llm_config,
            serializer=self.serializer_config,
        )


def specs_for(cfg: DictConfig) -> list[RunSpec]:
    """The runs one job is responsible for, in seed-major order, each resolved once."""
    tags = method_kind(cfg.method.kind).tags
    split = OmegaConf.to_container(cfg.split, resolve=True)
    method = OmegaConf.to_container(cfg.method, resolve=True)
    sizes = method.get("n_train") or list(cfg.n_train)
    if method.get("n_train") is None:
        method.pop("n_train", None)  # unpinned: the identity of existing runs is unchanged
    determinants: dict[str, Any] = {
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
        "method": method,
        "split": split,
    }
    llm = serializer = None
    if tags.uses_llm:
        llm = OmegaConf.to_container(method_llm(cfg), resolve=True)
        determinants["llm"] = run_settings(llm)  # the one identity rule: bench/llm/identity.py
        # An in-process model computes with `n_jobs` threads unless llm.n_threads says otherwise:
        # parallel jobs that each took every core would oversubscribe it, and llama.cpp's
        # spinning threads then slow down many times over.
        llm["n_threads"] = llm.get("n_threads") or cfg.n_jobs
    if tags.serializes_rows:
        serializer = OmegaConf.to_container(cfg.serializer, resolve=True)
        determinants["serializer"] = serializer
    if tags.prompt_version:
        determinants["prompt_version"] = tags.prompt_version
    determinants = _without_added_defaults(determinants)
    specs = [
        RunSpec(
            experiment=cfg.experiment_name,
            dataset=cfg.dataset.name,
            method=cfg.method.name,
            family=cfg.method.family,
            seed=int(seed),
            n_train=n if isinstance(n, str) else int(n),
            determinants=determinants,
            llm=llm["name"] if llm else None,
            serializer=serializer["name"] if serializer else None,
            tags=tags,
            method_config=method,
            split=SplitSettings(**split),
            n_jobs=int(cfg.n_jobs),
            llm_config=llm,
            serializer_config=serializer,
        )
        for seed in cfg.seeds
        for n in sizes
    ]
    # `seeds=[0,0]` or `n_train=[16,16]` names one run twice: execute it once.
    unique = {spec.stem: spec for spec in reversed(specs)}
    return [spec for spec in specs if unique.pop(spec.stem, None) is not None]


def _without_added_defaults(determinants: dict[str, Any]) -> dict[str, Any]:
    """`determinants` less the ADDED_DEFAULTS settings that are at their default (a copy)."""
    trimmed = copy.deepcopy(determinants)
    for path, default in ADDED_DEFAULTS.items():
        *parents, key = path
        node = trimmed
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node and node[key] == default:
            del node[key]
    return trimmed

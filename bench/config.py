"""Structured configs: the typed schema behind every YAML file under conf/.

The dataclasses are registered in Hydra's ConfigStore, so a misspelt key in a YAML file or on
the command line fails at composition time with the key's name instead of being ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from bench.paths import CONF_DIR, resolve_project_path
from bench.registry import UnknownNameError, unknown_name_message

__all__ = [
    "BenchConfig",
    "DatasetConfig",
    "FeatureConfig",
    "LLMConfig",
    "MethodConfig",
    "ReportConfig",
    "SerializerConfig",
    "SplitConfig",
    "check_choice",
    "compose_config",
    "config_names",
    "load_llm_config",
    "register_configs",
    "report_settings",
]


@dataclass
class FeatureConfig:
    type: str | None = None  # numeric | categorical; None: inferred from the column's dtype
    description: str = ""


@dataclass
class DatasetConfig:
    name: str = MISSING
    source: str = MISSING  # a key of bench.registry.SOURCES
    params: dict[str, Any] = field(
        default_factory=dict
    )  # source-specific (package, item, path, ...)
    description: str = ""
    target: str = MISSING
    positive_label: str | None = None  # class of interest for binary metrics
    label_names: dict[str, str] = field(default_factory=dict)  # raw target value -> class name
    drop_columns: list[str] = field(default_factory=list)  # identifiers, not features
    leak_columns: list[str] = field(default_factory=list)  # known only after the outcome
    keep_leak_columns: bool = False
    features: dict[str, FeatureConfig] = field(default_factory=dict)


@dataclass
class MethodConfig:
    name: str = MISSING
    # the report's grouping: classical | tabpfn | llm_icl | llm_codegen | llm_distill | llm_embed
    family: str = MISSING
    kind: str = MISSING  # a key of bench.registry.METHODS, or "module:attr"
    params: dict[str, Any] = field(default_factory=dict)
    tune: bool = False
    search: dict[str, Any] = field(default_factory=dict)  # parameter grid for the tuned variant
    # the llm config (conf/llm/NAME.yaml) this method always uses, whatever `llm=` says: e.g.
    # llm_codegen_local writes code with Qwen2.5-Coder-1.5B in a sweep whose other LLM methods
    # use Gemma. null: the sweep's `llm`.
    llm: str | None = None
    # the training sizes this method runs at, whatever `n_train` says: e.g. seed_question
    # distils from 1,000 labelled rows while the classical methods also train on all 50,000.
    # null: the sweep's `n_train`.
    n_train: list[Any] | None = None


@dataclass
class SplitConfig:
    test_size: float = 0.2  # fraction of rows held out for testing ...
    max_test_rows: int = 1000  # ... but never more than this many
    sampling: str = "stratified"  # stratified | balanced (as in TabLLM; bench.data.splits)
    min_per_class: int = 1  # a training subset with fewer rows of some class is skipped


@dataclass
class SerializerConfig:
    """How a table row is written into a prompt (bench/llm/serialize.py)."""

    name: str = MISSING
    format: str = "list"  # list | text | json | markdown | csv | html
    descriptions: bool = False  # add the column descriptions to the prompt (always for zero-shot)
    values_only: bool = False  # ablation: no column names
    permute_names: bool = False  # ablation: column names shuffled across columns
    shared_header: bool = False  # csv/markdown: one header for all rows instead of one per row
    precision: int = 4  # significant digits of numbers
    numbers: str = "raw"  # raw | rounded | binned | words (bins from the training rows only)
    missing: str = "missing"  # how a missing value is written


@dataclass
class PricesConfig:
    """USD per million tokens; local models may instead set a $/hour for the machine."""

    input_per_m: float = 0.0
    output_per_m: float = 0.0
    cached_input_per_m: float = 0.0
    usd_per_hour: float = 0.0  # charged per second of LLM wall time (self-hosted GPUs)


@dataclass
class LLMConfig:
    name: str = MISSING
    backend: str = MISSING  # llamacpp (in-process) | openai (any OpenAI-compatible endpoint)
    model: str = MISSING  # the model id sent to the endpoint, or a display name for local ones
    context_length: int = 8192  # the model's context window, in tokens
    prices: PricesConfig = field(default_factory=PricesConfig)
    cache: bool = True  # reuse identical requests from the SQLite request cache
    cache_path: str = "results/llm_cache.sqlite"  # relative to the project root
    # keep every prompt a run sends in artifacts/<run stem>/prompts.jsonl (llm/prompt_log.py);
    # not part of a run's id: a finished run is not redone to save its prompts
    save_prompts: bool = False
    # llamacpp only
    model_path: str | None = None  # a .gguf file, or "module:attr" naming a path or a function
    # runtime window: `auto` grows it to each request's need, up to context_length (memory is
    # spent only on prompts that need it); an integer fixes it (prompts beyond are skipped)
    n_ctx: Any = "auto"
    n_threads: int | None = None  # bench-run: n_jobs; bench-llm and scripts: every core
    # openai only (`api` also applies to llamacpp: chat = the GGUF's chat template)
    base_url: str | None = None
    api: str = "chat"  # chat | completions (which endpoint prompts and scoring use)
    api_key_env: str | None = None  # NAME of the variable holding the key, never the key
    max_concurrency: int = 8
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0  # first retry delay; doubles each attempt unless Retry-After says
    backoff_max_s: float = 60.0
    # after this many requests in a row fail to reach the endpoint (after their retries), no
    # more are sent and the sweep's remaining runs on it fail at once (bench/endpoint.py);
    # 0 = never give up
    max_consecutive_failures: int = 3
    top_logprobs: int = 20
    # the largest share of a run's answers that may not name a class (scored as a uniform
    # guess); above it the run is failed, with the count and an example answer
    max_invalid_share: float = 0.2
    # how a class probability is read (bench/llm/scoring.py): logprobs (next-token
    # log-probabilities), verbalized (the answer and a 0-100 probability, parsed), sampled
    # (`scoring_samples` seeded answers at `scoring_temperature`, smoothed frequencies), or
    # auto: logprobs where the endpoint returns them, else verbalized
    scoring: str = "auto"
    scoring_samples: int = 8
    scoring_temperature: float = 1.0
    # USD this sweep may spend on this endpoint's uncached requests, shared by all its jobs and
    # workers (bench/llm/budget.py); a request that would cross it is not sent. None = no cap
    budget_usd: float | None = None
    # answer only from the request cache (a published bundle's): no endpoint is contacted and
    # no model loaded; a request the cache lacks fails the run, naming it
    replay: bool = False


@dataclass
class ReportConfig:
    """How the report decides (`report.*` on the command line; `report=false` writes none)."""

    metric: str = "auto"  # roc_auc for binary tasks, else accuracy; or any name in METRICS
    # "rows": paired comparisons from the stored per-row predictions, seeds and test rows both
    # in the interval; "seeds": the paired t-interval over seeds only (needs more seeds).
    stats: str = "rows"
    # How much worse than the best classical method still counts as good enough, in the
    # metric's units (AUC points, log-loss nats); None = 0.02 for every metric.
    margin: float | None = None
    daily_predictions: int = 10_000_000  # the volume at which cost per day is shown
    usd_per_cpu_hour: float | None = None  # prices compute seconds (classical, sandbox, local)

    def problems(self) -> list[str]:
        """What is wrong with these settings, each naming its key (empty when all is well)."""
        from bench.methods.base import Choice  # the allowed values, as preflight checks them

        found = []
        if (problem := Choice(REPORT_STATS).problem("report.stats", self.stats)) is not None:
            found.append(
                f"{problem} (rows: paired per-row intervals; seeds: the t-interval over seeds)"
            )
        if self.margin is not None and not (self.margin >= 0 and math.isfinite(self.margin)):
            found.append(f"report.margin={self.margin} must be a number >= 0 (metric units)")
        if self.daily_predictions <= 0:
            found.append(f"report.daily_predictions={self.daily_predictions} must be > 0")
        if self.usd_per_cpu_hour is not None and not self.usd_per_cpu_hour >= 0:
            found.append(f"report.usd_per_cpu_hour={self.usd_per_cpu_hour} must be >= 0")
        return found


REPORT_STATS = ("rows", "seeds")


def report_settings(node: Any) -> ReportConfig | None:
    """The report settings of a composed config's `report` (None for `report=false`)."""
    if node is None or node is False:
        return None
    if node is True:
        return ReportConfig()
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    return ReportConfig(**values)


@dataclass
class BenchConfig:
    experiment_name: str = "adhoc"
    dataset: DatasetConfig = MISSING
    method: MethodConfig = MISSING
    llm: LLMConfig = MISSING  # used only by the LLM families
    serializer: SerializerConfig = MISSING  # used only by the LLM families
    split: SplitConfig = field(default_factory=SplitConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    n_train: list[Any] = field(default_factory=lambda: [16, 64, 256, 1024])
    results_dir: str = "results/${experiment_name}"  # relative to the project root
    n_jobs: int = 1  # threads per model fit and in-process LLM; parallel jobs from the launcher
    # write PATH/report/ when bench-run finishes; `report=false` (a bool) writes none
    report: Any = field(default_factory=ReportConfig)
    # run the memorisation tests (bench/llm/memcheck/) once per (dataset, llm) of an LLM job,
    # into results_dir/audits/ (skipped when its JSON is there already)
    memcheck: bool = False
    # plan the sweep and print its LLM requests, tokens, USD and time (bench/dry_run.py);
    # nothing is sent and nothing is written to the store
    dry_run: bool = False


def register_configs() -> None:
    """Register the schema with Hydra. conf/config.yaml lists it first in its defaults, so every
    group file merged into `dataset`, `method`, ... is checked against the typed fields."""
    ConfigStore.instance().store(name="bench_schema", node=BenchConfig)
    # `${project_path:results/x}`: Hydra's own folders (logs) follow the same rule as every
    # path of the harness: relative to the project root, not the current directory.
    if not OmegaConf.has_resolver("project_path"):
        OmegaConf.register_new_resolver("project_path", lambda p: str(resolve_project_path(p)))


def config_names(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The option names of a config group (the YAML files in conf/GROUP/)."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_choice(group: str, name: str, conf_dir: Path = CONF_DIR) -> None:
    """Raise UnknownNameError (valid names, closest match) unless conf/GROUP/NAME.yaml exists."""
    valid = config_names(group, conf_dir)
    if name not in valid:
        raise UnknownNameError(unknown_name_message(group, name, valid, key=group))


def load_llm_config(name: str, key: str) -> DictConfig:
    """conf/llm/NAME.yaml checked against the schema; an unknown NAME names `key`."""
    valid = config_names("llm")
    if name not in valid:
        raise UnknownNameError(unknown_name_message("llm", name, valid, key=key))
    return OmegaConf.merge(
        OmegaConf.structured(LLMConfig), OmegaConf.load(CONF_DIR / "llm" / f"{name}.yaml")
    )


def method_llm(cfg: DictConfig) -> DictConfig:
    """The llm config a run's method uses: `method.llm`'s file if it names one (with the
    sweep's request-cache and prompt-saving settings, which are not the model's), else the
    sweep's `llm`."""
    name = cfg.method.get("llm")
    if not name:
        return cfg.llm
    own = load_llm_config(name, key="method.llm")
    for key in ("cache", "cache_path", "save_prompts"):
        own[key] = cfg.llm[key]
    return own


def compose_config(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> DictConfig:
    """The full config as `bench-run` would see it, for tools and tests (Hydra's compose API)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []))

"""Refuse a sweep whose settings can never work, before any job starts.

`bench-run` checks every job of the sweep it was asked for: the sweep is expanded once
(`bench.sweep.expand_jobs`, as Hydra's basic sweeper would), each job's config is composed, and
its values are checked: training sizes, seeds, `split.test_size`, the settings of `SETTINGS`
(numeric ranges and fixed choices such as `serializer.numbers` or `llm.api`), each method's
parameters against the `Range`s and `Choice`s its `MethodKind` declares, `method.llm`,
`llm.n_ctx` and the report's settings. A value that cannot work would otherwise give a permanent
`failed` record per run after the sweep started; here it is one message naming the key, the bad
value and the allowed ones, and nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.config import method_llm, report_settings
from bench.data.dataset import FEATURE_TYPES
from bench.data.splits import SAMPLINGS, resolve_n_train
from bench.llm.backend import BACKENDS, fixed_window
from bench.llm.budget import warn_unpriced_budget
from bench.llm.protocol import LLMConfigError
from bench.llm.replay import replay_problem
from bench.llm.scoring import SCORING_MODES
from bench.llm.serialize import FORMATS, NUMBER_FORMATS
from bench.methods.base import Choice, Range, method_kind
from bench.metrics import get_metric
from bench.paths import CONF_DIR, resolve_project_path
from bench.registry import SOURCES, UnknownNameError

__all__ = ["SETTINGS", "SweepPlan", "job_problems", "plan_sweep", "sweep_jobs", "sweep_problems"]

# The allowed values of the settings outside `method.params` (each method kind declares its own
# next to its builder), by config key (`*`: every key of that mapping); a key absent from a
# job's config is not checked.
SETTINGS: dict[str, Range | Choice] = {
    "n_jobs": Range(low=1),
    "split.max_test_rows": Range(low=1),
    "split.min_per_class": Range(low=0),
    "split.sampling": Choice(SAMPLINGS),
    "dataset.source": Choice(tuple(SOURCES.names()), imports=True),
    "dataset.features.*.type": Choice(FEATURE_TYPES, allow_none=True),
    "serializer.format": Choice(FORMATS),
    "serializer.numbers": Choice(NUMBER_FORMATS),
    "serializer.precision": Range(low=1),
    "llm.backend": Choice(tuple(BACKENDS), imports=True),
    "llm.api": Choice(("chat", "completions")),
    "llm.max_invalid_share": Range(low=0, high=1, integer=False),
    "llm.scoring": Choice(SCORING_MODES),
    "llm.scoring_samples": Range(low=1),
    "llm.scoring_temperature": Range(low=0, integer=False),
    "llm.budget_usd": Range(low=0, integer=False, allow_none=True),
}  # report.* is checked by ReportConfig.problems, which bench-report shares


def job_problems(cfg: DictConfig) -> list[str]:
    """What is wrong with one job's composed config (empty when nothing is)."""
    sizes = list(cfg.n_train) + list(cfg.method.get("n_train") or [])
    problems = [p for n in sizes if (p := _n_train_problem(n))]
    problems += [
        f"seeds: {seed!r} is not a seed (an integer >= 0)"
        for seed in cfg.seeds
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0
    ]
    if not 0 < float(cfg.split.test_size) < 1:
        problems.append(
            f"split.test_size={cfg.split.test_size} must be between 0 and 1 (exclusive)"
        )
    problems += _settings_problems(cfg)
    problems += _report_problems(cfg.get("report"))
    llm = None
    try:  # the model this job's method uses: `method.llm`'s, else the sweep's
        llm = method_llm(cfg)
        fixed_window(llm)
    except (UnknownNameError, LLMConfigError) as error:
        problems.append(str(error))
    else:
        if cfg.method.get("llm"):  # a pinned model's file is checked like the sweep's `llm`
            where = f" (conf/llm/{cfg.method.llm}.yaml, method.llm)"
            problems += _settings_problems(OmegaConf.create({"llm": llm}), where)
    try:
        kind = method_kind(cfg.method.kind)
    except Exception as error:  # an unknown or unimportable method.kind
        return [*problems, f"method.kind={cfg.method.kind!r}: {type(error).__name__}: {error}"]
    problems += kind.check_params(cfg.method.get("params"))
    if llm is not None and kind.tags.uses_llm:  # what only a run asking the LLM meets
        warn_unpriced_budget(llm)  # a warning: such a sweep runs, its budget stops nothing
        problems += [p for p in (replay_problem(llm),) if p is not None]
    return problems


def _settings_problems(cfg: DictConfig, where: str = "") -> list[str]:
    """`SETTINGS` checked on `cfg`; `where` says which file a key comes from, when not `cfg`."""
    problems = []
    for pattern, allowed in SETTINGS.items():
        for key in _keys(cfg, pattern):
            value = OmegaConf.select(cfg, key, default=_ABSENT)
            if value is _ABSENT or isinstance(value, DictConfig):  # not in this config
                continue
            if (problem := allowed.problem(key, value)) is not None:
                problems.append(problem + where)
    return problems


def _keys(cfg: DictConfig, pattern: str) -> list[str]:
    """The keys `pattern` names in `cfg`: a `*` stands for every key of the mapping there."""
    head, star, tail = pattern.partition(".*")
    if not star:
        return [pattern]
    node = OmegaConf.select(cfg, head, default=None)
    return [f"{head}.{name}{tail}" for name in node] if isinstance(node, DictConfig) else []


_ABSENT = object()


def _report_problems(node: Any) -> list[str]:
    """The report is written after the sweep: a bad report.* must not cost the sweep first."""
    try:
        settings = report_settings(node)
    except (TypeError, ValueError) as error:
        return [f"report: {error}"]
    problems = [] if settings is None else settings.problems()
    if settings is not None and settings.metric != "auto":
        try:
            get_metric(settings.metric, key="report.metric")
        except UnknownNameError as error:
            problems.append(str(error))
    return problems


def _n_train_problem(value: Any) -> str | None:
    """Why `value` is not a training size (as the split reads it), or None."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(value)
        resolve_n_train(value, pool_size=0)
    except ValueError:
        return f"n_train: {value!r} is not a row count (an integer >= 0, or 'all')"
    return None


def sweep_jobs(argv: list[str]) -> list[list[str]]:
    """The override list of every job `bench-run argv` would launch."""
    from hydra import initialize_config_dir

    from bench.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return _jobs(argv)


def _jobs(argv: list[str]) -> list[list[str]]:
    """`sweep_jobs` inside an initialized Hydra: the experiment's `hydra.sweeper.params` are
    read from the config that the first value of each comma list composes."""
    from hydra import compose

    from bench.sweep import expand_jobs

    args = [a for a in argv if not a.startswith("-")]
    master = compose(config_name="config", overrides=_job_level(args), return_hydra_config=True)
    return expand_jobs(master.hydra.sweeper.get("params") or {}, args)


def _job_level(args: list[str]) -> list[str]:
    """The overrides with a comma list reduced to its first value (enough to read the sweep)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for arg in args:
        override = parser.parse_override(arg)
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            out.append(f"{override.get_key_element()}={first}")
        else:
            out.append(arg)
    return out


def _why(error: BaseException) -> str:
    """Hydra's message and the reason under it: "Error merging override seeds=[x]" alone
    hides "Value 'x' of type 'str' could not be converted to Integer"."""
    text, cause = str(error), error.__cause__
    if cause is not None and str(cause).strip():
        first, *rest = str(cause).strip().splitlines()
        keys = [line.partition(":")[2].strip() for line in rest if "full_key:" in line]
        text += f": {first.strip()}" + (f" (key {keys[0]})" if keys and keys[0] else "")
    return text


@dataclass(frozen=True)
class SweepPlan:
    """What `bench-run argv` would do: its problems, or the runs it covers (their stems, and the
    family of each method, which the progress ETA uses) when all is well."""

    problems: list[str]
    run_stems: frozenset[str]
    families: dict[str, str] = field(default_factory=dict)  # method name -> family
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)  # stem -> (method, n_train)
    results_dirs: frozenset[Path] = frozenset()  # where its jobs store their runs


def sweep_problems(argv: list[str]) -> list[str]:
    """Problems of every job of the sweep, each said once."""
    return plan_sweep(argv).problems


def plan_sweep(argv: list[str]) -> SweepPlan:
    """Compose and check every job of the sweep; the runs it covers when all is well."""
    from hydra import compose, initialize_config_dir

    from bench.config import register_configs
    from bench.spec import specs_for

    register_configs()
    problems: list[str] = []
    stems: set[str] = set()
    families: dict[str, str] = {}
    runs: dict[str, tuple[str, str]] = {}
    results_dirs: set[Path] = set()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            jobs = _jobs(argv)
        except Exception as error:  # Hydra refuses the command line itself; say so, run nothing
            return SweepPlan([f"the command line does not compose: {_why(error)}"], frozenset())
        for job in jobs:
            overrides = [o for o in job if not o.partition("=")[0].lstrip("+~").startswith("hydra")]
            try:
                cfg = compose(config_name="config", overrides=overrides)
            except Exception as error:  # Hydra would refuse this job too, after others ran
                problems.append(f"the job {' '.join(job)} does not compose: {_why(error)}")
                continue
            found = job_problems(cfg)
            problems += [p for p in found if p not in problems]
            if not found:
                results_dirs.add(resolve_project_path(cfg.results_dir))
                for spec in specs_for(cfg):
                    stems.add(spec.stem)
                    families[spec.method] = spec.family
                    runs[spec.stem] = (spec.method, str(spec.n_train))
    return SweepPlan(problems, frozenset(stems), families, runs, frozenset(results_dirs))

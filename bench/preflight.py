"""Refuse a sweep whose settings can never work, before any job starts.

`bench-run` checks every job of the sweep it was asked for: the command line's comma lists and
an experiment's `hydra.sweeper.params` are expanded as Hydra's basic sweeper would, each job's
config is composed, and its values are checked (training sizes, seeds, split settings, n_jobs,
each method's numeric parameters against the ranges its `MethodKind` declares, `method.llm`
and `llm.n_ctx`). A value
that cannot work would otherwise give a permanent `failed` record per run after the sweep
started; here it is one message naming the key, and nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from bench.config import method_llm, report_settings
from bench.data.splits import SAMPLINGS
from bench.llm.backend import fixed_window
from bench.llm.protocol import LLMConfigError
from bench.methods.base import method_kind
from bench.metrics import get_metric
from bench.paths import CONF_DIR
from bench.registry import UnknownNameError

__all__ = ["SweepPlan", "job_problems", "plan_sweep", "sweep_jobs", "sweep_problems"]


def job_problems(cfg: DictConfig) -> list[str]:
    """What is wrong with one job's composed config (empty when nothing is)."""
    sizes = list(cfg.n_train) + list(cfg.method.get("n_train") or [])
    problems = [p for n in sizes if (p := _n_train_problem(n))]
    problems += [
        f"seeds: {seed!r} is not a seed (an integer >= 0)"
        for seed in cfg.seeds
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0
    ]
    split = cfg.split
    if not 0 < float(split.test_size) < 1:
        problems.append(f"split.test_size={split.test_size} must be between 0 and 1 (exclusive)")
    if int(split.max_test_rows) < 1:
        problems.append(f"split.max_test_rows={split.max_test_rows} must be >= 1")
    if split.sampling not in SAMPLINGS:
        problems.append(f"split.sampling={split.sampling!r} must be one of {', '.join(SAMPLINGS)}")
    if int(split.min_per_class) < 0:
        problems.append(f"split.min_per_class={split.min_per_class} must be >= 0")
    if int(cfg.n_jobs) < 1:
        problems.append(f"n_jobs={cfg.n_jobs} must be >= 1")
    problems += _report_problems(cfg.get("report"))
    try:  # the model this job's method uses: `method.llm`'s, else the sweep's
        fixed_window(method_llm(cfg))
    except (UnknownNameError, LLMConfigError) as error:
        problems.append(str(error))
    try:
        kind = method_kind(cfg.method.kind)
    except Exception as error:  # an unknown or unimportable method.kind
        return [*problems, f"method.kind={cfg.method.kind!r}: {type(error).__name__}: {error}"]
    return problems + kind.check_params(cfg.method.get("params"))


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
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return None
        try:
            value = int(value)
        except ValueError:
            return f"n_train: {value!r} is not a row count (an integer >= 0, or 'all')"
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
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
    from hydra import compose
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if not a.startswith("-")]
    master = compose(config_name="config", overrides=_job_level(args), return_hydra_config=True)
    params = master.hydra.sweeper.get("params") or {}
    # As Hydra's basic sweeper: the experiment's sweep params first, the command line wins.
    swept = [f"{key}={value}" for key, value in params.items()]
    given = {a.partition("=")[0].lstrip("+~") for a in args}
    merged = [s for s in swept if s.partition("=")[0] not in given] + args
    parser = OverridesParser.create()
    batches = BasicSweeper.split_arguments(parser.parse_overrides(merged), max_batch_size=None)
    return [job for batch in batches for job in batch]


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


@dataclass(frozen=True)
class SweepPlan:
    """What `bench-run argv` would do: its problems, or the stems of the runs it covers."""

    problems: list[str]
    run_stems: frozenset[str]


def sweep_problems(argv: list[str]) -> list[str]:
    """Problems of every job of the sweep, each said once."""
    return plan_sweep(argv).problems


def plan_sweep(argv: list[str]) -> SweepPlan:
    """Compose and check every job of the sweep; the run stems it covers when all is well."""
    from hydra import compose, initialize_config_dir

    from bench.config import register_configs
    from bench.runner import specs_for

    register_configs()
    problems: list[str] = []
    stems: set[str] = set()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            jobs = _jobs(argv)
        except Exception as error:  # Hydra refuses the command line itself; say so, run nothing
            return SweepPlan([f"the command line does not compose: {error}"], frozenset())
        for job in jobs:
            overrides = [o for o in job if not o.partition("=")[0].lstrip("+~").startswith("hydra")]
            try:
                cfg = compose(config_name="config", overrides=overrides)
            except Exception as error:  # Hydra would refuse this job too, after others ran
                problems.append(f"the job {' '.join(job)} does not compose: {error}")
                continue
            found = job_problems(cfg)
            problems += [p for p in found if p not in problems]
            if not found:
                stems.update(spec.stem for spec in specs_for(cfg))
    return SweepPlan(problems, frozenset(stems))

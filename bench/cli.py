"""Command-line entry points: bench-run (the Hydra app), bench-report, bench-data, bench-llm."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from bench.config import check_choice, config_names, register_configs
from bench.paths import CONF_DIR
from bench.registry import UnknownNameError

if TYPE_CHECKING:
    from bench.preflight import SweepPlan

__all__ = ["data_main", "llm_main", "report_main", "run_main"]

CHECKED_GROUPS = ("dataset", "method", "experiment", "llm", "serializer")
# bench-run's exit status (README "Nothing is lost or done twice"): 0 every run of this sweep ok
# or skipped, EXIT_RUNS_FAILED some run of this sweep failed, was unavailable or could not be
# stored (another sweep's records in the same folder never count), EXIT_REFUSED nothing ran (bad
# settings).
EXIT_RUNS_FAILED = 1
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it
EXIT_BROKEN_CARDS = 1  # bench-data list: some dataset card does not load
USAGE = """\
bench-run: run a sweep of datasets x methods x training sizes x seeds; every method is trained
and scored on the very same rows. Results go to results_dir (one file per run), then a report.

  bench-run [experiment=NAME] [dataset=NAME] [method=NAME] [llm=NAME] [serializer=NAME]
            [seeds=[0,1,2]] [n_train=[16,64,256]] [results_dir=PATH] [-m for comma lists]

  examples:
    bench-run experiment=quick                          the default sweep (./scripts/run.sh)
    bench-run dataset=callcenter method=lightgbm        one dataset, one method (results/adhoc)
    bench-run -m dataset=callcenter method=logreg,llm_icl n_train=[16,64]
    bench-run experiment=shots dry_run=true             what it would cost: runs, LLM requests,
                                                        tokens, USD and time; nothing is sent
  a hosted LLM (README "Your own model"):
    llm.budget_usd=5        stop the sweep's LLM runs before they spend more than $5
    llm.scoring=auto        how a probability is read: auto (logprobs where the endpoint
                            gives them, else verbalized), logprobs, verbalized or sampled
    llm.replay=true         answer only from the request cache (llm.cache_path); send nothing
  names:  bench-data list; ls conf/{dataset,method,llm,serializer,experiment}
  status: 0 every run of this sweep ok or skipped, 1 some failed, was unavailable or could
          not be stored, 2 refused settings or results_dir (nothing ran), 130/143 Ctrl-C/SIGTERM
  README: "Running sweeps" and "Nothing is lost or done twice".

Hydra's own options follow.
"""


def _check_group_overrides(argv: list[str]) -> None:
    """Fail fast, with the valid names and the closest one, on `method=xgbost` and the like.

    Hydra would also refuse an unknown option, but without a suggestion and, in a sweep, only
    after other jobs have started.
    """
    for arg in argv:
        key, sep, value = arg.partition("=")
        group = key.lstrip("+~")
        if not sep or group not in CHECKED_GROUPS or "(" in value:
            continue
        for name in filter(None, (v.strip() for v in value.split(","))):
            check_choice(group, name)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_run(cfg: DictConfig) -> None:
    from bench.job import run_job

    run_job(cfg)


def run_main() -> None:
    """`bench-run [experiment=NAME] [dataset=NAME] [method=NAME] [seeds=[..]] [n_train=[..]] ...`"""
    from bench.launchers import LauncherError, check_launcher
    from bench.ledger import NOT_STORED, mark_sweep
    from bench.lifeline import mark_parent
    from bench.preflight import SweepPlan, plan_sweep
    from bench.sweep import OUTCOME, finish_interrupted, use_plan

    argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)  # the harness's own usage first; Hydra's help follows
    try:
        _check_group_overrides(argv)
        check_launcher(argv)
        plan = SweepPlan([], frozenset()) if _asks_for_help(argv) else plan_sweep(argv)
    except (UnknownNameError, LauncherError) as error:
        print(f"bench-run: {error}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    if plan.problems:
        print("bench-run: nothing was run; these settings can never work:", file=sys.stderr)
        for problem in plan.problems:
            print(f"  - {problem}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    if not _asks_for_help(argv) and _dry_run(argv):  # nothing sent, nothing written
        sys.exit(0)
    _check_stores(plan)
    use_plan(plan)  # the one plan of this sweep, read by its summary and its progress
    register_configs()
    OUTCOME.clear()
    mark_parent()  # launcher workers watch this process and stop when it dies
    mark_sweep()  # its jobs note the runs they execute, so the summary claims only those
    # SIGTERM (a scheduler's or a user's `kill`) unwinds like Ctrl-C, so the run it interrupts
    # is recorded as failed instead of being left `running`.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        _hydra_run()
    except KeyboardInterrupt:  # the summary says what happened; no traceback after it
        finish_interrupted("interrupted by Ctrl-C")
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as stop:
        terminated = stop.code == 128 + signal.SIGTERM
        finish_interrupted("stopped by SIGTERM" if terminated else "see the error above")
        raise
    except BaseException:
        finish_interrupted()
        raise
    if any(OUTCOME.get(k) for k in ("failed", "unavailable", "missing", NOT_STORED)):
        sys.exit(EXIT_RUNS_FAILED)


def _dry_run(argv: list[str]) -> bool:
    """`dry_run=true`: print what the sweep would ask of its LLMs and cost (bench/dry_run.py)."""
    from bench.dry_run import describe_plans, dry_run_configs, plan_job

    configs = dry_run_configs(argv)
    if configs is None:
        return False
    print(describe_plans([plan_job(cfg) for cfg in configs]), flush=True)
    return True


def _check_stores(plan: SweepPlan) -> None:
    """Refuse, in one line, a results folder that cannot be written, before anything runs; a
    sweep there whose every run is already stored has nothing to do (exit 0)."""
    from bench.results import ResultsStore, write_problem

    for root in sorted(plan.results_dirs):
        problem = write_problem(root)
        if problem is None:
            continue
        if not (root / "runs").is_dir():
            _refuse_store(root, problem)
        store = ResultsStore(root)
        done = [s for s in plan.run_stems if (r := store.read(s)) is not None and r.done]
        if len(done) == len(plan.run_stems) and len(plan.results_dirs) == 1:
            print(
                "Nothing new to run: every run of this sweep is already in the results store.\n"
                f"({problem}: nothing was written, no report either.)\n"
                f"Results: {root}/runs  (python: bench.load_results('{root}'))"
            )
            sys.exit(0)
        _refuse_store(root, problem)


def _refuse_store(root: Path, problem: str) -> None:
    print(f"bench-run: nothing was run; results_dir: {problem}", file=sys.stderr)
    sys.exit(EXIT_REFUSED)


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _asks_for_help(argv: list[str]) -> bool:
    return any(a in ("-h", "--help", "--hydra-help", "--info", "-i", "--cfg", "-c") for a in argv)


# bench-report's options: one per field of ReportConfig (bench-run's `report.*`), whose default
# they take and whose `problems()` checks them, so both commands accept the same values.
REPORT_OPTIONS: dict[str, tuple[type, str]] = {
    "metric": (
        str,
        "metric for tables and curves (default: roc_auc for binary tasks, else accuracy)",
    ),
    "margin": (
        float,
        "good enough = at most this much worse than the best classical method, in the metric's "
        "units (default 0.02)",
    ),
    "stats": (
        str,
        "rows: paired intervals over test rows and seeds (default); seeds: t over seeds",
    ),
    "daily_predictions": (int, "volume for the cost per day (default {default:,})"),
    "usd_per_cpu_hour": (float, "price compute seconds in USD (default: show compute hours)"),
}


def report_main(argv: list[str] | None = None) -> None:
    """`bench-report PATH [--metric NAME] [--margin X] [--stats rows|seeds] ...`: the verdict,
    tables, learning curves and costs under PATH/report/."""
    from bench.config import ReportConfig
    from bench.report import write_report

    defaults = ReportConfig()
    parser = argparse.ArgumentParser(prog="bench-report", description=report_main.__doc__)
    parser.add_argument("path", type=Path, help="a results directory written by bench-run")
    for name, (kind, text) in REPORT_OPTIONS.items():
        default = getattr(defaults, name)
        option = "--" + name.replace("_", "-")
        parser.add_argument(option, type=kind, default=default, help=text.format(default=default))
    args = parser.parse_args(argv)
    settings = ReportConfig(**{name: getattr(args, name) for name in REPORT_OPTIONS})
    problems = settings.problems()
    if problems:  # named as the options given here, not as bench-run's report.* keys
        for problem in problems:
            text = re.sub(r"report\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), problem)
            print(f"bench-report: {text}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # SIGTERM unwinds, so the half-written new report is removed; the previous one stays whole.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        out = write_report(args.path, settings=settings)
    except (FileNotFoundError, ValueError, UnknownNameError) as error:
        print(f"bench-report: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:  # a read-only or full results folder: say where, keep the old one
        print(
            f"bench-report: cannot write the report to {args.path / 'report'}: "
            f"{error.strerror or error}; "
            "the previous report (if any) is unchanged",
            file=sys.stderr,
        )
        sys.exit(1)
    print(
        f"Report written to {out / 'report.html'} (one page) and {out / 'report.md'} "
        "(tables: *.md, *.tex; plots: *.png)"
    )


def data_main(argv: list[str] | None = None) -> None:
    """`bench-data list | show NAME | audit NAME [--json PATH]`: the configured datasets, their
    cards, and a leak audit (columns that alone predict the target, or are measured after it)."""
    from bench.data.audit import describe_audit
    from bench.data.cards import dataset_listing, describe_dataset

    parser = argparse.ArgumentParser(prog="bench-data", description=data_main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every dataset config under conf/dataset/")
    show = sub.add_parser("show", help="load one dataset and describe it")
    show.add_argument("name", help=f"one of: {', '.join(config_names('dataset'))}")
    audit = sub.add_parser("audit", help="flag columns that leak the target (seed-0 training pool)")
    audit.add_argument("name", help=f"one of: {', '.join(config_names('dataset'))}")
    audit.add_argument("--json", type=Path, help="also write the audit as JSON to this file")
    args = parser.parse_args(argv)
    try:
        if args.command == "audit":
            print(describe_audit(args.name, args.json))
        elif args.command == "list":
            text, broken = dataset_listing()
            print(text)
            if broken:  # the good cards are listed; scripts and CI still learn of the bad ones
                sys.exit(EXIT_BROKEN_CARDS)
        else:
            print(describe_dataset(args.name))
    except (UnknownNameError, ValueError) as error:
        print(f"bench-data: {error}", file=sys.stderr)
        sys.exit(2)


def llm_main(argv: list[str] | None = None) -> None:
    """`bench-llm check --llm NAME` | `bench-llm serve --llm NAME [--port P] [--embedding]` |
    `bench-llm memcheck --llm NAME --dataset NAME [--rows N] [--results PATH]`."""
    from bench.llm.tools import check_llm, memcheck_llm, serve_llm

    parser = argparse.ArgumentParser(prog="bench-llm", description=llm_main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="send one request and report model, latency, logprobs")
    serve = sub.add_parser("serve", help="serve a local model as an OpenAI-compatible endpoint")
    memcheck = sub.add_parser(
        "memcheck", help="test whether the model memorised a dataset's file (header, rows, values)"
    )
    for command in (check, serve, memcheck):
        command.add_argument("--llm", default="local_gemma3_270m", help="a config in conf/llm/")
        command.add_argument(
            "overrides", nargs="*", help="config overrides, e.g. llm.base_url=http://host:8000/v1"
        )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--embedding", action="store_true", help="serve /v1/embeddings (method=llm_embed)"
    )
    memcheck.add_argument("--dataset", required=True, help="a config in conf/dataset/")
    memcheck.add_argument(
        "--rows", type=int, default=25, help="row and feature completion trials (default 25)"
    )
    memcheck.add_argument(
        "--results",
        default="results/memcheck",
        help="results directory; the JSON goes to RESULTS/audits/ (default results/memcheck)",
    )
    args = parser.parse_args(argv)
    try:
        check_choice("llm", args.llm)
        if args.command == "memcheck":
            check_choice("dataset", args.dataset)
            if args.rows < 1:
                raise ValueError(f"--rows must be at least 1, got {args.rows}")
            sys.exit(memcheck_llm(args.llm, args.dataset, args.rows, args.results, args.overrides))
        if args.command == "check":
            sys.exit(check_llm(args.llm, args.overrides))
        serve_llm(args.llm, args.overrides, args.host, args.port, args.embedding)
    except (UnknownNameError, ValueError) as error:
        print(f"bench-llm: {error}", file=sys.stderr)
        sys.exit(2)

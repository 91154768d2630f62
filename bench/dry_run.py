"""`bench-run ... dry_run=true`: the sweep planned as it would run, its LLM requests counted.

The sweep's jobs and runs are resolved as bench-run resolves them (`sweep_jobs`, `specs_for`);
runs already done in the results store are left out, as the job would reuse them. Each other
LLM run executes its method's real fit and predict on the real split (`execute_run`) inside
`planning()`, where `make_backend`'s innermost backend is a `PlanningBackend`: it answers every
request neutrally (uniform class probabilities, an empty text, a fixed vector) and counts its
prompt tokens with the model's own tokenizer (the GGUF's; an endpoint's family's offline, else
an estimate: bench/llm/tokens.py), the prefix shared with the run's previous prompt (what a
prefix cache serves) and its completion tokens (a generation's `max_tokens`: an upper bound).
USD: `bench.llm.cost.priced` on `llm.prices`; time: `estimate_seconds`.

The request cache is read, never written: an answer it holds is returned and free
(`planning_backend` turns `llm.cache` off on make_backend's copy of the config, so no cache
wraps the planner to store its answers). Nothing is sent and nothing is written: no run
record, claim, `.sweep/` file, Hydra log folder or cache entry. Under `llm.replay` the run is
planned the same way (replay's own cache layer would open the file for writing): the answers
the cache holds are free, and each request it does not hold is noted, as it would fail the run.

Under `llm.scoring=auto` a score is counted as one logprob request: an endpoint that returns no
logprobs is asked verbalized instead, which `llm.scoring=verbalized` counts (the output says so).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.llm.protocol import (
    EmbedResult,
    GenerateResult,
    LLMBackend,
    Messages,
    OnResult,
    ScoreResult,
    Usage,
)
from bench.llm.requests import EmbedRequest, GenerateRequest, LLMRequest, ScoreRequest

__all__ = [
    "JobPlan",
    "LlmTally",
    "PlanningBackend",
    "RunPlan",
    "describe_plans",
    "dry_run_configs",
    "estimate_seconds",
    "plan_job",
    "planning",
    "planning_backend",
]

# In-process speed, measured on this project's 2-core machine with Gemma 3 270M Q4_K_M at one
# thread (prompt: llama.cpp eval of 2,000 table tokens; generation: 64 greedy tokens), scaled
# by a GGUF's size for other models and divided by llm.n_threads: an assumption, said so.
LOCAL_REFERENCE_BYTES = 253_113_024
LOCAL_PROMPT_S_PER_TOKEN = 0.0074
LOCAL_OUTPUT_S_PER_TOKEN = 0.080
# An endpoint's latency per request when its rate limits do not bind: an assumption, said so.
ENDPOINT_FIRST_TOKEN_S = 0.5
ENDPOINT_OUTPUT_TOKENS_PER_S = 80.0
# OpenAI caches a prompt's prefix from 1,024 tokens on, in steps of 128 tokens.
OPENAI_CACHE_MIN, OPENAI_CACHE_STEP = 1024, 128


@dataclass
class LlmTally:
    """What one llm config was asked in a dry run (one run, a job or the whole sweep)."""

    usage: Usage = field(default_factory=Usage)
    upper_bound: int = 0  # generations counted at their max_tokens
    tokens_for_limits: int = 0  # what a tokens-per-minute limiter reserves (prompt + max)
    seconds: float = 0.0  # in-process: the model's time; endpoints: see estimate_seconds
    scores: int = 0  # score requests counted (under llm.scoring=auto: as logprobs)

    def add(self, other: LlmTally) -> None:
        for name in ("usage", "upper_bound", "tokens_for_limits", "seconds", "scores"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class RunPlan:
    """The requests of one run being planned, by llm config name, and its configs."""

    tallies: dict[str, LlmTally] = field(default_factory=dict)
    configs: dict[str, DictConfig] = field(default_factory=dict)
    previous: dict[str, list[int]] = field(default_factory=dict)  # last prompt's tokens per llm


_ACTIVE: ContextVar[RunPlan | None] = ContextVar("bench_dry_run", default=None)


@contextlib.contextmanager
def planning(plan: RunPlan) -> Iterator[RunPlan]:
    """Inside this block every backend `make_backend` builds counts into `plan` instead of
    asking its model."""
    token = _ACTIVE.set(plan)
    try:
        yield plan
    finally:
        _ACTIVE.reset(token)


def planning_backend(cfg: DictConfig) -> LLMBackend | None:
    """The backend that counts a dry run's requests, or None outside a dry run."""
    plan = _ACTIVE.get()
    if plan is None:
        return None
    cache = ReadOnlyCache(cfg) if cfg.cache else None
    plan.configs.setdefault(cfg.name, cfg)
    return PlanningBackend(cfg, plan, cache)


_IDENTITIES: dict[tuple[str, str], dict[str, Any]] = {}  # by (llm settings, op), per process
_LEGACY: dict[tuple[str, str], dict[str, Any] | None] = {}  # the keys before they were portable


class ReadOnlyCache:
    """The request cache, read without writing (no -wal/-shm is created where there is none)."""

    def __init__(self, cfg: DictConfig) -> None:
        from bench.paths import resolve_project_path

        self.config = cfg
        self.path = resolve_project_path(cfg.cache_path)
        self._conn: sqlite3.Connection | None = None
        self._settings = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True)

    def get(self, request: LLMRequest) -> Any:
        """The cached answer to `request` as a hit, or None (under today's key, or the key it
        had before keys became portable: bench/llm/cache.py reads both)."""
        from bench.llm.cache import RequestCache, _restored
        from bench.llm.cache_key import legacy_llm_identity, llm_identity, request_part

        if not self.path.is_file():
            return None  # no cache yet: every request is paid
        known = (self._settings, request.op)  # an in-process model's file is hashed to name it
        if known not in _IDENTITIES:
            _IDENTITIES[known] = llm_identity(self.config, request.op)
            _LEGACY[known] = legacy_llm_identity(self.config, request.op)
        part = request_part(request)
        keys = [RequestCache.key(**_IDENTITIES[known], **part)]
        if _LEGACY[known] is not None:
            keys.append(RequestCache.key(**_LEGACY[known], **part))
        try:
            if self._conn is None:
                mode = "ro" if Path(f"{self.path}-wal").exists() else "ro&immutable=1"
                self._conn = sqlite3.connect(f"{self.path.as_uri()}?mode={mode}", uri=True)
            for key in keys:
                row = self._conn.execute(
                    "SELECT value FROM responses WHERE key = ?", (key,)
                ).fetchone()
                if row is not None:
                    return _restored(request.op, json.loads(row[0]))
        except sqlite3.Error:  # damaged, locked or foreign: plan the request as paid
            return None
        return None


class PlanningBackend:
    """Answers every request neutrally and counts it into the run's `RunPlan`."""

    def __init__(self, config: DictConfig, plan: RunPlan, cache: ReadOnlyCache | None) -> None:
        self.config = config
        self.plan = plan
        self.cache = cache
        self.local = config.backend == "llamacpp"
        self._model: Any = None  # the in-process backend, for its tokenizer only (no weights)
        self._labels: dict[str, int] = {}
        if self.local:
            from bench.llm.llamacpp_backend import LlamaCppBackend

            self._model = LlamaCppBackend(config)

    # -- the tokenizer ---------------------------------------------------------------------
    def _tokens(self, request: str | Messages, template: bool = True) -> list[int]:
        if self.local and template:
            return self._model.request_tokens(request)
        if self.local:
            return self._model.text_tokens(request)
        from bench.llm.tokens import token_counter

        chat = template and self.config.api == "chat"
        return token_counter(self.config.model).request_tokens(request, chat=chat)

    def _label_tokens(self, label: str) -> int:
        if label not in self._labels:  # a few labels, asked with every prompt
            self._labels[label] = len(self._tokens(label, template=False))
        return self._labels[label]

    def count_tokens(self, text: str) -> int:
        return self._model.count_tokens(text) if self.local else max(1, len(self._tokens(text)))

    def first_token(self, text: str) -> int | None:
        return self._model.first_token(text) if self.local else None  # as the real backends

    # -- requests --------------------------------------------------------------------------
    def score(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None = None
    ) -> list[ScoreResult]:
        def answer(request: ScoreRequest) -> ScoreResult:
            longest = max(len(label) for label in request.labels)
            # in-process: each label's tokens are read from logits, not generated; an endpoint
            # generates up to longest // 3 + 1 tokens (bench/llm/openai_backend.py)
            completion = 0 if self.local else max(1, longest // 3 + 1)
            labels = max(map(self._label_tokens, request.labels)) if self.local else 0
            usage = self._count(request.prompt, completion, extra=labels)
            self._tally().scores += 1
            uniform = 1.0 / len(request.labels)
            return ScoreResult({lb: uniform for lb in request.labels}, "logprobs", usage=usage)

        return self._each(requests, answer, on_result)

    def generate(
        self, requests: Sequence[GenerateRequest], on_result: OnResult | None = None
    ) -> list[GenerateResult]:
        def answer(request: GenerateRequest) -> GenerateResult:
            usage = self._count(request.messages or request.prompt, request.max_tokens)
            self._tally().upper_bound += 1
            return GenerateResult("", usage)

        return self._each(requests, answer, on_result)

    def embed(
        self, requests: Sequence[EmbedRequest], on_result: OnResult | None = None
    ) -> list[EmbedResult]:
        def answer(request: EmbedRequest) -> EmbedResult:
            usage = self._count(request.text, 0, template=False, shared=False)
            digest = hashlib.sha256(request.text.encode()).digest()
            vector = [b / 255.0 for b in digest[:16]]  # planned: only their count matters
            return EmbedResult(vector, usage)

        return self._each(requests, answer, on_result)

    def close(self) -> None: ...  # nothing is held

    def _each(
        self, requests: Sequence[Any], answer: Callable[[Any], Any], on_result: OnResult | None
    ) -> list[Any]:
        results = []
        for index, request in enumerate(requests):
            hit = self.cache.get(request) if self.cache is not None else None
            if hit is not None:
                self._tally().usage += hit.usage
            results.append(hit if hit is not None else answer(request))
            if on_result is not None:
                on_result(index, results[-1])
        return results

    def _tally(self) -> LlmTally:
        return self.plan.tallies.setdefault(self.config.name, LlmTally())

    def _count(
        self,
        prompt: str | Messages,
        completion: int,
        extra: int = 0,
        template: bool = True,
        shared: bool = True,
    ) -> Usage:
        """Count one request: its prompt tokens, the prefix it shares with the run's previous
        prompt to this llm, `completion` tokens; the run is skipped, as the real backend would
        skip it, when the request does not fit the model's window."""
        from bench.llm.backend import PromptTooLongError, context_limit
        from bench.llm.cost import priced
        from bench.llm.tokens import family_encoding

        tokens = self._tokens(prompt, template)
        limit = context_limit(self.config)
        needed = len(tokens) + max(completion, extra)
        if needed > limit:
            raise PromptTooLongError(needed, limit, self.config.name)
        previous = self.plan.previous.get(self.config.name, [])
        cached = _shared_prefix(previous, tokens) if shared else 0
        if shared:
            self.plan.previous[self.config.name] = tokens
        if not self.local and family_encoding(str(self.config.model)):  # OpenAI's caching
            steps = cached // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP
            cached = steps if cached >= OPENAI_CACHE_MIN else 0
        seconds = self._seconds(len(tokens) - cached, completion)
        # llm.max_concurrency at once: each holds that share of the wall time (as in a real run)
        at_once = 1 if self.local else max(1, int(self.config.max_concurrency or 1))
        usage = Usage(
            requests=1,
            prompt_tokens=len(tokens),
            cached_tokens=cached,
            completion_tokens=completion,
            llm_seconds=seconds,
            llm_wall_seconds=seconds / at_once,
        )
        usage = priced(usage, self.config.prices)
        tally = self._tally()
        tally.usage += usage
        tally.tokens_for_limits += len(tokens) + completion
        tally.seconds += seconds
        return usage

    def _seconds(self, uncached: int, completion: int) -> float:
        if not self.local:
            return ENDPOINT_FIRST_TOKEN_S + completion / ENDPOINT_OUTPUT_TOKENS_PER_S
        size = _weights_bytes(str(self.config.model_path), self.config.name)
        scale = size / LOCAL_REFERENCE_BYTES / max(1, int(self.config.n_threads or 1))
        return scale * (uncached * LOCAL_PROMPT_S_PER_TOKEN + completion * LOCAL_OUTPUT_S_PER_TOKEN)


def _shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Leading tokens `b` shares with `a`; at least one token of `b` is always evaluated."""
    import numpy as np

    limit = min(len(a), len(b) - 1)
    if limit <= 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:limit]) != np.asarray(b[:limit]))
    return int(differ[0]) if differ.size else limit


@functools.cache
def _weights_bytes(model_path: str, name: str) -> int:
    """The size of an in-process model's GGUF file (resolved once per process)."""
    from bench.llm.weights import resolve_model_path

    return resolve_model_path(model_path, name).stat().st_size


def estimate_seconds(cfg: DictConfig, tally: LlmTally) -> float:
    """The time `tally`'s requests take: in-process, the model's own (one request at a time);
    at an endpoint, the longest of its latencies over `llm.max_concurrency` parallel requests,
    its requests at `llm.requests_per_minute` and its tokens at `llm.tokens_per_minute`."""
    if cfg.backend == "llamacpp":
        return tally.seconds
    bounds = [tally.seconds / max(1, int(cfg.max_concurrency or 1))]
    if cfg.requests_per_minute:
        bounds.append(60.0 * tally.usage.requests / cfg.requests_per_minute)
    if cfg.tokens_per_minute:
        bounds.append(60.0 * tally.tokens_for_limits / cfg.tokens_per_minute)
    return max(bounds)


# -- the sweep ------------------------------------------------------------------------------
@dataclass
class JobPlan:
    """One job of the sweep as the dry run found it."""

    label: str
    runs: int = 0  # runs this job would execute
    done: int = 0  # runs already in the store, left out
    notes: list[str] = field(default_factory=list)  # runs that would not finish, and why
    tallies: dict[str, LlmTally] = field(default_factory=dict)
    configs: dict[str, DictConfig] = field(default_factory=dict)

    def seconds(self) -> float:
        return sum(estimate_seconds(self.configs[n], t) for n, t in self.tallies.items())


def dry_run_configs(argv: list[str]) -> list[DictConfig] | None:
    """Every job's composed config when `bench-run argv` asks for a dry run, else None (only
    the first job is composed to tell)."""
    from hydra import compose, initialize_config_dir

    from bench.paths import CONF_DIR
    from bench.preflight import sweep_jobs

    jobs = [
        [o for o in job if not o.partition("=")[0].lstrip("+~").startswith("hydra")]
        for job in sweep_jobs(argv)
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        if not jobs or not compose(config_name="config", overrides=jobs[0]).get("dry_run"):
            return None
        return [compose(config_name="config", overrides=job) for job in jobs]


def plan_job(cfg: DictConfig) -> JobPlan:
    """The runs of one job that are not done yet, and what its LLM runs would ask."""
    from bench.data.dataset import load_task
    from bench.job import split_or_error
    from bench.paths import resolve_project_path
    from bench.results import ResultsStore
    from bench.runner import execute_run
    from bench.spec import specs_for

    store = ResultsStore(resolve_project_path(cfg.results_dir))
    job = JobPlan(f"{cfg.dataset.name} | {cfg.method.name}")
    specs = [(spec, store.read(spec.stem)) for spec in specs_for(cfg)]
    try:
        task = load_task(cfg.dataset) if any(s.tags.uses_llm for s, _ in specs) else None
    except Exception as error:  # the job would record its runs as failed; nothing to count
        job.notes.append(f"cannot load dataset '{cfg.dataset.name}': {error}")
        job.runs = sum(1 for _, existing in specs if not (existing and existing.done))
        return job
    fingerprint = task.fingerprint if task is not None else None
    splits: dict[int, Any] = {}
    for spec, existing in specs:
        same_data = fingerprint is None or existing is None
        same_data = same_data or existing.provenance.data_fingerprint == fingerprint
        if existing is not None and existing.done and same_data:  # the job would reuse it
            job.done += 1
            continue
        job.runs += 1
        if task is None or not spec.tags.uses_llm:
            continue
        if spec.seed not in splits:
            splits[spec.seed] = split_or_error(task, spec)
        where = f"seed={spec.seed} n_train={spec.n_train}"
        if isinstance(splits[spec.seed], Exception):
            job.notes.append(f"{where}: failed: {splits[spec.seed]}")
            continue
        replay = bool((spec.llm_config or {}).get("replay"))
        if replay:  # planned on the cache read-only, as without replay: nothing is written
            spec = replace(spec, llm_config={**spec.llm_config, "replay": False, "cache": True})
        with planning(RunPlan()) as run:
            record, _ = execute_run(spec, existing, task, splits[spec.seed])
        missing = sum(t.usage.requests for t in run.tallies.values())
        if replay and missing:  # replay answers only from the cache: each one fails the run
            job.notes.append(
                f"{where}: {missing} request(s) not in the request cache, which llm.replay=true "
                "answers only from: each fails the run"
            )
        for name, tally in run.tallies.items():
            job.tallies.setdefault(name, LlmTally()).add(tally)
            job.configs.setdefault(name, run.configs[name])
        # planned generations are empty, so a check on unreadable answers fails by design
        if record.status != "ok" and "UnreadableAnswersError" not in (record.traceback or ""):
            reason = (record.error or "").strip().splitlines()[:1]
            job.notes.append(f"{where}: {record.status}: {reason[0] if reason else ''}")
    return job


def describe_plans(jobs: Sequence[JobPlan]) -> str:
    """Per job and in total: runs, LLM requests, tokens, USD and time; then how each llm was
    counted, priced and timed, and the runs that would not finish (bench/dry_run_report.py)."""
    from bench.dry_run_report import describe_plans as describe

    return describe(jobs)

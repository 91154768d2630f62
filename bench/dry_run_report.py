"""What a dry run prints (`bench-run ... dry_run=true`, bench/dry_run.py): per job and in total
the runs, LLM requests, tokens, USD and time, then how each llm was counted, priced and timed,
what its estimate is of `llm.budget_usd`, and the runs that would not finish."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from bench.dry_run import (
    ENDPOINT_FIRST_TOKEN_S,
    ENDPOINT_OUTPUT_TOKENS_PER_S,
    LOCAL_OUTPUT_S_PER_TOKEN,
    LOCAL_PROMPT_S_PER_TOKEN,
    JobPlan,
    LlmTally,
)
from bench.llm.protocol import Usage

__all__ = ["COLUMNS", "describe_plans"]

COLUMNS = ("runs", "done", "requests", "cache hits", "prompt tok", "cacheable", "completion")


def describe_plans(jobs: Sequence[JobPlan]) -> str:
    """Per job and in total: runs, LLM requests, tokens, USD and time; then how each llm was
    counted, priced and timed, and the runs that would not finish."""
    total, configs = JobPlan("total"), {}
    for job in jobs:
        for name, tally in job.tallies.items():
            total.tallies.setdefault(name, LlmTally()).add(tally)
        configs.update(job.configs)
        total.runs, total.done = total.runs + job.runs, total.done + job.done
    width = max([len(job.label) for job in jobs] + [5])
    head = f"{'job':<{width}}" + "".join(f"{c:>12}" for c in COLUMNS) + f"{'USD':>11}{'time':>10}"
    rows = [_row(job, width, job.seconds()) for job in jobs]
    total_row = _row(total, width, sum(job.seconds() for job in jobs))
    lines = [
        f"Dry run of {len(jobs)} job(s): nothing was sent to any model and nothing was written.",
        "",
        head,
        *rows,
        "-" * len(head),
        total_row,
        "",
        *_legend(total, configs),
    ]
    notes = [f"  [{job.label}] {note}" for job in jobs for note in job.notes]
    if notes:
        lines += ["Runs that would not finish (their requests up to then are counted):", *notes]
    return "\n".join(lines)


def _row(job: JobPlan, width: int, seconds: float) -> str:
    u = sum((t.usage for t in job.tallies.values()), Usage())
    cells = (job.runs, job.done, u.requests, u.cache_hits, u.prompt_tokens, u.cached_tokens)
    cells += (u.completion_tokens,)
    numbers = "".join(f"{c:>12,}" for c in cells)
    return f"{job.label:<{width}}{numbers}{u.usd:>11.4f}{_clock(seconds):>10}"


def _legend(total: JobPlan, configs: dict[str, DictConfig]) -> list[str]:
    from bench.llm.tokens import token_counter

    lines = [
        "runs: to execute (done: already in the results store, left out); cacheable: prompt "
        "tokens a prefix cache would serve (billed at the cached-input price); cache hits: "
        "answers already in the request cache (free)."
    ]
    for name, tally in total.tallies.items():
        cfg, p = configs[name], configs[name].prices
        how = "the model's own tokenizer (its GGUF file)"
        if cfg.backend != "llamacpp":
            how = token_counter(str(cfg.model)).describe(str(cfg.model))
        lines.append(
            f"llm {name} ({cfg.model}): tokens: {how}; prices per million tokens: "
            f"input ${p.input_per_m:g}, cached input ${p.cached_input_per_m:g}, output "
            f"${p.output_per_m:g}, plus ${p.usd_per_hour:g}/hour (llm.prices); time: {_timing(cfg)}"
        )
        if tally.upper_bound:
            lines.append(
                f"  {tally.upper_bound:,} generation(s) counted at their max_tokens: its "
                "completion tokens, USD and time are upper bounds."
            )
        if tally.scores and cfg.scoring == "auto" and cfg.backend != "llamacpp":
            lines.append(
                "  llm.scoring=auto is counted as logprobs; a model without logprobs costs what "
                "llm.scoring=verbalized shows."
            )
        lines += _budget(cfg, tally)
    lines.append("Jobs run one after another here; a parallel launcher divides the time.")
    return lines


def _budget(cfg: DictConfig, tally: LlmTally) -> list[str]:
    """The estimate as a share of `llm.budget_usd`, when one is set (it caps the sweep's spend
    on the endpoint; answers already in the request cache are free there too)."""
    budget = cfg.get("budget_usd")
    if budget is None:
        return []
    usd = tally.usage.usd
    if budget > 0:
        share = f"{100 * usd / budget:.1f}% of it"
    else:  # a budget of 0 lets only free requests through
        share = "over it: only free requests go out" if usd > 0 else "0% of it"
    return [f"  budget ${budget:g} (llm.budget_usd): this estimate is {share}."]


def _timing(cfg: DictConfig) -> str:
    if cfg.backend == "llamacpp":
        return (
            f"in-process, one request at a time at {LOCAL_PROMPT_S_PER_TOKEN * 1e3:g} ms per "
            f"uncached prompt token and {LOCAL_OUTPUT_S_PER_TOKEN * 1e3:g} ms per output token "
            "(Gemma 3 270M, one thread, measured on a 2-core machine), scaled by the GGUF's "
            "size and divided by llm.n_threads (an assumption)"
        )
    rpm, tpm = cfg.requests_per_minute, cfg.tokens_per_minute
    return (
        f"{cfg.max_concurrency} requests at once (llm.max_concurrency) of "
        f"{ENDPOINT_FIRST_TOKEN_S:g} s plus {ENDPOINT_OUTPUT_TOKENS_PER_S:g} output tokens/s "
        f"each (an assumption), at most {rpm or 'unlimited'} requests and "
        f"{tpm or 'unlimited'} tokens per minute (llm.requests_per_minute, tokens_per_minute)"
    )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"

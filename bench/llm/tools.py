"""What `bench-llm check` and `bench-llm serve` do."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import time

from bench.config import compose_config
from bench.llm.backend import LLMConfigError, LLMUnavailableError, make_backend
from bench.llm.requests import ScoreRequest

__all__ = ["check_llm", "memcheck_llm", "serve_llm"]

PR_SET_PDEATHSIG = 1  # linux/prctl.h

CHECK_PROMPT = "Question: Is water wet? Answer yes or no.\nAnswer:"
CHECK_LABELS = [" yes", " no"]


def check_llm(name: str, overrides: list[str] | None = None) -> int:
    """Send one scoring request (no cache) and print model, latency and whether logprobs work."""
    cfg = compose_config([f"llm={name}", *(overrides or [])]).llm
    where = cfg.base_url or f"in-process llama.cpp ({cfg.model_path})"
    print(f"llm:      {cfg.name} ({cfg.backend})\nmodel:    {cfg.model}\nendpoint: {where}")
    try:
        backend = make_backend(cfg, use_cache=False)
        start = time.perf_counter()
        (result,) = backend.score([ScoreRequest(CHECK_PROMPT, CHECK_LABELS)])
        latency = time.perf_counter() - start
    except (LLMConfigError, LLMUnavailableError, ImportError) as error:
        print(f"FAILED:   {error}")
        return 1
    probs = ", ".join(f"{label.strip()}={p:.3f}" for label, p in result.probs.items())
    print(f"latency:  {latency:.2f} s (first request, model load included for local models)")
    fallback = "no (scores fall back to parsing generated text)"
    print(f"logprobs: {'yes' if result.method == 'logprobs' else fallback}")
    print(f"answer:   {probs}")
    usage = result.usage
    print(f"usage:    {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens")
    return 0


def serve_llm(
    name: str, overrides: list[str] | None, host: str, port: int, embedding: bool = False
) -> None:
    """Run llama-cpp-python's OpenAI-compatible server on the llm config's local model
    (`embedding`: its /v1/embeddings, for method=llm_embed, instead of completions)."""
    from bench.llm.server import server_command

    cfg = compose_config([f"llm={name}", *(overrides or [])]).llm
    command = server_command(cfg, host, port, embedding=embedding)
    method = "method=llm_embed " if embedding else ""
    print(
        f"Serving {cfg.model} at http://{host}:{port}/v1 (OpenAI-compatible; Ctrl-C stops it).\n"
        f"Use it: bench-run {method}llm=openai_compatible llm.base_url=http://{host}:{port}/v1 "
        f"llm.model={cfg.model}",
        flush=True,
    )
    # The server is this command's child: it stops when bench-llm is stopped (SIGTERM, Ctrl-C)
    # and, through a parent-death signal, even when bench-llm is killed outright.
    server = subprocess.Popen(command, preexec_fn=_die_with_parent)

    def stop(signum: int, _frame: object) -> None:
        server.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _die_with_parent() -> None:
    """In the server's process, before exec: SIGTERM it when its parent dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def memcheck_llm(
    name: str,
    dataset: str,
    rows: int,
    results: str | None = None,
    overrides: list[str] | None = None,
) -> int:
    """Run the memorisation tests of `dataset` on `name` (bench/llm/memcheck/), print a line
    per test and the verdict, and write the JSON under `<results>/audits/`."""
    from bench.llm.memcheck import MemcheckSettings, run_memcheck, write_memcheck
    from bench.paths import resolve_project_path

    cfg = compose_config([f"llm={name}", f"dataset={dataset}", *(overrides or [])])
    try:
        result = run_memcheck(cfg.dataset, cfg.llm, MemcheckSettings(rows=rows))
    except (LLMConfigError, LLMUnavailableError, ImportError) as error:
        print(f"FAILED:   {error}")
        return 1
    print("\n".join(result.lines()))
    path = write_memcheck(result, resolve_project_path(results or "results/memcheck"))
    print(f"written:  {path}")
    return 0

"""A real OpenAI-compatible endpoint on loopback: llama-cpp-python's server on an embedded model.

`bench-llm serve --llm local_smollm2_135m` runs it in the foreground; tests start it as a
subprocess with `server_command` and wait for it with `wait_until_ready`.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request

from omegaconf import DictConfig

from bench.llm.backend import fixed_window
from bench.llm.llamacpp_backend import resolve_model_path

__all__ = ["free_port", "server_command", "wait_until_ready"]

# A server cannot grow its window per request, and with logits for every position (below) it
# holds n_ctx x vocabulary floats: 8,192 x 262k (Gemma) is 8.6 GB already. `llm.n_ctx: auto`
# therefore serves this window (or the model's own, if smaller); set llm.n_ctx for more.
SERVED_AUTO_WINDOW = 8192


def server_command(cfg: DictConfig, host: str = "127.0.0.1", port: int = 8080) -> list[str]:
    """The command line that serves the llamacpp model of `cfg` as `cfg.model`."""
    if cfg.backend != "llamacpp":
        raise ValueError(
            f"llm '{cfg.name}' is a {cfg.backend} endpoint, not a local model to serve"
        )
    path = resolve_model_path(cfg.model_path, cfg.name)
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model", str(path),
        "--model_alias", cfg.model,
        "--host", host,
        "--port", str(port),
        "--n_ctx", str(fixed_window(cfg) or min(int(cfg.context_length), SERVED_AUTO_WINDOW)),
        "--n_threads", str(int(cfg.n_threads or os.cpu_count() or 1)),
        # The server can return logprobs only when it keeps logits for every prompt token, which
        # makes long prompts slower (see DESIGN.md); the in-process backend does not need this.
        "--logits_all", "True",
        "--verbose", "False",
    ]  # fmt: skip


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until_ready(base_url: str, timeout_s: float = 120.0, process: object = None) -> None:
    """Poll `base_url`/models until the server answers; fail early if `process` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:  # type: ignore[attr-defined]
            raise RuntimeError(
                f"the LLM server for {base_url} exited with code {process.returncode}"
            )
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"no LLM server answered at {base_url} within {timeout_s:.0f} s")

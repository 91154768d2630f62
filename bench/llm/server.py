"""A real OpenAI-compatible endpoint on loopback: llama-cpp-python's server on an embedded model.

`bench-llm serve --llm local_smollm2_135m` runs it in the foreground; tests start it as a
subprocess with `server_command` and wait for it with `wait_until_ready`. With `--embedding` it
serves `/v1/embeddings` instead (llama.cpp's embedding mode, mean pooling): a server is in one
mode or the other, so embeddings and scoring need a server each.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request

from omegaconf import DictConfig

from bench.llm.backend import fixed_window
from bench.llm.llamacpp_backend import EMBED_BATCH_TOKENS, resolve_model_path

__all__ = ["free_port", "server_command", "wait_until_ready"]

# A server cannot grow its window per request, and with logits for every position (below) it
# holds n_ctx x vocabulary floats: 8,192 x 262k (Gemma) is 8.6 GB already. `llm.n_ctx: auto`
# therefore serves this window (or the model's own, if smaller); set llm.n_ctx for more.
SERVED_AUTO_WINDOW = 8192
MEAN_POOLING = 1  # llama.cpp's LLAMA_POOLING_TYPE_MEAN


def server_command(
    cfg: DictConfig, host: str = "127.0.0.1", port: int = 8080, embedding: bool = False
) -> list[str]:
    """The command line that serves the llamacpp model of `cfg` as `cfg.model`; `embedding`:
    its mean-pooled embeddings (as the in-process backend computes them) instead of
    completions."""
    if cfg.backend != "llamacpp":
        raise ValueError(
            f"llm '{cfg.name}' is a {cfg.backend} endpoint, not a local model to serve"
        )
    path = resolve_model_path(cfg.model_path, cfg.name)
    served = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model", str(path),
        "--model_alias", cfg.model,
        "--host", host,
        "--port", str(port),
        "--n_threads", str(int(cfg.n_threads or os.cpu_count() or 1)),
        "--verbose", "False",
    ]  # fmt: skip
    if embedding:
        return [
            *served,
            "--embedding", "True",
            # The server has no pooling option; the GGUF key it reads is overridden instead.
            "--kv_overrides", f"{_architecture(path)}.pooling_type=int:{MEAN_POOLING}",
            # Every token of a batch keeps its logits in embedding mode (see llamacpp_backend).
            "--n_ctx", str(EMBED_BATCH_TOKENS),
            "--n_batch", str(EMBED_BATCH_TOKENS),
            "--n_ubatch", str(EMBED_BATCH_TOKENS),
        ]  # fmt: skip
    return [
        *served,
        "--n_ctx", str(fixed_window(cfg) or min(int(cfg.context_length), SERVED_AUTO_WINDOW)),
        # The server can return logprobs only when it keeps logits for every prompt token, which
        # makes long prompts slower (see DESIGN.md); the in-process backend does not need this.
        "--logits_all", "True",
    ]  # fmt: skip


def _architecture(path: object) -> str:
    """The GGUF file's `general.architecture` (e.g. gemma3, llama), read without its weights."""
    from llama_cpp import Llama

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    return str(vocab.metadata["general.architecture"])


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

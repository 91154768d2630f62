"""Loopback LLM fixtures for every test: the embedded model's config, a real OpenAI-compatible
server, and a fault-injecting proxy in front of it (tests/conftest.py makes them fixtures).

Nothing is mocked. `llm_server` is llama-cpp-python's own server on SmolLM2-135M (the smallest
embedded model), started once per session on a free loopback port exactly as `bench-llm serve`
starts it. `fault_proxy` is a small threaded HTTP server on 127.0.0.1 that forwards to that
server, except for the requests its script tells it to break.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from omegaconf import DictConfig

from bench.config import compose_config
from bench.llm.server import free_port, server_command, wait_until_ready

LOCAL_LLM = "local_smollm2_135m"
SERVER_N_CTX = 2048  # enough for every test prompt; the server keeps logits for every position
FAULTS = ("forward", "late", "drop", "429", "500", "400", "401", "slow", "hang", "badjson")
# Answers an endpoint that will not classify gives (a refusal, with no logprobs), for `rewrite`.
REFUSAL = "I'm sorry, I cannot help with that."


@pytest.fixture(scope="session")
def local_llm_cfg(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    """The embedded SmolLM2 llm config, its request cache in a temporary folder."""
    cache = tmp_path_factory.mktemp("local_llm") / "cache.sqlite"
    return compose_config([f"llm={LOCAL_LLM}", f"llm.cache_path={cache}"]).llm


@dataclass(frozen=True)
class LLMServer:
    base_url: str  # ".../v1", what llm.base_url takes
    model: str  # the alias the server answers to
    n_ctx: int  # the context window it was started with
    log: Path

    @property
    def origin(self) -> str:
        return self.base_url.removesuffix("/v1")


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """llama-cpp-python's OpenAI-compatible server on SmolLM2, on a free loopback port."""
    cfg = compose_config([f"llm={LOCAL_LLM}", f"llm.n_ctx={SERVER_N_CTX}"]).llm
    port = free_port("127.0.0.1")
    log = tmp_path_factory.mktemp("llm_server") / "server.log"
    base_url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as out:
        process = subprocess.Popen(
            server_command(cfg, "127.0.0.1", port), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        try:
            wait_until_ready(base_url, timeout_s=120, process=process)
        except (RuntimeError, TimeoutError) as error:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{error}\n--- server log ---\n{tail}") from error
        yield LLMServer(base_url=base_url, model=cfg.model, n_ctx=SERVER_N_CTX, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture
def openai_llm(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose `llm=openai_compatible` for an endpoint, its request cache under tmp_path."""

    def compose(base_url: str, *overrides: str, model: str | None = None) -> DictConfig:
        return compose_config(
            [
                "llm=openai_compatible",
                f"llm.base_url={base_url}",
                *([f"llm.model={model}"] if model else []),
                f"llm.cache_path={tmp_path / 'cache.sqlite'}",
                *overrides,
            ]
        ).llm

    return compose


@dataclass(frozen=True)
class Attempt:
    """One request the proxy received, and what it did with it."""

    at: float  # time.monotonic() when the request arrived
    method: str
    path: str
    fault: str
    authorization: str | None


@dataclass
class FaultProxy:
    """A loopback HTTP proxy that breaks requests as scripted, then does `then` to the rest.

    Faults: "forward" (pass it on), "late" (pass it on after `late_s` seconds: a slow network or a
    busy server, concurrent requests waiting side by side), "drop" (close the connection without a
    response), "429" (Too Many Requests with `Retry-After: retry_after`), "500", "400", "401" (an
    error status with a JSON body), "slow" (answer nothing for `slow_s` seconds, then give up),
    "hang" (accept and never answer, until the client gives up), "badjson" (HTTP 200 whose body is
    not JSON). `rewrite`, when given, edits every forwarded JSON answer (e.g. `refusing`).
    """

    upstream: str | None  # "http://127.0.0.1:PORT", or None for an endpoint with nothing behind
    script: list[str] = field(default_factory=list)
    then: str = "forward"
    retry_after: str = "1"
    slow_s: float = 4.0
    late_s: float = 0.5
    rewrite: Callable[[dict], dict] | None = None
    attempts: list[Attempt] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        for fault in [*self.script, self.then]:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        if self.upstream is None and {"forward", "late"} & {*self.script, self.then}:
            raise ValueError("a proxy with no upstream cannot forward")

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def next_fault(self, method: str, path: str, authorization: str | None) -> str:
        with self._lock:
            fault = self.script.pop(0) if self.script else self.then
            self.attempts.append(Attempt(time.monotonic(), method, path, fault, authorization))
            return fault

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy.next_fault(self.command, self.path, self.headers["Authorization"])
                self.close_connection = True
                with contextlib.suppress(OSError):  # the client may have given up already
                    if fault == "forward":
                        self._forward(body)
                    elif fault == "late":
                        time.sleep(proxy.late_s)
                        self._forward(body)
                    elif fault == "drop":
                        self.connection.shutdown(2)  # no status line, no headers, nothing
                    elif fault == "slow":
                        time.sleep(proxy.slow_s)
                        self._reply(504, b'{"error": {"message": "too late"}}')
                    elif fault == "hang":
                        while proxy._server is not None and not self._client_gone():
                            time.sleep(0.05)
                    elif fault == "badjson":
                        self._reply(200, b"<html>502 Bad Gateway</html>")
                    else:
                        status = int(fault)
                        headers = {"Retry-After": proxy.retry_after} if status == 429 else {}
                        message = f'{{"error": {{"message": "injected {status}"}}}}'
                        self._reply(status, message.encode(), headers)

            def _forward(self, body: bytes) -> None:
                target = urlsplit(proxy.upstream)
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection", "keep-alive")
                    }
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    if proxy.rewrite is not None and response.status == 200:
                        data = json.dumps(proxy.rewrite(json.loads(data))).encode()
                    passed = {
                        k: v
                        for k, v in response.getheaders()
                        if k.lower() not in ("content-length", "transfer-encoding", "connection")
                    }
                    self._reply(response.status, data, passed)
                finally:
                    upstream.close()

            def _client_gone(self) -> bool:
                ready, _, _ = select.select([self.connection], [], [], 0)
                return bool(ready) and not self.connection.recv(1, socket.MSG_PEEK)

            def _reply(self, status: int, data: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if not any(k.lower() == "content-type" for k in headers or {}):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True  # a "slow" handler must not hold up shutdown
        self._server = server
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class UsageTap:
    """A FaultProxy `rewrite` that keeps the usage the server reports for every answer: what
    the endpoint really charged, to hold a budget ledger to."""

    def __init__(self) -> None:
        self.answers: list[dict[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, answer: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.answers.append(dict(answer.get("usage") or {}))
        return answer

    def usd(
        self, input_per_m: float, output_per_m: float, answers: list[dict[str, int]] | None = None
    ) -> float:
        """What `answers` (all so far by default) cost at these prices per million tokens."""
        return sum(
            u.get("prompt_tokens", 0) * input_per_m / 1e6
            + u.get("completion_tokens", 0) * output_per_m / 1e6
            for u in (self.answers if answers is None else answers)
        )


def refusing(answer: dict) -> dict:
    """A `rewrite` for FaultProxy: every choice says REFUSAL and carries no logprobs, as a
    hosted model that declines to classify does."""
    for choice in answer.get("choices", []):
        choice["logprobs"] = None
        if "message" in choice:
            choice["message"]["content"] = REFUSAL
        else:
            choice["text"] = REFUSAL
    return answer


def stripping_logprobs(answer: dict) -> dict:
    """A `rewrite` for FaultProxy: every choice keeps its text and loses its logprobs, as a
    hosted model that returns none (some Gemini models, GPT-5) answers."""
    for choice in answer.get("choices", []):
        choice["logprobs"] = None
    return answer


def hiding_label_logprobs(answer: dict) -> dict:
    """A `rewrite` for FaultProxy: every choice keeps its text and log-probabilities, but its
    first token's top alternatives are only a newline, as when a model's top tokens hold no
    label (a logprob endpoint's answer, not an endpoint without logprobs)."""
    newline = {"token": "\n", "logprob": -0.01, "bytes": [10]}
    for choice in answer.get("choices", []):
        logprobs = choice.get("logprobs") or {}
        if logprobs.get("content"):  # chat completions
            logprobs["content"][0]["top_logprobs"] = [newline]
        elif logprobs.get("top_logprobs"):  # completions
            logprobs["top_logprobs"][0] = {"\n": -0.01}
    return answer


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """Start FaultProxy instances for a test: `fault_proxy(upstream, script=[...], then=...)`."""
    started: list[FaultProxy] = []

    def start(upstream: LLMServer | None, **options: object) -> FaultProxy:
        origin = upstream.origin if upstream is not None else None
        proxy = FaultProxy(origin, **options).start()  # type: ignore[arg-type]
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()

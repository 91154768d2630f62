"""`bench-llm serve` takes its llama.cpp server down with it: on SIGTERM and on SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.llm.server import free_port

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.25)


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopping_bench_llm_serve_stops_the_server(stop: signal.Signals, tmp_path: Path) -> None:
    port = free_port()
    serve = subprocess.Popen(
        [str(BIN / "bench-llm"), "serve", "--llm", "local_smollm2_135m", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: answers(port), 120, "the server to answer")
        (server,) = children(serve.pid)
        serve.send_signal(stop)
        serve.wait(timeout=30)
        wait_until(lambda: not alive(server), 20, f"the server (pid {server}) to exit")
        assert not answers(port)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()

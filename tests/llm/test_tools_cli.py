"""`bench-llm check`, the real console script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench.llm.server import free_port

if TYPE_CHECKING:
    from loopback import LLMServer

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def bench_llm(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bench-llm"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_the_embedded_model(tmp_path: Path) -> None:
    done = bench_llm("check", "--llm", "local_smollm2_135m", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "llm:      local_smollm2_135m (llamacpp)" in out
    assert "model:    SmolLM2-135M-Instruct" in out
    assert "in-process llama.cpp" in out
    assert "logprobs: yes" in out
    assert "latency:" in out and "answer:   yes=" in out
    assert list(tmp_path.iterdir()) == []  # check never writes a cache


def test_check_an_openai_compatible_server(llm_server: LLMServer, tmp_path: Path) -> None:
    done = bench_llm(
        "check",
        "--llm",
        "openai_compatible",
        f"llm.base_url={llm_server.base_url}",
        "llm.api=chat",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"endpoint: {llm_server.base_url}" in done.stdout
    assert "logprobs: yes" in done.stdout
    assert "prompt +" in done.stdout and "completion tokens" in done.stdout


def test_check_an_unreachable_endpoint_fails_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    done = bench_llm(
        "check", "--llm", "openai_compatible", f"llm.base_url={url}", "llm.max_retries=0",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "FAILED" in output
    assert url in output and "openai_compatible" in output
    assert "Traceback" not in output


def test_check_with_a_missing_api_key_names_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BENCH_TEST_UNSET_VARIABLE"}
    done = bench_llm(
        "check", "--llm", "openai_compatible", "llm.base_url=http://127.0.0.1:9/v1",
        "llm.api_key_env=BENCH_TEST_UNSET_VARIABLE", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert "BENCH_TEST_UNSET_VARIABLE" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("nope", None), ("local_smolm2_135m", "Did you mean 'local_smollm2_135m'?")],
)
def test_check_an_unknown_llm_lists_the_valid_names(
    tmp_path: Path, name: str, suggestion: str | None
) -> None:
    done = bench_llm("check", "--llm", name, cwd=tmp_path)
    assert done.returncode == 2
    assert f"Unknown llm '{name}'" in done.stderr
    assert "local_smollm2_135m" in done.stderr and "openai_compatible" in done.stderr
    if suggestion:
        assert suggestion in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("local_qwen25_coder_1_5b", "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M"),
        ("local_qwen25_coder_0_5b", "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M"),
    ],
)
def test_check_an_embedded_qwen_chat_model(tmp_path: Path, name: str, model: str) -> None:
    done = bench_llm("check", "--llm", name, "llm.n_threads=2", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"llm:      {name} (llamacpp)" in out
    assert f"model:    {model}" in out
    assert "in-process llama.cpp" in out
    assert "logprobs: yes" in out
    assert "answer:   yes=" in out and ", no=" in out
    assert list(tmp_path.iterdir()) == []  # check never writes a cache

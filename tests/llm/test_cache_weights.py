"""The request cache key identifies the weights: swapping the model file never serves the old
model's answers. And the cache module imports without the backend module (no import cycle)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.llm import make_backend
from bench.llm.cache import RequestCache
from bench.llm.cache_key import cache_key, legacy_llm_identity, request_part
from bench.llm.llamacpp_backend import resolve_model_path
from bench.llm.requests import ScoreRequest

PROMPT = "The capital of France is"
LABELS = [" Paris", " London"]
PACKAGE = Path(__file__).resolve().parents[2] / "bench" / "llm"


def test_two_model_files_behind_one_config_name_do_not_share_answers(
    local_llm_cfg: DictConfig, tmp_path: Path
) -> None:
    original = resolve_model_path(local_llm_cfg.model_path, local_llm_cfg.name)
    cache = tmp_path / "cache.sqlite"
    copy = tmp_path / "model.gguf"
    shutil.copyfile(original, copy)
    cfg = OmegaConf.merge(local_llm_cfg, {"cache_path": str(cache), "model_path": str(copy)})
    (first,) = make_backend(cfg).score([ScoreRequest(PROMPT, LABELS)])
    assert first.usage.requests == 1
    (again,) = make_backend(cfg).score([ScoreRequest(PROMPT, LABELS)])
    assert again.usage.cache_hits == 1  # same file: served from the cache

    # The file at the same path is replaced (a re-quantised model, say): a miss, asked again.
    with open(copy, "r+b") as handle:
        handle.seek(-16, os.SEEK_END)
        handle.write(b"\0" * 16)  # the last bytes of the file change
    (swapped,) = make_backend(cfg).score([ScoreRequest(PROMPT, LABELS)])
    assert swapped.usage.cache_hits == 0 and swapped.usage.requests == 1

    # Another path holding the original weights (a reader's copy, a reinstall): the answer the
    # copy gave while it held those weights, so a bundle replays wherever its model file lies.
    moved = OmegaConf.merge(cfg, {"model_path": str(original)})
    (other,) = make_backend(moved).score([ScoreRequest(PROMPT, LABELS)])
    assert other.usage.cache_hits == 1 and other.probs == first.probs


def test_an_answer_cached_under_the_old_path_and_mtime_key_is_found_and_rekeyed(
    local_llm_cfg: DictConfig, tmp_path: Path
) -> None:
    """Caches written before keys became portable keyed the weights by path and mtime too:
    those paid answers are still served, and kept under today's key (a bundle then replays
    anywhere)."""
    request = ScoreRequest(PROMPT, LABELS)
    paid = OmegaConf.merge(local_llm_cfg, {"cache_path": str(tmp_path / "paid.sqlite")})
    (answer,) = make_backend(paid).score([request])
    today = cache_key(paid, request)
    entry = RequestCache(tmp_path / "paid.sqlite").get(today)
    legacy = RequestCache.key(**legacy_llm_identity(paid, "score"), **request_part(request))
    assert entry is not None and legacy != today

    older = RequestCache(tmp_path / "older.sqlite")
    older.put(legacy, entry)  # the answer as a cache of the earlier layout holds it
    cfg = OmegaConf.merge(local_llm_cfg, {"cache_path": str(tmp_path / "older.sqlite")})
    (found,) = make_backend(cfg).score([request])
    assert found.usage.cache_hits == 1 and found.usage.requests == 0
    assert found.probs == answer.probs
    assert older.get(today) is not None  # rekeyed


def _imports(module: str) -> set[str]:
    """The bench.llm modules a bench.llm module imports, at its top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module.rpartition('.')[2]}.py").read_text())
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return {name for name in names if name.startswith("bench.llm.")}


def _reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for name in _imports(todo.pop()) - seen:
            seen.add(name)
            todo.append(name)
    return seen


def test_the_cache_and_the_backend_modules_do_not_import_each_other() -> None:
    # Not even through another module or a function-level import (the cache once imported the
    # llama.cpp backend, which imports the backend module, which imports the cache).
    assert "bench.llm.backend" not in _reachable("bench.llm.cache")
    assert "bench.llm.cache" in _imports("bench.llm.backend")  # the backend wraps itself in it
    # and the cache module imports on its own, in a fresh interpreter
    subprocess.run([sys.executable, "-c", "import bench.llm.cache"], check=True)


def test_a_corrupt_cache_is_moved_aside_and_a_fresh_one_used(
    local_llm_cfg: DictConfig, tmp_path: Path, caplog
) -> None:
    cache = tmp_path / "llm_cache.sqlite"
    cache.write_bytes(b"this is not an SQLite file" * 100)
    cfg = OmegaConf.merge(local_llm_cfg, {"cache_path": str(cache)})
    with caplog.at_level("WARNING", logger="bench"):
        (result,) = make_backend(cfg).score([ScoreRequest(PROMPT, LABELS)])
    assert result.usage.requests == 1
    (aside,) = tmp_path.glob("llm_cache.sqlite.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not an SQLite file")
    assert any(
        str(cache) in r.getMessage() and str(aside) in r.getMessage() for r in caplog.records
    )
    (again,) = make_backend(cfg).score([ScoreRequest(PROMPT, LABELS)])
    assert again.usage.cache_hits == 1  # the fresh cache works

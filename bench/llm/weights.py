"""What identifies a model file's weights, for the request-cache key.

Two llm configs that differ only in `llm.model_path` (or one GGUF file swapped for another at the
same path) must never share cached answers. Hashing a 1 GB file on every run would cost seconds,
so the identity is the resolved path, the size, the modification time and a SHA-256 of the first
and last MiB (which hold a GGUF file's header, metadata and final tensors), computed once per
process for each (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["weights_identity"]

_SAMPLE = 1 << 20  # bytes hashed at each end of the file
_KNOWN: dict[tuple[str, int, int], dict[str, object]] = {}


def weights_identity(path: str | Path) -> dict[str, object]:
    """{path, size, mtime_ns, sha256 of the ends} of a model file."""
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

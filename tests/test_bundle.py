"""`bench-bundle export|import` and `llm.replay`, end to end (bench/bundle.py).

A sweep against the loopback server (through a proxy that is then stopped: the endpoint is gone),
exported from a request cache it shares with an unrelated answer, imported into a fresh folder,
and run again with `llm.replay=true` from the imported cache alone: every run, metric and
prediction is the same and so is the report, apart from what measures this execution (the
folder's path, seconds and the requests-versus-cache-hits line). Damaged bundles are refused
whole: an altered byte, an added member, a cut file.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from omegaconf import DictConfig

from bench.bundle import CACHE_FILE, BundleError, export_bundle, import_bundle, main
from bench.bundle_archive import MANIFEST
from bench.llm.backend import GenerateRequest, make_backend
from bench.llm.cache import CACHE_KEYS_FILE
from bench.paths import PROJECT_ROOT
from bench.results import ResultsStore

if TYPE_CHECKING:
    from loopback import FaultProxy, LLMServer

BIN = PROJECT_ROOT / ".venv" / "bin"
FIXTURE_STORE = Path(__file__).parent / "fixtures" / "store_6a90002"
# What a report line measures of this execution rather than of the runs: seconds (and what is
# derived from them: compute-hours, seconds per 1,000 predictions).
TIMES = re.compile(r"[\d,.]+ (?:ms|s|min|h|compute-h|compute hours)\b")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _records(results: Path) -> dict[str, dict[str, Any]]:
    return {r["run_stem"]: r for r in ResultsStore(results).records()}


def _cache_keys(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT key FROM responses")}


@pytest.mark.e2e
def test_a_bundle_replays_the_sweep_with_the_server_stopped(
    llm_server: LLMServer,
    fault_proxy: Callable[..., FaultProxy],
    openai_llm: Callable[..., DictConfig],
    tmp_path: Path,
) -> None:
    proxy = fault_proxy(llm_server)
    shared = tmp_path / "cache.sqlite"  # openai_llm's cache: shared with an unrelated answer
    other = make_backend(openai_llm(proxy.url, model=llm_server.model))
    other.generate([GenerateRequest("An unrelated question:", max_tokens=4)])
    other.close()
    (unrelated,) = _cache_keys(shared)
    sweep = [  # (bench-run takes a relative results_dir from the project root: absolute ones)
        "-m",
        "dataset=callcenter",
        "method=llm_icl,logreg",
        "llm=openai_compatible",
        f"llm.base_url={proxy.url}",
        f"llm.model={llm_server.model}",
        "seeds=[0,1]",
        "n_train=[4]",
        "split.max_test_rows=8",
        "report=false",
    ]
    first = _run(
        BIN / "bench-run",
        *sweep,
        f"llm.cache_path={shared}",
        f"results_dir={tmp_path / 'r1'}",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    original = _records(tmp_path / "r1")
    assert len(original) == 4 and {r["status"] for r in original.values()} == {"ok"}

    done = _run(BIN / "bench-bundle", "export", "r1", "r1.tar.gz", "--cache", shared, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "4 run(s)" in done.stdout
    done = _run(BIN / "bench-bundle", "import", "r1.tar.gz", "imported", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (cache_setting,) = re.findall(r"llm\.cache_path=(\S+)", done.stdout)
    imported_cache = tmp_path / "imported" / CACHE_FILE
    assert Path(cache_setting) == imported_cache.resolve()

    # The bundle's cache holds exactly the runs' entries, none other of the shared cache.
    used = set()
    for record in original.values():
        for artifact in record.get("artifacts", []):
            if artifact.endswith(CACHE_KEYS_FILE):
                used |= set((tmp_path / "r1" / artifact).read_text().split())
    llm_runs = [r for r in original.values() if r["method"] == "llm_icl"]
    assert len(used) == sum(r["usage"]["requests"] for r in llm_runs) > 0
    assert _cache_keys(imported_cache) == used
    assert unrelated in _cache_keys(shared) and unrelated not in used
    manifest = json.loads((tmp_path / "imported" / "bundle-manifest.json").read_text())
    assert manifest["cache"]["entries"] == len(used)
    assert {"numpy", "pandas", "openai"} <= set(manifest["packages"])
    assert manifest["python"]["version"] and manifest["harness"]["version"]
    assert all(len(m["sha256"]) == 64 for m in manifest["members"].values())

    proxy.stop()  # the endpoint the sweep used is gone
    sent = len(proxy.attempts)
    replay = [
        f"llm.cache_path={cache_setting}",
        "llm.replay=true",
        f"results_dir={tmp_path / 'r3'}",
    ]
    again = _run(BIN / "bench-run", *sweep, *replay, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert len(proxy.attempts) == sent
    replayed = _records(tmp_path / "r3")
    assert set(replayed) == set(original)  # the same run ids
    for stem, record in original.items():
        assert replayed[stem]["status"] == "ok"
        assert replayed[stem]["metrics"] == record["metrics"], stem
        assert replayed[stem]["usage"]["requests"] == 0
        assert replayed[stem]["usage"]["cache_hits"] == record["usage"]["requests"]
        before = pd.read_parquet(tmp_path / "r1" / record["predictions_file"])
        after = pd.read_parquet(tmp_path / "r3" / replayed[stem]["predictions_file"])
        pd.testing.assert_frame_equal(before, after, check_exact=True)
    assert _records(tmp_path / "imported") == original

    # The reports, written back to back (the same code): the imported folder's is the
    # original's; the replay's differs only in what measures its own execution.
    for folder in ("r1", "imported", "r3"):
        report = _run(BIN / "bench-report", folder, cwd=tmp_path)
        assert report.returncode == 0, report.stderr[-3000:]
    text = {
        f: (tmp_path / f / "report" / "report.md").read_text() for f in ("r1", "imported", "r3")
    }
    normal = {f: t.replace(str(tmp_path / f), "<results>") for f, t in text.items()}
    assert normal["imported"] == normal["r1"]
    lines, replay_lines = normal["r1"].splitlines(), normal["r3"].splitlines()
    assert len(lines) == len(replay_lines)
    requests = sum(r["usage"]["requests"] for r in llm_runs)
    differ = [(a, b) for a, b in zip(lines, replay_lines, strict=True) if a != b]
    for line, replay_line in differ:
        if line.startswith("LLM usage: "):  # what was sent then, answered from the cache now
            assert f"{requests:,} requests" in line and "0 answers from the request" in line
            assert replay_line.startswith("LLM usage: 0 requests, 0 tokens")
            assert f"{requests:,} answers from the request cache" in replay_line
        else:
            assert TIMES.sub("<t>", line) == TIMES.sub("<t>", replay_line), (line, replay_line)
    assert len(differ) < 10  # seconds and the usage line, nothing else


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    """A copy of a store written before runs kept their cache keys (ok llm_icl runs)."""
    copy = tmp_path / "old_store"
    for path in FIXTURE_STORE.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(FIXTURE_STORE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return copy


def test_export_names_the_runs_stored_without_key_lists_and_refuses(
    old_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.tar.gz"
    assert main(["export", str(old_store), str(bundle), "--cache", str(tmp_path / "c")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("bench-bundle: 2 ok LLM run(s) of ")
    assert "(first: callcenter__llm_icl__n16__s0__74e3f8f192232792)" in error
    assert "rerun them into a fresh results_dir" in error.lower() and "--skip-unkeyed" in error
    assert not bundle.exists()

    done = export_bundle(old_store, bundle, [tmp_path / "c"], skip_unkeyed=True)
    assert len(done.left_out) == 2 and all("llm_icl" in stem for stem in done.left_out)
    imported = import_bundle(bundle, tmp_path / "imported")
    assert imported.entries == 0
    runs = _records(tmp_path / "imported")
    assert set(runs) == set(_records(old_store)) - set(done.left_out)
    assert ResultsStore(tmp_path / "imported").unreadable == []


@pytest.fixture
def bundle(old_store: Path, tmp_path: Path) -> Path:
    path = tmp_path / "bundle.tar.gz"
    export_bundle(old_store, path, [], skip_unkeyed=True)
    return path


def _retar(source: Path, target: Path, edit: Callable[[str, bytes], bytes | None]) -> None:
    """`source` re-tarred as `target`, each member's bytes passed through `edit` (None: left
    out), the manifest as it was."""
    with tarfile.open(source, "r:gz") as tar, tarfile.open(target, "w:gz") as out:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            data = edit(member.name, handle.read() if handle else b"")
            if data is not None:
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))


def _refused(source: Path, dest: Path) -> str:
    with pytest.raises(BundleError) as refused:
        import_bundle(source, dest)
    assert not dest.exists()  # nothing half-written
    assert [p.name for p in dest.parent.iterdir() if ".importing-" in p.name] == []
    return str(refused.value)


def test_an_altered_byte_is_refused_naming_the_member(bundle: Path, tmp_path: Path) -> None:
    with tarfile.open(bundle, "r:gz") as tar:  # an ok run's record: it has an accuracy
        runs = [m for m in tar.getmembers() if m.name.startswith("runs/")]
        victim = next(m.name for m in runs if b'"accuracy": ' in tar.extractfile(m).read())

    def flip(name: str, data: bytes) -> bytes:
        if name != victim:
            return data
        at = data.index(b'"accuracy": ') + len(b'"accuracy": ') + 2  # a digit of the accuracy
        return data[:at] + (b"1" if data[at : at + 1] != b"1" else b"2") + data[at + 1 :]

    _retar(bundle, tmp_path / "altered.tar.gz", flip)
    error = _refused(tmp_path / "altered.tar.gz", tmp_path / "dest")
    assert f"member '{victim}' was altered or damaged after export" in error
    assert "SHA-256 differs" in error and str(tmp_path / "altered.tar.gz") in error


def test_a_member_added_or_removed_is_refused(bundle: Path, tmp_path: Path) -> None:
    def drop(name: str, data: bytes) -> bytes | None:
        return None if name.startswith("predictions/") else data

    _retar(bundle, tmp_path / "short.tar.gz", drop)
    error = _refused(tmp_path / "short.tar.gz", tmp_path / "dest")
    assert "listed in its manifest are not in the archive" in error and "predictions/" in error

    with tarfile.open(bundle, "r:gz") as tar, tarfile.open(tmp_path / "more.tar.gz", "w:gz") as out:
        for member in tar.getmembers():
            out.addfile(member, tar.extractfile(member))
        extra = tarfile.TarInfo("runs/extra.json")
        extra.size = 2
        out.addfile(extra, io.BytesIO(b"{}"))
    error = _refused(tmp_path / "more.tar.gz", tmp_path / "dest")
    assert "member 'runs/extra.json' is not listed in its manifest" in error


@pytest.mark.parametrize("keep", [0.5, -4], ids=["half", "all-but-the-gzip-trailer"])
def test_a_truncated_bundle_is_refused(bundle: Path, tmp_path: Path, keep: float) -> None:
    data = bundle.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[: int(keep)])
    error = _refused(cut, tmp_path / "dest")
    assert error.startswith(f"{cut} is truncated or damaged, or not a gzip tar file")
    assert "nothing was imported" in error


def test_import_never_writes_into_a_folder_in_use(bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    with pytest.raises(BundleError, match="exists and is not an empty folder"):
        import_bundle(bundle, dest)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    with tarfile.open(bundle, "r:gz") as tar:
        assert tar.getnames()[0] == MANIFEST


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_export_and_import_give_the_users_default_permissions(
    old_store: Path, tmp_path: Path, umask: int
) -> None:
    """A bundle is made for sharing: the file export writes and the folder import restores get
    the modes any new file and folder of the user gets (0666 / 0777 less the umask), not the
    0600 / 0700 of a temporary file or folder."""
    cli = str(BIN / "bench-bundle")
    export = [cli, "export", old_store, "b.tar.gz", "--cache", "c", "--skip-unkeyed"]
    done = _run_umask(export, tmp_path, umask)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b.tar.gz").stat().st_mode & 0o777 == 0o666 & ~umask
    done = _run_umask([cli, "import", "b.tar.gz", "imported"], tmp_path, umask)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "imported").stat().st_mode & 0o777 == 0o777 & ~umask
    inside = list((tmp_path / "imported").rglob("*"))
    assert inside and all(
        p.stat().st_mode & 0o777 == (0o777 if p.is_dir() else 0o666) & ~umask for p in inside
    )


def _run_umask(args: list[Any], cwd: Path, umask: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, umask=umask
    )

"""`bench-bundle export RESULTS_DIR FILE` and `bench-bundle import FILE DIR`: a results folder
and exactly the LLM answers its runs used, in one file that replays anywhere.

The bundle (bench/bundle_archive.py: a gzip tar behind a manifest of sizes and SHA-256s) holds
the results store's files -- run records (runs/*.json, which hold each run's resolved config as
`spec`), per-row predictions, artifacts, failed retries (failures/), the data audits (audits/)
and the sweeps' composed configs (logs/*/.hydra/config.yaml and overrides.yaml) -- the versions
of Python, of bench and of every installed package, and ``llm_cache.sqlite``: a request cache
(same schema as the source) with the entries of the keys the runs list in
artifacts/<stem>/cache_keys.txt and no other entry of a shared cache.

An ok LLM run without a key list (stored before bench kept them, or run with llm.cache=false)
cannot be replayed from a bundle: export names such runs and refuses, unless `--skip-unkeyed`
leaves them out. Import checks the whole file, extracts into a temporary folder beside DIR and
renames it to DIR, so DIR is either complete or absent; it then prints the
`llm.cache_path=...` with which `bench-run ... llm.replay=true` answers from the bundle alone.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bundle_archive import BundleError, read_archive, remove_tree, write_archive
from bench.llm.cache import CACHE_KEYS_FILE
from bench.record import RunRecord
from bench.results import _UMASK, ResultsStore

__all__ = ["CACHE_FILE", "BundleError", "Exported", "export_bundle", "import_bundle", "main"]

CACHE_FILE = "llm_cache.sqlite"  # the bundle's request cache, also its name in the imported DIR
MANIFEST_COPY = "bundle-manifest.json"  # the manifest, kept in the imported DIR
HYDRA_CONFIGS = ("config.yaml", "overrides.yaml")  # a sweep's composed config and its overrides
_BATCH = 500  # keys per SELECT (SQLite allows 999 parameters in old builds)
# The table RequestCache creates (bench/llm/cache.py), for a bundle whose runs used no cache.
_SCHEMA = (
    "CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
)


@dataclass
class Exported:
    """What an export wrote: the file, its runs, its cache entries and the runs left out."""

    path: Path
    runs: int
    entries: int
    left_out: list[str] = field(default_factory=list)  # ok LLM runs without a key list


@dataclass
class Imported:
    """What an import restored, and the cache setting that replays it."""

    path: Path
    runs: int
    entries: int
    cache_path: Path


def export_bundle(
    results_dir: Path, target: Path, caches: Sequence[Path], skip_unkeyed: bool = False
) -> Exported:
    """Write the runs of `results_dir` and the cache entries they used (found in `caches`,
    first match wins) to `target`."""
    results_dir, target = Path(results_dir), Path(target)
    if not (results_dir / "runs").is_dir():
        raise BundleError(f"{results_dir} is not a results folder (it has no runs/ folder)")
    store = ResultsStore(results_dir)
    chosen, left_out = _runs_to_export(store, skip_unkeyed)
    if not chosen:
        raise BundleError(f"{results_dir}/runs holds no run to export")
    files = _store_files(results_dir, store, chosen)
    keys = {stem: _keys_of(results_dir, record) for stem, record in chosen.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=target.parent) as tmp:
        staged = Path(tmp)
        members = _stage_files(results_dir, files, staged)
        entries = _write_cache(staged / CACHE_FILE, keys, chosen, [Path(c) for c in caches])
        members[CACHE_FILE] = staged / CACHE_FILE
        meta = {
            **environment(),
            "source": {
                "results_dir": str(results_dir.resolve()),
                "caches": [str(c) for c in caches],
            },
            "runs": {
                stem: {"status": record.status, "cache_keys": len(keys[stem])}
                for stem, record in sorted(chosen.items())
            },
            "cache": {"file": CACHE_FILE, "entries": entries},
        }
        write_archive(target, members, meta)
    return Exported(target, len(chosen), entries, left_out)


def environment() -> dict[str, Any]:
    """What the runs were computed with: bench, Python, every installed package."""
    import bench

    packages = {
        dist.metadata["Name"]: dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    }
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "harness": {"name": "tabllm-bench", "version": bench.__version__},
        "python": {"version": platform.python_version(), "platform": platform.platform()},
        "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
    }


def _runs_to_export(store: ResultsStore, skip_unkeyed: bool) -> tuple[dict[str, RunRecord], list]:
    """The readable runs to bundle, and the ok LLM runs left out for want of a key list; an
    unreadable record is refused (the bundle would silently lack a run)."""
    runs = {record.stem: record for record in store.runs()}
    if store.unreadable:
        path, why = store.unreadable[0]
        raise BundleError(f"{path} is not a readable run record ({why}): fix or remove it first")
    unkeyed = [stem for stem, record in sorted(runs.items()) if _needs_keys(record)]
    unkeyed = [stem for stem in unkeyed if not _key_file(runs[stem])]
    if unkeyed and not skip_unkeyed:
        raise BundleError(
            f"{len(unkeyed)} ok LLM run(s) of {store.root} have no list of the cache entries "
            f"they used (first: {unkeyed[0]}): they were stored before bench kept one, or run "
            "with llm.cache=false, so a bundle could not replay them. Rerun them into a fresh "
            "results_dir (their answers come from the cache), or pass --skip-unkeyed to leave "
            "them out"
        )
    return {s: r for s, r in runs.items() if s not in unkeyed}, unkeyed


def _needs_keys(record: RunRecord) -> bool:
    """An ok run that asked an LLM: its answers must come with the bundle."""
    tags = record.provenance.tags or {}
    return record.status == "ok" and bool(tags.get("uses_llm", record.identity.llm))


def _key_file(record: RunRecord) -> str | None:
    return next((a for a in record.artifacts if Path(a).name == CACHE_KEYS_FILE), None)


def _keys_of(results_dir: Path, record: RunRecord) -> list[str]:
    name = _key_file(record)
    if name is None:
        return []
    try:
        return (results_dir / name).read_text().split()
    except OSError as error:
        raise BundleError(
            f"{results_dir / name}: cannot read the run's key list ({error})"
        ) from error


def _store_files(results_dir: Path, store: ResultsStore, runs: dict[str, RunRecord]) -> list[str]:
    """The store's files of `runs` (record, predictions, artifacts), their failed retries and
    the sweeps' composed configs, relative to `results_dir`; a file a record names must exist."""
    files: list[str] = []
    for stem, record in sorted(runs.items()):
        named = [f"runs/{stem}.json", record.predictions_file, *record.artifacts]
        for name in filter(None, named):
            if not (results_dir / name).is_file():
                raise BundleError(f"{results_dir / name} is missing, yet run {stem} names it")
            files.append(name)
        if (results_dir / "failures" / f"{stem}.json").is_file():
            files.append(f"failures/{stem}.json")
    for config in sorted((results_dir / "logs").glob("**/.hydra/*.yaml")):
        if config.name in HYDRA_CONFIGS:
            files.append(config.relative_to(results_dir).as_posix())
    # The data audits the report shows (leaks, memorisation), as the sweep left them.
    audits = sorted(p for p in (results_dir / "audits").glob("*.json") if p.is_file())
    files += [audit.relative_to(results_dir).as_posix() for audit in audits]
    return files


def _stage_files(results_dir: Path, files: list[str], staged: Path) -> dict[str, Path]:
    """Copies of `files` under `staged`: hashed and archived from there, so a sweep writing to
    the store meanwhile cannot make the archive disagree with its manifest."""
    members: dict[str, Path] = {}
    for name in files:
        copy = staged / "store" / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes((results_dir / name).read_bytes())
        members[name] = copy
    return members


def _write_cache(
    target: Path, keys: dict[str, list[str]], runs: dict[str, RunRecord], caches: list[Path]
) -> int:
    """A request cache at `target` holding exactly the rows of `keys` (copied from the first of
    `caches` that has each, keeping its schema); an ok run's key found in none is refused."""
    wanted = sorted({key for run_keys in keys.values() for key in run_keys})
    rows: dict[str, tuple] = {}
    schema = None
    for path in caches:
        if not wanted:
            break
        if not path.is_file():
            raise BundleError(f"request cache {path} (--cache) does not exist")
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = source.execute(
                "SELECT sql FROM sqlite_master WHERE type='table' AND name='responses'"
            ).fetchone()
            if found is None:
                raise BundleError(f"{path} (--cache) is not a bench request cache")
            schema = schema or found[0]
            todo = [k for k in wanted if k not in rows]
            for start in range(0, len(todo), _BATCH):
                batch = todo[start : start + _BATCH]
                marks = ",".join("?" * len(batch))
                query = f"SELECT * FROM responses WHERE key IN ({marks})"
                rows.update({row[0]: row for row in source.execute(query, batch)})
        except sqlite3.DatabaseError as error:
            raise BundleError(f"request cache {path} (--cache) cannot be read: {error}") from error
        finally:
            source.close()
    for stem, run_keys in sorted(keys.items()):
        absent = [k for k in run_keys if k not in rows]
        if absent and runs[stem].status == "ok":
            where = ", ".join(str(c) for c in caches) or "no cache"
            raise BundleError(
                f"{len(absent)} cache entries run {stem} used are in none of the request "
                f"caches {where} (first key {absent[0]}): pass the cache the runs were made "
                "with (--cache, the runs' llm.cache_path)"
            )
    _create_cache(target, schema, list(rows.values()))
    return len(rows)


def _create_cache(target: Path, schema: str | None, rows: list[tuple]) -> None:
    """One self-contained SQLite file (rollback journal, no -wal beside it)."""
    conn = sqlite3.connect(target)
    try:
        conn.execute(schema or _SCHEMA)
        if rows:
            marks = ",".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO responses VALUES ({marks})", rows)
        conn.commit()
    finally:
        conn.close()


def import_bundle(source: Path, dest: Path) -> Imported:
    """Restore the bundle `source` as the results folder `dest` (new or empty), its request
    cache as ``dest/llm_cache.sqlite``; nothing is left in `dest` when the bundle is refused."""
    import json

    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise BundleError(f"bundle {source} does not exist")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BundleError(f"{dest} exists and is not an empty folder: import into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{dest.name}.importing-", dir=dest.parent))
    try:
        manifest = read_archive(source, staged)
        cache = staged / CACHE_FILE
        entries = _count_entries(cache, source)
        if entries != manifest.get("cache", {}).get("entries"):
            raise BundleError(f"{source}: its cache holds {entries} entries, not as listed")
        (staged / MANIFEST_COPY).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if dest.exists():
            dest.rmdir()  # empty, checked above
        # mkdtemp makes a 0700 folder; an imported store is to be read by others, as any new one
        os.chmod(staged, 0o777 & ~_UMASK)
        staged.rename(dest)
    except BaseException:
        remove_tree(staged)
        raise
    runs = len(manifest.get("runs") or {})
    return Imported(dest, runs, entries, (dest / CACHE_FILE).resolve())


def _count_entries(cache: Path, source: Path) -> int:
    if not cache.is_file():
        raise BundleError(f"{source} holds no {CACHE_FILE}")
    conn = sqlite3.connect(f"{cache.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.DatabaseError as error:
        raise BundleError(f"{source}: its {CACHE_FILE} is not a request cache ({error})") from error
    finally:
        conn.close()


def _parser() -> argparse.ArgumentParser:
    from bench.config import LLMConfig

    parser = argparse.ArgumentParser(
        prog="bench-bundle",
        description="Publish a results folder with exactly the LLM answers its runs used, and "
        "restore it anywhere; `bench-run ... llm.replay=true llm.cache_path=DIR/"
        f"{CACHE_FILE}` then reruns it without any LLM.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write RESULTS_DIR's runs and their answers")
    export.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    export.add_argument("file", type=Path, metavar="FILE", help="the bundle to write (.tar.gz)")
    export.add_argument(
        "--cache",
        type=Path,
        action="append",
        help="request cache the runs used (llm.cache_path; repeat for several; default: "
        f"{LLMConfig.cache_path}, from the project root)",
    )
    export.add_argument(
        "--skip-unkeyed",
        action="store_true",
        help="leave out ok LLM runs stored without a list of their cache entries",
    )
    restore = commands.add_parser("import", help="restore a bundle into a new folder DIR")
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.add_argument("dir", type=Path, metavar="DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The `bench-bundle` command; 0 when done, 1 when the bundle was refused (said why)."""
    from bench.config import LLMConfig
    from bench.paths import resolve_project_path

    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            caches = args.cache or [resolve_project_path(LLMConfig.cache_path)]
            done = export_bundle(args.results_dir, args.file, caches, args.skip_unkeyed)
            print(f"Wrote {done.path}: {done.runs} run(s), {done.entries} request-cache entries.")
            for stem in done.left_out:
                print(f"  left out (no cache key list; rerun it to bundle it): {stem}")
        else:
            done = import_bundle(args.file, args.dir)
            print(
                f"Imported {done.runs} run(s) and {done.entries} request-cache entries into "
                f"{done.path}.\nReplay them without any LLM: bench-run <the same sweep> "
                f"results_dir=<a new folder> llm.replay=true llm.cache_path={done.cache_path}\n"
                f"Report: bench-report {done.path}"
            )
    except BundleError as error:
        print(f"bench-bundle: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The bundle file of `bench-bundle`: a gzip tar whose first member, ``manifest.json``, lists
every other member with its size and SHA-256, and which is read back only whole and unaltered.

Writing goes to a temporary file renamed into place, so a bundle that exists is complete.
Reading checks every byte before anything is kept: the manifest (format and version), each
member (listed, a plain file under a safe relative name, read once, its size and hash as
listed), no listed member missing, and the gzip stream to its end (a truncated file fails its
length and CRC check there). The manifest guards against damage and edits made without
updating it; it is no signature: whoever can rewrite the archive can rewrite its manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from bench.results import _UMASK

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "BundleError", "read_archive", "write_archive"]

FORMAT = "bench-bundle"
FORMAT_VERSION = 1  # bump when a reader of this version could misread a newer bundle
MANIFEST = "manifest.json"
_CHUNK = 1 << 20
# What a damaged or cut gzip tar raises while it is read.
_DAMAGE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


class BundleError(Exception):
    """A bundle cannot be written or read as asked; the message names the file and why."""


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_archive(target: Path, members: Mapping[str, Path], meta: Mapping[str, Any]) -> dict:
    """Write `members` (name in the archive -> file, which must not change meanwhile: the
    exporter passes its own staged copies) to `target` behind a manifest of `meta` plus every
    member's size and hash; returns the manifest."""
    listed = {
        name: {"size": path.stat().st_size, "sha256": file_digest(path)}
        for name, path in sorted(members.items())
    }
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "members": listed}
    text = json.dumps(manifest, indent=2, sort_keys=True).encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.addfile(_info(MANIFEST, len(text)), io.BytesIO(text))
            for name, path in sorted(members.items()):
                with path.open("rb") as handle:
                    tar.addfile(_info(name, listed[name]["size"]), handle)
        # mkstemp makes a 0600 file; a bundle is for sharing: the mode of the user's new files
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest


def _info(name: str, size: int) -> tarfile.TarInfo:
    """A plain file's header with no owner names (nothing of the exporter's account)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    return info


def read_archive(source: Path, into: Path) -> dict[str, Any]:
    """Extract the bundle `source` into the (empty) folder `into`, checking it whole; returns
    its manifest. Raises `BundleError` naming the file, the member and the problem; what was
    extracted before the problem is the caller's to remove (it extracts to a temporary
    folder)."""
    try:
        with tarfile.open(source, "r:gz") as tar:
            manifest = _read_manifest(tar, source)
            listed: dict[str, Any] = manifest["members"]
            seen: set[str] = set()
            while (member := tar.next()) is not None:
                _extract(tar, member, listed, seen, into, source)
            missing = sorted(set(listed) - seen)
            if missing:
                raise BundleError(
                    f"{source}: {len(missing)} member(s) listed in its manifest are not in the "
                    f"archive (first: {missing[0]}); the bundle is incomplete"
                )
            while tar.fileobj is not None and tar.fileobj.read(_CHUNK):
                pass  # the rest of the gzip stream: its end and CRC are checked there
    except _DAMAGE as error:
        raise BundleError(
            f"{source} is truncated or damaged, or not a gzip tar file ({error}): export the "
            "bundle again or copy it whole; nothing was imported"
        ) from error
    return manifest


def _read_manifest(tar: tarfile.TarFile, source: Path) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        found = "nothing" if first is None else repr(first.name)
        raise BundleError(
            f"{source} is not a bench bundle: its first member is {found}, not {MANIFEST}"
        )
    handle = tar.extractfile(first)
    try:
        manifest = json.loads(handle.read() if handle is not None else b"")
    except ValueError as error:
        raise BundleError(f"{source}: its {MANIFEST} is not JSON ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{source} is not a bench bundle (its {MANIFEST} says no format)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{source} is a bundle of format version {version!r}, written by a newer bench; "
            f"this one reads versions up to {FORMAT_VERSION}: upgrade bench to import it"
        )
    members = manifest.get("members")
    if not isinstance(members, dict) or not all(isinstance(m, dict) for m in members.values()):
        raise BundleError(f"{source}: its {MANIFEST} lists no members (or not as sizes and hashes)")
    return manifest


def _extract(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    listed: Mapping[str, Any],
    seen: set[str],
    into: Path,
    source: Path,
) -> None:
    """Copy one member into `into`, refusing it unless it is exactly what the manifest lists."""
    name = member.name
    if name not in listed:
        raise BundleError(f"{source}: member {name!r} is not listed in its manifest (added later?)")
    if name in seen:
        raise BundleError(f"{source}: member {name!r} appears twice")
    parts = PurePosixPath(name).parts
    if not member.isfile() or name.startswith("/") or ".." in parts or "\\" in name:
        raise BundleError(f"{source}: member {name!r} is not a plain file under a relative name")
    expected = listed[name]
    target = into.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tar.extractfile(member)
    if handle is None:
        raise BundleError(f"{source}: member {name!r} cannot be read")
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    size = target.stat().st_size
    if size != expected.get("size"):
        problem = f"it holds {size} bytes, the manifest lists {expected.get('size')}"
    elif digest.hexdigest() != expected.get("sha256"):
        problem = "its SHA-256 differs from the one the manifest lists"
    else:
        seen.add(name)
        return
    raise BundleError(
        f"{source}: member {name!r} was altered or damaged after export ({problem}); "
        "nothing was imported"
    )


def remove_tree(path: Path) -> None:
    """Remove a folder this module's caller staged (never one it did not create)."""
    shutil.rmtree(path, ignore_errors=True)

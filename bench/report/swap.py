"""Put a whole new report folder in place at once: a reader never sees a mix of two reports.

The report is written into a hidden sibling of PATH/report (``.report-new-<pid>-<random>``);
only when every file is there does the folder take the place of the old one, by one atomic
exchange of the two directories (Linux `renameat2(RENAME_EXCHANGE)`), or, where the file
system lacks it, by two renames (a reader then briefly finds no report, never half of one).
A full disk, an error or a signal while writing leaves the previous report as it was; a
staging folder left by a killed process is removed by the next report.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.claims import process_alive

__all__ = ["STAGING_PREFIX", "staged_folder"]

STAGING_PREFIX = ".report-new-"
_OLD_PREFIX = ".report-old-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield an empty folder next to `target`; when the block ends without an error, that
    folder becomes `target` (the old one is removed); on any error or signal it is removed and
    `target` is untouched."""
    parent = target.parent
    _remove_stale(target)
    stage = parent / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
        _swap_in(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # after a swap: the previous report


def _swap_in(stage: Path, target: Path) -> None:
    """Make `stage` the folder at `target`; what was at `target` ends at `stage`."""
    if not target.exists():
        os.rename(stage, target)
        return
    if _exchange(stage, target):
        return
    old = target.parent / f"{_OLD_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)
    os.rename(stage, target)
    os.rename(old, stage)  # removed by the caller


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically; False where the system cannot (the caller falls back)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # not on this file system
        return False
    raise OSError(code, os.strerror(code), str(b))


def _remove_stale(target: Path) -> None:
    """Tidy up after a process on this host that died mid-write (kill -9): remove its staging
    folder, and put back a previous report it had moved aside (the two-rename fallback)."""
    parent = target.parent
    if not parent.is_dir():
        return
    for folder in sorted(parent.iterdir()):
        prefix = next((p for p in (STAGING_PREFIX, _OLD_PREFIX) if folder.name.startswith(p)), "")
        pid = folder.name.removeprefix(prefix).partition("-")[0] if prefix else ""
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        if prefix == _OLD_PREFIX and not target.exists():
            os.rename(folder, target)
        else:
            shutil.rmtree(folder, ignore_errors=True)

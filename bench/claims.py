"""Claims: a run is executed by one process at a time, even across sweeps sharing a store.

Before a run executes, its job creates ``PATH/claims/<run stem>.lock`` atomically (``O_EXCL``),
holding the host, the pid and the time. A second process that finds the claim skips the run and
says so. A claim is released when the run's record is written. A stale claim (its process died on
this host, or one from another host older than `STALE_AFTER_S`) is taken over: renamed aside
first, so that of two processes finding it stale only one wins.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import suppress
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["STALE_AFTER_S", "RunClaims", "process_alive"]

# A claim from another host cannot be checked for a live process: after this long it is stale.
STALE_AFTER_S = 12 * 3600


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunClaims:
    """The claim files of one results directory."""

    def __init__(self, root: str | Path, stale_after_s: float = STALE_AFTER_S) -> None:
        self.dir = Path(root) / "claims"
        self.stale_after_s = stale_after_s
        self.host, self.pid = socket.gethostname(), os.getpid()

    def path(self, stem: str) -> Path:
        return self.dir / f"{stem}.lock"

    def claim(self, stem: str) -> bool:
        """Claim the run; False when another live process holds it. When no claim can be
        written at all (a full disk, a folder gone read-only) the run goes ahead unclaimed,
        said in a warning: its record cannot be written either, and the job says so."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if self._create(stem):
                return True
        except OSError as error:
            log.warning("Could not write the claim of run %s in %s: %s", stem, self.dir, error)
            return True
        holder = self.holder(stem)
        if holder is None or not self._stale(holder):
            return False
        aside = self.path(stem).with_suffix(f".stale-{self.host}-{self.pid}")
        try:
            os.rename(self.path(stem), aside)  # only one of several claimants gets here
        except FileNotFoundError:
            return False
        aside.unlink(missing_ok=True)
        return self._create(stem)

    def release(self, stem: str) -> None:
        """Drop our claim (never another process's)."""
        holder = self.holder(stem)
        if holder and holder.get("host") == self.host and holder.get("pid") == self.pid:
            with suppress(FileNotFoundError):
                self.path(stem).unlink()

    def holder(self, stem: str) -> dict | None:
        try:
            return json.loads(self.path(stem).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # half-written by a process that died: stale
            return {"host": None, "pid": 0, "since": 0.0}

    def held_by_others(self) -> int:
        """Claims now held by other live processes (runs being executed elsewhere)."""
        if not self.dir.is_dir():
            return 0
        count = 0
        for path in self.dir.glob("*.lock"):
            holder = self.holder(path.stem)
            if holder and (holder.get("host"), holder.get("pid")) != (self.host, self.pid):
                count += not self._stale(holder)
        return count

    def _create(self, stem: str) -> bool:
        # Written whole first, then hard-linked into place: link() fails if the claim exists,
        # and a reader never sees a half-written claim.
        payload = json.dumps({"host": self.host, "pid": self.pid, "since": time.time()})
        draft = self.dir / f".{stem}.{self.host}.{self.pid}.draft"
        draft.write_text(payload)
        try:
            os.link(draft, self.path(stem))
        except FileExistsError:
            return False
        finally:
            draft.unlink(missing_ok=True)
        return True

    def _stale(self, holder: dict) -> bool:
        if holder.get("host") == self.host:
            return not process_alive(int(holder.get("pid") or 0))
        return time.time() - float(holder.get("since") or 0.0) > self.stale_after_s

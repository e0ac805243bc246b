"""One driver per results folder: RUN_DIR/.lock names the process that writes it.

Two drivers on one folder would both compute every pending shard (correct, as shard files are
written atomically, but twice the cost, and with no word). The second one now stops with one line
naming the holder. A lock whose process is gone (same host, no such pid) is taken over, saying so;
a lock from another host is trusted, since its processes cannot be seen from here, and the message
says which file to remove once that run is known to be dead.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from harness.errors import UserError

LOCK = ".lock"
# An unreadable lock younger than this may be one being written right now (create, then write).
PARTIAL_LOCK_GRACE_S = 10.0


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: str  # UTC, ISO 8601

    @classmethod
    def me(cls) -> Holder:
        return cls(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def read_holder(path: Path) -> Holder | None:
    """The lock's holder, None when the file is missing or does not parse."""
    try:
        return Holder(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _stale(path: Path, holder: Holder | None) -> bool:
    if holder is None:
        try:
            return time.time() - path.stat().st_mtime > PARTIAL_LOCK_GRACE_S
        except OSError:
            return True  # gone meanwhile
    return holder.host == socket.gethostname() and not pid_alive(holder.pid)


def _create(path: Path, me: Holder) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(me), f)
    return True


@contextmanager
def run_lock(run_dir: Path, stream=None) -> Iterator[Holder]:
    """Hold RUN_DIR/.lock for the duration; raises UserError (exit 2) when a live driver holds it."""
    stream = stream or sys.stderr
    path, me = Path(run_dir) / LOCK, Holder.me()
    while not _create(path, me):
        holder = read_holder(path)
        if not _stale(path, holder):
            raise UserError(f"{run_dir} is in use by pid {holder.pid} on {holder.host} (since {holder.started}): "
                            f"wait for that run or stop it, or use another --out; if it is dead, remove {path}"
                            if holder else f"{run_dir} is being locked by another driver right now; try again")
        gone = f"pid {holder.pid} on {holder.host}" if holder else "an unreadable lock"
        print(f"harness: taking over {path} from {gone}, which is gone", file=stream)
        path.unlink(missing_ok=True)
    try:
        yield me
    finally:
        if read_holder(path) == me:
            path.unlink(missing_ok=True)

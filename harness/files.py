"""Files that readers see whole or not at all: the one atomic-write mechanism of the project.

Every file a reader may open (a run folder's Parquet and manifest, a request-cache entry) is written
to a temporary name in its folder (`.tmp-*`, never read as a result) and renamed. Files and folders
get the modes the umask gives, so colleagues on a shared file system can read them. A foundation
module: `results.store` writes run folders through it, `plan.request_cache` its cache entries.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = ".tmp-"
# A writer's temporary file is renamed right after its last write, and its mtime moves while it is
# written: one untouched this long belongs to a writer that died, never to a live one.
STALE_TEMP_SECONDS = 15 * 60


def user_cache_dir() -> Path:
    """The harness's folder for caches that outlive a run: `$XDG_CACHE_HOME/harness`, else
    `~/.cache/harness` (the XDG base-directory rule; each cache has its own override as well)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "harness"


def safe_name(text: str) -> str:
    """A path component that cannot escape the results folder."""
    return re.sub(r"[^A-Za-z0-9._\-]+", "_", text).strip("._") or "_"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` only if the block succeeds,
    removed if it fails, so readers see the previous file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)  # 0o777 less the umask, as mkdir always does
    tmp = _new_temp(path.parent, path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_temp(folder: Path, suffix: str) -> Path:
    """A new empty file `.tmp-<random><suffix>` in `folder`, mode 0o666 less the umask.

    Not `tempfile.mkstemp`: it makes every file 0600 whatever the umask, unreadable to colleagues.
    Asking open(2) for 0o666 lets the kernel apply the umask (and a folder's default ACL), with no
    os.umask() call, whose set-and-restore would race with other threads creating files.
    """
    while True:
        tmp = folder / f"{TMP_PREFIX}{secrets.token_hex(8)}{suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def is_temp(path: Path) -> bool:
    """A writer's temporary file (whole, partial or abandoned): never read as a result."""
    return path.name.startswith(TMP_PREFIX)


def remove_stale_temps(run_dir: Path, older_than: float = STALE_TEMP_SECONDS) -> int:
    """Removes the temporary files under `run_dir` (any folder) that no writer has touched for `older_than`
    seconds (left by a process killed mid-write); returns how many. Younger ones may belong to a
    writer still at work in the same folder and stay."""
    cutoff = time.time() - older_than
    removed = 0
    for path in Path(run_dir).rglob(f"{TMP_PREFIX}*") if Path(run_dir).is_dir() else ():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # its writer renamed or removed it meanwhile
    return removed

"""A command's results folder where `--out` names a bucket: a local working copy kept in step with it.

`working_folder(out)` is what `harness run`, `analyze` and `import` write through: for a local path it
is that path; for a URL (`remote.is_remote`) it pulls the bucket into the staging copy
(`remote.pull`), starts a `Mirror` that pushes whatever is complete every few seconds while the
command works, and pushes a last time when the command ends, however it ends (done, failed, Ctrl-C,
SIGTERM): what was written locally reaches the bucket, files deleted or retired locally leave it.
A kill -9 loses at most the last interval's uploads; a resume recomputes those shards.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from harness.errors import UserError, first_line
from harness.results.remote import RemoteFolder, is_remote, open_remote, pull, push, staging_dir

# Seconds between uploads while a command works: what a kill -9 can lose (those shards are
# recomputed). HARNESS_MIRROR_EVERY_S changes it (a slow link: more; a test: less).
MIRROR_EVERY_S = 10.0


def mirror_every_s() -> float:
    try:
        value = float(os.environ.get("HARNESS_MIRROR_EVERY_S", MIRROR_EVERY_S))
    except ValueError:
        raise UserError("HARNESS_MIRROR_EVERY_S must be a number of seconds") from None
    return value if value > 0 else MIRROR_EVERY_S


@contextmanager
def working_folder(out: str | os.PathLike, stream: TextIO | None = None) -> Iterator[Path]:
    """The local folder a command writes for `out`; for a bucket, its staging copy, mirrored."""
    if not is_remote(out):
        yield Path(out)
        return
    stream = stream or sys.stderr
    remote = open_remote(str(out))
    local = staging_dir(remote)
    fetched = pull(remote, local)
    every = mirror_every_s()
    print(f"harness: {remote.url}: working copy in {local} ({fetched} files fetched); uploads every {every:g} s",
          file=stream)
    mirror = Mirror(remote, local, every_s=every, stream=stream).start()
    try:
        yield local
    except BaseException:
        try:
            mirror.close(delete_missing=True)
        except UserError as exc:  # the command's own error is the one to report; say this one too
            print(f"harness: {exc}; the working copy {local} holds everything, the next run uploads it", file=stream)
        raise
    mirror.close(delete_missing=True)
    print(f"harness: {remote.url}: up to date ({mirror.uploaded} files uploaded)", file=stream)


class Mirror:
    """Keeps `remote` in step with the staging copy `local`: `start()` pushes every `every_s` s on a
    daemon thread, `flush()` now, `close()` stops the thread and pushes a last time. A failed background
    push does not stop the run: said once on `stream`, kept in `last_error`, retried by the next push.
    `flush()`/`close()` raise UserError (URL, reason) while it lasts; one a later push cured is not raised."""

    def __init__(self, remote: RemoteFolder, local: Path, every_s: float = 10.0, stream: TextIO | None = None):
        self.remote, self.local, self.every_s, self._stream = remote, Path(local), every_s, stream
        self.uploaded = 0  # objects uploaded by this mirror, all pushes together
        self.last_error: str | None = None  # the latest background failure; None after a success
        self._stop, self._count_lock = threading.Event(), threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> Mirror:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="harness-mirror", daemon=True)
            self._thread.start()
            atexit.register(self._halt)  # runs before pyarrow's exit hook (older), which ends S3
        return self

    def flush(self) -> int:
        """Push now (after a background push under way); returns how many went up."""
        return self._push()

    def close(self, delete_missing: bool = False) -> int:
        """Stop the background thread, then push a last time; returns how many that uploaded."""
        self._halt()
        atexit.unregister(self._halt)
        return self._push(delete_missing=delete_missing)

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._push()
            except Exception as exc:  # noqa: BLE001 - any failure: say so once, keep the run going
                if self.last_error is None:
                    print(f"harness: {first_line(exc)}; retrying every {self.every_s:g} s", file=self._stream or sys.stderr)
                self.last_error = first_line(exc)
            else:
                self.last_error = None

    def _push(self, delete_missing: bool = False) -> int:
        count = push(self.remote, self.local, delete_missing=delete_missing)
        with self._count_lock:
            self.uploaded += count
        return count

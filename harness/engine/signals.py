"""How SIGTERM stops the driver: as Ctrl-C does (`harness run` exits 143, written shards stay).

Its own module because two places need it: `run` installs the handler around a run, and `cluster`
turns the exit that Ray's handler makes while `ray.init` runs into the same `Terminated`.
"""

from __future__ import annotations

import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM (`ray job stop`, Slurm, Kubernetes, systemd). A KeyboardInterrupt, so that every
    path that stops cleanly on Ctrl-C (written shards stay, manifest `interrupted`) does so on it."""


class SigtermAsInterrupt:
    """While active, SIGTERM raises `Terminated` in the main thread; the old handler is restored on
    exit. Only the first SIGTERM raises: senders repeat it, and a second one would cut short the
    clean-up the first started. A no-op outside the main thread (only it may set handlers)."""

    def __init__(self) -> None:
        self.received = False
        self.previous = None
        self.installed = False

    def __enter__(self) -> "SigtermAsInterrupt":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc_info) -> None:
        if self.installed:  # None: the old handler was not Python's; the default is the nearest
            signal.signal(signal.SIGTERM, self.previous if self.previous is not None else signal.SIG_DFL)

    def _handle(self, signum, frame) -> None:
        if not self.received:
            self.received = True
            raise Terminated()

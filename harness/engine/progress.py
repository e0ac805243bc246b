"""A one-line progress display for the driver: shards and requests done, per model, with an ETA.

On a terminal the line redraws in place; in a log (CI, Ray job logs) a line is printed at most
every `interval` seconds so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, shards_per_model: Counter, requests_total: int, reused: int = 0,
                 stream: TextIO | None = None, interval: float = 5.0) -> None:
        self.total = sum(shards_per_model.values())
        self.per_model_total = shards_per_model
        self.per_model_done: Counter = Counter()
        self.requests_total = requests_total
        self.requests_done = 0
        self.failed = 0
        self.reused = reused
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.2 if self.tty else interval
        self.started = time.monotonic()
        self._last = 0.0

    @property
    def done(self) -> int:
        return sum(self.per_model_done.values())

    def start(self) -> None:
        """Restart the clock when scoring starts (Ray and model start-up are not scoring)."""
        self.started = time.monotonic()

    def update(self, model: str, requests: int, failed: bool = False) -> None:
        self.per_model_done[model] += 1
        self.requests_done += requests
        self.failed += failed
        self.draw()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        frac = self.requests_done / self.requests_total if self.requests_total else 1.0
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        width = 20
        bar = "#" * int(width * frac) + "." * (width - int(width * frac))
        models = " ".join(f"{m} {self.per_model_done[m]}/{n}" for m, n in self.per_model_total.items()
                          if self.per_model_done[m] < n)[:120]
        eta_text = _clock(eta) if eta == eta else "?"
        failed = f" failed {self.failed}" if self.failed else ""
        return (f"[{bar}] shards {self.done}/{self.total} requests {self.requests_done}/{self.requests_total}"
                f"{failed} elapsed {_clock(elapsed)} eta {eta_text} | {models}")

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval and self.done < self.total:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r" + self.line()[:160].ljust(160))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._last == 0.0 or self.done < self.total:
            self.draw(force=True)
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

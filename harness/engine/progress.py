"""A one-line progress display for the driver: totals, rate and ETA, and the model revisions with
the most work left.

On a terminal the line redraws in place; in a log (CI, Ray job logs) a line is printed at most
every `interval` seconds so logs stay readable. Either way a line fits in `WIDTH` characters: a
ladder of 25 checkpoints listed in full made a line the terminal cut.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import TextIO

WIDTH = 120
SHOWN_MODELS = 3  # the model revisions named, those with the most work left; the rest are counted
MIN_NAME = 10  # a name cut shorter than this says nothing: show fewer revisions instead


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _shorten(name: str, width: int) -> str:
    """Fit `name` in `width`: first drop "step" from a `step<N>` revision (the ladders' convention,
    `zoo-5@4096`), then cut from the middle, so that the model's and the revision's ends stay."""
    if len(name) <= width:
        return name
    name = name.replace("@step", "@", 1)
    if len(name) <= width:
        return name
    head = (width - 2) // 2
    return name[:head] + ".." + name[len(name) - (width - 2 - head):]


def status_line(shards: tuple[int, int], requests: tuple[int, int], elapsed: float,
                models: Iterable[tuple[str, int, int, float]], failed: int = 0, width: int = WIDTH) -> str:
    """The progress line: `shards` and `requests` as (done, total), the request rate since scoring
    started and the ETA it gives, then the SHOWN_MODELS unfinished revisions with the most work
    left, `models` being (name, shards done, shards total, work left) per revision."""
    (done, total), (req_done, req_total) = shards, requests
    rate = req_done / elapsed if elapsed > 0 else 0.0
    eta = _clock((req_total - req_done) / rate) if rate > 0 else "?"
    head = (f"shards {done}/{total} req {req_done}/{req_total} {rate:.{rate < 100:d}f} req/s eta {eta}"
            + (f" failed {failed}" if failed else ""))
    busiest = sorted((m for m in models if m[1] < m[2]), key=lambda m: -m[3])
    for shown in range(min(SHOWN_MODELS, len(busiest)), 0, -1):
        more = f" +{len(busiest) - shown} more" if len(busiest) > shown else ""
        counts = [f" {m[1]}/{m[2]}" for m in busiest[:shown]]
        # What is left for the names: the width less the head, " | ", the counts, spaces and "+N more".
        room = width - len(head) - 3 - sum(map(len, counts)) - (shown - 1) - len(more)
        if room // shown >= MIN_NAME:
            names = [_shorten(m[0], room // shown) for m in busiest[:shown]]
            return f"{head} | {' '.join(n + c for n, c in zip(names, counts))}{more}"
    return (head + (f" | {len(busiest)} revisions" if busiest else ""))[:width]


class Progress:
    def __init__(self, shards_per_model: Counter, requests_total: int,
                 stream: TextIO | None = None, interval: float = 5.0,
                 requests_per_model: Counter | None = None) -> None:
        self.per_model_total = shards_per_model
        self.per_model_done: Counter = Counter()
        # Work left per revision is counted in requests when they are known, else in shards.
        self.per_model_requests = requests_per_model
        self.per_model_requests_done: Counter = Counter()
        self.requests_total = requests_total
        self.requests_done = 0
        self.failed = 0
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.2 if self.tty else interval
        self.started = time.monotonic()
        self._last = 0.0

    @property
    def total(self) -> int:
        return sum(self.per_model_total.values())

    @property
    def done(self) -> int:
        return sum(self.per_model_done.values())

    def start(self) -> None:
        """Restart the clock when scoring starts (Ray and model start-up are not scoring)."""
        self.started = time.monotonic()

    def add(self, shards: Iterable) -> None:
        """More work: shards (of tasks built while others are scored, `engine.feed`)."""
        for shard in shards:
            key = shard.model_revision.key
            self.per_model_total[key] += 1
            if self.per_model_requests is not None:
                self.per_model_requests[key] += shard.n_requests
            self.requests_total += shard.n_requests

    def update(self, model: str, requests: int, failed: bool = False) -> None:
        self.per_model_done[model] += 1
        self.per_model_requests_done[model] += requests
        self.requests_done += requests
        self.failed += failed
        self.draw()

    def _left(self, model: str) -> float:
        if self.per_model_requests is not None:
            return self.per_model_requests[model] - self.per_model_requests_done[model]
        return self.per_model_total[model] - self.per_model_done[model]

    def line(self) -> str:
        models = [(m, self.per_model_done[m], n, self._left(m)) for m, n in self.per_model_total.items()]
        return status_line((self.done, self.total), (self.requests_done, self.requests_total),
                           time.monotonic() - self.started, models, self.failed)

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval and self.done < self.total:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r" + self.line().ljust(WIDTH))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._last == 0.0 or self.done < self.total:
            self.draw(force=True)
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

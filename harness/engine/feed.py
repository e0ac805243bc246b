"""Shards flowing before the plan is complete: tasks are built on a thread while replicas score.

lm-eval builds a task's requests in one seeded pass (minutes for a large task); tasks are
independent (`plan.building.iter_built_tasks` builds them in processes and serves cached ones
first). `ShardFeed` runs that iterator on a thread, turns each built task into its shards at once
(`plan.shards.task_shards`), brings back the ones a growing folder kept in `.retired/`, and
hands the driver those not already written; the driver's loop takes them between its steps. The
plan grows as tasks arrive and is complete (in the sweep's task order) when the feed is done.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path

from harness.plan.building import iter_built_tasks
from harness.plan.requests import BuiltTask
from harness.plan.shards import Plan, Shard, assemble_plan, task_shards
from harness.results.store import RETIRED, restore_retired, written_shards

_DONE = object()


class ShardFeed:
    """Built tasks' shards for one run: `plan` holds every shard fed so far; `take()` returns the
    pending ones (not already written whole in `run_dir`) fed since the last call."""

    def __init__(self, plan: Plan, finals: set[str], run_dir: Path, stream=None) -> None:
        self.plan, self.finals, self.run_dir = plan, finals, run_dir
        self.stream = stream or sys.stderr
        self.reused: set[str] = set()
        self.restored = 0  # shard files brought back from RUN_DIR/.retired (a folder that grows)
        self.done = False
        self.first_shard_at: float | None = None  # monotonic time the first pending shard was fed
        self._parts: list[tuple[BuiltTask, list[Shard]]] = []
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._build, name="harness-task-builds", daemon=True)

    def start(self) -> ShardFeed:
        self._thread.start()
        return self

    def _build(self) -> None:
        sweep, revisions, fingerprints = self.plan.sweep, self.plan.model_revisions, self.plan.fingerprints
        tasks = iter_built_tasks(sweep, self.stream)
        try:
            for built in tasks:
                self._queue.put((built, task_shards(built, revisions, self.finals, fingerprints, sweep)))
                if self._stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - a bad task is the run's error: raised by `take`
            self._queue.put(exc)
        finally:
            tasks.close()  # stops builder processes still at work
            self._queue.put(_DONE)

    def take(self, wait_s: float = 0.0) -> list[Shard]:
        """The pending shards of the tasks built since the last call (waiting up to `wait_s` for
        one); raises what the build raised (a task that does not build is the run's error)."""
        pending: list[Shard] = []
        deadline = time.monotonic() + wait_s
        while not self.done:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic())) if wait_s else \
                    self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _DONE:
                self._complete()
            elif isinstance(item, BaseException):
                raise item
            else:
                pending += self._add(*item)
                if pending:
                    break
        if pending and self.first_shard_at is None:
            self.first_shard_at = time.monotonic()
        return pending

    def _add(self, built: BuiltTask, shards: list[Shard]) -> list[Shard]:
        self._parts.append((built, shards))
        self.plan.tasks[built.name] = built
        self.plan.shards.extend(shards)
        self.restored += restore_retired(self.run_dir, shards)
        done = written_shards(self.run_dir, shards, self.stream)
        self.reused |= done
        return [s for s in shards if s.key not in done]

    def _complete(self) -> None:
        """Every task is in: the plan takes the sweep's task order (as one build of everything)."""
        whole = assemble_plan(self.plan.sweep, self.plan.model_revisions, self.plan.fingerprints, self._parts)
        self.plan.tasks, self.plan.shards = whole.tasks, whole.shards
        self.done = True
        back = f" ({self.restored} brought back from {RETIRED})" if self.restored else ""
        print(f"harness: {len(whole.shards)} shards over {len(whole.model_revisions)} model revisions x "
              f"{len(whole.tasks)} tasks; reusing {len(self.reused)} finished shards{back}, running "
              f"{len(whole.shards) - len(self.reused)}", file=self.stream)

    def first(self) -> list[Shard]:
        """Waits for the first task with shards to run (or for every task, when none has any)."""
        pending: list[Shard] = []
        while not pending and not self.done:
            pending = self.take(wait_s=0.5)
        return pending

    def stop(self) -> None:
        """Ctrl-C or SIGTERM: no more tasks are built (the builder processes end with the thread)."""
        self._stop.set()

"""Every task of a sweep with its requests: from the request cache, or built, in parallel, and
handed over one by one as soon as each is ready, so that its shards can be dispatched early.

lm-eval's few-shot sampler is one seeded RNG per task, consumed document by document: a task's
documents cannot be built apart, but separate tasks can. Missing tasks are built in separate
processes (spawned: lm-eval, datasets and a driver's threads are not fork-safe), each loading its
task again and building it only when its own cache key equals the planner's, so its requests equal a
single-process build; the builder writes them into the cache and the planner loads them from there
(no huge instance lists are pickled). Whatever goes wrong in a builder, the task is built here.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import wait as connection_wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import Sweep
from harness.errors import UserError, first_line
from harness.plan.request_cache import NotCacheable, RequestCache, default_cache_dir
from harness.plan.request_key import request_key, task_documents
from harness.plan.requests import (TARGET_REQUEST_IDX, BuiltTask, build_prepared, load_tasks, manager_for,
                                   prepare_task, quiet_libraries, target_requests)

# A builder process pays ~2.5 s of imports and task loading before its first document. A document
# with k shots renders k + 1 documents (~1 ms each on a 2-core machine); below this many renderings
# to do in all (~10 s), one process is about as soon done.
PARALLEL_MIN_RENDERINGS = 10_000
MAX_BUILDERS = 16  # each holds lm-eval, datasets and one task's requests (a few hundred MB)


@dataclass(frozen=True)
class BuildRecipe:
    """What building one task needs, picklable: a builder process loads the task again from it
    and builds only if its own key equals `key` (the same config, documents, shots, seed, limit)."""

    name: str
    names: tuple[str, ...]  # the sweep's task names that loaded it (a group, say)
    include_paths: tuple[str, ...]
    num_fewshot: int | None  # as the sweep asks; `prepare_task` resolves it
    limit: int | None
    seed: int
    key: str
    cache_dir: str


@dataclass
class _Job:
    index: int
    task: Any
    shots: int
    docs: list
    recipe: BuildRecipe


def iter_built_tasks(sweep: Sweep, stream=None, *, workers: int | None = None,
                     cache: RequestCache | None = None) -> Iterator[BuiltTask]:
    """Every task of the sweep with its requests, each yielded once, as soon as it is ready: cache
    hits first, then tasks as their builds finish (in any order; `BuiltTask.index` gives the
    sweep's). Missing tasks are built in `workers` processes (default: one per usable CPU when
    there is enough to build; 1: in this process) and stored in the cache for next time. One line
    on `stream` says how many came from the cache."""
    stream = stream or sys.stderr
    started = time.monotonic()
    cache, scratch = _usable_cache(cache or RequestCache(default_cache_dir()), stream)
    jobs = _jobs(sweep, cache)
    present, missing = [], []
    for job in jobs:
        (present if cache.path(job.recipe.name, job.recipe.key).is_file() else missing).append(job)
    builds = _Builds(cache, stream, _processes(missing, workers))
    if missing:
        where = f"in {builds.processes} processes" if builds.processes > 1 else "in this process"
        print(f"harness: building the requests of {len(missing)} task(s) {where}; {len(present)} from the cache",
              file=stream)
    hits = 0
    try:
        for job in _build_order(missing):
            builds.submit(job)
        for job in present:
            instances = cache.load(job.recipe.name, job.recipe.key, job.docs, stream)
            if instances is None:
                builds.submit(job)
                continue
            hits += 1
            yield _built_from(job, instances, from_cache=True)
        yield from builds.results()
    finally:
        builds.stop()
        if scratch:
            shutil.rmtree(cache.folder, ignore_errors=True)
    built = len(jobs) - hits
    print(f"harness: requests: {hits} task(s) from the cache, {built} built"
          + (f" in {time.monotonic() - started:.1f} s" if built else "") + f" (cache: {cache.folder})", file=stream)


def _usable_cache(cache: RequestCache, stream) -> tuple[RequestCache, bool]:
    """The cache, or where it cannot be written (a read-only home), a folder of this run only,
    removed at the end: requests are built as ever, just not kept. True: the latter."""
    problem = cache.problem()
    if problem is None:
        return cache, False
    scratch = Path(tempfile.mkdtemp(prefix="harness-requests-"))
    print(f"harness: request cache {cache.folder} is not writable ({problem}); requests are built and not kept",
          file=stream)
    return RequestCache(scratch), True


def _jobs(sweep: Sweep, cache: RequestCache) -> list[_Job]:
    """Load the sweep's tasks, prepare each as it will be built and take its cache key."""
    specs = {t.name: t for t in sweep.tasks}
    include = sweep.task_include_paths()
    jobs = []
    for index, (name, task) in enumerate(load_tasks(list(specs), include).items()):
        spec = specs.get(name)
        asked = spec.num_fewshot if spec and spec.num_fewshot is not None else sweep.num_fewshot
        limit = spec.limit if spec and spec.limit is not None else sweep.limit
        shots = prepare_task(name, task, asked, sweep.seed)
        docs = task_documents(task, limit)
        key = request_key(name, task, shots, sweep.seed, limit, docs, _harness_part())
        recipe = BuildRecipe(name, tuple(specs), tuple(str(p) for p in include), asked, limit, sweep.seed,
                             key, str(cache.folder))
        jobs.append(_Job(index, task, shots, docs, recipe))
    return jobs


@functools.lru_cache(maxsize=1)
def _harness_part() -> str:
    """What the harness adds to lm-eval's requests (target requests) is in the cache too: its
    code's hash is part of the key, so changing it cannot serve stale entries."""
    try:
        source = inspect.getsource(target_requests)
    except (OSError, TypeError):  # installed without sources: the compiled code stands in
        code = target_requests.__code__
        source = repr((code.co_code, code.co_consts, code.co_names))
    return hashlib.sha256(source.encode()).hexdigest()


def _built_from(job: _Job, instances: list, from_cache: bool) -> BuiltTask:
    """A task whose requests were loaded from the cache (stored by a builder, or by an earlier run)."""
    # The task object as a build leaves it: lm-eval's own instances in its list (ours aside).
    job.task._instances = [inst for inst in instances if inst.idx != TARGET_REQUEST_IDX]
    return BuiltTask(job.recipe.name, job.task, instances, job.shots, job.task.get_config("output_type"),
                     index=job.index, from_cache=from_cache)


def _renderings(job: _Job) -> int:
    """What a task costs to build, in documents rendered (each with its shots)."""
    return len(job.docs) * (1 + job.shots)


def _build_order(jobs: list[_Job]) -> list[_Job]:
    """The smallest task first, so that the first shards flow early; then the largest first, so
    that no big task starts last and holds the end (longest-processing-time order)."""
    by_size = sorted(jobs, key=_renderings, reverse=True)
    return by_size[-1:] + by_size[:-1]


def _processes(missing: list[_Job], workers: int | None) -> int:
    """Builder processes: `workers` if given, else $HARNESS_BUILD_WORKERS if set; else one per usable
    CPU, when the build is big enough to pay for starting them; never more than tasks to build."""
    if workers is None and os.environ.get("HARNESS_BUILD_WORKERS", "").strip():
        try:
            workers = int(os.environ["HARNESS_BUILD_WORKERS"])
        except ValueError:
            raise UserError("HARNESS_BUILD_WORKERS must be a whole number of processes") from None
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = cpus if sum(map(_renderings, missing)) >= PARALLEL_MIN_RENDERINGS else 1
    return max(1, min(workers, len(missing), MAX_BUILDERS))


@dataclass
class _Builder:
    """A builder process, the pipe to it, and the task it is building (None: idle)."""

    process: Any
    conn: Any
    job: _Job | None = None


class _Builds:
    """Tasks to build, in `processes` spawned builder processes (1: here, one after another);
    `results` yields them as they finish. Plain pipes, not a multiprocessing pool: a builder that
    must be stopped mid-build is terminated without leaving locks or semaphores behind, and one
    that dies (out of memory, say) is seen at once."""

    def __init__(self, cache: RequestCache, stream, processes: int) -> None:
        self.cache, self.stream, self.processes = cache, stream, processes
        self.waiting: list[_Job] = []
        self.builders: list[_Builder] = []
        context = multiprocessing.get_context("spawn")
        for _ in range(processes if processes > 1 else 0):
            ours, theirs = context.Pipe()
            process = context.Process(target=_builder_main, args=(theirs,), daemon=True, name="harness-builder")
            process.start()
            theirs.close()
            self.builders.append(_Builder(process, ours))

    def submit(self, job: _Job) -> None:
        self.waiting.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        for builder in list(self.builders):
            if builder.job is None and self.waiting:
                builder.job = self.waiting.pop(0)
                try:
                    builder.conn.send(builder.job.recipe)
                except OSError:  # it died idle: its task goes back to the queue
                    self.waiting.insert(0, builder.job)
                    self._retire(builder)

    def results(self) -> Iterator[BuiltTask]:
        while busy := [b for b in self.builders if b.job is not None]:
            ready = connection_wait([b.conn for b in busy] + [b.process.sentinel for b in busy])
            for builder in busy:
                if builder.conn not in ready and builder.process.sentinel not in ready:
                    continue
                job, builder.job = builder.job, None
                try:
                    status, detail = builder.conn.recv()
                except (EOFError, OSError):
                    builder.process.join(5)
                    status, detail = "failed", f"its builder process died (exit code {builder.process.exitcode})"
                    self._retire(builder)
                self._dispatch()
                yield self._collect(job, status, detail)
        while self.waiting:  # no builders (one process), or none left alive
            yield _build_here(self.waiting.pop(0), self.cache, self.stream)

    def _collect(self, job: _Job, status: str, detail: str) -> BuiltTask:
        name = job.recipe.name
        if status == "user_error":
            raise UserError(detail)
        if status == "stored":
            instances = self.cache.load(name, job.recipe.key, job.docs, self.stream)
            if instances is not None:
                return _built_from(job, instances, from_cache=False)
            detail = "its cache entry did not load"
        print(f"harness: task {name!r}: {detail}; building it in this process", file=self.stream)
        return _build_here(job, self.cache, self.stream)

    def _retire(self, builder: _Builder) -> None:
        builder.conn.close()
        self.builders.remove(builder)

    def stop(self) -> None:
        """End the builders: idle ones are told to exit, busy ones (an error, Ctrl-C, a consumer
        that stopped early) are terminated, since a build can take minutes."""
        for builder in self.builders:
            if builder.job is not None:
                builder.process.terminate()
            else:
                try:
                    builder.conn.send(None)
                except OSError:
                    pass  # already gone
        for builder in self.builders:
            builder.process.join(10)
            if builder.process.is_alive():
                builder.process.kill()
                builder.process.join()
            builder.conn.close()
        self.builders = []


def _builder_main(conn) -> None:
    """A builder process: build the recipes it is sent until told to stop (None) or orphaned."""
    _builder_started()
    while True:
        try:
            recipe = conn.recv()
        except (EOFError, OSError):
            return
        if recipe is None:
            return
        conn.send(build_in_builder(recipe))


def _builder_started() -> None:
    # Ctrl-C reaches the whole process group: the planner stops the builders, which stay quiet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Stopped mid-build: exit as Python does, so that what lm-eval's libraries registered with
    # multiprocessing's resource tracker (tqdm's lock) is released, not reported as leaked.
    signal.signal(signal.SIGTERM, _exit_builder)
    quiet_libraries(transformers=False)


def _exit_builder(signum, frame) -> None:
    raise SystemExit(128 + signum)


_MANAGERS: dict = {}  # a builder's TaskManagers, kept across the tasks it builds


def build_in_builder(recipe: BuildRecipe) -> tuple[str, str]:
    """In a builder process: load the task again, build it if its key is the planner's, store it.
    Returns ("stored", seconds) or (user_error | mismatch | not_cacheable | failed, one line)."""
    started = time.monotonic()
    try:
        loaded = _reload(recipe)
        if loaded is None:
            return "mismatch", "a builder process could not load it with the same config and documents"
        task, shots, docs = loaded
        built = build_prepared(recipe.name, task, shots, recipe.limit, recipe.seed)
        RequestCache(Path(recipe.cache_dir)).store(recipe.name, recipe.key, built.instances, docs)
    except UserError as exc:
        return "user_error", str(exc)
    except NotCacheable as exc:
        return "not_cacheable", f"its requests cannot be cached ({exc})"
    except Exception as exc:  # noqa: BLE001 - reported, and the task is built by the planner
        return "failed", f"its builder failed ({first_line(exc, with_type=True)})"
    return "stored", f"{time.monotonic() - started:.1f}"


def _reload(recipe: BuildRecipe) -> tuple[Any, int, list] | None:
    """The task as the planner has it: loaded alone (cheap) or, when a group changed its config,
    with the sweep's names; the key decides."""
    paths = [Path(p) for p in recipe.include_paths]
    for names in ((recipe.name,), recipe.names):
        try:
            task = manager_for(names, paths, _MANAGERS).load(list(names))["tasks"].get(recipe.name)
        except Exception:  # noqa: BLE001 - then the next way, or the planner builds it
            continue
        if task is None:
            continue
        shots = prepare_task(recipe.name, task, recipe.num_fewshot, recipe.seed)
        docs = task_documents(task, recipe.limit)
        if request_key(recipe.name, task, shots, recipe.seed, recipe.limit, docs, _harness_part()) == recipe.key:
            return task, shots, docs
    return None


def _build_here(job: _Job, cache: RequestCache, stream) -> BuiltTask:
    """Build a task in this process and keep it in the cache (best effort)."""
    recipe = job.recipe
    built = build_prepared(recipe.name, job.task, job.shots, recipe.limit, recipe.seed)
    try:
        cache.store(recipe.name, recipe.key, built.instances, job.docs)
    except (NotCacheable, OSError) as exc:
        print(f"harness: task {recipe.name!r}: requests not kept in the cache ({first_line(exc)})", file=stream)
    built.index = job.index
    return built

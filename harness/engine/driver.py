"""The Ray driver: replicas, dispatch, retries, timeouts, lost nodes, and each shard written as it finishes.

Ray appears only here and in `worker.py`. The policy (which model a free replica serves, which
shard goes next) is `harness.scheduling.policy`, shared with the simulator; what a replica asks of the
cluster is `harness.scheduling.layout` (CPU slots, or `placement.place` when there are GPUs).

Exactly-once: a shard's rows go to one Parquet file named by its key, written atomically when
the shard finishes. A lost worker or a timeout puts the shard back in the queue; nothing is
written twice because a key is written by whoever finishes it first and skipped afterwards.

Faults: the driver keeps its own account of the live cluster (`ResourcePool` over `ray.nodes()`,
re-read every few seconds and whenever a worker dies). A replica is started only where the
account says it fits, so after a node dies the run shrinks to what is left instead of waiting
on replicas Ray cannot place, and grows again when nodes join. A shard's clock starts when its
replica has loaded the model; one that runs past `shard_timeout_s` is killed with its replica
and retried, up to `max_attempts` times. A replica that never comes up (its node died, Ray
cannot place it, its constructor crashed) gives its shard back without an attempt counted; a
model none of whose replicas comes up in `max_attempts` tries fails its shards with the reason.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.engine import cluster as ray_cluster
from harness.scheduling.layout import Layout, cpu_layout, gpu_layout, replica_costs, shard_cost
from harness.plan.shards import Plan, Shard
from harness.engine.progress import Progress
from harness.scheduling.resources import ReplicaSpec, ResourcePool
from harness.engine.state import RunState, ShardOutcome, replica_record, write_shard
from harness.scheduling.policy import ShardQueue, WorkItem, choose_model

__all__ = ["Driver", "RunState", "ShardOutcome", "default_worker_class"]

REFRESH_S = 2.0  # how often the live cluster is re-read (nodes that joined or died)
# A replica may take this long to come up whatever `shard_timeout_s` says: a 12B checkpoint
# downloaded from a hub can take many minutes, and a short shard timeout is about hangs.
START_TIMEOUT_FLOOR_S = 900.0


@dataclass
class _Actor:
    """One live replica: a Ray actor holding one model, and the shard it is scoring."""

    index: int  # a small number reused after release: the shard's `worker` in the manifest
    model: str
    spec: ReplicaSpec
    handle: Any
    started: float
    where: Any = None  # its reservation in the driver's ResourcePool (None: not accounted)
    ready_at: float | None = None  # when its constructor finished (weights loaded)
    shard: Shard | None = None
    dispatched: float = 0.0


def default_worker_class() -> type:
    from harness.engine.worker import ShardWorker

    return ShardWorker


def _item(shard: Shard) -> WorkItem:
    return WorkItem(shard.key, shard.replica.key, shard_cost(shard.replica.n_params_estimate, shard.est_tokens))


class Driver:
    """Runs the pending shards of a plan on Ray and writes each finished shard at once.

    `worker_cls` is the actor's class (default `ShardWorker`; tests pass subclasses that hang or
    fail); `gpu_memory_bytes` overrides the measured memory of one GPU; `start_timeout_s` is how
    long a replica may take to load (default: the shard timeout, at least 15 minutes).
    """

    def __init__(self, plan: Plan, run_dir: Path, progress: Progress, state: RunState,
                 on_shard_done=None, *, worker_cls: type | None = None,
                 gpu_memory_bytes: int | None = None, start_timeout_s: float | None = None) -> None:
        self.plan = plan
        self.sweep = plan.sweep
        self.run_dir = run_dir
        self.progress = progress
        self.state = state
        self.on_shard_done = on_shard_done or (lambda: None)
        self.replicas = {r.key: r for r in plan.replicas}
        self.worker_cls = worker_cls
        self.gpu_memory_bytes = gpu_memory_bytes
        self.start_timeout_s = start_timeout_s or max(self.sweep.shard_timeout_s, START_TIMEOUT_FLOOR_S)

    def execute(self, pending: list[Shard]) -> RunState:
        import ray

        ray_cluster.start_ray(self.sweep.address, self.sweep.workers)
        asked = ray_cluster.wants_gpus_from_autoscaler(self.sweep.address, self.sweep.device,
                                                       ray_cluster.cluster_gpus())
        try:
            if asked:
                ray_cluster.request_gpus(self.sweep.workers or len({s.replica.key for s in pending}))
                ray_cluster.wait_for_gpus(self.sweep.shard_timeout_s)
            self.state.resources = {k: float(v) for k, v in ray.cluster_resources().items()}
            self.layout = self._make_layout(pending)
            self.remote_cls = ray.remote(max_restarts=0)(self.worker_cls or default_worker_class())
            self._run(pending)
        finally:
            if asked:
                ray_cluster.release_request()
        return self.state

    def _run(self, pending: list[Shard]) -> None:
        self.by_key = {s.key: s for s in pending}
        self.queue = ShardQueue(_item(s) for s in pending)
        self.attempts: Counter = Counter()
        self.start_failures: Counter = Counter()  # per model: replicas that never came up
        self.actors: dict[int, _Actor] = {}
        self.waiting: dict[Any, tuple[str, _Actor]] = {}  # object ref -> ("ready" | "shard", actor)
        self.stalled_since: float | None = None
        self.state.scoring_started = time.monotonic()
        self._refresh()
        self.progress.start()
        try:
            for model in self.layout.order:
                if self.queue.queued(model) and self.pool.fits(self.layout.specs[model]):
                    self._start(model)
            while self.queue or any(a.shard is not None for a in self.actors.values()):
                self._step()
        finally:
            self.state.scoring_ended = time.monotonic()
            for actor in list(self.actors.values()):
                self._stop(actor)

    def _make_layout(self, pending: list[Shard]) -> Layout:
        models = {s.replica.key for s in pending}
        if self.sweep.device == "cpu" or ray_cluster.cluster_gpus() <= 0:
            return cpu_layout(models, self.sweep.workers)
        memory = self.gpu_memory_bytes = self.gpu_memory_bytes or ray_cluster.probe_gpu_memory_bytes()
        costs = replica_costs(((s.replica.key, s.replica.n_params_estimate, s.replica.spec.dtype, s.est_tokens)
                               for s in pending), self.sweep.batch_size, memory)
        return gpu_layout(costs, ray_cluster.live_cluster(memory), self.sweep.workers)

    def _event(self, event: str, **details: Any) -> None:
        self.state.events.append({"t": round(time.monotonic() - (self.state.scoring_started or 0.0), 3),
                                  "event": event, **details})

    # -- the loop --------------------------------------------------------------------------
    def _step(self) -> None:
        import ray

        if time.monotonic() - self.refreshed > REFRESH_S:
            self._refresh()
        self._dispatch_idle()
        self._grow()
        if not self.waiting:
            self._wait_for_capacity()
            return
        self.stalled_since = None
        ready, _ = ray.wait(list(self.waiting), num_returns=1, timeout=1.0)
        for ref in ready:
            kind, actor = self.waiting.pop(ref)
            if self.actors.get(actor.index) is not actor:
                continue  # stopped meanwhile
            if kind == "ready":
                self._on_ready(ref, actor)
            else:
                self._finish(ref, actor)
        self._check_timeouts()

    def _refresh(self) -> None:
        """Rebuild the account of free resources from the live nodes and the replicas we hold.

        Replicas that came up are counted first (they run, whatever the account says); one that
        has not come up and no longer fits waits on a node that died: it is stopped and its
        shard, which never ran, goes back to the queue.
        """
        memory = self.gpu_memory_bytes or ray_cluster.ASSUMED_GPU_MEMORY_BYTES
        self.pool = ResourcePool(ray_cluster.live_cluster(memory))
        self.refreshed = time.monotonic()
        for actor in sorted(self.actors.values(), key=lambda a: (a.ready_at is None, a.index)):
            actor.where = self.pool.allocate(actor.spec)
            if actor.where is None and actor.ready_at is None:
                self._requeue(self._stop(actor))
                self._event("replica_unplaceable", worker=actor.index, model=actor.model)

    def _dispatch_idle(self) -> None:
        """Idle replicas take their model's longest queued shard, or are released so that the
        models still working can grow."""
        for actor in list(self.actors.values()):
            if actor.ready_at is not None and actor.shard is None:
                if self.queue.queued(actor.model):
                    self._give(actor)
                elif not self._switch(actor):
                    self._stop(actor)

    def _grow(self) -> None:
        """Start replicas on free resources for the models `choose_model` picks."""
        layout, specs = self.layout, self.layout.specs
        while self.queue and (layout.max_actors is None or len(self.actors) < layout.max_actors):
            held = Counter(a.model for a in self.actors.values())
            model = choose_model(self.queue.queued_cost(), held, lambda m: self.pool.fits(specs[m]),
                                 size=layout.size, min_share=layout.min_share)
            if model is None:
                return
            self._start(model)

    def _wait_for_capacity(self) -> None:
        """Nothing runs and nothing fits (every worker node gone, say): wait for nodes to join,
        up to `start_timeout_s`, then fail what is left with the reason."""
        now = time.monotonic()
        if self.stalled_since is None:
            self.stalled_since = now
            self._event("no_capacity", queued=self.queue.queued())
        if now - self.stalled_since <= self.start_timeout_s:
            time.sleep(0.5)
            self._refresh()
            return
        for model in list(self.queue.queued_cost()):
            spec = self.layout.specs[model]
            self._fail_model(model, f"no node could start a replica (num_gpus={spec.num_gpus:g}, "
                                    f"num_cpus={spec.num_cpus:g}) for {self.start_timeout_s:g} s; "
                                    "add nodes or GPU memory")

    # -- replicas ---------------------------------------------------------------------------
    def _start(self, model: str) -> _Actor:
        spec = self.layout.specs[model]
        replica = self.replicas[model]
        options: dict[str, Any] = {"num_cpus": spec.num_cpus}
        if spec.num_gpus > 0:
            options["num_gpus"] = spec.num_gpus
        handle = self.remote_cls.options(**options).remote(
            replica.checkpoint, replica.spec.dtype, self.sweep.device, self.sweep.backend,
            self.sweep.batch_size, self.layout.threads, replica.spec.trust_remote_code,
            replica.spec.allow_pickle, spec.num_gpus)
        index = min(set(range(len(self.actors) + 1)) - set(self.actors))
        actor = _Actor(index, model, spec, handle, time.monotonic(), self.pool.allocate(spec))
        self.actors[index] = actor
        self.waiting[handle.info.remote()] = ("ready", actor)  # answers once the model is loaded
        self.state.slots = max(self.state.slots, len(self.actors))
        self._give_if_first(actor)
        return actor

    def _give_if_first(self, actor: _Actor) -> None:
        """The first replicas of a model get a shard at once, queued behind the load. Later ones
        wait until they are up: a replica that is already working should not see a shard sit on
        one that may be loading for minutes, or waiting for a node that died."""
        if not any(a.ready_at is not None for a in self.actors.values() if a.model == actor.model):
            self._give(actor)

    def _switch(self, actor: _Actor) -> bool:
        """Move an idle replica whose model is done to the model that needs it most, in the same
        process, when that model asks for the same resources (always so on CPU slots)."""
        if actor.spec.num_gpus > 0:
            return False  # GPU replicas differ in memory and GPU share: release and re-place them

        def same_slot(m: str) -> bool:
            spec = self.layout.specs[m]
            return spec.num_gpus == 0 and spec.num_cpus == actor.spec.num_cpus

        held = Counter(a.model for a in self.actors.values() if a is not actor)
        model = choose_model(self.queue.queued_cost(), held, same_slot,
                             size=self.layout.size, min_share=self.layout.min_share)
        if model is None:
            return False
        replica = self.replicas[model]
        ref = actor.handle.switch.remote(
            replica.checkpoint, replica.spec.dtype, self.sweep.device, self.sweep.backend,
            self.sweep.batch_size, replica.spec.trust_remote_code, replica.spec.allow_pickle,
            actor.spec.num_gpus)
        actor.model, actor.spec = model, self.layout.specs[model]
        actor.started, actor.ready_at = time.monotonic(), None
        self.waiting[ref] = ("ready", actor)
        self._give_if_first(actor)
        return True

    def _requeue(self, shard: Shard | None) -> None:
        """A shard that never ran goes back without counting an attempt."""
        if shard is not None:
            self.queue.push(_item(shard))

    def _give(self, actor: _Actor) -> None:
        item = self.queue.pop(actor.model)
        if item is None:
            return
        actor.shard, actor.dispatched = self.by_key[item.key], time.monotonic()
        self.waiting[actor.handle.score.remote(actor.shard.instances)] = ("shard", actor)

    def _stop(self, actor: _Actor) -> Shard | None:
        """Kill a replica and forget it; returns the shard it held (the caller decides its fate)."""
        import ray

        try:
            ray.kill(actor.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead is fine
            pass
        self.actors.pop(actor.index, None)
        if actor.where is not None:
            self.pool.release(actor.spec, actor.where)
        for ref in [r for r, (_, a) in self.waiting.items() if a is actor]:
            del self.waiting[ref]
        shard, actor.shard = actor.shard, None
        return shard

    def _on_ready(self, ref, actor: _Actor) -> None:
        import ray
        from ray.exceptions import RayActorError

        try:
            info = ray.get(ref)
        except RayActorError as exc:
            self._lose(actor, exc)
            return
        actor.ready_at = time.monotonic()
        if info.get("error"):  # the model did not load: every shard of it fails, the rest go on
            error = f"model failed to load: {info['error']}"
            shard = self._stop(actor)
            if shard is not None:
                self.attempts[shard.key] += 1
                self._mark_failed(shard, error, self.attempts[shard.key])
            self._fail_model(actor.model, error)
            return
        self._event("replica_ready", worker=actor.index, model=actor.model,
                    load_s=round(actor.ready_at - actor.started, 3))
        if actor.shard is not None:
            actor.dispatched = actor.ready_at  # the shard's clock starts now, loading was not its time
        elif self.queue.queued(actor.model):
            self._give(actor)
        else:
            self._stop(actor)

    def _lose(self, actor: _Actor, exc: BaseException) -> None:
        """The replica (or its node) died: its shard goes back and the cluster is re-read. A
        model whose replicas keep dying before they come up fails after `max_attempts`."""
        shard = self._stop(actor)
        reason = f"worker lost: {_first_line(exc)}"
        self._event("worker_lost", worker=actor.index, model=actor.model, error=type(exc).__name__,
                    shard=shard.key if shard else None)
        if actor.ready_at is None:
            self._requeue(shard)
            self._start_failed(actor.model, reason)
        elif shard is not None:
            self.attempts[shard.key] += 1
            self._retry_or_fail(shard, reason)
        self._refresh()

    def _start_failed(self, model: str, reason: str) -> None:
        self.start_failures[model] += 1
        if self.start_failures[model] >= self.sweep.max_attempts:
            self._fail_model(model, f"no replica started in {self.start_failures[model]} tries; last: {reason}")

    # -- completion -----------------------------------------------------------------------
    def _finish(self, ref, actor: _Actor) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            result = ray.get(ref)
        except RayActorError as exc:
            self._lose(actor, exc)
            return
        except RayTaskError as exc:  # the method itself raised (ShardWorker returns errors as values)
            result = {"status": "failed", "retry": True, "error": str(exc).strip().splitlines()[-1]}
        shard, actor.shard = actor.shard, None
        self.attempts[shard.key] += 1
        if result["status"] == "load_error":
            self._stop(actor)
            self._mark_failed(shard, f"model failed to load: {result['error']}", self.attempts[shard.key])
            self._fail_model(shard.replica.key, f"model failed to load: {result['error']}")
            return
        if result["status"] == "failed":
            if result.get("retry"):
                self._retry_or_fail(shard, result["error"])
            else:
                self._mark_failed(shard, result["error"], self.attempts[shard.key])
            return
        write_shard(self.run_dir, shard, result["rows"])
        self.state.busy_seconds += result["seconds"]
        self.state.replicas[shard.replica.key] = replica_record(shard, actor.spec, result)
        self.state.outcomes[shard.key] = ShardOutcome("done", result["seconds"], self.attempts[shard.key],
                                                      None, actor.index)
        self.progress.update(shard.replica.key, shard.n_requests)
        self.on_shard_done()

    def _retry_or_fail(self, shard: Shard, error: str) -> None:
        attempts = self.attempts[shard.key]
        if attempts >= self.sweep.max_attempts:
            self._mark_failed(shard, f"failed {attempts} times; last error: {error}", attempts)
        else:
            self.queue.push(_item(shard))

    def _mark_failed(self, shard: Shard, error: str, attempts: int) -> None:
        self.state.outcomes[shard.key] = ShardOutcome("failed", 0.0, attempts, error)
        self.progress.update(shard.replica.key, shard.n_requests, failed=True)
        self.on_shard_done()

    def _fail_model(self, model: str, error: str) -> None:
        """Every queued shard of `model` fails with `error`; other models go on."""
        while (item := self.queue.pop(model)) is not None:
            self._mark_failed(self.by_key[item.key], error, self.attempts[item.key])

    def _check_timeouts(self) -> None:
        """Kill replicas whose shard ran past the timeout (a hung forward pass cannot be
        interrupted: the shard counts an attempt and is retried), and replicas that did not
        come up in `start_timeout_s` (their shard goes back; their model counts a failed start)."""
        now, limit = time.monotonic(), self.sweep.shard_timeout_s
        for actor in list(self.actors.values()):
            if actor.ready_at is None and now - actor.started > self.start_timeout_s:
                self._requeue(self._stop(actor))
                self._event("start_timeout", worker=actor.index, model=actor.model)
                self._start_failed(actor.model, f"replica did not start within {self.start_timeout_s:g} s")
            elif actor.shard is not None and now - actor.dispatched > limit:
                shard = self._stop(actor)
                error = f"timed out after {limit:g} s"
                self._event("shard_timeout", worker=actor.index, model=actor.model, shard=shard.key)
                self.attempts[shard.key] += 1
                self._retry_or_fail(shard, error)


def _first_line(exc: BaseException) -> str:
    """A one-line reason from a Ray exception (their messages run to dozens of lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__

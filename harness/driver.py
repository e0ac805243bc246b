"""The Ray driver: replicas, dispatch, retries, timeouts, lost nodes, and each shard written as it finishes.

Ray appears only here and in `worker.py`. The policy (which model a free replica serves, which
shard goes next) is `harness.schedule`, shared with the simulator; what a replica asks of the
cluster is `harness.layout` (CPU slots, or `placement.place` when there are GPUs).

Exactly-once: a shard's rows go to one Parquet file named by its key, written atomically when
the shard finishes. A lost worker or a timeout puts the shard back in the queue; nothing is
written twice because a key is written by whoever finishes it first and skipped afterwards.

Faults: the driver keeps its own account of the live cluster (`ResourcePool` over `ray.nodes()`,
re-read every few seconds and whenever a worker dies). A replica is started only where the
account says it fits, so after a node dies the run shrinks to what is left instead of waiting
on replicas Ray cannot place, and grows again when nodes join. A replica that never comes up,
or a shard that runs past `shard_timeout_s`, is killed and its shard retried, up to
`max_attempts` times.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.layout import Layout, cpu_layout, gpu_layout, replica_costs, shard_cost
from harness.plan import Plan, Shard, shard_file
from harness.progress import Progress
from harness.resources import ClusterResources, ReplicaSpec, ResourcePool
from harness.results import REQUESTS_SCHEMA, table_from_rows, write_atomic
from harness.schedule import ShardQueue, WorkItem, choose_model

REFRESH_S = 2.0  # how often the live cluster is re-read (nodes that joined or died)
# GPU memory when it cannot be measured (logical GPUs, no CUDA in the probe): a small card's.
ASSUMED_GPU_MEMORY_BYTES = 16 * 10**9


@dataclass
class ShardOutcome:
    status: str  # done | reused | failed | interrupted
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None
    worker: int | None = None


@dataclass
class RunState:
    """What the driver learned: per-shard outcomes, measured parameters, busy time, events."""

    outcomes: dict[str, ShardOutcome] = field(default_factory=dict)
    replicas: dict[str, dict] = field(default_factory=dict)
    busy_seconds: float = 0.0
    scoring_started: float | None = None
    scoring_ended: float | None = None
    slots: int = 0
    resources: dict = field(default_factory=dict)
    # Faults and resizes as they happened: {"t": seconds since scoring started, "event": ..., ...}.
    events: list[dict] = field(default_factory=list)


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

    def running_since(self) -> float | None:
        """When the current shard's clock started: loading time is not the shard's."""
        return max(self.dispatched, self.ready_at) if self.ready_at is not None else None


def start_ray(address: str | None, workers: int | None) -> None:
    """Connect to a cluster, or start a local instance with `workers` (default: all) CPUs."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)


def probe_gpu_memory_bytes(timeout_s: float = 120.0) -> int:
    """Memory of one GPU, measured by a task on a GPU node (Ray does not report it)."""
    import ray

    @ray.remote(num_gpus=1, num_cpus=0)
    def total_memory() -> int | None:
        import torch

        return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None

    try:
        measured = ray.get(total_memory.remote(), timeout=timeout_s)
    except Exception:  # noqa: BLE001 - any failure: plan with the conservative figure
        measured = None
    return int(measured) if measured else ASSUMED_GPU_MEMORY_BYTES


def default_worker_class() -> type:
    from harness.worker import ShardWorker

    return ShardWorker


def _item(shard: Shard) -> WorkItem:
    return WorkItem(shard.key, shard.replica.key, shard_cost(shard.replica.n_params_estimate, shard.est_tokens))


class Driver:
    """Runs the pending shards of a plan on Ray and writes each finished shard at once.

    `worker_cls` is the actor's class (default `ShardWorker`; tests pass subclasses that hang or
    fail); `gpu_memory_bytes` overrides the measured memory of one GPU.
    """

    def __init__(self, plan: Plan, run_dir: Path, progress: Progress, state: RunState,
                 on_shard_done=None, *, worker_cls: type | None = None,
                 gpu_memory_bytes: int | None = None) -> None:
        self.plan = plan
        self.sweep = plan.sweep
        self.run_dir = run_dir
        self.progress = progress
        self.state = state
        self.on_shard_done = on_shard_done or (lambda: None)
        self.replicas = {r.key: r for r in plan.replicas}
        self.worker_cls = worker_cls
        self.gpu_memory_bytes = gpu_memory_bytes

    def execute(self, pending: list[Shard]) -> RunState:
        import ray

        start_ray(self.sweep.address, self.sweep.workers)
        self.state.resources = {k: float(v) for k, v in ray.cluster_resources().items()}
        self.layout = self._make_layout(pending)
        self.remote_cls = ray.remote(max_restarts=0)(self.worker_cls or default_worker_class())
        self.by_key = {s.key: s for s in pending}
        self.queue = ShardQueue(_item(s) for s in pending)
        self.attempts: Counter = Counter()
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
        return self.state

    def _make_layout(self, pending: list[Shard]) -> Layout:
        import ray

        models = {s.replica.key for s in pending}
        if self.sweep.device == "cpu" or ray.cluster_resources().get("GPU", 0) <= 0:
            return cpu_layout(models, self.sweep.workers)
        memory = self.gpu_memory_bytes = self.gpu_memory_bytes or probe_gpu_memory_bytes()
        cluster = ClusterResources.from_ray_nodes(ray.nodes(), memory)
        costs = replica_costs(((s.replica.key, s.replica.n_params_estimate, s.replica.spec.dtype, s.est_tokens)
                               for s in pending), self.sweep.batch_size, memory)
        return gpu_layout(costs, cluster, self.sweep.workers)

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

        Replicas that answered come first (they run, whatever the account says); one that has
        not come up and no longer fits is waiting on a node that died: it is stopped and its
        shard, which never ran, goes back without counting an attempt.
        """
        import ray

        memory = self.gpu_memory_bytes or ASSUMED_GPU_MEMORY_BYTES
        self.pool = ResourcePool(ClusterResources.from_ray_nodes(ray.nodes(), memory))
        self.refreshed = time.monotonic()
        for actor in sorted(self.actors.values(), key=lambda a: (a.ready_at is None, a.index)):
            actor.where = self.pool.allocate(actor.spec)
            if actor.where is None and actor.ready_at is None:
                shard = self._stop(actor)
                self._event("replica_unplaceable", worker=actor.index, model=actor.model)
                if shard is not None:
                    self.queue.push(_item(shard))

    def _dispatch_idle(self) -> None:
        """Idle replicas take their model's longest queued shard, or are released so that the
        models still working can grow."""
        for actor in list(self.actors.values()):
            if actor.shard is None:
                if self.queue.queued(actor.model):
                    self._give(actor)
                else:
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
        up to `shard_timeout_s`, then fail what is left with the reason."""
        now = time.monotonic()
        if self.stalled_since is None:
            self.stalled_since = now
            self._event("no_capacity", queued=self.queue.queued())
        if now - self.stalled_since <= self.sweep.shard_timeout_s:
            time.sleep(0.5)
            self._refresh()
            return
        for model in list(self.queue.queued_cost()):
            spec = self.layout.specs[model]
            reason = (f"no node could start a replica (num_gpus={spec.num_gpus:g}, num_cpus={spec.num_cpus:g}) "
                      f"for {self.sweep.shard_timeout_s:g} s; add nodes or GPU memory")
            while (item := self.queue.pop(model)) is not None:
                self._mark_failed(self.by_key[item.key], reason, self.attempts[item.key])

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
        self.waiting[handle.info.remote()] = ("ready", actor)
        self.state.slots = max(self.state.slots, len(self.actors))
        self._give(actor)  # queued behind the constructor: no round trip lost
        return actor

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
            ray.get(ref)
        except RayActorError as exc:
            self._lose(actor, exc)
            return
        actor.ready_at = time.monotonic()

    def _lose(self, actor: _Actor, exc: BaseException) -> None:
        """The replica (or its node) died: its shard goes back and the cluster is re-read."""
        shard = self._stop(actor)
        self._event("worker_lost", worker=actor.index, model=actor.model, error=type(exc).__name__,
                    shard=shard.key if shard else None)
        if shard is not None:
            self.attempts[shard.key] += 1
            self._retry_or_fail(shard, f"worker lost: {type(exc).__name__}")
        self._refresh()

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
            self._fail_replica(shard, result["error"])
            self._stop(actor)
            return
        if result["status"] == "failed":
            if result.get("retry"):
                self._retry_or_fail(shard, result["error"])
            else:
                self._mark_failed(shard, result["error"], self.attempts[shard.key])
            return
        self._write(shard, result["rows"])
        self._record(shard, actor, result)

    def _record(self, shard: Shard, actor: _Actor, result: dict) -> None:
        self.state.busy_seconds += result["seconds"]
        self.state.replicas[shard.replica.key] = {
            "model": shard.replica.name, "revision": shard.replica.revision,
            "n_params": result["n_params"], "n_params_nonembedding": result["n_params_nonembedding"],
            "tokens_trained": shard.replica.tokens_trained, "device": result["device"],
            "trust_remote_code": shard.replica.spec.trust_remote_code,
            "num_gpus": actor.spec.num_gpus, "num_cpus": actor.spec.num_cpus,
            "resources": result.get("resources")}
        self.state.outcomes[shard.key] = ShardOutcome("done", result["seconds"], self.attempts[shard.key],
                                                      None, actor.index)
        self.progress.update(shard.replica.key, shard.n_requests)
        self.on_shard_done()

    def _write(self, shard: Shard, rows: list[dict]) -> None:
        full = []
        for inst, row in zip(shard.instances, rows, strict=True):
            full.append({"model": shard.replica.name, "revision": shard.replica.revision,
                         "task": shard.task, "doc_id": inst.doc_id, "request_idx": inst.idx,
                         "request_type": inst.request_type, "shard": shard.key, **row})
        write_atomic(table_from_rows(full, REQUESTS_SCHEMA), shard_file(self.run_dir, shard))

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

    def _fail_replica(self, shard: Shard, error: str) -> None:
        """A model that cannot load: this shard and all its queued shards fail; others go on."""
        self._mark_failed(shard, f"model failed to load: {error}", self.attempts[shard.key])
        while (item := self.queue.pop(shard.replica.key)) is not None:
            self._mark_failed(self.by_key[item.key], f"model failed to load: {error}", 0)

    def _check_timeouts(self) -> None:
        """Kill replicas whose shard ran past the timeout (a hung forward pass cannot be
        interrupted) or that never came up; the shard counts an attempt and is retried."""
        now, limit = time.monotonic(), self.sweep.shard_timeout_s
        for actor in list(self.actors.values()):
            if actor.shard is None:
                continue
            since = actor.running_since()
            if since is None and now - actor.started > limit:
                error = f"worker did not start within {limit:g} s"
            elif since is not None and now - since > limit:
                error = f"timed out after {limit:g} s"
            else:
                continue
            shard = self._stop(actor)
            self._event("shard_timeout", worker=actor.index, model=actor.model, shard=shard.key, error=error)
            self.attempts[shard.key] += 1
            self._retry_or_fail(shard, error)

"""The Ray driver: replicas, dispatch, retries, timeouts, lost nodes, and each shard written as it finishes.

The dispatch loop only: the replicas' lifecycle is `engine.replicas`, the policy (which model a
free replica serves, which shard goes next) is `harness.scheduling.policy`, shared with the
simulator; what a replica asks of the cluster is `harness.scheduling.layout` (CPU slots, or
`placement.place` when there are GPUs).

Exactly-once: a shard's rows go to one Parquet file named by its key, written atomically when
the shard finishes. A lost worker or a timeout puts the shard back in the queue; nothing is
written twice because a key is written by whoever finishes it first and skipped afterwards.

Faults: the driver keeps its own account of the live cluster (`ResourcePool` over `ray.nodes()`,
re-read every few seconds and whenever a worker dies). A replica is started only where the
account says it fits, so after a node dies the run shrinks to what is left instead of waiting
on replicas Ray cannot place, and grows again when nodes join. A shard's clock starts when its
replica has loaded the model (loading counts against the start timeout only); one that runs
past `shard_timeout_s` is killed with its replica and retried, up to `max_attempts` times. A replica that never comes up (its node died, Ray
cannot place it, its constructor crashed) gives its shard back without an attempt counted; a
model none of whose replicas comes up in `max_attempts` tries fails its shards with the reason.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness.backends.loading import LoadSpec
from harness.engine import cluster as ray_cluster
from harness.engine.progress import Progress
from harness.engine.replicas import READY, Replica, Replicas
from harness.engine.state import RunState, ShardOutcome, replica_record
from harness.errors import first_line
from harness.plan.shards import Plan, Shard
from harness.results.store import write_shard
from harness.scheduling.layout import Layout, cpu_layout, gpu_layout, replica_costs, shard_cost
from harness.scheduling.policy import ShardQueue, WorkItem, choose_model
from harness.scheduling.resources import ResourcePool

__all__ = ["Driver", "RunState", "ShardOutcome", "default_worker_class"]

REFRESH_S = 2.0  # how often the live cluster is re-read (nodes that joined or died)
# A replica may take this long to come up whatever `shard_timeout_s` says: a 12B checkpoint
# downloaded from a hub can take many minutes, and a short shard timeout is about hangs.
START_TIMEOUT_FLOOR_S = 900.0


def default_worker_class() -> type:
    from harness.engine.worker import ShardWorker

    return ShardWorker


def _item(shard: Shard) -> WorkItem:
    model = shard.model_revision
    return WorkItem(shard.key, model.key, shard_cost(model.n_params_estimate, shard.est_tokens))


class Driver:
    """Runs the pending shards of a plan on Ray and writes each finished shard at once.

    `worker_cls` is the actor's class (default `ShardWorker`; tests pass subclasses that hang or
    fail); `gpu_memory_bytes` overrides the measured memory of one GPU; `start_timeout_s` is how
    long a replica may take to load (default: the shard timeout, at least 15 minutes).
    """

    def __init__(self, plan: Plan, run_dir: Path, progress: Progress, state: RunState,
                 on_shard_done=None, *, worker_cls: type | None = None,
                 gpu_memory_bytes: int | None = None, start_timeout_s: float | None = None,
                 feed=None) -> None:
        self.plan, self.sweep, self.run_dir = plan, plan.sweep, run_dir
        # More shards while the loop runs: tasks still being built (`engine.feed.ShardFeed`).
        self.feed = feed
        self.progress, self.state = progress, state
        self.on_shard_done = on_shard_done or (lambda: None)
        self.models = {m.key: m for m in plan.model_revisions}
        self.worker_cls = worker_cls
        self.gpu_memory_bytes = gpu_memory_bytes
        self.start_timeout_s = start_timeout_s or max(self.sweep.shard_timeout_s, START_TIMEOUT_FLOOR_S)
        self.layout: Layout | None = None
        self.replicas: Replicas | None = None
        self.queue = ShardQueue(())
        self.by_key: dict[str, Shard] = {}
        self.attempts: Counter = Counter()
        self.start_failures: Counter = Counter()  # per model: replicas that never came up
        self.stalled_since: float | None = None
        self.refreshed = 0.0

    def execute(self, pending: list[Shard]) -> RunState:
        import ray

        ray_cluster.start_ray(self.sweep.address, self.sweep.workers)
        asked = ray_cluster.wants_gpus_from_autoscaler(self.sweep.address, self.sweep.device,
                                                       ray_cluster.cluster_gpus())
        try:
            if asked:
                ray_cluster.request_gpus(self.sweep.workers or len({s.model_revision.key for s in pending}))
                ray_cluster.wait_for_gpus(self.sweep.shard_timeout_s)
            self.state.resources = {k: float(v) for k, v in ray.cluster_resources().items()}
            self.layout = self._make_layout(pending)
            remote_cls = ray.remote(max_restarts=0)(self.worker_cls or default_worker_class())
            self.replicas = Replicas(remote_cls, self._load_spec, self.layout.threads)
            self._run(pending)
        finally:
            if asked:
                ray_cluster.release_request()
        return self.state

    def _load_spec(self, model: str, num_gpus: float) -> LoadSpec:
        revision, sweep = self.models[model], self.sweep
        return LoadSpec(revision.checkpoint, revision.spec.dtype, sweep.device, sweep.backend, sweep.batch_size,
                        revision.spec.trust_remote_code, revision.spec.allow_pickle, num_gpus)

    def _run(self, pending: list[Shard]) -> None:
        self.by_key = {s.key: s for s in pending}
        self.queue = ShardQueue(_item(s) for s in pending)
        self.state.scoring_started = time.monotonic()
        self._refresh()
        self.progress.start()
        try:
            for model in self.layout.order:
                if self.queue.queued(model) and self.replicas.pool.fits(self.layout.specs[model]):
                    self._start(model)
            while self.queue or any(r.shard is not None for r in self.replicas.all()) or self._more_coming():
                self._step()
        finally:
            self.state.scoring_ended = time.monotonic()
            for replica in self.replicas.all():
                self.replicas.stop(replica)

    def _more_coming(self) -> bool:
        return self.feed is not None and not self.feed.done

    def _take_new(self) -> None:
        """The shards of tasks built since the last step join the queue."""
        if not self._more_coming():
            return
        shards = self.feed.take()
        self.by_key.update((s.key, s) for s in shards)
        for shard in shards:
            self.queue.push(_item(shard))
        self.progress.add(shards)

    def _make_layout(self, pending: list[Shard]) -> Layout:
        """Every model revision of the plan gets a replica spec, also those whose shards are still
        being built; their memory is sized from the shards known so far."""
        models = {m.key for m in self.plan.model_revisions} if self.feed else {s.model_revision.key for s in pending}
        if self.sweep.device == "cpu" or ray_cluster.cluster_gpus() <= 0:
            return cpu_layout(models, self.sweep.workers)
        memory = self.gpu_memory_bytes = self.gpu_memory_bytes or ray_cluster.probe_gpu_memory_bytes()
        known, longest = {s.model_revision.key for s in pending}, max(s.est_tokens for s in pending)
        rows = [(s.model_revision.key, s.model_revision.n_params_estimate, s.model_revision.spec.dtype, s.est_tokens)
                for s in pending] + [(m.key, m.n_params_estimate, m.spec.dtype, longest)
                                     for m in self.plan.model_revisions if m.key in models - known]
        costs = replica_costs(rows, self.sweep.batch_size, memory)
        return gpu_layout(costs, ray_cluster.live_cluster(memory), self.sweep.workers)

    def _event(self, event: str, **details: Any) -> None:
        self.state.events.append({"t": round(time.monotonic() - (self.state.scoring_started or 0.0), 3),
                                  "event": event, **details})

    # -- the loop --------------------------------------------------------------------------
    def _step(self) -> None:
        import ray

        if time.monotonic() - self.refreshed > REFRESH_S:
            self._refresh()
        self._take_new()
        self._dispatch_idle()
        self._grow()
        if not self.replicas.waiting:
            if self._more_coming() and not self.queue:
                time.sleep(0.2)  # everything queued is done; the next task is still being built
                return
            self._wait_for_capacity()
            return
        self.stalled_since = None
        ready, _ = ray.wait(list(self.replicas.waiting), num_returns=1, timeout=1.0)
        for ref in ready:
            kind, replica = self.replicas.waiting.pop(ref)
            if not self.replicas.is_live(replica):
                continue  # stopped meanwhile
            if kind == READY:
                self._on_ready(ref, replica)
            else:
                self._finish(ref, replica)
        self._check_timeouts()

    def _refresh(self) -> None:
        """Rebuild the account of free resources from the live nodes and the replicas we hold.

        A replica that has not come up and no longer fits waits on a node that died: it is
        stopped and its shard, which never ran, goes back to the queue.
        """
        memory = self.gpu_memory_bytes or ray_cluster.ASSUMED_GPU_MEMORY_BYTES
        self.refreshed = time.monotonic()
        for replica in self.replicas.reaccount(ResourcePool(ray_cluster.live_cluster(memory))):
            self._requeue(self.replicas.stop(replica))
            self._event("replica_unplaceable", worker=replica.index, model=replica.model)

    def _dispatch_idle(self) -> None:
        """Idle replicas take their model's longest queued shard, or are released so that the
        models still working can grow."""
        for replica in self.replicas.all():
            if replica.ready and replica.shard is None:
                if self.queue.queued(replica.model):
                    self._give(replica)
                elif not self._switch(replica) and not self._more_coming():
                    self.replicas.stop(replica)  # kept while tasks are built: its model has more to come

    def _grow(self) -> None:
        """Start replicas on free resources for the models `choose_model` picks."""
        layout, specs = self.layout, self.layout.specs
        while self.queue and (layout.max_actors is None or len(self.replicas) < layout.max_actors):
            model = choose_model(self.queue.queued_cost(), self.replicas.held(),
                                 lambda m: self.replicas.pool.fits(specs[m]),
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
    def _start(self, model: str) -> Replica:
        replica = self.replicas.start(model, self.layout.specs[model])
        self.state.slots = max(self.state.slots, len(self.replicas))
        self._give_if_first(replica)
        return replica

    def _give_if_first(self, replica: Replica) -> None:
        """The first replicas of a model get a shard at once, queued behind the load (its clock
        starts when the load is done). Later ones wait until they are up: a replica that is
        already working should not see a shard sit on one that may be loading for minutes, or
        waiting for a node that died."""
        if not self.replicas.any_ready(replica.model):
            self._give(replica)

    def _switch(self, replica: Replica) -> bool:
        """Move an idle replica whose model is done to the model that needs it most, in the same
        process, when that model asks for the same resources (always so on CPU slots)."""
        if replica.spec.num_gpus > 0:
            return False  # GPU replicas differ in memory and GPU share: release and re-place them

        def same_slot(m: str) -> bool:
            spec = self.layout.specs[m]
            return spec.num_gpus == 0 and spec.num_cpus == replica.spec.num_cpus

        model = choose_model(self.queue.queued_cost(), self.replicas.held(but=replica), same_slot,
                             size=self.layout.size, min_share=self.layout.min_share)
        if model is None:
            return False
        self.replicas.switch(replica, model, self.layout.specs[model])
        self._give_if_first(replica)
        return True

    def _requeue(self, shard: Shard | None) -> None:
        """A shard that never ran goes back without counting an attempt."""
        if shard is not None:
            self.queue.push(_item(shard))

    def _give(self, replica: Replica) -> None:
        item = self.queue.pop(replica.model)
        if item is not None:
            self.replicas.dispatch(replica, self.by_key[item.key])

    def _on_ready(self, ref, replica: Replica) -> None:
        import ray
        from ray.exceptions import RayActorError

        try:
            info = ray.get(ref)
        except RayActorError as exc:
            self._lose(replica, exc)
            return
        replica.ready_at = time.monotonic()
        if info.get("error"):  # the model did not load: every shard of it fails, the rest go on
            error = f"model failed to load: {info['error']}"
            shard = self.replicas.stop(replica)
            if shard is not None:
                self.attempts[shard.key] += 1
                self._mark_failed(shard, error, self.attempts[shard.key])
            self._fail_model(replica.model, error)
            return
        self._event("replica_ready", worker=replica.index, model=replica.model,
                    load_s=round(replica.ready_at - replica.started, 3))
        if replica.shard is not None:
            replica.dispatched = replica.ready_at  # the shard's clock starts now, loading was not its time
        elif self.queue.queued(replica.model):
            self._give(replica)
        else:
            self.replicas.stop(replica)

    def _lose(self, replica: Replica, exc: BaseException) -> None:
        """The replica (or its node) died: its shard goes back and the cluster is re-read. A
        model whose replicas keep dying before they come up fails after `max_attempts`."""
        shard = self.replicas.stop(replica)
        reason = f"worker lost: {first_line(exc, with_type=True)}"
        self._event("worker_lost", worker=replica.index, model=replica.model, error=type(exc).__name__,
                    shard=shard.key if shard else None)
        if not replica.ready:
            self._requeue(shard)
            self._start_failed(replica.model, reason)
        elif shard is not None:
            self.attempts[shard.key] += 1
            self._retry_or_fail(shard, reason)
        self._refresh()

    def _start_failed(self, model: str, reason: str) -> None:
        self.start_failures[model] += 1
        if self.start_failures[model] >= self.sweep.max_attempts:
            self._fail_model(model, f"no replica started in {self.start_failures[model]} tries; last: {reason}")

    # -- completion -----------------------------------------------------------------------
    def _finish(self, ref, replica: Replica) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            result = ray.get(ref)
        except RayActorError as exc:
            self._lose(replica, exc)
            return
        except RayTaskError as exc:  # the method itself raised (ShardWorker returns errors as values)
            result = {"status": "failed", "retry": True, "error": str(exc).strip().splitlines()[-1]}
        shard, replica.shard = replica.shard, None
        self.attempts[shard.key] += 1
        if result["status"] == "load_error":
            self.replicas.stop(replica)
            self._mark_failed(shard, f"model failed to load: {result['error']}", self.attempts[shard.key])
            self._fail_model(shard.model_revision.key, f"model failed to load: {result['error']}")
        elif result["status"] == "failed":
            if result.get("retry"):
                self._retry_or_fail(shard, result["error"])
            else:
                self._mark_failed(shard, result["error"], self.attempts[shard.key])
        else:
            self._record_done(shard, replica, result)

    def _record_done(self, shard: Shard, replica: Replica, result: dict) -> None:
        write_shard(self.run_dir, shard, result["rows"])
        self.state.busy_seconds += result["seconds"]
        self.state.replicas[shard.model_revision.key] = replica_record(shard, replica.spec, result)
        self.state.outcomes[shard.key] = ShardOutcome("done", result["seconds"], self.attempts[shard.key],
                                                      None, replica.index)
        self.progress.update(shard.model_revision.key, shard.n_requests)
        self.on_shard_done()

    def _retry_or_fail(self, shard: Shard, error: str) -> None:
        attempts = self.attempts[shard.key]
        if attempts >= self.sweep.max_attempts:
            self._mark_failed(shard, f"failed {attempts} times; last error: {error}", attempts)
        else:
            self.queue.push(_item(shard))

    def _mark_failed(self, shard: Shard, error: str, attempts: int) -> None:
        self.state.outcomes[shard.key] = ShardOutcome("failed", 0.0, attempts, error)
        self.progress.update(shard.model_revision.key, shard.n_requests, failed=True)
        self.on_shard_done()

    def _fail_model(self, model: str, error: str) -> None:
        """Every queued shard of `model` fails with `error`; other models go on."""
        while (item := self.queue.pop(model)) is not None:
            self._mark_failed(self.by_key[item.key], error, self.attempts[item.key])

    def _check_timeouts(self) -> None:
        """Kill replicas that did not come up in `start_timeout_s` (their shard goes back; their
        model counts a failed start), and replicas whose shard ran past the shard timeout (a hung
        forward pass cannot be interrupted: the shard counts an attempt and is retried). Only a
        replica that is up can time a shard out: loading is the start timeout's business."""
        now, limit = time.monotonic(), self.sweep.shard_timeout_s
        for replica in self.replicas.all():
            if not replica.ready:
                if now - replica.started > self.start_timeout_s:
                    self._requeue(self.replicas.stop(replica))
                    self._event("start_timeout", worker=replica.index, model=replica.model)
                    self._start_failed(replica.model, f"replica did not start within {self.start_timeout_s:g} s")
            elif replica.shard is not None and now - replica.dispatched > limit:
                shard = self.replicas.stop(replica)
                self._event("shard_timeout", worker=replica.index, model=replica.model, shard=shard.key)
                self.attempts[shard.key] += 1
                self._retry_or_fail(shard, f"timed out after {limit:g} s")

"""The Ray driver: slots, dispatch, retries, timeouts and writing each shard as it finishes.

Ray appears only here and in `worker.py`. The policy (which model a free slot serves, which
shard goes next) is `harness.schedule`, shared with the simulator.

Exactly-once: a shard's rows go to one Parquet file named by its key, written atomically when
the shard finishes. A lost worker or a timeout puts the shard back in the queue; nothing is
written twice because a key is written by whoever finishes it first and skipped afterwards.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.plan import Plan, Shard, shard_file
from harness.progress import Progress
from harness.results import REQUESTS_SCHEMA, table_from_rows, write_atomic
from harness.schedule import ShardQueue, WorkItem, choose_model


@dataclass
class ShardOutcome:
    status: str  # done | reused | failed | interrupted
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None
    worker: int | None = None


@dataclass
class RunState:
    """What the driver learned: per-shard outcomes, measured parameters, busy time per slot."""

    outcomes: dict[str, ShardOutcome] = field(default_factory=dict)
    replicas: dict[str, dict] = field(default_factory=dict)
    busy_seconds: float = 0.0
    scoring_started: float | None = None
    scoring_ended: float | None = None
    slots: int = 0
    resources: dict = field(default_factory=dict)


@dataclass
class _Slot:
    index: int
    actor: Any = None
    replica: str | None = None
    busy: bool = False


def start_ray(address: str | None, workers: int | None, device: str) -> tuple[int, dict, dict]:
    """Connect to a cluster or start a local instance. Returns (slots, actor options, resources)."""
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            cpus = workers or os.cpu_count() or 1
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if device != "cpu" and gpus > 0:
        # One replica per GPU by default; placement of fractional / multi-GPU replicas is the
        # cluster scheduler's job (harness.placement) and uses the same slot loop.
        slots = workers or gpus
        return slots, {"num_gpus": gpus / slots if slots > gpus else 1, "num_cpus": 1}, resources
    slots = workers or int(resources.get("CPU", 1))
    return slots, {"num_cpus": 1}, resources


def _remote_worker_class():
    import ray

    from harness.worker import ShardWorker

    return ray.remote(max_restarts=0)(ShardWorker)


class Driver:
    """Runs the pending shards of a plan on Ray and writes each finished shard at once."""

    def __init__(self, plan: Plan, run_dir: Path, progress: Progress, state: RunState,
                 on_shard_done=None) -> None:
        self.plan = plan
        self.sweep = plan.sweep
        self.run_dir = run_dir
        self.progress = progress
        self.state = state
        self.on_shard_done = on_shard_done or (lambda: None)
        self.replicas = {r.key: r for r in plan.replicas}

    def execute(self, pending: list[Shard]) -> RunState:
        import ray

        slots_n, actor_options, resources = start_ray(self.sweep.address, self.sweep.workers, self.sweep.device)
        self.state.slots, self.state.resources = slots_n, {k: float(v) for k, v in resources.items()}
        self.actor_options = actor_options
        self.worker_cls = _remote_worker_class()
        self.threads = 1 if "num_gpus" not in actor_options else None
        by_key = self.by_key = {s.key: s for s in pending}
        queue = ShardQueue(WorkItem(s.key, s.replica.key, max(s.cost, float(s.est_tokens))) for s in pending)
        slots = [_Slot(i) for i in range(slots_n)]
        inflight: dict[Any, tuple[_Slot, Shard, float]] = {}
        attempts: Counter = Counter()
        self.state.scoring_started = time.monotonic()
        self.progress.start()
        try:
            while queue or inflight:
                self._fill_slots(slots, queue, by_key, inflight)
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    slot, shard, started = inflight.pop(ref)
                    slot.busy = False
                    self._finish(ref, slot, shard, started, queue, attempts)
                self._check_timeouts(inflight, queue, attempts)
        finally:
            self.state.scoring_ended = time.monotonic()
            for slot in slots:
                self._release(slot)
        return self.state

    # -- dispatch -------------------------------------------------------------------------
    def _fill_slots(self, slots, queue: ShardQueue, by_key, inflight) -> None:
        for slot in slots:
            if slot.busy or not queue:
                continue
            # Keep a loaded model while it has work (loading is the expensive part); otherwise
            # move the slot to the model with the most queued work per replica.
            model = slot.replica if slot.replica and queue.queued(slot.replica) else None
            if model is None:
                held = Counter(s.replica for s in slots if s is not slot and s.replica and s.busy)
                model = choose_model(queue.queued_cost(), held)
            if model is None:
                continue
            item = queue.pop(model)
            if slot.replica != model:
                self._release(slot)
                slot.actor, slot.replica = self._start_actor(model), model
            shard = by_key[item.key]
            slot.busy = True
            inflight[slot.actor.score.remote(shard.instances)] = (slot, shard, time.monotonic())

    def _start_actor(self, replica_key: str):
        replica = self.replicas[replica_key]
        spec = replica.spec
        return self.worker_cls.options(**self.actor_options).remote(
            replica.checkpoint, spec.dtype, self.sweep.device, self.sweep.backend,
            self.sweep.batch_size, self.threads, spec.trust_remote_code, spec.allow_pickle)

    def _release(self, slot: _Slot) -> None:
        import ray

        if slot.actor is not None:
            ray.kill(slot.actor, no_restart=True)
        slot.actor, slot.replica, slot.busy = None, None, False

    # -- completion -----------------------------------------------------------------------
    def _finish(self, ref, slot: _Slot, shard: Shard, started: float, queue, attempts) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        attempts[shard.key] += 1
        try:
            result = ray.get(ref)
        except (RayActorError, GetTimeoutError) as exc:
            # The worker (or its node) died: the shard goes back; the slot gets a fresh actor.
            slot.actor, slot.replica = None, None
            self._retry_or_fail(shard, queue, attempts, f"worker lost: {type(exc).__name__}")
            return
        except RayTaskError as exc:
            self._retry_or_fail(shard, queue, attempts, str(exc).splitlines()[-1])
            return
        if result["status"] == "load_error":
            self._fail_replica(shard, queue, result["error"], attempts)
            self._release(slot)
            return
        if result["status"] == "failed":
            if result.get("retry"):
                self._retry_or_fail(shard, queue, attempts, result["error"])
            else:
                self._mark_failed(shard, result["error"], attempts[shard.key])
            return
        self._write(shard, result["rows"])
        self.state.busy_seconds += result["seconds"]
        self.state.replicas[shard.replica.key] = {
            "model": shard.replica.name, "revision": shard.replica.revision,
            "n_params": result["n_params"], "n_params_nonembedding": result["n_params_nonembedding"],
            "tokens_trained": shard.replica.tokens_trained, "device": result["device"],
            "trust_remote_code": shard.replica.spec.trust_remote_code}
        self.state.outcomes[shard.key] = ShardOutcome("done", result["seconds"], attempts[shard.key], None, slot.index)
        self.progress.update(shard.replica.key, shard.n_requests)
        self.on_shard_done()

    def _write(self, shard: Shard, rows: list[dict]) -> None:
        full = []
        for inst, row in zip(shard.instances, rows, strict=True):
            full.append({"model": shard.replica.name, "revision": shard.replica.revision,
                         "task": shard.task, "doc_id": inst.doc_id, "request_idx": inst.idx,
                         "request_type": inst.request_type, "shard": shard.key, **row})
        write_atomic(table_from_rows(full, REQUESTS_SCHEMA), shard_file(self.run_dir, shard))

    def _retry_or_fail(self, shard: Shard, queue: ShardQueue, attempts, error: str) -> None:
        if attempts[shard.key] >= self.sweep.max_attempts:
            self._mark_failed(shard, f"failed {attempts[shard.key]} times; last error: {error}", attempts[shard.key])
        else:
            queue.push(WorkItem(shard.key, shard.replica.key, max(shard.cost, float(shard.est_tokens))))

    def _mark_failed(self, shard: Shard, error: str, attempts: int) -> None:
        self.state.outcomes[shard.key] = ShardOutcome("failed", 0.0, attempts, error)
        self.progress.update(shard.replica.key, shard.n_requests, failed=True)
        self.on_shard_done()

    def _fail_replica(self, shard: Shard, queue: ShardQueue, error: str, attempts) -> None:
        """A model that cannot load: this shard and all its queued shards fail; others go on."""
        self._mark_failed(shard, f"model failed to load: {error}", attempts[shard.key])
        while (item := queue.pop(shard.replica.key)) is not None:
            self._mark_failed(self.by_key[item.key], f"model failed to load: {error}", 0)

    def _check_timeouts(self, inflight, queue, attempts) -> None:
        now = time.monotonic()
        for ref, (slot, shard, started) in list(inflight.items()):
            if now - started <= self.sweep.shard_timeout_s:
                continue
            inflight.pop(ref)
            attempts[shard.key] += 1
            self._release(slot)  # kills the actor: a hung forward pass cannot be interrupted
            self._retry_or_fail(shard, queue, attempts, f"timed out after {self.sweep.shard_timeout_s:g} s")

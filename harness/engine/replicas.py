"""The live replicas of a run: Ray actors that each hold one model revision, and their lifecycle.

A replica is started where the driver's account of the cluster (`ResourcePool`) says it fits,
loads its model in its constructor (`ready` answers once the weights are in), may switch to
another model in the same process, and is stopped by the driver. The driver decides *when*;
this module knows *how*, and which Ray object refs answer for which replica.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.backends.loading import LoadSpec
from harness.plan.shards import Shard
from harness.scheduling.resources import ReplicaSpec, ResourcePool

READY, SHARD = "ready", "shard"  # what an awaited object ref answers: a load, or a scored shard


@dataclass
class Replica:
    """One live replica: a Ray actor holding one model, and the shard it is scoring."""

    index: int  # a small number reused after release: the shard's `worker` in the manifest
    model: str  # the model revision's key, model@revision
    spec: ReplicaSpec
    handle: Any
    started: float  # when its current model began loading
    where: Any = None  # its reservation in the driver's ResourcePool (None: not accounted)
    ready_at: float | None = None  # when its model finished loading
    shard: Shard | None = None
    dispatched: float = 0.0  # when its shard's clock started (never before the model loaded)

    @property
    def ready(self) -> bool:
        return self.ready_at is not None


class Replicas:
    """Starts, switches and stops replicas, and keeps the refs the driver waits on.

    `load_spec(model, num_gpus)` says what a replica of `model` loads; `remote_cls` is the Ray
    actor class (`ShardWorker` under `ray.remote`).
    """

    def __init__(self, remote_cls: Any, load_spec: Callable[[str, float], LoadSpec], threads: int | None) -> None:
        self.remote_cls, self.load_spec, self.threads = remote_cls, load_spec, threads
        self.live: dict[int, Replica] = {}
        self.waiting: dict[Any, tuple[str, Replica]] = {}  # object ref -> (READY | SHARD, replica)
        self.pool: ResourcePool | None = None

    def __len__(self) -> int:
        return len(self.live)

    def all(self) -> list[Replica]:
        return list(self.live.values())

    def held(self, but: Replica | None = None) -> Counter:
        """Replicas per model (but one)."""
        return Counter(r.model for r in self.live.values() if r is not but)

    def any_ready(self, model: str) -> bool:
        return any(r.ready for r in self.live.values() if r.model == model)

    def start(self, model: str, spec: ReplicaSpec) -> Replica:
        """A new actor for `model`, reserved in the pool; its load is awaited as READY."""
        options: dict[str, Any] = {"num_cpus": spec.num_cpus}
        if spec.num_gpus > 0:
            options["num_gpus"] = spec.num_gpus
        handle = self.remote_cls.options(**options).remote(self.load_spec(model, spec.num_gpus), self.threads)
        index = min(set(range(len(self.live) + 1)) - set(self.live))
        replica = Replica(index, model, spec, handle, time.monotonic(), self.pool.allocate(spec))
        self.live[index] = replica
        self.waiting[handle.info.remote()] = (READY, replica)  # answers once the model is loaded
        return replica

    def switch(self, replica: Replica, model: str, spec: ReplicaSpec) -> None:
        """Load another model in the replica's process (same slot); awaited as READY."""
        ref = replica.handle.switch.remote(self.load_spec(model, replica.spec.num_gpus))
        replica.model, replica.spec = model, spec
        replica.started, replica.ready_at = time.monotonic(), None
        self.waiting[ref] = (READY, replica)

    def dispatch(self, replica: Replica, shard: Shard) -> None:
        """Hand a shard to a replica; awaited as SHARD. A replica still loading queues it."""
        replica.shard, replica.dispatched = shard, time.monotonic()
        self.waiting[replica.handle.run.remote(shard.instances)] = (SHARD, replica)

    def stop(self, replica: Replica) -> Shard | None:
        """Kill a replica and forget it; returns the shard it held (the caller decides its fate)."""
        import ray

        try:
            ray.kill(replica.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead is fine
            pass
        self.live.pop(replica.index, None)
        if replica.where is not None:
            self.pool.release(replica.spec, replica.where)
        for ref in [r for r, (_, held) in self.waiting.items() if held is replica]:
            del self.waiting[ref]
        shard, replica.shard = replica.shard, None
        return shard

    def reaccount(self, pool: ResourcePool) -> list[Replica]:
        """Account every replica in a fresh pool; returns those not yet up that no longer fit.

        Replicas that came up are counted first: they run, whatever the account says.
        """
        self.pool = pool
        homeless = []
        for replica in sorted(self.live.values(), key=lambda r: (not r.ready, r.index)):
            replica.where = pool.allocate(replica.spec)
            if replica.where is None and not replica.ready:
                homeless.append(replica)
        return homeless

    def is_live(self, replica: Replica) -> bool:
        return self.live.get(replica.index) is replica

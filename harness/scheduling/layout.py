"""How the driver lays replicas out on the cluster it finds: CPU slots, or a GPU placement.

Pure functions (no Ray): the driver reads the live cluster and hands it here, so the same
decisions are tested on synthetic clusters.

* CPU (no GPUs, or `device: cpu`): one replica per core, one torch thread each (N single-thread
  workers beat one N-thread worker on small models), any model in any slot.
* GPU: `placement.place` on one `ModelCost` per replica key (model@revision): small models share
  a GPU through fractional `num_gpus`, a model too large for one GPU holds several
  (`device_map="auto"`), and `choose_model` gets each replica's size and the least queued work
  that makes a new replica worth its loading time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.scheduling.placement import ModelCost, place, replica_memory_bytes
from harness.scheduling.resources import ClusterResources, ReplicaSpec
from harness.scheduling.costs import ASSUMED_N_PARAMS, GPU_FLOPS, replica_load_s, shard_flops


@dataclass(frozen=True)
class Layout:
    """What replicas the driver may start and how it chooses among models.

    `specs` holds the Ray resources of one replica per model key; `order` the replicas to start
    first (the placement's packing order); `size` and `min_share` go to `choose_model`;
    `max_actors` caps live replicas (the sweep's `workers`, None: as many as fit); `threads` is
    the torch thread count per replica (None: torch's default).
    """

    device: str  # "cpu" | "gpu"
    specs: Mapping[str, ReplicaSpec]
    order: tuple[str, ...] = ()
    size: Mapping[str, float] | None = None
    min_share: Mapping[str, float] | None = None
    max_actors: int | None = None
    threads: int | None = None


def shard_cost(n_params: int | None, est_tokens: int) -> float:
    """FLOPs of one shard for the queue: 2 N tokens, with an assumed N when it is unknown."""
    return shard_flops(n_params, max(1, est_tokens))


def replica_costs(
    shards: Iterable[tuple[str, int | None, str, int]], batch_size: int, gpu_memory_bytes: int,
) -> list[ModelCost]:
    """One `ModelCost` per replica key from (key, n_params, dtype, est_tokens) of each shard.

    A model of unknown size is given one whole GPU's memory: one replica per GPU, the safe
    choice when nothing is known.
    """
    tokens: dict[str, int] = {}
    info: dict[str, tuple[int | None, str]] = {}
    for key, n_params, dtype, est_tokens in shards:
        tokens[key] = tokens.get(key, 0) + max(1, est_tokens)
        info[key] = (n_params, dtype)
    costs = []
    for key in sorted(tokens):
        n_params, dtype = info[key]
        n = n_params or ASSUMED_N_PARAMS
        memory = replica_memory_bytes(n, dtype, batch_size) if n_params else gpu_memory_bytes
        costs.append(ModelCost(key, n, dtype, shard_flops(n, tokens[key]), memory, replica_load_s(n, dtype)))
    return costs


def cpu_layout(models: Iterable[str], max_actors: int | None = None) -> Layout:
    """One CPU and one torch thread per replica; how many is the cluster's CPUs (or `max_actors`).

    Memory is not modelled on CPUs (0 bytes): the ladder's models are small next to a node's RAM,
    and a replica that does not fit fails its own shards with the reason.
    """
    specs = {m: ReplicaSpec(m, 0.0, 1.0, 0) for m in sorted(set(models))}
    return Layout("cpu", specs, max_actors=max_actors, threads=1)


def gpu_layout(
    costs: Sequence[ModelCost], cluster: ClusterResources, max_actors: int | None = None,
    num_cpus: float = 1.0, gpu_flops: float = GPU_FLOPS,
) -> Layout:
    """The placement of `costs` on `cluster` (which has GPUs), as the driver runs it.

    `min_share` is what one replica computes while another loads: a model whose queued work per
    replica is below it would be finished by its running replicas before a new one is ready.
    """
    placement = place(costs, cluster, num_cpus, device_flops=gpu_flops)
    specs = dict(placement.specs)
    size = {m: s.num_gpus for m, s in specs.items()}
    load = {c.model: c.load_s for c in costs}
    min_share = {m: load[m] * min(1.0, s.num_gpus) * gpu_flops for m, s in specs.items()}
    return Layout("gpu", specs, placement.order, size, min_share, max_actors, threads=None)

"""Where model replicas go: a memory model, a cost model and a pure placement function.

The driver (and `harness.scheduling.simulator`) ask two questions of this module:

* How much device memory does one replica of a model need, and what does a shard cost?
  Memory = weights (bytes per parameter of the dtype x N) + KV cache + activations + the logits
  of a full batch + a fixed CUDA overhead. Cost = 2 * N * tokens scored (a forward pass costs
  about 2 N FLOPs per token; Kaplan et al. 2020).
* Given the cost of every model and the cluster's resources, how many replicas of each model
  start, and what Ray resources does one ask for (`num_gpus`, possibly fractional, `num_cpus`)?
  Replicas are given out in proportion to each model's share of the cost, within memory:
  models far smaller than a GPU share one (num_gpus < 1), a model too large for one GPU holds
  several (device_map="auto"), and a cluster with no GPUs uses CPU slots.

The cluster's resources and the packing of replicas into them live in `harness.scheduling.resources`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.errors import UserError
from harness.scheduling.costs import BYTES_PER_PARAM, GPU_FLOPS, shard_flops
from harness.scheduling.resources import (  # noqa: F401  (re-exported: the placement's vocabulary)
    GPU_UNITS, ClusterResources, NodeResources, ReplicaSpec, ResourcePool,
)

CUDA_OVERHEAD_BYTES = 1 << 30  # CUDA context + allocator slack per process
MAX_REPLICAS_PER_GPU = 8  # beyond this, processes contend for the GPU more than they gain


@dataclass(frozen=True)
class ModelCost:
    """One model of a sweep as the placement sees it.

    `model` is the scheduler's key: one key per (model, revision), since a replica holds one
    set of weights. `flops` is the total cost of its shards; `memory_bytes` what one replica needs;
    `load_s` how long a replica takes to start (process, imports, weights), 0 if unknown.
    """

    model: str
    n_params: int
    dtype: str
    flops: float
    memory_bytes: int
    load_s: float = 0.0


@dataclass(frozen=True)
class Placement:
    """Replica shape per model and how many replicas of each start.

    Models with no work get no spec. `replicas` may leave a model at 0 when the cluster is full;
    the scheduler grows it as other models release their replicas.
    """

    device: str  # "gpu" | "cpu"
    specs: Mapping[str, ReplicaSpec]
    replicas: Mapping[str, int]
    # The order the replicas were packed in (one entry per replica): starting them in this
    # order with `ResourcePool` reproduces a packing known to fit.
    order: tuple[str, ...] = ()

    def gpus_used(self) -> float:
        return sum(self.specs[m].num_gpus * r for m, r in self.replicas.items())


# ---------------------------------------------------------------- memory and cost models


def model_shape(n_params: int) -> tuple[int, int]:
    """(layers, d_model) guessed from N for a GPT-like model, for the KV and activation terms.

    N ~ 12 L d^2 with d ~ 100 L (Pythia's and GPT-3's aspect ratios are 64..128). Within ~20%
    of the real KV size for Pythia 70M..12B; leans high for small models, which is the safe side.
    """
    d_model = max(64, round((100 * n_params / 12) ** (1 / 3)))
    layers = max(1, round(n_params / (12 * d_model * d_model)))
    return layers, d_model


def replica_memory_bytes(
    n_params: int, dtype: str, batch_size: int = 16, seq_len: int = 2048, vocab_size: int = 50_304,
) -> int:
    """Device memory one replica needs to score a batch of `batch_size` sequences of `seq_len`.

    The logits term dominates for small models: lm-eval's HF backend takes a log-softmax over
    the whole vocabulary at every position (logits + their log-softmax, in the model's dtype).
    The KV cache is there because HF models return it unless `use_cache` is off.
    """
    if dtype not in BYTES_PER_PARAM:
        raise UserError(f"dtype {dtype!r} is not one of {', '.join(BYTES_PER_PARAM)}")
    width = BYTES_PER_PARAM[dtype]
    layers, d_model = model_shape(n_params)
    tokens = batch_size * seq_len
    weights = width * n_params
    kv_cache = 2 * layers * d_model * tokens * width
    activations = 8 * d_model * tokens * width  # residual + MLP intermediate (4d) of one layer
    logits = 2 * vocab_size * tokens * width
    return int(weights + kv_cache + activations + logits + CUDA_OVERHEAD_BYTES)


def model_cost(
    model: str, n_params: int, dtype: str, tokens: int, batch_size: int = 16,
) -> ModelCost:
    """A `ModelCost` from the tokens all of a model's shards score."""
    return ModelCost(model, n_params, dtype, shard_flops(n_params, tokens),
                     replica_memory_bytes(n_params, dtype, batch_size))


# ---------------------------------------------------------------- placement


def _gpu_spec(cost: ModelCost, ideal_gpus: float, gpu_memory: int, node_gpus: int, num_cpus: float,
              max_per_gpu: int) -> ReplicaSpec:
    """Replica shape on GPUs: whole GPUs for a model that deserves one or more, else a 1/k share."""
    need = cost.memory_bytes / gpu_memory
    if need > 1:
        gpus = math.ceil(need)
        if gpus > node_gpus:
            raise UserError(
                f"model {cost.model!r} needs about {cost.memory_bytes / 1e9:.0f} GB, more than the "
                f"{node_gpus} GPUs of {gpu_memory / 1e9:.0f} GB of the largest node; use a smaller "
                "dtype or batch_size, or nodes with more GPU memory"
            )
        return ReplicaSpec(cost.model, float(gpus), num_cpus, cost.memory_bytes)
    # A 1/k share: no smaller than its memory needs, no larger than its share of the work (so a
    # small model does not hold a whole GPU it cannot keep busy), at most `max_per_gpu` per GPU.
    by_memory = int(1 / need) if need > 0 else max_per_gpu
    by_share = math.ceil(1 / ideal_gpus) if 0 < ideal_gpus < 1 else 1
    k = max(1, min(by_memory, by_share, max_per_gpu))
    return ReplicaSpec(cost.model, (GPU_UNITS // k) / GPU_UNITS, num_cpus, cost.memory_bytes)


def work_units(cost: ModelCost, spec: ReplicaSpec) -> float:
    """Cost in single-device-seconds-equivalents: a spanning replica runs its GPUs one after the
    other (device_map="auto" is a pipeline without overlap), so its work occupies all of them."""
    return cost.flops * max(1.0, spec.num_gpus)


def replica_specs(
    costs: Sequence[ModelCost], cluster: ClusterResources, num_cpus: float = 1.0,
    max_per_gpu: int = MAX_REPLICAS_PER_GPU,
) -> dict[str, ReplicaSpec]:
    """The Ray resources one replica of each model (with work) asks for."""
    costs = [c for c in costs if c.flops > 0]
    gpu_nodes = [n for n in cluster.nodes if n.gpus > 0]
    if not gpu_nodes:
        ram = max(n.memory_bytes for n in cluster.nodes)
        for c in costs:
            if c.memory_bytes > ram:
                raise UserError(f"model {c.model!r} needs about {c.memory_bytes / 1e9:.0f} GB of RAM; "
                                f"the largest node has {ram / 1e9:.0f} GB; use a GPU cluster or a smaller model")
        return {c.model: ReplicaSpec(c.model, 0.0, num_cpus, c.memory_bytes) for c in costs}
    gpu_memory = min(n.gpu_memory_bytes for n in gpu_nodes)
    node_gpus = max(n.gpus for n in gpu_nodes)
    # Spanning models occupy several GPUs per unit of work: size them first, then share the rest.
    first = {c.model: _gpu_spec(c, 1.0, gpu_memory, node_gpus, num_cpus, max_per_gpu) for c in costs}
    total = sum(work_units(c, first[c.model]) for c in costs)
    ideal = {c.model: cluster.total_gpus * work_units(c, first[c.model]) / total for c in costs}
    return {c.model: _gpu_spec(c, ideal[c.model], gpu_memory, node_gpus, num_cpus, max_per_gpu)
            for c in costs}


def balanced_finish_s(work: Mapping[str, float], load_s: Mapping[str, float], devices: float) -> float:
    """The makespan if every model could hold any fraction of the devices for the whole run.

    A replica of model m alive for a run of length T loads for L_m and computes for T - L_m, so
    m needs W_m / (T - L_m) devices (W_m in device-seconds); the smallest T at which these add
    up to `devices` is a lower bound on any schedule's makespan (found by bisection). Without
    load times it is total work / devices.

    Example:
        >>> round(balanced_finish_s({"a": 30.0, "b": 10.0}, {"a": 0.0, "b": 0.0}, devices=4), 6)
        10.0
    """
    work = {m: w for m, w in work.items() if w > 0}
    if not work:
        return 0.0
    floor = max(load_s.get(m, 0.0) for m in work)

    def needed(t: float) -> float:
        return sum(w / (t - load_s.get(m, 0.0)) for m, w in work.items())

    lo, hi = floor, floor + sum(work.values()) / devices + 1.0
    while needed(hi) > devices:
        hi = floor + 2 * (hi - floor)
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid > floor and needed(mid) <= devices:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-9 * hi:
            break
    return hi


def place(
    costs: Sequence[ModelCost], cluster: ClusterResources, num_cpus: float = 1.0,
    max_per_gpu: int = MAX_REPLICAS_PER_GPU, device_flops: float = GPU_FLOPS,
) -> Placement:
    """Replicas per model in proportion to its share of the work, packed into the cluster.

    Each model's fair share of devices is what would let all models finish together (see
    `balanced_finish_s`: work / (T - load time)). Replicas are handed out one at a time to the
    model furthest below its share, among those that still fit, until nothing fits. A model
    whose share is far below one replica may start with none: it runs on resources that larger
    models release, which is cheap because its work is small. `device_flops` (FLOP/s of one GPU,
    or of one CPU on a CPU cluster) converts FLOPs to seconds, to weigh work against load times.

    Example:
        >>> cluster = ClusterResources.uniform_gpus(gpus=8, gpu_mem_gb=80)
        >>> big = model_cost("big", 12_000_000_000, "bfloat16", tokens=10**6)
        >>> small = model_cost("small", 70_000_000, "bfloat16", tokens=10**6)
        >>> p = place([big, small], cluster)
        >>> p.specs["small"].num_gpus < 1 <= p.specs["big"].num_gpus, p.replicas["big"]
        (True, 7)
    """
    if not cluster.nodes:
        raise UserError("the cluster has no nodes; start Ray with at least one CPU")
    specs = replica_specs(costs, cluster, num_cpus, max_per_gpu)
    devices = float(cluster.total_gpus or cluster.total_cpus)
    work, share = _fair_shares(costs, specs, devices, device_flops)
    size = {m: (s.num_gpus if s.num_gpus > 0 else s.num_cpus) for m, s in specs.items()}
    pool, replicas, order = ResourcePool(cluster), {m: 0 for m in specs}, []

    def deficit(m: str) -> float:
        return share[m] - replicas[m] * size[m]

    # 0. Models that deserve less than one replica get one first (largest work first), within 5%
    #    of the cluster: started late, on resources that others release at the end, they would
    #    add their load time and all their work to the run.
    budget = 0.05 * devices
    for model in sorted(work, key=lambda m: (-work[m], m)):
        if share[model] < size[model] <= budget and pool.allocate(specs[model]) is not None:
            replicas[model], budget = 1, budget - size[model]
            order.append(model)
    # 1. Shares rounded to the nearest replica. Order by share per replica held (Webster's
    #    divisor rule), so that when the cluster runs out, no model is short by much more than
    #    another, in its own replica units.
    _hand_out(pool, specs, replicas, order, set(work),
              lambda m: (share[m] / ((replicas[m] + 0.5) * size[m]), work[m]),
              stop=lambda m: deficit(m) < size[m] / 2)
    # 2. One replica for every model still without one, while they fit: a model started only
    #    when others release would be late by its load time plus all of its work.
    for model in sorted(work, key=lambda m: (-work[m], m)):
        if replicas[model] == 0 and pool.allocate(specs[model]) is not None:
            replicas[model] = 1
            order.append(model)
    # 3. Whatever is left, to the models furthest below their shares.
    _hand_out(pool, specs, replicas, order, set(work), lambda m: (deficit(m), work[m]), stop=lambda m: False)
    return Placement("gpu" if cluster.total_gpus else "cpu", specs, replicas, tuple(order))


def _fair_shares(costs: Sequence[ModelCost], specs: Mapping[str, ReplicaSpec], devices: float,
                 device_flops: float) -> tuple[dict[str, float], dict[str, float]]:
    """Each model's work in device-seconds, and the devices that would let all finish together."""
    by_model = {c.model: c for c in costs if c.model in specs}
    work = {m: work_units(c, specs[m]) / device_flops for m, c in by_model.items()}
    loads = {m: c.load_s for m, c in by_model.items()}
    finish = balanced_finish_s(work, loads, devices)
    return work, {m: work[m] / (finish - loads[m]) for m in work}


def _hand_out(pool: ResourcePool, specs: Mapping[str, ReplicaSpec], replicas: dict[str, int],
              order: list[str], open_models: set[str], priority, stop) -> None:
    """Give replicas one at a time to the open model of highest `priority` until `stop(model)`
    is true for it or nothing more fits. Free resources only shrink here, so a model that does
    not fit once never will."""
    while open_models:
        model = max(sorted(open_models), key=priority)
        if stop(model) or pool.allocate(specs[model]) is None:
            open_models.discard(model)
        else:
            replicas[model] += 1
            order.append(model)

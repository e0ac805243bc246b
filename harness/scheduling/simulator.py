"""Run the real scheduling policy against simulated replicas, without a cluster or a clock.

`harness plan --simulate` answers "how long would this sweep take on N GPUs, and how far from
the best possible is our scheduler?" before anyone pays for a cluster. The simulator drives the
very objects the Ray driver uses: `placement.place` for the starting replicas, `ResourcePool` as
the stand-in for Ray's packing, `schedule.ShardQueue` and `schedule.choose_model` for every
decision. Only time is simulated: a replica takes `load_s` to load its weights, then each shard
takes cost / throughput; events are processed in time order, nothing sleeps.

When a model's queue is empty its replica is released, and the freed resources go to the model
that `choose_model` picks, so the larger models grow as the small ones finish.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.checkpoint import revision_label, runs_revision, training_order
from harness.errors import UserError
from harness.scheduling import costs
from harness.scheduling.costs import replica_load_s, shard_flops
from harness.scheduling.placement import (
    ModelCost, Placement, balanced_finish_s, place, replica_memory_bytes,
    work_units,
)
from harness.scheduling.resources import ClusterResources, NodeResources, ReplicaSpec, ResourcePool
from harness.scheduling.policy import ShardQueue, WorkItem, choose_model


@dataclass(frozen=True)
class SimModel:
    """One scheduler key: a model at one revision (a replica holds exactly one)."""

    key: str
    n_params: int
    dtype: str


@dataclass(frozen=True)
class SimShard:
    """One shard: which scheduler key scores it, and how many tokens it scores."""

    key: str
    model: str
    tokens: int


@dataclass(frozen=True)
class SimulationParams:
    """Speeds the simulation assumes. Defaults are for HF forward passes in bf16 on A100/H100-class
    GPUs (a third of an A100's dense peak: lm-eval pads batches and runs eager kernels)."""

    gpu_flops: float = costs.GPU_FLOPS  # effective FLOP/s of one GPU
    cpu_flops: float = costs.CPU_FLOPS  # effective FLOP/s of one CPU core
    load_fixed_s: float = costs.LOAD_FIXED_S  # process start, imports, CUDA context, per replica
    load_bytes_per_s: float = costs.LOAD_BYTES_PER_S  # weights read from a local cache (NVMe)
    batch_size: int = 16
    num_cpus_per_replica: float = 1.0


@dataclass(frozen=True)
class ModelTimeline:
    """What happened to one scheduler key during the simulated run."""

    model: str
    num_gpus: float
    flops: float
    shards: int
    replicas_at_start: int
    replicas_started: int
    finished_s: float


@dataclass(frozen=True)
class SimulationResult:
    """Figures of one simulated run (all JSON-serialisable through `dataclasses.asdict`)."""

    makespan_s: float
    lower_bound_s: float  # max(total work / capacity, longest shard on its replica)
    lower_bound_with_loads_s: float  # the same, also charging each replica its load time
    ratio: float  # makespan_s / lower_bound_s
    ratio_with_loads: float  # makespan_s / lower_bound_with_loads_s
    shards: int
    shards_run: int
    models: int
    gpus: int
    gpu_mem_gb: float
    cpus: int
    total_flops: float
    replicas_started: int
    loading_fraction: float  # device time spent loading weights / device time available
    driver_overhead_ms_per_shard: float  # measured wall time of the policy calls / shards
    synthetic: bool
    params: SimulationParams
    per_model: tuple[ModelTimeline, ...] = field(default=())


@dataclass
class _Replica:
    model: str
    spec: ReplicaSpec
    where: tuple[int, tuple[int, ...]]
    flops_per_s: float


class _Run:
    """The event loop's state. `policy_s` accumulates the wall time of scheduling decisions only."""

    def __init__(self, models: Sequence[SimModel], shards: Sequence[SimShard],
                 cluster: ClusterResources, params: SimulationParams) -> None:
        self.params, self.cluster = params, cluster
        self.info = {m.key: m for m in models}
        if len(self.info) != len(models):
            raise UserError("two simulated models share a key; give each model revision a unique name")
        items = [WorkItem(s.key, s.model, shard_flops(self.info[s.model].n_params, s.tokens)) for s in shards]
        self.costs = _model_costs(models, items, params, self.load_s)
        unit = params.gpu_flops if cluster.total_gpus else params.cpu_flops
        started = time.perf_counter()
        self.placement: Placement = place(self.costs, cluster, params.num_cpus_per_replica, device_flops=unit)
        placing_s = time.perf_counter() - started
        specs = self.placement.specs
        # What choose_model needs beyond costs: replica sizes, and the work a replica could do
        # while it loads (a new replica that would arrive after its queue is gone is not started).
        self.size = {m: _devices(spec) for m, spec in specs.items()}
        self.min_share = {m: self.load_s(m) * self.rate(spec) for m, spec in specs.items()}
        started = time.perf_counter()
        self.queue = ShardQueue(items)
        self.policy_s = placing_s + time.perf_counter() - started
        self.items, self.pool = items, ResourcePool(cluster)
        self.events: list[tuple[float, int, int]] = []
        self.replicas: dict[int, _Replica] = {}
        self.count = {m: 0 for m in self.placement.specs}
        self.started = {m: 0 for m in self.placement.specs}
        self.finished = {m: 0.0 for m in self.placement.specs}
        self.loading_s = 0.0
        self.done = 0  # shards handed to a replica (each exactly once: nothing fails here)
        self._ids = 0

    def load_s(self, model: str) -> float:
        m = self.info[model]
        return replica_load_s(m.n_params, m.dtype, self.params.load_fixed_s, self.params.load_bytes_per_s)

    def rate(self, spec: ReplicaSpec) -> float:
        # A spanning replica computes on one GPU at a time (device_map="auto"): one GPU's speed.
        if spec.num_gpus > 0:
            return min(spec.num_gpus, 1.0) * self.params.gpu_flops
        return spec.num_cpus * self.params.cpu_flops

    def start(self, model: str, now: float) -> bool:
        spec = self.placement.specs[model]
        where = self.pool.allocate(spec)
        if where is None:
            return False
        self._ids += 1
        self.replicas[self._ids] = _Replica(model, spec, where, self.rate(spec))
        self.count[model] += 1
        self.started[model] += 1
        load = self.load_s(model)
        self.loading_s += load * _devices(spec)
        heapq.heappush(self.events, (now + load, self._ids, self._ids))
        return True

    def fill(self, now: float) -> None:
        """Give free resources to the model `choose_model` picks, until none fits."""
        specs = self.placement.specs
        while True:
            model = choose_model(self.queue.queued_cost(), self.count, lambda m: self.pool.fits(specs[m]),
                                 size=self.size, min_share=self.min_share)
            if model is None or not self.start(model, now):
                return

    def run(self) -> float:
        # In the placement's own packing order, so that they all fit as it planned; whatever
        # is left over goes through the same rule as a released slot.
        for model in self.placement.order:
            self.start(model, 0.0)
        self.at_start = dict(self.count)
        self.fill(0.0)
        now = 0.0
        while self.events:
            now, seq, rid = heapq.heappop(self.events)
            rep = self.replicas[rid]
            self.finished[rep.model] = max(self.finished[rep.model], now)
            tick = time.perf_counter()
            item = self.queue.pop(rep.model)
            if item is not None:
                self.done += 1
                heapq.heappush(self.events, (now + item.cost / rep.flops_per_s, seq, rid))
            else:
                # Its model's queue is empty: release the replica so another model can grow.
                self.pool.release(rep.spec, rep.where)
                del self.replicas[rid]
                self.count[rep.model] -= 1
                self.fill(now)
            self.policy_s += time.perf_counter() - tick
        if self.queue:
            raise UserError("no replica of some model fits on this cluster; add GPUs or GPU memory")
        return now


def _devices(spec: ReplicaSpec) -> float:
    return spec.num_gpus if spec.num_gpus > 0 else spec.num_cpus


def _model_costs(models: Sequence[SimModel], items: Sequence[WorkItem], params: SimulationParams,
                 load_s) -> list[ModelCost]:
    flops: dict[str, float] = {}
    for item in items:
        flops[item.model] = flops.get(item.model, 0.0) + item.cost
    return [ModelCost(m.key, m.n_params, m.dtype, flops.get(m.key, 0.0),
                      replica_memory_bytes(m.n_params, m.dtype, params.batch_size), load_s(m.key))
            for m in models]


def _lower_bounds(run: _Run) -> tuple[float, float]:
    """(max(work / capacity, longest shard), and the same charging each replica its load time:
    `placement.balanced_finish_s`, and the longest shard plus its model's load)."""
    specs, devices = run.placement.specs, float(run.cluster.total_gpus or run.cluster.total_cpus)
    unit = run.params.gpu_flops if run.cluster.total_gpus else run.params.cpu_flops
    work = {c.model: work_units(c, specs[c.model]) / unit for c in run.costs if c.model in specs}
    loads = {m: run.load_s(m) for m in work}
    longest = max((i.cost / run.rate(specs[i.model]) for i in run.items), default=0.0)
    longest_loaded = max((i.cost / run.rate(specs[i.model]) + loads[i.model] for i in run.items), default=0.0)
    plain = max(sum(work.values()) / devices, longest)
    return plain, max(balanced_finish_s(work, loads, devices), longest_loaded, plain)


def simulate(
    models: Sequence[SimModel], shards: Sequence[SimShard], cluster: ClusterResources,
    params: SimulationParams = SimulationParams(), synthetic: bool = True,
) -> SimulationResult:
    """Simulate a run of `shards` over `models` on `cluster` with the real policy."""
    if not shards:
        raise UserError("the sweep has no shards to simulate; check its models and tasks")
    run = _Run(models, shards, cluster, params)
    makespan = run.run()
    plain, with_loads = _lower_bounds(run)
    capacity = float(cluster.total_gpus or cluster.total_cpus) * makespan
    per_model = tuple(
        ModelTimeline(c.model, run.placement.specs[c.model].num_gpus, c.flops,
                      sum(1 for s in shards if s.model == c.model), run.at_start[c.model],
                      run.started[c.model], run.finished[c.model])
        for c in run.costs if c.model in run.placement.specs
    )
    gpu_nodes = [n for n in cluster.nodes if n.gpus]
    return SimulationResult(
        makespan_s=makespan, lower_bound_s=plain, lower_bound_with_loads_s=with_loads,
        ratio=makespan / plain if plain else math.nan,
        ratio_with_loads=makespan / with_loads if with_loads else math.nan, shards=len(shards), shards_run=run.done,
        models=len(per_model),
        gpus=cluster.total_gpus, gpu_mem_gb=(gpu_nodes[0].gpu_memory_bytes / 1e9 if gpu_nodes else 0.0),
        cpus=cluster.total_cpus, total_flops=sum(c.flops for c in run.costs),
        replicas_started=sum(run.started.values()), loading_fraction=run.loading_s / capacity if capacity else 0.0,
        driver_overhead_ms_per_shard=1e3 * run.policy_s / len(shards), synthetic=synthetic,
        params=params, per_model=per_model,
    )


# ---------------------------------------------------------------- synthetic workload


@dataclass(frozen=True)
class TaskProfile:
    """Size of a task when its data cannot be read: documents, and tokens scored per document
    (all its requests, context included), drawn log-normal around `median_tokens`."""

    docs: int
    median_tokens: float
    sigma: float


# Document counts of the lm-eval test splits; tokens per document estimated from their text
# (GPT-NeoX tokenizer): LAMBADA passages ~80 words; ARC and PIQA score every choice with its
# question; wikitext is rolling log-likelihood over whole Wikipedia articles (long, skewed).
TASK_PROFILES = {
    "lambada_openai": TaskProfile(5153, 95, 0.35),
    "wikitext": TaskProfile(62, 4000, 0.8),
    "arc_easy": TaskProfile(2376, 130, 0.4),
    "arc_challenge": TaskProfile(1172, 150, 0.4),
    "piqa": TaskProfile(1838, 95, 0.5),
    "hellaswag": TaskProfile(10042, 4 * 110, 0.3),
    "winogrande": TaskProfile(1267, 2 * 30, 0.3),
    "sciq": TaskProfile(1000, 4 * 110, 0.5),
}
DEFAULT_PROFILE = TaskProfile(1000, 200, 0.8)


def synthetic_shards(
    model_keys: Sequence[str], tasks: Sequence[tuple[str, int | None, str]], shards: int, seed: int = 0,
    last_keys: frozenset[str] = frozenset(),
) -> list[SimShard]:
    """About `shards` shards over `model_keys` x `tasks`, with the same documents for every model.

    Args:
        model_keys: scheduler keys (model@revision).
        tasks: (task name, document limit or None, revisions): revisions as a sweep's task gives
            them ("all", "final": only the keys in `last_keys`, the last revision of each model, or
            one revision label).
        shards: the number of shards wanted; documents per shard are chosen to come close.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    docs = {}
    for name, limit, _ in tasks:
        profile = TASK_PROFILES.get(name, DEFAULT_PROFILE)
        n = min(profile.docs, limit) if limit else profile.docs
        docs[name] = rng.lognormal(math.log(profile.median_tokens), profile.sigma, n).astype(int) + 1
    pairs = [(k, t) for t, _, which in tasks for k in model_keys
             if runs_revision(which, k.rpartition("@")[2], k in last_keys)]
    # Shards of about equal *tokens* across tasks (a wikitext article is worth ~40 LAMBADA
    # passages); the skew left is that of the documents' own lengths.
    keys_per_task = {t: sum(1 for _, u in pairs if u == t) for t in docs}
    target = sum(int(docs[t].sum()) for _, t in pairs) / max(1, shards)
    for _ in range(8):  # whole documents per shard: refine the token target to come near `shards`
        per_shard = {t: max(1, round(target / float(d.mean()))) for t, d in docs.items()}
        count = sum(keys_per_task[t] * math.ceil(len(d) / per_shard[t]) for t, d in docs.items())
        if abs(count - shards) <= 0.01 * shards:
            break
        target *= count / shards
    chunks = {t: [int(d[i:i + per_shard[t]].sum()) for i in range(0, len(d), per_shard[t])]
              for t, d in docs.items()}
    return [SimShard(f"{k}/{t}/{i}", k, tokens) for k, t in pairs for i, tokens in enumerate(chunks[t])]


def simulate_sweep(
    sweep, gpus: int, gpu_mem_gb: float, shards: int = 10_000, seed: int = 0,
    params: SimulationParams = SimulationParams(), cpus: int | None = None,
) -> SimulationResult:
    """Simulate a `harness.config.Sweep` on `gpus` GPUs of `gpu_mem_gb` (or `cpus` CPUs if gpus=0),
    with a synthetic workload of about `shards` shards (the task data is not read)."""
    models, last = [], set()
    for spec in sweep.models:
        if spec.n_params is None:
            raise UserError(f"{sweep.source}: model {spec.name!r} has no n_params; write n_params: into the "
                            "sweep so plan --simulate needs no download")
        for rev in spec.revisions:
            models.append(SimModel(f"{spec.name}@{revision_label(rev)}", spec.n_params, spec.dtype))
        final = max(spec.revisions, key=lambda r: training_order(r, spec.tokens_for(r)))
        last.add(f"{spec.name}@{revision_label(final)}")
    tasks = [(t.name, t.limit or sweep.limit, t.revisions) for t in sweep.tasks]
    work = synthetic_shards([m.key for m in models], tasks, shards, seed, frozenset(last))
    return simulate(models, work, _cluster(gpus, gpu_mem_gb, cpus), params, synthetic=True)


def simulate_plan(
    plan, gpus: int, gpu_mem_gb: float, params: SimulationParams = SimulationParams(), cpus: int | None = None,
) -> SimulationResult:
    """Simulate the real shards of a `harness.plan.shards.Plan` (when the task data could be read)."""
    models = []
    for model in plan.model_revisions:
        if not model.n_params_estimate:
            raise UserError(f"model {model.name!r} has no parameter count; write n_params: into the sweep")
        models.append(SimModel(model.key, model.n_params_estimate, model.spec.dtype))
    work = [SimShard(s.key, s.model_revision.key, s.est_tokens) for s in plan.shards]
    return simulate(models, work, _cluster(gpus, gpu_mem_gb, cpus), params, synthetic=False)


def _cluster(gpus: int, gpu_mem_gb: float, cpus: int | None) -> ClusterResources:
    if gpus > 0:
        return ClusterResources.uniform_gpus(gpus, gpu_mem_gb)
    if not cpus:
        raise UserError("--gpus 0 needs --cpus N to simulate a CPU-only cluster")
    # 8 GB of RAM per core: a typical cloud CPU instance's ratio.
    return ClusterResources((NodeResources(cpus=cpus, memory_bytes=int(cpus * 8e9)),))


def format_simulation(result: SimulationResult) -> str:
    """The text `harness plan --simulate` prints."""
    where = (f"{result.gpus} GPUs x {result.gpu_mem_gb:g} GB" if result.gpus else f"{result.cpus} CPUs")
    lines = [
        f"simulated {result.shards} shards of {result.models} model revisions on {where}"
        + (" (synthetic workload)" if result.synthetic else ""),
        f"makespan_s               {result.makespan_s:12.1f}",
        f"lower_bound_s            {result.lower_bound_s:12.1f}   (max(work / capacity, longest shard))",
        f"ratio                    {result.ratio:12.3f}",
        f"lower_bound_with_loads_s {result.lower_bound_with_loads_s:12.1f}   (also charging each replica its load)",
        f"ratio_with_loads         {result.ratio_with_loads:12.3f}",
        f"total compute            {result.total_flops / 1e15:12.1f} PFLOP",
        f"replicas started         {result.replicas_started:12d}",
        f"device time loading      {100 * result.loading_fraction:11.1f}%",
        f"driver overhead          {1e3 * result.driver_overhead_ms_per_shard:12.1f} us/shard",
        "",
        f"{'model':<28} {'gpus/replica':>12} {'PFLOP':>9} {'shards':>7} {'start':>6} {'started':>8} {'done_s':>9}",
    ]
    for m in result.per_model:
        lines.append(f"{m.model:<28} {m.num_gpus:>12.4g} {m.flops / 1e15:>9.2f} {m.shards:>7d} "
                     f"{m.replicas_at_start:>6d} {m.replicas_started:>8d} {m.finished_s:>9.1f}")
    return "\n".join(lines)

"""What a cluster offers and how replicas are packed into it, as Ray would.

Resources are counted per node (CPUs, RAM) and per GPU; GPU fractions in integer units of
1/10,000 GPU (Ray's own precision for fractional resources), so packing never suffers float
round-off. `harness.scheduling.placement` decides what to ask for; this module only says whether it fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.errors import UserError

GPU_UNITS = 10_000  # one GPU in units of Ray's fractional-resource precision (1e-4)


@dataclass(frozen=True)
class NodeResources:
    """One machine: its CPUs and RAM, and its GPUs (all of the same memory)."""

    cpus: int
    memory_bytes: int
    gpus: int = 0
    gpu_memory_bytes: int = 0


@dataclass(frozen=True)
class ClusterResources:
    """The machines a run may use."""

    nodes: tuple[NodeResources, ...]

    @classmethod
    def uniform_gpus(
        cls, gpus: int, gpu_mem_gb: float, gpus_per_node: int = 8, cpus_per_gpu: int = 12,
        ram_per_gpu_gb: float = 120.0,
    ) -> ClusterResources:
        """`gpus` GPUs of `gpu_mem_gb` GB on nodes of `gpus_per_node` (a p4d/p5/a3-like shape)."""
        if gpus < 1 or gpu_mem_gb <= 0:
            raise UserError(f"--gpus must be >= 1 and --gpu-mem-gb > 0, got {gpus} and {gpu_mem_gb}")
        sizes = [gpus_per_node] * (gpus // gpus_per_node) + ([gpus % gpus_per_node] if gpus % gpus_per_node else [])
        return cls(tuple(
            NodeResources(cpus=n * cpus_per_gpu, memory_bytes=int(n * ram_per_gpu_gb * 1e9), gpus=n,
                          gpu_memory_bytes=int(gpu_mem_gb * 1e9))
            for n in sizes
        ))

    @classmethod
    def from_ray_nodes(cls, nodes: Sequence[Mapping], gpu_memory_bytes: int) -> ClusterResources:
        """The cluster as `ray.nodes()` describes it (alive nodes only).

        Ray does not report GPU memory: pass it (e.g. from `torch.cuda.mem_get_info()` in a task
        on a GPU node, or the instance type's figure).
        """
        out = []
        for node in nodes:
            if not node.get("Alive", True):
                continue
            res = node.get("Resources", {})
            gpus = int(res.get("GPU", 0))
            out.append(NodeResources(cpus=int(res.get("CPU", 0)), memory_bytes=int(res.get("memory", 0)),
                                     gpus=gpus, gpu_memory_bytes=gpu_memory_bytes if gpus else 0))
        return cls(tuple(out))

    @property
    def total_gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    @property
    def total_cpus(self) -> int:
        return sum(n.cpus for n in self.nodes)


@dataclass(frozen=True)
class ReplicaSpec:
    """The Ray resources one replica of `model` asks for.

    num_gpus < 1: shares a GPU with other small replicas; > 1: spans GPUs (device_map="auto");
    0: a CPU replica. `memory_bytes` is the device memory (GPU, or RAM on CPU) it needs.
    """

    model: str
    num_gpus: float
    num_cpus: float
    memory_bytes: int

    @property
    def gpu_units(self) -> int:
        return round(self.num_gpus * GPU_UNITS)


class ResourcePool:
    """Free resources of a cluster, per node and per GPU, with Ray-like packing.

    A fractional replica goes on the fullest GPU it fits on (best fit keeps whole GPUs free for
    the large models); a spanning replica needs whole free GPUs on one node, as device_map="auto"
    cannot cross machines. The simulator uses this as its stand-in for Ray's scheduler.
    """

    def __init__(self, cluster: ClusterResources) -> None:
        self._cpus = [float(n.cpus) for n in cluster.nodes]
        self._ram = [n.memory_bytes for n in cluster.nodes]
        self._gpus = [[GPU_UNITS] * n.gpus for n in cluster.nodes]
        self._on_gpu = cluster.total_gpus > 0

    def _gpu_choice(self, node: int, spec: ReplicaSpec) -> list[int] | None:
        units, free = spec.gpu_units, self._gpus[node]
        if units == 0:
            return []
        if units < GPU_UNITS:
            fitting = [g for g, f in enumerate(free) if f >= units]
            return [min(fitting, key=lambda g: (free[g], g))] if fitting else None
        whole = [g for g, f in enumerate(free) if f == GPU_UNITS]
        need = math.ceil(units / GPU_UNITS)
        return whole[:need] if len(whole) >= need else None

    def allocate(self, spec: ReplicaSpec) -> tuple[int, tuple[int, ...]] | None:
        """Reserve resources for one replica: (node, GPU indices), or None if it fits nowhere."""
        for node in range(len(self._cpus)):
            if self._cpus[node] < spec.num_cpus:
                continue
            if not self._on_gpu and self._ram[node] < spec.memory_bytes:
                continue  # CPU replicas hold their weights in RAM
            gpus = self._gpu_choice(node, spec)
            if gpus is None:
                continue
            self._take(node, tuple(gpus), spec, sign=-1)
            return node, tuple(gpus)
        return None

    def release(self, spec: ReplicaSpec, where: tuple[int, tuple[int, ...]]) -> None:
        """Give back what `allocate` reserved."""
        self._take(where[0], where[1], spec, sign=+1)

    def fits(self, spec: ReplicaSpec) -> bool:
        """Whether one more replica of this shape could start now."""
        return any(
            self._cpus[n] >= spec.num_cpus
            and (self._on_gpu or self._ram[n] >= spec.memory_bytes)
            and self._gpu_choice(n, spec) is not None
            for n in range(len(self._cpus))
        )

    def _take(self, node: int, gpus: tuple[int, ...], spec: ReplicaSpec, sign: int) -> None:
        self._cpus[node] += sign * spec.num_cpus
        if not self._on_gpu:
            self._ram[node] += sign * spec.memory_bytes
        per_gpu = spec.gpu_units if spec.gpu_units < GPU_UNITS else GPU_UNITS
        for g in gpus:
            self._gpus[node][g] += sign * per_gpu

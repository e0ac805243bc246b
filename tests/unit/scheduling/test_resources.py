"""Resources: the cluster as nodes and GPUs, and Ray-like packing of replicas into it."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.scheduling.placement import place
from harness.scheduling.resources import GPU_UNITS, ClusterResources, NodeResources, ReplicaSpec, ResourcePool
from tests.unit.scheduling.test_placement import ladder


def test_uniform_gpu_cluster_in_nodes_of_eight():
    cluster = ClusterResources.uniform_gpus(gpus=20, gpu_mem_gb=80)
    assert [n.gpus for n in cluster.nodes] == [8, 8, 4]
    assert cluster.total_gpus == 20
    with pytest.raises(UserError, match="--gpus"):
        ClusterResources.uniform_gpus(gpus=0, gpu_mem_gb=80)


def test_spanning_replica_needs_whole_gpus_on_one_node():
    cluster = ClusterResources((NodeResources(cpus=64, memory_bytes=10**12, gpus=2, gpu_memory_bytes=10**10),
                                NodeResources(cpus=64, memory_bytes=10**12, gpus=2, gpu_memory_bytes=10**10)))
    pool = ResourcePool(cluster)
    three = ReplicaSpec("big", 3.0, 1, 3 * 10**10)
    assert not pool.fits(three)  # four GPUs in all, but never three on one node
    two = ReplicaSpec("mid", 2.0, 1, 2 * 10**10)
    assert pool.allocate(two) is not None and pool.allocate(two) is not None
    assert not pool.fits(two)


def test_pool_packs_fractions_best_fit_and_releases():
    cluster = ClusterResources((NodeResources(cpus=64, memory_bytes=10**12, gpus=2, gpu_memory_bytes=80 * 10**9),))
    pool = ResourcePool(cluster)
    eighth = ReplicaSpec("s", 0.125, 1, 1)
    whole = ReplicaSpec("w", 1.0, 1, 1)
    first = pool.allocate(eighth)
    for _ in range(7):  # the other seven go onto the same GPU (best fit), leaving one whole
        assert pool.allocate(eighth)[1] == first[1]
    where = pool.allocate(whole)
    assert where is not None and where[1] != first[1]
    assert not pool.fits(eighth) and not pool.fits(whole)
    pool.release(whole, where)
    assert pool.fits(whole)
    assert round(eighth.num_gpus * GPU_UNITS) * 8 <= GPU_UNITS


def test_cluster_from_ray_nodes():
    # The shape `ray.nodes()` returns (only the fields used); a dead node does not count.
    nodes = [
        {"Alive": True, "Resources": {"CPU": 8.0, "memory": 3.2e10}},
        {"Alive": True, "Resources": {"CPU": 96.0, "GPU": 8.0, "memory": 1.0e12}},
        {"Alive": False, "Resources": {"CPU": 96.0, "GPU": 8.0, "memory": 1.0e12}},
    ]
    cluster = ClusterResources.from_ray_nodes(nodes, gpu_memory_bytes=80 * 10**9)
    assert (cluster.total_gpus, cluster.total_cpus) == (8, 104)
    assert [n.gpu_memory_bytes for n in cluster.nodes] == [0, 80 * 10**9]
    assert place(ladder(), cluster).gpus_used() <= 8

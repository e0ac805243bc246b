"""Placement: memory and cost models, and the pure placement on synthetic clusters."""

from __future__ import annotations

import math

import pytest

from harness.errors import UserError
from harness.scheduling.costs import replica_load_s
from harness.scheduling.placement import (
    ModelCost, balanced_finish_s, model_cost, model_shape, place,
    replica_memory_bytes, shard_flops,
)
from harness.scheduling.resources import ClusterResources, NodeResources, ResourcePool

# Pythia total parameter counts and (layers, d_model) (Biderman et al. 2023, Table 1).
PYTHIA = {
    "70m": (70_426_624, 6, 512), "160m": (162_322_944, 12, 768), "410m": (405_334_016, 24, 1024),
    "1b": (1_011_781_632, 16, 2048), "1.4b": (1_414_647_808, 24, 2048),
    "2.8b": (2_775_208_960, 32, 2560), "6.9b": (6_857_302_016, 32, 4096),
    "12b": (11_846_072_320, 36, 5120),
}
GB = 1e9


def ladder(tokens: int = 1_000_000, dtype: str = "bfloat16") -> list[ModelCost]:
    return [model_cost(name, n, dtype, tokens) for name, (n, _, _) in PYTHIA.items()]


def test_shape_guess_is_close_to_pythia_for_the_kv_cache():
    for n, layers, d_model in PYTHIA.values():
        guess_layers, guess_d = model_shape(n)
        # The KV cache scales with layers x d_model: within 35% for 1B and up, and never low.
        ratio = guess_layers * guess_d / (layers * d_model)
        assert 0.85 <= ratio <= 2.5, (n, ratio)
        if n > 1e9:
            assert ratio <= 1.35


def test_memory_model_weights_by_dtype():
    n = PYTHIA["12b"][0]
    bf16, fp32 = replica_memory_bytes(n, "bfloat16"), replica_memory_bytes(n, "float32")
    assert bf16 > 2 * n  # the weights alone
    assert fp32 - bf16 >= 2 * n  # two more bytes per parameter, and wider activations too
    assert replica_memory_bytes(n, "auto") == fp32  # unknown dtype: plan for the worst
    # The batch matters: a bigger batch needs more memory, at the same weights.
    assert replica_memory_bytes(n, "bfloat16", batch_size=32) > bf16
    with pytest.raises(UserError, match="int4"):
        replica_memory_bytes(n, "int4")


def test_cost_model_is_two_flops_per_parameter_per_token():
    assert shard_flops(1_000, 10) == 20_000.0
    assert model_cost("m", 1_000, "float32", 10).flops == 20_000.0


def test_load_time_is_start_up_plus_weights_over_bandwidth():
    assert replica_load_s(10**9, "bfloat16", fixed_s=5.0, bytes_per_s=1e9) == 7.0
    assert replica_load_s(10**9, "float32", fixed_s=5.0, bytes_per_s=1e9) == 9.0


def test_pythia_on_8_gpus_of_80gb():
    costs = ladder()
    cluster = ClusterResources.uniform_gpus(gpus=8, gpu_mem_gb=80)
    p = place(costs, cluster)
    assert set(p.specs) == set(PYTHIA)
    # Small models share a GPU, the largest holds at least one.
    for name in ("70m", "160m", "410m"):
        assert p.specs[name].num_gpus < 1
    assert p.specs["12b"].num_gpus >= 1
    # Every spec fits in memory: a fraction of 80 GB no smaller than what the replica needs.
    for spec in p.specs.values():
        assert spec.memory_bytes <= max(spec.num_gpus, 1e-9) * 80 * GB * (1 + 1e-3) or spec.num_gpus >= 1
    _check_packs(p, cluster)
    # The 12B holds the most GPUs: it has the most work.
    held = {m: p.specs[m].num_gpus * r for m, r in p.replicas.items()}
    assert held["12b"] == max(held.values())
    assert 8 - 1 <= p.gpus_used() <= 8


def _check_packs(p, cluster):
    """The placement's replicas can all be packed into the cluster at once."""
    assert sorted(p.order) == sorted(m for m, r in p.replicas.items() for _ in range(r))
    pool = ResourcePool(cluster)
    for model in p.order:
        assert pool.allocate(p.specs[model]) is not None, model


def test_replicas_proportional_to_work():
    cluster = ClusterResources.uniform_gpus(gpus=8, gpu_mem_gb=80)
    n = PYTHIA["6.9b"][0]
    a = model_cost("a", n, "bfloat16", tokens=3_000_000)
    b = model_cost("b", n, "bfloat16", tokens=1_000_000)
    p = place([a, b], cluster)
    assert (p.replicas["a"], p.replicas["b"]) == (6, 2)
    assert p.specs["a"].num_gpus == p.specs["b"].num_gpus == 1.0


def test_pythia_on_64_gpus_fills_the_cluster_and_follows_the_shares():
    costs = ladder()
    cluster = ClusterResources.uniform_gpus(gpus=64, gpu_mem_gb=80)
    p = place(costs, cluster)
    _check_packs(p, cluster)
    assert 63 <= p.gpus_used() <= 64
    total = sum(c.flops for c in costs)
    for c in costs:
        share = 64 * c.flops / total
        held = p.specs[c.model].num_gpus * p.replicas[c.model]
        assert p.replicas[c.model] >= 1
        if share >= 2:  # rounding to whole replicas: within one replica of the share
            assert abs(held - share) <= p.specs[c.model].num_gpus + 1e-9, (c.model, held, share)


def test_model_too_large_for_one_gpu_spans_several():
    big = model_cost("12b", PYTHIA["12b"][0], "bfloat16", tokens=10**6)
    cluster = ClusterResources.uniform_gpus(gpus=8, gpu_mem_gb=24, gpus_per_node=4)
    p = place([big], cluster)
    spec = p.specs["12b"]
    assert spec.num_gpus == math.ceil(big.memory_bytes / (24 * GB)) and spec.num_gpus >= 2
    assert spec.num_gpus == int(spec.num_gpus)
    # device_map="auto" cannot cross machines: replicas per node, times nodes.
    assert p.replicas["12b"] == 2 * (4 // int(spec.num_gpus))
    _check_packs(p, cluster)
    small_nodes = ClusterResources.uniform_gpus(gpus=8, gpu_mem_gb=24, gpus_per_node=2)
    with pytest.raises(UserError, match="12b"):
        place([big], small_nodes)


def test_cpu_only_cluster_uses_cpu_slots():
    cluster = ClusterResources((NodeResources(cpus=16, memory_bytes=int(64 * GB)),))
    costs = ladder()[:3]
    p = place(costs, cluster, device_flops=50e9)
    assert p.device == "cpu"
    assert all(s.num_gpus == 0 and s.num_cpus == 1 for s in p.specs.values())
    assert sum(p.replicas.values()) <= 16
    # RAM, not CPUs, limits: each node's replicas fit in its memory.
    assert sum(p.specs[m].memory_bytes * r for m, r in p.replicas.items()) <= 64 * GB
    with pytest.raises(UserError, match="RAM"):
        place(ladder()[-1:], ClusterResources((NodeResources(cpus=4, memory_bytes=int(8 * GB)),)))


def test_balanced_finish_without_and_with_loads():
    work = {"a": 300.0, "b": 100.0}
    assert balanced_finish_s(work, {}, devices=4) == pytest.approx(100.0)
    loads = {"a": 20.0, "b": 5.0}
    t = balanced_finish_s(work, loads, devices=4)
    assert t > 100.0
    assert sum(w / (t - loads[m]) for m, w in work.items()) == pytest.approx(4.0, rel=1e-6)


def test_placement_weighs_load_time():
    cluster = ClusterResources.uniform_gpus(gpus=16, gpu_mem_gb=80)
    n = PYTHIA["6.9b"][0]
    fast = model_cost("fast", n, "bfloat16", tokens=2 * 10**6)
    slow = ModelCost("slow", n, "bfloat16", fast.flops, fast.memory_bytes, load_s=60.0)
    p = place([fast, slow], cluster, device_flops=1e14)
    # Same work, but the slow loader has less time left to compute: it gets more replicas.
    assert p.replicas["slow"] > p.replicas["fast"]

"""Placement in the driver: the layout it derives from a cluster, and the Ray resources its
replicas really get (logical GPUs on this GPU-less machine: Ray schedules `num_gpus` actors,
CUDA stays unavailable, so the models still load on the CPU)."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from harness.engine import cluster as ray_cluster
from harness.config import sweep_from_mapping
from harness.engine.driver import Driver, RunState
from harness.errors import UserError
from harness.scheduling.layout import ASSUMED_N_PARAMS, cpu_layout, gpu_layout, replica_costs
from harness.scheduling.placement import replica_memory_bytes
from harness.plan.shards import build_plan
from harness.engine.progress import Progress
from harness.engine.cluster import wants_gpus_from_autoscaler
from harness.scheduling.resources import ClusterResources

GB = 10**9


def test_replica_costs_add_up_tokens_per_model_and_size_unknown_models_to_one_gpu():
    shards = [("a@main", 70_000_000, "bfloat16", 100), ("a@main", 70_000_000, "bfloat16", 50),
              ("hub@main", None, "auto", 10)]
    costs = {c.model: c for c in replica_costs(shards, batch_size=16, gpu_memory_bytes=80 * GB)}
    assert costs["a@main"].flops == 2 * 70_000_000 * 150
    assert costs["a@main"].memory_bytes == replica_memory_bytes(70_000_000, "bfloat16", 16)
    assert costs["hub@main"].memory_bytes == 80 * GB and costs["hub@main"].n_params == ASSUMED_N_PARAMS
    assert costs["a@main"].load_s > 0


def test_cpu_layout_is_one_core_and_one_thread_per_replica():
    layout = cpu_layout(["b", "a", "a"], max_actors=3)
    assert layout.device == "cpu" and layout.threads == 1 and layout.max_actors == 3
    assert {(s.num_gpus, s.num_cpus) for s in layout.specs.values()} == {(0.0, 1.0)} and len(layout.specs) == 2


def test_gpu_layout_shares_gpus_for_small_models_and_spans_for_large_ones():
    # 24 GB GPUs: a 12B model in bf16 (24 GB of weights alone) needs several; a 70M one shares one.
    cluster = ClusterResources.uniform_gpus(gpus=8, gpu_mem_gb=24)
    shards = [("12b", 11_846_072_320, "bfloat16", 10**6), ("70m", 70_426_624, "bfloat16", 10**6)]
    layout = gpu_layout(replica_costs(shards, 16, 24 * GB), cluster)
    big, small = layout.specs["12b"], layout.specs["70m"]
    assert layout.device == "gpu" and layout.threads is None
    assert big.num_gpus > 1 and big.num_gpus.is_integer() and 0 < small.num_gpus < 1
    assert big.num_gpus * 24 * GB >= big.memory_bytes > (big.num_gpus - 1) * 24 * GB
    assert layout.size == {"12b": big.num_gpus, "70m": small.num_gpus}
    # A new replica must be worth its loading time: the 12B one loads longer and computes faster.
    assert layout.min_share["12b"] > layout.min_share["70m"] > 0
    assert Counter(layout.order)["12b"] >= 1 and sum(big.num_gpus for m in layout.order if m == "12b") <= 8


@pytest.mark.ray
@pytest.mark.slow
def test_driver_places_replicas_on_logical_gpus(tiny_world, tmp_path):
    import ray

    # tiny-l claims 4B parameters (16 GB in float32): on 16 GB GPUs it must span both GPUs;
    # tiny-s claims 1M: a small share of one GPU.
    sweep = sweep_from_mapping({
        "models": [{"path": str(tiny_world["small"]), "n_params": 1_000_000},
                   {"path": str(tiny_world["large"]), "n_params": 4_000_000_000}],
        "tasks": ["tiny_mc"], "include_path": [str(tiny_world["tasks"])], "limit": 4,
        "docs_per_shard": 2, "batch_size": 1, "device": "auto"}, "test")
    plan = build_plan(sweep)
    state = RunState()
    progress = Progress(Counter(s.model_revision.key for s in plan.shards), sum(s.n_requests for s in plan.shards),
                        stream=io.StringIO())
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        driver = Driver(plan, tmp_path / "run", progress, state, gpu_memory_bytes=16 * GB)
        driver.execute(plan.shards)
        as_cpu = Driver(build_plan(sweep_from_mapping({**_raw(sweep), "device": "cpu"}, "test")),
                        tmp_path / "cpu", progress, RunState())._make_layout(plan.shards)
    finally:
        ray.shutdown()
    assert {o.status for o in state.outcomes.values()} == {"done"} and len(state.outcomes) == len(plan.shards)
    large, small = state.replicas["tiny-l@main"], state.replicas["tiny-s@main"]
    assert large["num_gpus"] == 2 and large["resources"]["GPU"] == 2
    assert 0 < small["num_gpus"] < 1 and small["resources"]["GPU"] == pytest.approx(small["num_gpus"])
    assert large["device"] == small["device"] == "cpu"  # no CUDA here: loaded on the CPU all the same
    assert as_cpu.device == "cpu" and all(s.num_gpus == 0 for s in as_cpu.specs.values())


def _raw(sweep) -> dict:
    return {"models": [{"path": m.path, "n_params": m.n_params} for m in sweep.models],
            "tasks": [t.name for t in sweep.tasks], "include_path": list(sweep.include_path),
            "limit": sweep.limit, "docs_per_shard": sweep.docs_per_shard, "batch_size": sweep.batch_size}


def test_gpus_are_asked_of_an_autoscaler_only_on_a_joined_cluster_that_insists_on_cuda():
    assert wants_gpus_from_autoscaler("auto", "cuda", gpus_now=0)
    assert not wants_gpus_from_autoscaler(None, "cuda", gpus_now=0)  # a local instance we started
    assert not wants_gpus_from_autoscaler("auto", "auto", gpus_now=0)  # CPUs are fine for this sweep
    assert not wants_gpus_from_autoscaler("auto", "cuda", gpus_now=8)  # GPUs are there already


def test_waiting_for_gpus_that_never_come_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(ray_cluster, "cluster_gpus", lambda: 0.0)
    with pytest.raises(UserError, match="no GPU joined the cluster within 0 s.*device: cpu"):
        ray_cluster.wait_for_gpus(0.0, poll_s=0.0, log=lambda _: None)
    monkeypatch.setattr(ray_cluster, "cluster_gpus", lambda: 4.0)
    assert ray_cluster.wait_for_gpus(0.0, log=lambda _: None) == 4.0

"""The simulator: the real policy (schedule + placement) against simulated replicas."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.config import load_sweep
from harness.errors import UserError
from harness.scheduling.resources import ClusterResources, NodeResources
from harness.scheduling.policy import choose_model
from harness.scheduling.simulator import (
    SimModel, SimShard, SimulationParams, format_simulation, simulate, simulate_sweep,
    synthetic_shards,
)

PYTHIA_SWEEP = Path(__file__).resolve().parents[3] / "sweeps" / "pythia.yaml"
NO_LOADS = SimulationParams(load_fixed_s=0.0, load_bytes_per_s=float("inf"))
ONE_GPU = ClusterResources((NodeResources(cpus=8, memory_bytes=10**11, gpus=1, gpu_memory_bytes=80 * 10**9),))


def test_one_replica_runs_its_shards_back_to_back():
    params = SimulationParams(gpu_flops=1e12, load_fixed_s=5.0, load_bytes_per_s=1e9)
    model = SimModel("m", 1_000_000_000, "bfloat16")
    shards = [SimShard(f"s{i}", "m", tokens) for i, tokens in enumerate([1000, 3000, 500])]
    result = simulate([model], shards, ONE_GPU, params)
    load = 5.0 + 2 * 1_000_000_000 / 1e9  # fixed + bf16 weights / bandwidth
    work = 2 * 1_000_000_000 * 4500 / 1e12  # 2 N tokens / FLOP/s
    # The model's share of the GPU is the whole GPU (it is the only model).
    assert result.makespan_s == pytest.approx(load + work)
    assert result.lower_bound_s == pytest.approx(work)
    assert result.lower_bound_with_loads_s == pytest.approx(load + work)
    assert result.shards_run == 3


def test_a_released_replica_goes_to_the_model_with_work_left():
    # Shares 2.5 and 1.5 GPUs round to 3 + 1 whole-GPU replicas (both need over half a GPU):
    # "a" finishes first, and its GPUs go to "b", which grows.
    cluster = ClusterResources.uniform_gpus(gpus=4, gpu_mem_gb=80)
    a, b = SimModel("a", 6_000_000_000, "bfloat16"), SimModel("b", 6_000_000_000, "bfloat16")
    shards = [SimShard(f"a{i}", "a", 2000) for i in range(250)]
    shards += [SimShard(f"b{i}", "b", 2000) for i in range(150)]
    result = simulate([a, b], shards, cluster, NO_LOADS)
    per = {m.model: m for m in result.per_model}
    grown = [m for m in per.values() if m.replicas_started > m.replicas_at_start]
    assert len(grown) == 1
    shrunk = per["a" if grown[0].model == "b" else "b"]
    assert shrunk.finished_s < grown[0].finished_s
    shard_s = 2 * 6e9 * 2000 / NO_LOADS.gpu_flops
    without_growth = grown[0].shards * shard_s / grown[0].replicas_at_start
    assert result.makespan_s < without_growth
    assert result.makespan_s <= 1.10 * result.lower_bound_s


def test_pythia_on_64_gpus_meets_the_goal_without_loads():
    sweep = load_sweep(PYTHIA_SWEEP)
    result = simulate_sweep(sweep, gpus=64, gpu_mem_gb=80, shards=3000, params=NO_LOADS)
    assert result.shards_run == result.shards
    assert abs(result.shards - 3000) <= 300
    assert result.lower_bound_s <= result.makespan_s <= 1.10 * result.lower_bound_s
    assert result.driver_overhead_ms_per_shard < 1.0


def test_pythia_with_loads_stays_near_the_load_aware_bound():
    sweep = load_sweep(PYTHIA_SWEEP)
    result = simulate_sweep(sweep, gpus=64, gpu_mem_gb=80, shards=3000)
    assert result.lower_bound_s < result.lower_bound_with_loads_s <= result.makespan_s
    assert result.makespan_s <= 1.25 * result.lower_bound_with_loads_s
    assert 0 < result.loading_fraction < 1


def test_cpu_only_cluster():
    cluster = ClusterResources((NodeResources(cpus=16, memory_bytes=10**12),))
    models = [SimModel("small", 70_426_624, "float32"), SimModel("mid", 162_322_944, "float32")]
    shards = synthetic_shards([m.key for m in models], [("piqa", None, "all")], shards=400)
    result = simulate(models, shards, cluster, NO_LOADS)
    assert result.gpus == 0 and result.cpus == 16
    assert all(m.num_gpus == 0 for m in result.per_model)
    assert result.lower_bound_s <= result.makespan_s <= 1.10 * result.lower_bound_s
    sweep = load_sweep(PYTHIA_SWEEP)
    with pytest.raises(UserError, match="--cpus"):
        simulate_sweep(sweep, gpus=0, gpu_mem_gb=0)


def test_result_is_json_and_text():
    sweep = load_sweep(PYTHIA_SWEEP)
    result = simulate_sweep(sweep, gpus=8, gpu_mem_gb=80, shards=400)
    data = json.loads(json.dumps(dataclasses.asdict(result)))
    assert data["makespan_s"] == result.makespan_s
    assert len(data["per_model"]) == 32
    text = format_simulation(result)
    assert "makespan_s" in text and "lower_bound_s" in text and "pythia-12b@step143000" in text


def test_sweep_without_parameter_counts_is_a_user_error():
    sweep = load_sweep(PYTHIA_SWEEP)
    model = dataclasses.replace(sweep.models[0], n_params=None)
    with pytest.raises(UserError, match="n_params"):
        simulate_sweep(dataclasses.replace(sweep, models=(model,)), gpus=8, gpu_mem_gb=80)


def test_synthetic_shards_are_skewed_and_shared_across_models():
    tasks = [("lambada_openai", None, "all"), ("wikitext", None, "all"), ("piqa", 100, "final")]
    shards = synthetic_shards(["a@1", "a@2", "b@2"], tasks, shards=600, seed=3, last_keys=frozenset({"a@2", "b@2"}))
    assert 500 <= len(shards) <= 700
    by_model = {}
    for s in shards:
        by_model.setdefault(s.model, {})[s.key.split("/", 1)[1]] = s.tokens
    assert by_model["a@2"] == by_model["b@2"]  # same documents for every model
    assert not any("piqa" in k for k in by_model["a@1"])  # a final-only task skips early revisions
    tokens = sorted(s.tokens for s in shards)
    assert tokens[-1] > 2 * tokens[len(tokens) // 2]  # skewed: a long tail
    assert synthetic_shards(["a"], tasks, 100, seed=3) == synthetic_shards(["a"], tasks, 100, seed=3)


def test_choose_model_by_device_and_worth_of_a_new_replica():
    # Per replica "a" has more left, but its replicas are eighths of a GPU: per device it has less.
    assert choose_model({"a": 10.0, "b": 4.0}, {"a": 1, "b": 1}) == "a"
    assert choose_model({"a": 10.0, "b": 4.0}, {"a": 1, "b": 1}, size={"a": 1.0, "b": 0.125}) == "b"
    # A model whose own replicas finish its queue before a new one loads is not grown ...
    assert choose_model({"a": 10.0}, {"a": 3}, min_share={"a": 5.0}) is None
    # ... but a model with no replica at all always gets one.
    assert choose_model({"a": 1.0}, {}, min_share={"a": 5.0}) == "a"


@pytest.mark.slow
def test_simulate_the_real_shards_of_a_plan(tiny_world):
    from harness.config import apply_overrides
    from harness.plan.shards import build_plan
    from harness.scheduling.simulator import simulate_plan

    sweep = apply_overrides(None, models=f"{tiny_world['small']},{tiny_world['large']}",
                            tasks="tiny_ppl,tiny_mc", include_path=str(tiny_world["tasks"]), docs_per_shard=4)
    plan = build_plan(sweep)
    result = simulate_plan(plan, gpus=0, gpu_mem_gb=0, cpus=4, params=NO_LOADS)
    assert not result.synthetic
    assert result.shards == result.shards_run == len(plan.shards)
    assert {m.model for m in result.per_model} == {r.key for r in plan.model_revisions}
    assert result.total_flops == pytest.approx(sum(s.cost for s in plan.shards), rel=1e-9)
    assert result.lower_bound_s <= result.makespan_s

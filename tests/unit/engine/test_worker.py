"""The worker class without Ray: rows, out-of-memory halving, non-finite scores, safetensors only."""

from __future__ import annotations

import math

import pytest

from harness.plan import models as ladder
from harness.config import sweep_from_mapping
from harness.errors import UserError
from harness.plan.shards import build_plan
from harness.checkpoint import check_weights_format
from harness.backends.loading import LoadSpec
from harness.engine.worker import ShardWorker


@pytest.fixture(scope="module")
def shard_instances(tiny_world):
    sweep = sweep_from_mapping({"models": [str(tiny_world["small"])], "tasks": ["tiny_mc", "tiny_gen"],
                                "include_path": [str(tiny_world["tasks"])], "limit": 3}, "test")
    plan = build_plan(sweep)
    return [i for s in plan.shards for i in s.instances]


def _worker(world, batch_size=4):
    checkpoint = ladder.resolve(str(world["small"]), None)
    return ShardWorker(LoadSpec(checkpoint, "float32", "cpu", "hf", batch_size=batch_size), threads=1)


def test_scores_every_request(tiny_world, shard_instances):
    result = _worker(tiny_world).run(shard_instances)
    assert result["status"] == "done" and len(result["rows"]) == len(shard_instances)
    for inst, row in zip(shard_instances, result["rows"]):
        if inst.request_type == "loglikelihood":
            assert row["loglikelihood"] < 0 and row["n_tokens"] >= 1 and row["is_greedy"] in (True, False)
        else:
            assert isinstance(row["generation"], str) and row["loglikelihood"] is None
    assert result["n_params_nonembedding"] < result["n_params"]


def test_out_of_memory_halves_batch_then_fails(tiny_world, shard_instances):
    worker = _worker(tiny_world, batch_size=8)
    real = worker.runner.run
    calls = []

    def flaky(instances):
        calls.append(worker.batch_size)
        if worker.batch_size > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(instances)

    worker.runner.run = flaky
    result = worker.run(shard_instances)
    assert result["status"] == "done" and calls == [8, 4, 2] and result["batch_size"] == 2

    def always_oom(instances):
        raise RuntimeError("CUDA out of memory")

    worker.runner.run = always_oom
    result = worker.run(shard_instances)
    assert result["status"] == "failed" and "batch size 1" in result["error"] and not result["retry"]


def test_non_finite_loglikelihood_fails_the_shard(tiny_world, shard_instances):
    import torch

    worker = _worker(tiny_world)
    with torch.no_grad():
        for param in worker.runner.model.parameters():
            param.fill_(float("nan"))
    result = worker.run([i for i in shard_instances if i.request_type == "loglikelihood"])
    assert result["status"] == "failed" and not result["retry"]
    assert "nan" in result["error"].lower() and "broken" in result["error"]


def test_pickle_only_checkpoint_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    checkpoint = ladder.resolve(str(tmp_path), None)
    with pytest.raises(UserError, match="allow_pickle: true"):
        check_weights_format(checkpoint, allow_pickle=False)
    check_weights_format(checkpoint, allow_pickle=True)
    worker = ShardWorker(LoadSpec(checkpoint, "float32", "cpu", "hf", batch_size=1))
    assert worker.run([])["status"] == "load_error"


def test_multi_gpu_replica_still_loads_on_the_cpu_without_cuda(tiny_world, shard_instances):
    # A replica holding 2 GPUs asks for device_map="auto"; with no CUDA visible (this machine, or
    # Ray's logical GPUs) the model loads whole on the CPU and scores as usual.
    checkpoint = ladder.resolve(str(tiny_world["small"]), None)
    worker = ShardWorker(LoadSpec(checkpoint, "float32", "auto", "hf", batch_size=4, num_gpus=2), threads=1)
    assert worker.device_map == "auto" and worker.runner.device == "cpu"
    assert {p.device.type for p in worker.runner.model.parameters()} == {"cpu"}
    info = worker.info()
    assert not info["resources"]  # outside Ray nothing was granted
    assert worker.run(shard_instances[:2])["status"] == "done"
    assert ShardWorker(LoadSpec(checkpoint, "float32", "cpu", "hf", batch_size=4, num_gpus=0.25)).device_map is None


def test_switch_loads_another_model_in_place(tiny_world, shard_instances):
    worker = _worker(tiny_world)
    small = worker.info()["n_params"]
    info = worker.switch(LoadSpec(ladder.resolve(str(tiny_world["large"]), None), "float32", "cpu", "hf", 4))
    assert info["n_params"] > small and worker.run(shard_instances)["n_params"] == info["n_params"]
    info = worker.switch(LoadSpec(ladder.resolve(str(tiny_world["large"]), None), "float32", "cpu", "nope", 4))
    assert "error" in info and worker.run(shard_instances)["status"] == "load_error"

"""Every cost the scheduler assumes, in one place: FLOPs of a shard, speeds, load times, bytes.

The plan costs its shards with these, the driver weighs load time against work with them, and the
simulator replays a sweep with them, so `harness plan --simulate` and a real run agree by
construction. The speeds are assumptions for HF forward passes; the simulator's
`SimulationParams` can override them for one simulation.
"""

from __future__ import annotations

# Effective FLOP/s of one GPU scoring with HF in bf16 on A100/H100-class GPUs: about a third of an
# A100's dense peak, since lm-eval pads batches and runs eager kernels.
GPU_FLOPS = 100e12
CPU_FLOPS = 50e9  # effective FLOP/s of one CPU core
LOAD_FIXED_S = 10.0  # a new replica's process start, imports and CUDA context
LOAD_BYTES_PER_S = 2e9  # weights read from a local cache (NVMe)
# A model whose size the plan does not know (a hub id without `n_params:` in the sweep) is
# costed as a 1B model: only the relative costs matter to the scheduler, and 1B is mid-ladder.
ASSUMED_N_PARAMS = 1_000_000_000
# Weights in memory per parameter. "auto" keeps the checkpoint's dtype, which we do not know
# without reading its config: plan for float32 so that a guess never causes an out-of-memory.
BYTES_PER_PARAM = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 4}


def shard_flops(n_params: int | None, tokens: int) -> float:
    """Cost of scoring `tokens` tokens with an N-parameter model: 2 N FLOPs per token (a forward
    pass; Kaplan et al. 2020). An unknown N is costed as `ASSUMED_N_PARAMS`.

    >>> shard_flops(1_000, 10)
    20000.0
    """
    return 2.0 * (n_params or ASSUMED_N_PARAMS) * tokens


def replica_load_s(n_params: int, dtype: str, fixed_s: float = LOAD_FIXED_S,
                   bytes_per_s: float = LOAD_BYTES_PER_S) -> float:
    """Seconds a new replica takes before its first shard: process start, imports and CUDA
    context (`fixed_s`), then its weights read from a local cache at `bytes_per_s`."""
    return fixed_s + BYTES_PER_PARAM[dtype] * n_params / bytes_per_s

"""The accelerator facts and knobs the engine needs, kept here so torch stays out of the engine."""

from __future__ import annotations

import os
import sys


def gpu_memory_bytes() -> int | None:
    """Total memory of the first visible GPU, or None without CUDA."""
    import torch

    return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None


def set_threads(threads: int) -> None:
    """One torch thread per CPU slot: N single-thread workers beat one N-thread worker on small
    matmuls, and they never oversubscribe the cores."""
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def free_accelerator_memory() -> None:
    """Give cached GPU blocks back after dropping a model (no-op without torch or CUDA)."""
    torch = sys.modules.get("torch")  # never import torch just to free nothing
    try:
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort
        pass

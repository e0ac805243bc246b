"""What the Ray cluster offers the driver: connecting, live nodes, GPU memory, asking for GPUs.

The driver's other Ray calls (actors, waits) stay in `harness.engine.driver`; this module answers
"what is there?" so that the answers can be replaced in tests and read in one place.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from harness.engine.signals import Terminated
from harness.errors import UserError
from harness.scheduling.resources import ClusterResources

# GPU memory when it cannot be measured (logical GPUs, no CUDA in the probe): a small card's,
# so that a guess never plans more on a GPU than it holds.
ASSUMED_GPU_MEMORY_BYTES = 16 * 10**9


def start_ray(address: str | None, workers: int | None) -> None:
    """Connect to a cluster, or start a local instance with `workers` (default: all) CPUs.

    Without an address, `address="local"` starts a new instance even where another one runs on
    the machine (`ray start --head`, RAY_ADDRESS in the shell, another test suite): a bare
    `ray.init()` would join that one and then refuse `num_cpus`. The node binds where Ray's
    defaults say; tests keep it on 127.0.0.1 with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (README,
    "Safety"), which `address="local"` honours like any local start.
    """
    import ray

    if ray.is_initialized():
        return
    ours = signal.getsignal(signal.SIGTERM)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False)
    except SystemExit as exit_:
        # While ray.init runs, Ray's own SIGTERM handler is installed: it exits with the signal's
        # number (15, no clean-up, no manifest). Where the program stops on SIGTERM itself, a SIGTERM
        # in that window stops it the same way.
        if exit_.code == signal.SIGTERM and callable(ours):
            raise Terminated() from None
        raise
    finally:
        # ray.init replaces the SIGTERM handler with one whose C++ half dumps a stack and aborts
        # (exit 134): a handler the program installed (`harness run` stops on SIGTERM as on Ctrl-C)
        # goes back. Only the main thread may set handlers, and only a Python handler is ours to restore.
        if callable(ours) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, ours)


def live_cluster(gpu_memory_bytes: int) -> ClusterResources:
    """The alive nodes as Ray reports them now (a dead node drops out at once when it leaves
    cleanly, after Ray's health checks, ~15 s here, when it crashes)."""
    import ray

    return ClusterResources.from_ray_nodes(ray.nodes(), gpu_memory_bytes)


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def probe_gpu_memory_bytes(timeout_s: float = 120.0) -> int:
    """Memory of one GPU, measured by a task on a GPU node (Ray does not report it)."""
    import ray

    @ray.remote(num_gpus=1, num_cpus=0)
    def total_memory() -> int | None:
        from harness.backends.device import gpu_memory_bytes

        return gpu_memory_bytes()

    try:
        measured = ray.get(total_memory.remote(), timeout=timeout_s)
    except Exception:  # noqa: BLE001 - any failure: plan with the conservative figure
        measured = None
    return int(measured) if measured else ASSUMED_GPU_MEMORY_BYTES


def wants_gpus_from_autoscaler(address: str | None, device: str, gpus_now: float) -> bool:
    """Whether to ask an autoscaler for GPUs: only on a cluster we joined (`address`), only when
    the sweep insists on CUDA, and only while it has none (GPU workers start at 0 in
    cluster.yaml, since idle GPUs cost money). Never for a local instance we started."""
    return bool(address) and device == "cuda" and gpus_now <= 0


def request_gpus(count: int) -> None:
    """Ask the autoscaler for `count` one-GPU bundles (a hint; the request persists until
    `release_request` or another request replaces it)."""
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[{"GPU": 1, "CPU": 1}] * max(1, count))


def release_request() -> None:
    """Withdraw our request so that the autoscaler may scale the GPU workers down again."""
    from ray.autoscaler.sdk import request_resources

    try:
        request_resources(bundles=[])
    except Exception:  # noqa: BLE001 - the run is over either way
        pass


def wait_for_gpus(timeout_s: float, poll_s: float = 5.0, log=print) -> float:
    """Wait until the cluster has at least one GPU; returns the count. Raises UserError after
    `timeout_s` with the likely causes."""
    deadline = time.monotonic() + timeout_s
    log("harness: device cuda and no GPU in the cluster yet; asked the autoscaler for GPU workers")
    while (gpus := cluster_gpus()) <= 0:
        if time.monotonic() > deadline:
            raise UserError(f"device: cuda, but no GPU joined the cluster within {timeout_s:g} s; check the "
                            "GPU worker types and max_workers in cluster.yaml, or use device: cpu")
        time.sleep(poll_s)
    return gpus

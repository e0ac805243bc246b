"""The Ray actor: load one model revision once, score shards of requests on demand.

`ShardWorker` is a plain class (tested without Ray); the driver wraps it with `ray.remote`.
Errors the driver must act on come back as values, not exceptions, so a model that cannot load
fails its own shards without looking like a dead node.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from harness.backends.device import free_accelerator_memory, set_threads
from harness.backends.loading import LoadSpec, ModelLoadError, NonFiniteLoglikelihoodError
from harness.backends.runner import RequestRunner
from harness.errors import UserError


def _is_out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _assigned_resources() -> dict[str, float] | None:
    """What Ray granted this actor (CPU, GPU fractions), or None outside Ray."""
    ray = sys.modules.get("ray")  # inside an actor Ray is loaded; elsewhere, do not import it
    try:
        if ray is None or not ray.is_initialized():
            return None
        return {k: float(v) for k, v in ray.get_runtime_context().get_assigned_resources().items()}
    except Exception:  # noqa: BLE001 - informative only
        return None


class ShardWorker:
    """Holds one model; `run` turns a shard's Instances into request rows.

    Example (without Ray):
        worker = ShardWorker(LoadSpec(checkpoint, "float32", "cpu", "hf", batch_size=8))
        result = worker.run(instances)   # {"status": "done", "rows": [...], "seconds": ...}
    """

    def __init__(self, spec: LoadSpec, threads: int | None = None) -> None:
        if threads:
            set_threads(threads)
        from harness.plan.requests import quiet_libraries

        quiet_libraries()
        self.runner: RequestRunner | None = None
        self.switch(spec)

    def switch(self, spec: LoadSpec) -> dict[str, Any]:
        """Drop the model held and load another in this process; returns `info()`.

        On CPU slots the driver moves a replica to the next model this way: a new actor would
        pay several seconds of importing torch, transformers and lm-eval again.
        """
        self.runner = None  # free the old weights before loading the new ones
        free_accelerator_memory()
        self.spec = spec
        self.batch_size = spec.batch_size
        self.load_error: str | None = None
        started = time.perf_counter()
        try:
            self.runner = RequestRunner(spec)
        except (ModelLoadError, UserError) as exc:
            self.load_error = str(exc)
        self.load_seconds = time.perf_counter() - started
        return self.info()

    @property
    def device_map(self) -> str | None:
        return self.spec.device_map

    def info(self) -> dict[str, Any]:
        if self.runner is None:
            return {"error": self.load_error}
        params = self.runner.params
        return {"n_params": params.total, "n_params_nonembedding": params.nonembedding,
                "device": self.runner.device, "load_seconds": self.load_seconds, "pid": os.getpid(),
                "resources": _assigned_resources()}

    def run(self, instances: list) -> dict[str, Any]:
        """Score one shard. Returns a dict with status done | load_error | failed."""
        if self.runner is None:
            return {"status": "load_error", "error": self.load_error}
        started = time.perf_counter()
        while True:
            try:
                rows = self.runner.run(instances)
                break
            except NonFiniteLoglikelihoodError as exc:
                return {"status": "failed", "error": str(exc), "retry": False}
            except Exception as exc:  # noqa: BLE001 - OOM handling below, the rest is reported
                if not _is_out_of_memory(exc):
                    return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "retry": True}
                if self.batch_size <= 1:
                    return {"status": "failed", "retry": False,
                            "error": "out of memory at batch size 1; use a larger device or a smaller dtype"}
                self._shrink_batch()
        return {"status": "done", "rows": rows, "seconds": time.perf_counter() - started,
                "batch_size": self.batch_size, **self.info()}

    def _shrink_batch(self) -> None:
        """Halve the batch size after an out-of-memory error and rebuild the LM around the model."""
        self.batch_size = max(1, self.batch_size // 2)
        free_accelerator_memory()
        self.runner.rebatch(self.batch_size)

"""What a run learns as shards finish: outcomes, measured model facts, events; and the shard write.

Kept apart from the Ray loop in `harness.engine.driver` so that the manifest's inputs are plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.plan.shards import Shard, shard_file
from harness.scheduling.resources import ReplicaSpec
from harness.results.store import REQUESTS_SCHEMA, table_from_rows, write_atomic


@dataclass
class ShardOutcome:
    status: str  # done | reused | failed | interrupted
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None
    worker: int | None = None


@dataclass
class RunState:
    """What the driver learned: per-shard outcomes, measured parameters, busy time, events."""

    outcomes: dict[str, ShardOutcome] = field(default_factory=dict)
    replicas: dict[str, dict] = field(default_factory=dict)
    busy_seconds: float = 0.0
    scoring_started: float | None = None
    scoring_ended: float | None = None
    slots: int = 0  # most replicas alive at once
    resources: dict = field(default_factory=dict)
    # Faults and resizes as they happened: {"t": seconds since scoring started, "event": ..., ...}.
    events: list[dict] = field(default_factory=list)


def write_shard(run_dir: Path, shard: Shard, rows: list[dict]) -> None:
    """The shard's request rows, with their ids, to its own Parquet file (atomically)."""
    full = []
    for inst, row in zip(shard.instances, rows, strict=True):
        full.append({"model": shard.replica.name, "revision": shard.replica.revision,
                     "task": shard.task, "doc_id": inst.doc_id, "request_idx": inst.idx,
                     "request_type": inst.request_type, "shard": shard.key, **row})
    write_atomic(table_from_rows(full, REQUESTS_SCHEMA), shard_file(run_dir, shard))


def replica_record(shard: Shard, spec: ReplicaSpec, result: dict) -> dict:
    """The manifest's entry for a model revision, from a worker's answer: measured parameter
    counts, the device it ran on, and the Ray resources it asked for and was granted."""
    return {"model": shard.replica.name, "revision": shard.replica.revision,
            "n_params": result["n_params"], "n_params_nonembedding": result["n_params_nonembedding"],
            "tokens_trained": shard.replica.tokens_trained, "device": result["device"],
            "trust_remote_code": shard.replica.spec.trust_remote_code,
            "num_gpus": spec.num_gpus, "num_cpus": spec.num_cpus, "resources": result.get("resources")}

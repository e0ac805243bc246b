"""What a run learns as shards finish: outcomes, measured model facts, events.

Kept apart from the Ray loop in `harness.engine.driver` so that the manifest's inputs are plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.plan.shards import Shard
from harness.scheduling.resources import ReplicaSpec


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
    # Per model revision (key model@revision): what its worker measured; the manifest's "replicas".
    replicas: dict[str, dict] = field(default_factory=dict)
    busy_seconds: float = 0.0
    scoring_started: float | None = None
    scoring_ended: float | None = None
    slots: int = 0  # most replicas alive at once
    resources: dict = field(default_factory=dict)
    # Faults and resizes as they happened: {"t": seconds since scoring started, "event": ..., ...}.
    events: list[dict] = field(default_factory=list)


def replica_record(shard: Shard, spec: ReplicaSpec, result: dict) -> dict:
    """The manifest's entry for a model revision, from a worker's answer: measured parameter
    counts, the device it ran on, and the Ray resources it asked for and was granted."""
    return {"model": shard.model_revision.name, "revision": shard.model_revision.revision,
            "n_params": result["n_params"], "n_params_nonembedding": result["n_params_nonembedding"],
            "tokens_trained": shard.model_revision.tokens_trained, "device": result["device"],
            "trust_remote_code": shard.model_revision.spec.trust_remote_code,
            "num_gpus": spec.num_gpus, "num_cpus": spec.num_cpus, "resources": result.get("resources")}

"""Sweep -> replicas x tasks -> shards with stable keys and estimated costs. Loads no weights.

A shard is the unit of work, retry and storage: some documents of one task for one model
revision, with every request of those documents. Its key hashes everything that determines its
rows, so a rerun into the same folder skips shards whose file already exists.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.plan import models as ladder
from harness.config import ModelSpec, Sweep
from harness.results.store import requests_path
from harness.plan.requests import BuiltTask, build_requests, load_tasks

# Bump when the rows a shard produces change meaning, so old shard files are not reused.
SHARD_FORMAT = 1
_BYTES_PER_TOKEN = 4.0  # rough English BPE average; only used for cost estimates


@dataclass(frozen=True)
class Replica:
    """One model revision of the sweep: what a worker loads."""

    name: str
    revision: str | None
    spec: ModelSpec
    checkpoint: ladder.Checkpoint
    n_params_estimate: int | None

    @property
    def key(self) -> str:
        return f"{self.name}@{self.revision or 'main'}"

    @property
    def tokens_trained(self) -> int | None:
        stated = self.spec.tokens_for(self.revision)
        return stated if stated is not None else self.checkpoint.tokens_trained


@dataclass
class Shard:
    key: str
    replica: Replica
    task: str
    doc_ids: tuple[int, ...]
    est_tokens: int
    cost: float  # FLOPs, 2 * N * tokens
    instances: list = field(repr=False)

    @property
    def n_requests(self) -> int:
        return len(self.instances)


@dataclass
class Plan:
    sweep: Sweep
    tasks: dict[str, BuiltTask]
    replicas: list[Replica]
    shards: list[Shard]

    def pending(self, run_dir: Path) -> list[Shard]:
        """Shards whose Parquet file is not there yet."""
        return [s for s in self.shards if not shard_file(run_dir, s).exists()]


def shard_file(run_dir: Path, shard: Shard) -> Path:
    return requests_path(run_dir, shard.replica.name, shard.replica.revision, shard.task, shard.key)


def safetensors_param_count(folder: Path) -> int | None:
    """Parameters from safetensors headers (8-byte length + JSON), without reading any weights."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        try:
            with path.open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                if length > path.stat().st_size:
                    return None  # not a safetensors file; loading it will fail with the reason
                header = json.loads(handle.read(length))
        except (OSError, struct.error, ValueError):
            return None
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total


def _weights_fingerprint(checkpoint: ladder.Checkpoint) -> list:
    if not checkpoint.is_local:
        return [checkpoint.source, checkpoint.revision]
    folder = Path(checkpoint.source)
    return [checkpoint.source] + sorted((p.name, p.stat().st_size) for p in folder.glob("*.safetensors"))


def make_replicas(sweep: Sweep, base: Path | None = None) -> list[Replica]:
    replicas = []
    for spec in sweep.models:
        for revision in spec.revisions:
            checkpoint = ladder.resolve(spec.path, revision, base)
            estimate = spec.n_params or (
                safetensors_param_count(Path(checkpoint.source)) if checkpoint.is_local else None)
            replicas.append(Replica(spec.name, revision, spec, checkpoint, estimate))
    return replicas


def _request_text_bytes(inst: Any) -> int:
    args = inst.args
    if inst.request_type == "generate_until":
        gen_tokens = int(args[1].get("max_gen_toks", 256)) if isinstance(args[1], dict) else 256
        return len(str(args[0]).encode()) + int(gen_tokens * _BYTES_PER_TOKEN)
    return sum(len(str(a).encode()) for a in args if isinstance(a, str))


def shard_key(replica: Replica, sweep: Sweep, task: str, instances: list) -> str:
    payload = [
        SHARD_FORMAT, _weights_fingerprint(replica.checkpoint), replica.revision,
        replica.spec.dtype, sweep.backend, task,
        [(i.doc_id, i.idx, i.request_type, repr(i.args)) for i in instances],
    ]
    digest = hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()
    return f"{task}-{digest[:20]}"


def _split_docs(built: BuiltTask, docs_per_shard: int, tokens_per_shard: int) -> list[list]:
    """Consecutive documents, whole, until a shard holds docs_per_shard or tokens_per_shard."""
    by_doc: dict[int, list] = {}
    for inst in built.instances:
        by_doc.setdefault(inst.doc_id, []).append(inst)
    chunks: list[list] = []
    current: list = []
    docs = tokens = 0
    for doc_id in sorted(by_doc):
        doc_tokens = sum(_request_text_bytes(i) for i in by_doc[doc_id]) / _BYTES_PER_TOKEN
        if current and (docs >= docs_per_shard or tokens + doc_tokens > tokens_per_shard):
            chunks.append(current)
            current, docs, tokens = [], 0, 0
        current.extend(by_doc[doc_id])
        docs += 1
        tokens += doc_tokens
    if current:
        chunks.append(current)
    return chunks


def build_plan(sweep: Sweep, base: Path | None = None) -> Plan:
    """Resolve models, build every task's requests once, split them into shards."""
    replicas = make_replicas(sweep, base)
    specs = {t.name: t for t in sweep.tasks}
    loaded = load_tasks(list(specs), sweep.task_include_paths())
    tasks: dict[str, BuiltTask] = {}
    for name, task in loaded.items():
        spec = specs.get(name)
        shots = spec.num_fewshot if spec and spec.num_fewshot is not None else sweep.num_fewshot
        limit = spec.limit if spec and spec.limit is not None else sweep.limit
        tasks[name] = build_requests(name, task, shots, limit, sweep.seed)
    shards = []
    for name, built in tasks.items():
        spec = specs.get(name)
        final_only = spec is not None and spec.revisions == "final"
        chunks = _split_docs(built, sweep.docs_per_shard, sweep.tokens_per_shard)
        for replica in replicas:
            if final_only and replica.revision != replica.spec.revisions[-1]:
                continue
            n = replica.n_params_estimate or 0
            for chunk in chunks:
                tokens = int(sum(_request_text_bytes(i) for i in chunk) / _BYTES_PER_TOKEN)
                shards.append(Shard(
                    key=shard_key(replica, sweep, name, chunk), replica=replica, task=name,
                    doc_ids=tuple(sorted({i.doc_id for i in chunk})), est_tokens=tokens,
                    cost=2.0 * n * tokens, instances=chunk))
    return Plan(sweep, tasks, replicas, shards)


def summarize(plan: Plan, run_dir: Path | None = None) -> dict:
    """Per-replica counts and costs, JSON-ready (what `harness plan` prints)."""
    done = {s.key for s in plan.shards} - {s.key for s in plan.pending(run_dir)} if run_dir else set()
    models: dict[str, dict] = {}
    for shard in plan.shards:
        row = models.setdefault(shard.replica.key, {
            "model": shard.replica.name, "revision": shard.replica.revision,
            "source": shard.replica.checkpoint.source, "n_params": shard.replica.n_params_estimate,
            "tokens_trained": shard.replica.tokens_trained, "shards": 0, "shards_done": 0,
            "requests": 0, "tokens": 0, "cost_flops": 0.0, "tasks": []})
        row["shards"] += 1
        row["shards_done"] += shard.key in done
        row["requests"] += shard.n_requests
        row["tokens"] += shard.est_tokens
        row["cost_flops"] += shard.cost
        if shard.task not in row["tasks"]:
            row["tasks"].append(shard.task)
    tasks = {name: {"documents": len(b.doc_ids()), "requests": len(b.instances),
                    "num_fewshot": b.num_fewshot, "output_type": b.output_type}
             for name, b in plan.tasks.items()}
    return {"sweep": plan.sweep.source, "shards": len(plan.shards), "shards_done": len(done),
            "requests": sum(s.n_requests for s in plan.shards),
            "tokens": sum(s.est_tokens for s in plan.shards),
            "cost_flops": sum(s.cost for s in plan.shards), "tasks": tasks,
            "models": list(models.values())}

"""Sweep -> model revisions x tasks -> shards with stable keys and estimated costs. Loads no weights.

A shard is the unit of work, retry and storage: some documents of one task for one model
revision, with every request of those documents. Its key hashes everything that determines its
rows (the content of the model's files included), so a rerun into the same folder skips shards
whose file already exists and no stale shard is ever reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checkpoint import content_fingerprint
from harness.config import Sweep
from harness.plan.models import ModelRevision, final_revisions, model_revisions
from harness.plan.requests import BuiltTask, build_requests, load_tasks
from harness.scheduling.costs import shard_flops

# Bump when the rows a shard produces change meaning, so old shard files are not reused.
SHARD_FORMAT = 1
_BYTES_PER_TOKEN = 4.0  # rough English BPE average; only used for cost estimates


@dataclass
class Shard:
    key: str
    model_revision: ModelRevision
    task: str
    doc_ids: tuple[int, ...]
    est_tokens: int
    cost: float  # FLOPs (scheduling.costs.shard_flops); 0 when the model's size is unknown
    instances: list = field(repr=False)

    @property
    def n_requests(self) -> int:
        return len(self.instances)


@dataclass
class Plan:
    sweep: Sweep
    tasks: dict[str, BuiltTask]
    model_revisions: list[ModelRevision]
    shards: list[Shard]
    # model revision key -> `content_fingerprint`: what each name points at, recorded in the manifest
    fingerprints: dict[str, list] = field(default_factory=dict)


def _request_text_bytes(inst: Any) -> int:
    args = inst.args
    if inst.request_type == "generate_until":
        gen_tokens = int(args[1].get("max_gen_toks", 256)) if isinstance(args[1], dict) else 256
        return len(str(args[0]).encode()) + int(gen_tokens * _BYTES_PER_TOKEN)
    return sum(len(str(a).encode()) for a in args if isinstance(a, str))


def shard_key(model: ModelRevision, fingerprint: list, sweep: Sweep, task: str, instances: list) -> str:
    """Hash of everything that determines a shard's rows; `fingerprint` is the model's
    `content_fingerprint`, computed once per model revision (hashing weights is not free)."""
    payload = [
        SHARD_FORMAT, fingerprint, model.revision,
        model.spec.dtype, sweep.backend, task,
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
    revisions = model_revisions(sweep, base)
    finals = final_revisions(revisions)
    fingerprints = {m.key: content_fingerprint(m.checkpoint) for m in revisions}
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
        for model in revisions:
            if final_only and model.key not in finals:
                continue
            n = model.n_params_estimate
            for chunk in chunks:
                tokens = int(sum(_request_text_bytes(i) for i in chunk) / _BYTES_PER_TOKEN)
                shards.append(Shard(
                    key=shard_key(model, fingerprints[model.key], sweep, name, chunk), model_revision=model, task=name,
                    doc_ids=tuple(sorted({i.doc_id for i in chunk})), est_tokens=tokens,
                    cost=shard_flops(n, tokens) if n else 0.0, instances=chunk))
    return Plan(sweep, tasks, revisions, shards, fingerprints)


def summarize(plan: Plan, done: set[str] = frozenset()) -> dict:
    """Per model revision counts and costs, JSON-ready (what `harness plan` prints); `done` holds
    the keys of shards already written."""
    models: dict[str, dict] = {}
    for shard in plan.shards:
        row = models.setdefault(shard.model_revision.key, {
            "model": shard.model_revision.name, "revision": shard.model_revision.revision,
            "source": shard.model_revision.checkpoint.source, "n_params": shard.model_revision.n_params_estimate,
            "tokens_trained": shard.model_revision.tokens_trained, "shards": 0, "shards_done": 0,
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

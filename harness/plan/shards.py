"""Sweep -> model revisions x tasks -> shards with stable keys and estimated costs. Loads no weights.

A shard is the unit of work, retry and storage: some documents of one task for one model
revision, with every request of those documents. Its key hashes everything that determines its
rows (the content of the model's files included), so a rerun into the same folder skips shards
whose file already exists and no stale shard is ever reused.

A task's shards are made as soon as that task is built (`task_shards`), so a driver can dispatch
them while other tasks still build (`plan.building.iter_built_tasks`); `build_plan` is all of it
at once, in the sweep's task order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checkpoint import content_fingerprint
from harness.config import Sweep, check_task_revisions
from harness.plan.building import iter_built_tasks
from harness.plan.models import ModelRevision, final_revisions, model_revisions, runs_task
from harness.plan.requests import BuiltTask
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
    `content_fingerprint`, computed once per model revision (hashing weights is not free).

    It hashes the JSON of [SHARD_FORMAT, fingerprint, revision, dtype, backend, task, requests],
    requests as (doc_id, idx, request_type, repr(args)). A chunk's requests are the same for every
    model, so `task_shards` serializes them once (`_requests_json`) and hashes the model's part
    before them: the same bytes, the same keys, a fifteenth of the work for 15 checkpoints.
    """
    return _key(_model_part(model, fingerprint, sweep, task), _requests_json(instances), task)


def _model_part(model: ModelRevision, fingerprint: list, sweep: Sweep, task: str) -> bytes:
    """The JSON of the payload's first six items, up to where the requests' JSON follows: a JSON
    list is "[" + its items joined by ", " + "]"."""
    head = json.dumps([SHARD_FORMAT, fingerprint, model.revision, model.spec.dtype, sweep.backend, task], default=str)
    return head[:-1].encode() + b", "


def _requests_json(instances: list) -> bytes:
    return json.dumps([(i.doc_id, i.idx, i.request_type, repr(i.args)) for i in instances], default=str).encode()


def _key(model_part: bytes, requests_json: bytes, task: str) -> str:
    digest = hashlib.sha256(model_part)
    digest.update(requests_json)
    digest.update(b"]")
    return f"{task}-{digest.hexdigest()[:20]}"


@dataclass(frozen=True)
class _Chunk:
    """Consecutive whole documents of a task: what every model's shard of them shares."""

    instances: list
    doc_ids: tuple[int, ...]
    tokens: int


def _split_docs(built: BuiltTask, docs_per_shard: int, tokens_per_shard: int) -> list[_Chunk]:
    """Consecutive documents, whole, until a shard holds docs_per_shard or tokens_per_shard."""
    by_doc: dict[int, list] = {}
    for inst in built.instances:
        by_doc.setdefault(inst.doc_id, []).append(inst)
    groups: list[tuple[list, list[int], int]] = []  # instances, doc ids, text bytes
    current: list = []
    doc_ids: list[int] = []
    text = tokens = 0
    for doc_id in sorted(by_doc):
        doc_bytes = sum(_request_text_bytes(i) for i in by_doc[doc_id])
        if current and (len(doc_ids) >= docs_per_shard or tokens + doc_bytes / _BYTES_PER_TOKEN > tokens_per_shard):
            groups.append((current, doc_ids, text))
            current, doc_ids, text, tokens = [], [], 0, 0
        current.extend(by_doc[doc_id])
        doc_ids.append(doc_id)
        text += doc_bytes
        tokens += doc_bytes / _BYTES_PER_TOKEN
    if current:
        groups.append((current, doc_ids, text))
    return [_Chunk(chunk, tuple(ids), int(text / _BYTES_PER_TOKEN)) for chunk, ids, text in groups]


def plan_models(sweep: Sweep, base: Path | None = None) -> tuple[list[ModelRevision], set[str], dict[str, list]]:
    """The sweep's model revisions (no weights loaded), the keys of each model's final one, and
    their content fingerprints: what `task_shards` needs besides a built task."""
    check_task_revisions(sweep)
    revisions = model_revisions(sweep, base)
    return revisions, final_revisions(revisions), {m.key: content_fingerprint(m.checkpoint) for m in revisions}


def task_shards(built: BuiltTask, revisions: list[ModelRevision], finals: set[str], fingerprints: dict[str, list],
                sweep: Sweep) -> list[Shard]:
    """One built task's shards for every model revision that runs it: dispatchable as soon as the
    task is built, before the other tasks are (`plan.building.iter_built_tasks`)."""
    spec = {t.name: t for t in sweep.tasks}.get(built.name)
    models = [m for m in revisions if spec is None or runs_task(spec.revisions, m, finals)]
    chunks = _split_docs(built, sweep.docs_per_shard, sweep.tokens_per_shard)
    model_parts = [_model_part(m, fingerprints[m.key], sweep, built.name) for m in models]
    keys: list[list[str]] = [[] for _ in models]
    for chunk in chunks:  # one chunk's JSON at a time, hashed for every model
        requests_json = _requests_json(chunk.instances)
        for model_keys, part in zip(keys, model_parts):
            model_keys.append(_key(part, requests_json, built.name))
    return [Shard(key=key, model_revision=model, task=built.name, doc_ids=chunk.doc_ids, est_tokens=chunk.tokens,
                  cost=shard_flops(model.n_params_estimate, chunk.tokens) if model.n_params_estimate else 0.0,
                  instances=chunk.instances)
            for model, model_keys in zip(models, keys) for key, chunk in zip(model_keys, chunks)]


def assemble_plan(sweep: Sweep, revisions: list[ModelRevision], fingerprints: dict[str, list],
                  parts: Iterable[tuple[BuiltTask, list[Shard]]]) -> Plan:
    """The plan of built tasks and their shards, in the sweep's task order whatever order they
    were built in (the same plan as one build of everything)."""
    ordered = sorted(parts, key=lambda part: part[0].index)
    return Plan(sweep, {built.name: built for built, _ in ordered}, revisions,
                [shard for _, shards in ordered for shard in shards], fingerprints)


def build_plan(sweep: Sweep, base: Path | None = None, stream=None) -> Plan:
    """Resolve models, build every task's requests once (from the request cache when it has them,
    in parallel when it does not), split them into shards. The request line goes to `stream`
    (default stderr)."""
    revisions, finals, fingerprints = plan_models(sweep, base)
    parts = [(built, task_shards(built, revisions, finals, fingerprints, sweep))
             for built in iter_built_tasks(sweep, stream)]
    return assemble_plan(sweep, revisions, fingerprints, parts)


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

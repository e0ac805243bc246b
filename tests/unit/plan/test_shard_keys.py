"""Planning's own part got faster without changing a key: shards finished by an earlier harness are
still found. The reference below is the key and split as they were before (one JSON dump per model)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil

import pytest

from harness.config import sweep_from_mapping
from harness.plan.building import iter_built_tasks
from harness.plan.requests import BuiltTask
from harness.plan.shards import (SHARD_FORMAT, _BYTES_PER_TOKEN, _request_text_bytes, assemble_plan, build_plan,
                                 plan_models, shard_key, task_shards)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


def _reference_key(model, fingerprint, sweep, task, instances) -> str:
    payload = [SHARD_FORMAT, fingerprint, model.revision, model.spec.dtype, sweep.backend, task,
               [(i.doc_id, i.idx, i.request_type, repr(i.args)) for i in instances]]
    return f"{task}-{hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()[:20]}"


def _reference_chunks(built: BuiltTask, docs_per_shard: int, tokens_per_shard: int) -> list[list]:
    by_doc: dict[int, list] = {}
    for inst in built.instances:
        by_doc.setdefault(inst.doc_id, []).append(inst)
    chunks, current, docs, tokens = [], [], 0, 0
    for doc_id in sorted(by_doc):
        doc_tokens = sum(_request_text_bytes(i) for i in by_doc[doc_id]) / _BYTES_PER_TOKEN
        if current and (docs >= docs_per_shard or tokens + doc_tokens > tokens_per_shard):
            chunks.append(current)
            current, docs, tokens = [], 0, 0
        current.extend(by_doc[doc_id])
        docs += 1
        tokens += doc_tokens
    return chunks + [current]


@pytest.fixture
def sweep(tiny_world, tmp_path):
    ladder = tmp_path / "ladder"
    for step in ("step1", "step2"):
        shutil.copytree(tiny_world["small"], ladder / step)
    raw = {"models": [{"name": "lad", "path": str(ladder), "revisions": ["step1", "step2"], "dtype": "float32"}],
           "tasks": ["tiny_ppl", {"name": "tiny_mc", "revisions": "final"}, "tiny_gen"],
           "include_path": [str(tiny_world["tasks"])], "docs_per_shard": 5, "tokens_per_shard": 300}
    return sweep_from_mapping(raw, "test")


def test_keys_splits_and_costs_are_those_of_before(sweep):
    plan = build_plan(sweep, stream=io.StringIO())
    finals = {m.key for m in plan.model_revisions if m.revision == "step2"}
    expected = []
    for name, built in plan.tasks.items():
        chunks = _reference_chunks(built, sweep.docs_per_shard, sweep.tokens_per_shard)
        for model in plan.model_revisions:
            if name == "tiny_mc" and model.key not in finals:
                continue
            for chunk in chunks:
                expected.append((_reference_key(model, plan.fingerprints[model.key], sweep, name, chunk), model.key,
                                 tuple(sorted({i.doc_id for i in chunk})),
                                 int(sum(_request_text_bytes(i) for i in chunk) / _BYTES_PER_TOKEN), chunk))
    got = [(s.key, s.model_revision.key, s.doc_ids, s.est_tokens, s.instances) for s in plan.shards]
    assert [g[:4] for g in got] == [e[:4] for e in expected]
    assert all(g[4] == e[4] for g, e in zip(got, expected))
    assert len({s.key for s in plan.shards}) == len(plan.shards) > 10
    for shard in plan.shards:  # the public one-shard function agrees too
        model = shard.model_revision
        assert shard_key(model, plan.fingerprints[model.key], sweep, shard.task, shard.instances) == shard.key


def test_a_plan_from_tasks_in_any_order_is_the_plan(sweep):
    revisions, finals, fingerprints = plan_models(sweep)
    built = list(iter_built_tasks(sweep, io.StringIO()))
    parts = [(b, task_shards(b, revisions, finals, fingerprints, sweep)) for b in reversed(built)]
    plan = assemble_plan(sweep, revisions, fingerprints, parts)
    reference = build_plan(sweep, stream=io.StringIO())
    assert list(plan.tasks) == list(reference.tasks) == ["tiny_ppl", "tiny_mc", "tiny_gen"]
    assert [s.key for s in plan.shards] == [s.key for s in reference.shards]

"""A run folder that grows: shard files the sweep no longer plans leave requests/ (and come back when
it plans them again), and a model name may not come to mean other weights."""

from __future__ import annotations

import shutil

import pytest

from harness.config import sweep_from_mapping
from harness.errors import UserError
from harness.plan.shards import build_plan
from harness.results.manifest import check_same_models, new_manifest, write_manifest
from harness.results.store import (RETIRED, read_table, restore_retired, retire_unplanned, shard_file, write_shard,
                                   written_shards)


def _plan(tiny_world, model, limit: int, name: str = "tiny"):
    sweep = {"models": [{"name": name, "path": str(model)}], "tasks": ["tiny_mc"], "limit": limit,
             "docs_per_shard": 2, "include_path": [str(tiny_world["tasks"])]}
    return build_plan(sweep_from_mapping(sweep, "test"))


def _write_all(run, plan) -> None:
    for shard in plan.shards:
        write_shard(run, shard, [{"loglikelihood": -1.0, "is_greedy": False, "n_tokens": 2, "generation": None}
                                 for _ in shard.instances])


def test_unplanned_shards_leave_requests_and_come_back(tiny_world, tmp_path):
    run = tmp_path / "run"
    wide, narrow = _plan(tiny_world, tiny_world["small"], 6), _plan(tiny_world, tiny_world["small"], 2)
    _write_all(run, wide)
    assert {s.key for s in narrow.shards} < {s.key for s in wide.shards}  # a smaller limit keeps the first shards
    assert retire_unplanned(run, narrow.shards) == len(wide.shards) - len(narrow.shards)
    # What a user globs over requests/ is the current sweep's rows, once each.
    assert len(read_table(run / "requests")) == sum(s.n_requests for s in narrow.shards)
    gone = [s for s in wide.shards if s not in narrow.shards]
    assert all((run / RETIRED / shard_file(run, s).relative_to(run)).is_file() for s in gone)
    assert retire_unplanned(run, narrow.shards) == 0  # idempotent
    assert restore_retired(run, narrow.shards) == 0  # theirs are in place
    # The wider sweep again: its shards come back from .retired and are reused, nothing recomputed.
    assert restore_retired(run, wide.shards) == len(gone)
    assert retire_unplanned(run, wide.shards) == 0
    assert written_shards(run, wide.shards) == {s.key for s in wide.shards}
    assert not any((run / RETIRED).rglob("*.parquet"))


def _copy(model, target):
    shutil.copytree(model, target)
    return target


def test_a_name_may_not_come_to_mean_other_weights(tiny_world, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model = _copy(tiny_world["small"], tmp_path / "model")
    before = _plan(tiny_world, model, 2)
    write_manifest(run, new_manifest(before))
    # The same folder spelled otherwise, and more revisions or tasks: the same name, the same weights.
    check_same_models(run, _plan(tiny_world, f"{model}/", 4))
    check_same_models(run, _plan(tiny_world, model, 2, name="another-name"))
    # Retrained in place: same file size, other bytes.
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError) as err:
        check_same_models(run, _plan(tiny_world, model, 2))
    message = str(err.value)
    assert "model tiny@main now points at other weights" in message and "changed: model.safetensors" in message
    assert "\n" not in message
    # Another folder under the old name says where it points now.
    other = _copy(tiny_world["large"], tmp_path / "large")
    with pytest.raises(UserError, match=f"was {model}, now {other}"):
        check_same_models(run, _plan(tiny_world, other, 2))

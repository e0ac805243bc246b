"""Files of a run folder as a shared file system sees them: modes that follow the umask, temporary
files never read and cleaned up, shard files that are recomputed unless they are whole and theirs,
and one schema for every samples file."""

from __future__ import annotations

import os
import stat
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.config import sweep_from_mapping
from harness.plan.shards import build_plan
from harness.results.store import read_table, shard_file, write_atomic, write_shard, written_shards


@pytest.fixture(scope="module")
def plan(tiny_world):
    sweep = {"models": [str(tiny_world["small"])], "tasks": ["tiny_mc"], "limit": 4, "docs_per_shard": 2,
             "include_path": [str(tiny_world["tasks"])]}
    return build_plan(sweep_from_mapping(sweep, "test"))


def _rows(shard) -> list[dict]:
    return [{"loglikelihood": -1.0, "is_greedy": False, "n_tokens": 2, "generation": None} for _ in shard.instances]


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores the previous one after it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_files_and_folders_follow_the_umask(umask, tmp_path, mask, file_mode, dir_mode):
    umask(mask)
    path = tmp_path / "run" / "samples" / "m" / "t.parquet"
    write_atomic(pa.table({"x": [1]}), path)
    assert stat.S_IMODE(path.stat().st_mode) == file_mode  # mkstemp made every file 0600
    for folder in (path.parent, tmp_path / "run"):
        assert stat.S_IMODE(folder.stat().st_mode) == dir_mode


def test_readers_skip_temporary_files(plan, tmp_path):
    run = tmp_path / "run"
    shard = plan.shards[0]
    write_shard(run, shard, _rows(shard))
    # A writer killed between writing its temporary file and renaming it leaves a whole Parquet file.
    leftover = shard_file(run, shard).with_name(".tmp-dead.parquet")
    leftover.write_bytes(shard_file(run, shard).read_bytes())
    assert len(read_table(run / "requests")) == shard.n_requests  # not twice
    assert written_shards(run, plan.shards) == {shard.key}


def test_stale_temporary_files_are_removed_and_fresh_ones_kept(tmp_path):
    from harness.files import STALE_TEMP_SECONDS, remove_stale_temps

    folder = tmp_path / "run" / "requests" / "m" / "main" / "t"
    folder.mkdir(parents=True)
    stale, fresh, kept = folder / ".tmp-old.parquet", folder / ".tmp-new.parquet", folder / "k.parquet"
    for path in (stale, fresh, kept):
        path.write_bytes(b"x")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(kept, (old, old))
    assert remove_stale_temps(tmp_path / "run") == 1
    assert not stale.exists() and fresh.exists() and kept.exists()  # a live writer's file stays
    assert remove_stale_temps(tmp_path / "missing") == 0


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_shard_that_does_not_read_is_recomputed(plan, tmp_path, capsys, damage):
    run = tmp_path / "run"
    for shard in plan.shards[:2]:
        write_shard(run, shard, _rows(shard))
    bad = shard_file(run, plan.shards[1])
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\0" * len(data))
    capsys.readouterr()
    assert written_shards(run, plan.shards) == {plan.shards[0].key}  # not a traceback
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "does not read as Parquet" in lines[0]
    # finalize reads the good shard's rows, not the damaged file (which raised ArrowInvalid before)
    from harness.results.store import read_shards

    assert set(read_shards(run, plan.shards)["shard"]) == {plan.shards[0].key}


def test_a_shard_file_counts_only_when_its_key_and_rows_match(plan, tmp_path, capsys):
    run = tmp_path / "run"
    first, second = plan.shards[:2]
    write_shard(run, first, _rows(first))
    write_shard(run, second, _rows(second))
    assert written_shards(run, plan.shards) == {first.key, second.key}
    assert pq.read_metadata(shard_file(run, first)).metadata[b"harness.shard_key"] == first.key.encode()
    # Another shard's valid file in its place, and a file holding half its rows: both recomputed.
    shard_file(run, second).write_bytes(shard_file(run, first).read_bytes())
    table = pq.read_table(shard_file(run, first))
    pq.write_table(table.slice(0, table.num_rows // 2).replace_schema_metadata(table.schema.metadata),
                   shard_file(run, first))
    capsys.readouterr()
    assert written_shards(run, plan.shards) == set()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("does not hold shard" in line for line in lines)
    from harness.results.store import read_shards

    assert read_shards(run, plan.shards).empty


def test_shard_files_without_metadata_are_recomputed_with_one_line_for_all(plan, tmp_path, capsys):
    """Files of an older harness carry no key: they are recomputed rather than trusted."""
    run = tmp_path / "run"
    for shard in plan.shards:
        write_shard(run, shard, _rows(shard))
        path = shard_file(run, shard)
        pq.write_table(pq.read_table(path).replace_schema_metadata(None), path)
    capsys.readouterr()
    assert len(plan.shards) > 1 and written_shards(run, plan.shards) == set()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{len(plan.shards)} shard file(s) carry no shard metadata" in lines[0]


def test_every_samples_file_of_a_run_has_one_schema(tmp_path):
    from harness.results.store import samples_path, samples_table, write_samples

    ids = {"model": "m", "revision": "main"}
    earlier = samples_path(tmp_path, "m", "main", "old")
    write_atomic(samples_table([{**ids, "task": "old", "doc_id": 0, "f1": 1.0}]), earlier)
    write_samples(tmp_path, {
        samples_path(tmp_path, "m", "main", "mc"): samples_table([{**ids, "task": "mc", "doc_id": 0, "acc": 1.0}]),
        samples_path(tmp_path, "m", "main", "gen"): samples_table([{**ids, "task": "gen", "doc_id": 0,
                                                                    "exact_match": 0.0}]),
    })
    files = sorted((tmp_path / "samples").rglob("*.parquet"))
    schemas = {tuple(pq.read_schema(f).names) for f in files}
    assert len(files) == 3 and len(schemas) == 1
    names = schemas.pop()
    assert names[-3:] == ("acc", "exact_match", "f1")  # after the fixed columns, in name order
    both = pa.concat_tables([pq.read_table(f) for f in files])
    assert both.column("acc").null_count == 2 and pa.types.is_float64(both.schema.field("f1").type)

"""The store: one spelling of a missing revision, shards found by key, text and tables written whole."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.config import sweep_from_mapping
from harness.plan.shards import build_plan
from harness.results.finalize import headline_table
from harness.results.store import (read_table, requests_path, samples_path, shard_file, write_shard,
                                   write_text_atomic, written_shards)


def test_a_missing_revision_is_main_in_every_path(tmp_path):
    run = Path(tmp_path)
    assert requests_path(run, "m", None, "t", "k") == requests_path(run, "m", "main", "t", "k")
    assert samples_path(run, "m", None, "t").parent.name == "main"
    assert samples_path(run, "m", float("nan"), "t") == samples_path(run, "m", None, "t")  # a Parquet null


def test_written_shards_are_found_by_key_and_read_back(tiny_world, tmp_path):
    plan = build_plan(sweep_from_mapping({"models": [str(tiny_world["small"])], "tasks": ["tiny_mc"], "limit": 3,
                                          "docs_per_shard": 1, "include_path": [str(tiny_world["tasks"])]}, "test"))
    run = tmp_path / "run"
    assert written_shards(run, plan.shards) == set()  # no folder yet: nothing to reuse
    shard = plan.shards[0]
    rows = [{"loglikelihood": -1.0, "is_greedy": False, "n_tokens": 2, "generation": None} for _ in shard.instances]
    write_shard(run, shard, rows)
    assert shard_file(run, shard).is_file()
    assert written_shards(run, plan.shards) == {shard.key}
    table = read_table(run / "requests")
    assert len(table) == shard.n_requests and set(table["shard"]) == {shard.key}
    assert not list(run.rglob(".tmp-*"))
    with pytest.raises(ValueError):  # one row per request, or nothing is written
        write_shard(run, plan.shards[1], rows[:-1])
    assert written_shards(run, plan.shards) == {shard.key}


def test_text_is_replaced_whole_or_not_at_all(tmp_path):
    path = tmp_path / "report.md"
    write_text_atomic("old ünïcode\n", path)

    with pytest.raises(TypeError):
        write_text_atomic(None, path)  # type: ignore[arg-type]
    assert path.read_text(encoding="utf-8") == "old ünïcode\n"
    assert not list(tmp_path.glob(".tmp-*"))


def test_headline_table_lists_revisions_in_training_order():
    scores = pd.DataFrame({
        "model": ["m", "m", "m"], "revision": ["step1024", "step128", None], "task": ["t"] * 3,
        "metric": ["acc"] * 3, "filter": ["none"] * 3, "value": [0.3, 0.1, 0.5]})
    text = headline_table(scores)
    order = [line.split()[0] for line in text.splitlines() if line.startswith("m@")]
    assert order == ["m@main", "m@step128", "m@step1024"]
    assert headline_table(None).startswith("harness: no complete")

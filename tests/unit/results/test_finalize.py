"""finalize: scores.parquet says, per model revision, whether it is a finished learning-rate schedule."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.config import sweep_from_mapping
from harness.plan.shards import build_plan
from harness.results.finalize import finalize
from harness.results.schemas import SCORES_SCHEMA
from harness.results.store import write_shard


def _rows(shard) -> list[dict]:
    return [{"loglikelihood": -1.0, "is_greedy": False, "n_tokens": 2, "generation": None} for _ in shard.instances]


def _run(plan, run):
    """Every shard of the plan written with made-up log-likelihoods, then finalized."""
    for shard in plan.shards:
        write_shard(run, shard, _rows(shard))
    return finalize(plan, run, {})


@pytest.fixture
def ladder(tiny_world, tmp_path):
    """The tiny model as a ladder of two revisions: step2 mid-schedule, step4 a finished schedule."""
    for step, finished in ((2, False), (4, True)):
        folder = tmp_path / "ladder" / f"step{step}"
        shutil.copytree(tiny_world["small"], folder)
        (folder / "harness.json").write_text(json.dumps({"tokens_trained": step * 100, "finished_schedule": finished}))
    return tmp_path / "ladder"


def _plan(models, tiny_world):
    return build_plan(sweep_from_mapping({"models": models, "tasks": ["tiny_mc"], "limit": 2, "docs_per_shard": 2,
                                          "include_path": [str(tiny_world["tasks"])]}, "test"))


def test_scores_carry_finished_schedule_from_each_revision(ladder, tiny_world, tmp_path):
    plan = _plan([{"name": "wsd", "path": str(ladder), "revisions": ["step2", "step4"]},
                  {"name": "bare", "path": str(tiny_world["small"])}], tiny_world)
    _run(plan, tmp_path / "run")
    table = pq.read_table(tmp_path / "run" / "scores.parquet")
    assert table.schema.equals(SCORES_SCHEMA) and pa.types.is_boolean(table.schema.field("finished_schedule").type)
    found = {(r["model"], r["revision"], r["finished_schedule"]) for r in table.to_pylist()}
    # bare has no harness.json: unknown, a null in the file
    assert found == {("wsd", "step2", False), ("wsd", "step4", True), ("bare", None, None)}


def test_the_same_scores_from_an_older_harness_keep_their_analysis(tiny_world, tmp_path):
    """An older scores.parquet lacks finished_schedule; where the new one is all null they are the same scores."""
    plan = _plan([str(tiny_world["small"])], tiny_world)
    run = tmp_path / "run"
    _run(plan, run)
    path = run / "scores.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["finished_schedule"]), path)
    (run / "report.md").write_text("analysis of these scores\n")
    _run(plan, run)
    assert (run / "report.md").is_file()
    assert pq.read_table(path).column("finished_schedule").null_count == pq.read_table(path).num_rows

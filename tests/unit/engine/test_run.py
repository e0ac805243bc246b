"""The run's last step: a broken analysis is one line and exit 3, and the scores stay (B7)."""

from __future__ import annotations

import io

import pandas as pd

from harness.analysis import analyze as analysis_module
from harness.engine import run as run_module
from harness.errors import UserError


def test_an_analysis_that_crashes_is_one_line_and_keeps_the_scores(tmp_path, monkeypatch):
    scores = tmp_path / "scores.parquet"
    pd.DataFrame({"value": [0.5]}).to_parquet(scores)

    def broken(run_dir, **_):
        raise KeyError("n_params_nonembedding\nwith a second line nobody needs")

    monkeypatch.setattr(analysis_module, "analyze_run", broken)
    stream = io.StringIO()
    assert run_module._analyze(tmp_path, stream) is False
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 1 and "KeyError" in lines[0] and f"harness analyze {tmp_path}" in lines[0]
    assert pd.read_parquet(scores)["value"].tolist() == [0.5]
    assert run_module.EXIT_ANALYSIS_FAILED == 3


def test_nothing_to_fit_is_an_answer_not_a_failure(tmp_path, monkeypatch):
    def nothing(run_dir, **_):
        raise UserError("one size only: nothing to fit")

    monkeypatch.setattr(analysis_module, "analyze_run", nothing)
    stream = io.StringIO()
    assert run_module._analyze(tmp_path, stream) is True
    assert stream.getvalue().strip() == "harness: analysis skipped: one size only: nothing to fit"


def test_run_state_records_what_a_worker_measured(tiny_world):
    from harness.config import sweep_from_mapping
    from harness.engine.state import RunState, replica_record
    from harness.plan.shards import build_plan
    from harness.scheduling.resources import ReplicaSpec

    plan = build_plan(sweep_from_mapping({"models": [str(tiny_world["small"])], "tasks": ["tiny_mc"], "limit": 1,
                                          "include_path": [str(tiny_world["tasks"])]}, "test"))
    shard = plan.shards[0]
    record = replica_record(shard, ReplicaSpec(model=shard.model_revision.key, num_gpus=0.5, num_cpus=1.0, memory_bytes=1),
                            {"n_params": 1234, "n_params_nonembedding": 1000, "device": "cpu"})
    assert record["model"] == shard.model_revision.name and record["revision"] is None
    assert (record["n_params"], record["n_params_nonembedding"], record["num_gpus"]) == (1234, 1000, 0.5)
    state = RunState()
    assert state.outcomes == {} and state.slots == 0 and state.events == []

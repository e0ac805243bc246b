"""Shards flow before the plan is complete: the first task's shards are scored while the others
are still being built. Real Ray, lm-eval, transformers and Parquet; only the timing of the task
builds is held back, by a gate that releases the second task once a shard of the first is written.
If the driver waited for the whole plan, the gate would never open."""

from __future__ import annotations

import io
import json
import time

import pandas as pd
import pytest

from harness.config import sweep_from_mapping
from harness.engine import feed as feed_module
from harness.engine.run import run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]
GATE_S = 120.0


def test_the_first_tasks_shards_are_scored_while_the_next_task_is_still_building(tiny_world, tmp_path,
                                                                                    monkeypatch):
    out = tmp_path / "run"
    real = feed_module.iter_built_tasks
    released: list[float] = []

    def gated(sweep, stream=None, **kwargs):
        tasks = real(sweep, stream, **kwargs)
        yield next(tasks)
        deadline = time.monotonic() + GATE_S
        while not any((out / "requests").rglob("*.parquet")):  # a shard of the first task, written
            assert time.monotonic() < deadline, "no shard was scored before the plan was complete"
            time.sleep(0.05)
        released.append(time.monotonic())
        yield from tasks

    monkeypatch.setattr(feed_module, "iter_built_tasks", gated)
    sweep = sweep_from_mapping({"models": [str(tiny_world["small"]), str(tiny_world["large"])],
                                "tasks": ["tiny_mc", "tiny_gen"], "include_path": [str(tiny_world["tasks"])],
                                "output": str(out), "limit": 4, "docs_per_shard": 2, "device": "cpu",
                                "workers": 2, "batch_size": 4}, "test")
    stream = io.StringIO()
    assert run_sweep(sweep, analyze=False, stream=stream) == 0, stream.getvalue()
    assert released, "the second task was never asked for"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and {e["status"] for e in manifest["shards"]} == {"done"}
    assert len(manifest["shards"]) == 2 * 2 * 2  # 2 models x 2 tasks x 2 shards: the plan is whole at the end
    assert [e["task"] for e in manifest["shards"]][:4] == ["tiny_mc"] * 4  # in the sweep's task order
    assert set(manifest["tasks"]) == {"tiny_mc", "tiny_gen"}
    scores = pd.read_parquet(out / "scores.parquet")
    assert set(scores.task) == {"tiny_mc", "tiny_gen"} and set(scores.model) == {"tiny-s", "tiny-l"}
    assert "8 shards over 2 model revisions x 2 tasks; reusing 0 finished shards, running 8" in stream.getvalue()

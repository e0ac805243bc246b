"""A run folder grows as the ladder does: models join and leave, limits change, and what the README
tells users to read (scores.parquet, samples/, requests/) is always the current sweep, once.

Real Ray, lm-eval, transformers and Parquet, through the CLI.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from harness.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]
TASKS = "tiny_mc,tiny_gen"


def _run(world, out, models: list, *extra: str) -> int:
    return main(["run", "--models", ",".join(str(m) for m in models), "--tasks", TASKS, "--include-path",
                 str(world["tasks"]), "--out", str(out), "--docs-per-shard", "2", "--device", "cpu",
                 "--workers", "2", "--batch-size", "4", "--no-analyze", *extra])


def _planned(out) -> tuple[int, int]:
    shards = json.loads((out / "manifest.json").read_text())["shards"]
    return len(shards), sum(e["requests"] for e in shards)


def _check_readable_tables(out, models: set[str]) -> None:
    """The README's reads of the folder: current models only, no request twice."""
    requests = pd.read_parquet(out / "requests")
    assert len(requests) == _planned(out)[1]
    assert not requests.duplicated(["model", "revision", "task", "doc_id", "request_idx"]).any()
    for table in (requests, pd.read_parquet(out / "samples"), pd.read_parquet(out / "scores.parquet")):
        assert set(table.model) == models


def test_a_run_grows_shrinks_and_returns_without_recomputing(tiny_world, tmp_path, capsys):
    out = tmp_path / "run"
    small = tmp_path / "tiny-s"
    large = shutil.copytree(tiny_world["large"], tmp_path / "tiny-l")
    shutil.copytree(tiny_world["small"], small)
    assert _run(tiny_world, out, [small], "--limit", "4") == 0
    first_shards = _planned(out)[0]

    # A new size joins the ladder; the old one is spelled with a trailing slash: only the new one runs.
    capsys.readouterr()
    assert _run(tiny_world, out, [f"{small}/", large], "--limit", "4") == 0
    err = capsys.readouterr().err
    assert f"reusing {first_shards} finished shards, running {first_shards}" in err
    _check_readable_tables(out, {"tiny-s", "tiny-l"})
    both = pd.read_parquet(out / "scores.parquet")

    # One model with a smaller limit: its first shards are reused; the rest leave requests/ and samples/.
    (out / "fits.parquet").write_bytes(b"an analysis of the earlier scores")
    assert _run(tiny_world, out, [large], "--limit", "2") == 0
    err = capsys.readouterr().err
    assert "running 0" in err and "moved to" in err
    _check_readable_tables(out, {"tiny-l"})
    assert not (out / "fits.parquet").exists()  # derived from scores that are no longer there

    # Back to both at limit 4: everything comes back from .retired, nothing is recomputed.
    assert _run(tiny_world, out, [small, large], "--limit", "4") == 0
    err = capsys.readouterr().err
    assert "running 0" in err and "brought back" in err
    _check_readable_tables(out, {"tiny-s", "tiny-l"})
    key = ["model", "task", "metric", "filter"]
    pd.testing.assert_frame_equal(both.sort_values(key).reset_index(drop=True),
                                  pd.read_parquet(out / "scores.parquet").sort_values(key).reset_index(drop=True))
    (out / "report.md").write_text("an analysis of these very scores")
    assert _run(tiny_world, out, [small, large], "--limit", "4") == 0
    assert (out / "report.md").exists()  # same scores: the analysis still describes them

    # The large model retrained in place (same size, other bytes): its name would mean two things.
    weights = large / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    manifest = (out / "manifest.json").read_text()
    capsys.readouterr()
    assert main(["run", "--models", f"{small},{large}", "--tasks", TASKS, "--include-path", str(tiny_world["tasks"]),
                 "--out", str(out), "--limit", "4", "--docs-per-shard", "2", "--no-analyze"]) == 2
    err = capsys.readouterr().err
    assert "model tiny-l@main now points at other weights" in err and "changed: model.safetensors" in err
    assert (out / "manifest.json").read_text() == manifest

"""Where a (path, revision) lives: local checkpoints, local ladders of step folders, hub ids."""

from __future__ import annotations

import json

import pytest

from harness.plan import models as ladder
from harness.errors import UserError


def _checkpoint(folder, tokens=None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if tokens is not None:
        (folder / "harness.json").write_text(json.dumps({"tokens_trained": tokens}))


def test_local_ladder_resolves_highest_step_and_reads_tokens(tmp_path):
    for step in (2, 10, 100):
        _checkpoint(tmp_path / "m" / f"step{step}", tokens=step * 1000)
    assert ladder.local_revisions(tmp_path / "m") == ["step2", "step10", "step100"]
    final = ladder.resolve(str(tmp_path / "m"), None)
    assert final.source.endswith("step100") and final.tokens_trained == 100_000 and final.is_local
    assert ladder.resolve(str(tmp_path / "m"), "step10").tokens_trained == 10_000
    with pytest.raises(UserError, match="revision 'step3' does not exist; available: step2, step10, step100"):
        ladder.resolve(str(tmp_path / "m"), "step3")


def test_single_checkpoint_and_missing_paths(tmp_path):
    _checkpoint(tmp_path / "one")
    assert ladder.resolve(str(tmp_path / "one"), None).tokens_trained is None
    with pytest.raises(UserError, match="single checkpoint"):
        ladder.resolve(str(tmp_path / "one"), "step5")
    with pytest.raises(UserError, match="does not exist"):
        ladder.resolve(str(tmp_path / "missing"), None)


def test_hub_ids_and_pythia_tokens():
    ref = ladder.resolve("EleutherAI/pythia-160m", "step1000")
    assert not ref.is_local and ref.revision == "step1000"
    assert ref.tokens_trained == 1000 * 2_097_152
    assert ladder.resolve("EleutherAI/pythia-160m", None).tokens_trained == 143_000 * 2_097_152
    assert ladder.resolve("gpt2-org/gpt2", None).tokens_trained is None


def test_finished_schedule_comes_from_harness_json(tmp_path):
    for name, meta in (("wsd", {"tokens_trained": 10, "finished_schedule": True}),
                       ("cosine", {"tokens_trained": 10, "finished_schedule": False}),
                       ("old", {"tokens_trained": 10})):
        _checkpoint(tmp_path / name)
        (tmp_path / name / "harness.json").write_text(json.dumps(meta))
    _checkpoint(tmp_path / "bare")  # no harness.json at all
    found = {name: ladder.resolve(str(tmp_path / name), None) for name in ("wsd", "cosine", "old", "bare")}
    assert {name: c.finished_schedule for name, c in found.items()} == {
        "wsd": True, "cosine": False, "old": None, "bare": None}
    assert found["wsd"].tokens_trained == 10  # the same file still gives the tokens


def test_finished_schedule_of_a_local_ladder_is_per_revision(tmp_path):
    for step, finished in ((2, False), (4, True)):
        _checkpoint(tmp_path / "m" / f"step{step}")
        (tmp_path / "m" / f"step{step}" / "harness.json").write_text(
            json.dumps({"tokens_trained": step, "finished_schedule": finished}))
    assert ladder.resolve(str(tmp_path / "m"), "step2").finished_schedule is False
    assert ladder.resolve(str(tmp_path / "m"), None).finished_schedule is True


def test_pythia_only_finishes_its_schedule_at_the_final_step():
    assert ladder.resolve("EleutherAI/pythia-160m", "step1000").finished_schedule is False
    assert ladder.resolve("EleutherAI/pythia-160m", "step143000").finished_schedule is True
    assert ladder.resolve("EleutherAI/pythia-160m", "main").finished_schedule is True
    assert ladder.resolve("EleutherAI/pythia-160m", None).finished_schedule is True
    assert ladder.resolve("gpt2-org/gpt2", None).finished_schedule is None


def test_a_model_revision_carries_its_checkpoint_finished_schedule(tmp_path):
    from harness.config import sweep_from_mapping

    _checkpoint(tmp_path / "wsd")
    (tmp_path / "wsd" / "harness.json").write_text(json.dumps({"tokens_trained": 8, "finished_schedule": True}))
    sweep = sweep_from_mapping({"models": [str(tmp_path / "wsd"), {"path": "EleutherAI/pythia-70m",
                                                                    "revisions": ["step1000", "main"]}],
                                "tasks": ["t"]}, "test")
    revisions = ladder.model_revisions(sweep)
    assert [(r.revision, r.finished_schedule) for r in revisions] == [(None, True), ("step1000", False), ("main", True)]

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

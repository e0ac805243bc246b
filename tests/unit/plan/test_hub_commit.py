"""Hub revisions are keyed and loaded by the commit they name when planned, so that `main` moving on
between two runs into one folder is seen, never mixed.

A hub cache laid out as huggingface_hub lays it out (refs/<branch> -> snapshots/<commit>/) stands
in for the hub: offline, that is what transformers loads from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.checkpoint import content_fingerprint
from harness.config import sweep_from_mapping
from harness.errors import UserError
from harness.plan import models
from harness.plan.shards import build_plan
from harness.results.manifest import check_same_models, new_manifest, write_manifest
from tests import tiny

REPO = "tiny-org/tiny"
OLD, NEW = "1" * 40, "2" * 40


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """Two commits of one repo (other weights, same shapes); refs/main names the newer."""
    root = tmp_path_factory.mktemp("hub")
    repo = root / f"models--{REPO.replace('/', '--')}"
    tokenizer = tiny.build_tokenizer()
    for commit, seed in ((OLD, 1), (NEW, 2)):
        tiny.build_model(repo / "snapshots" / commit, tokenizer, hidden=32, layers=1, seed=seed)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(NEW)
    return root


@pytest.fixture
def offline_cache(hub_cache, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    models.hub_commit.cache_clear()
    yield hub_cache
    models.hub_commit.cache_clear()


def test_a_revision_resolves_to_its_commit(offline_cache):
    assert models.hub_commit(REPO, None) == NEW
    assert models.hub_commit(REPO, "main") == NEW
    assert models.hub_commit(REPO, OLD) == OLD  # a commit names itself
    assert models.hub_commit(REPO, "step1000") is None  # no such ref anywhere: keyed by name only
    assert models.hub_commit("nobody/nothing", None) is None


def _plan(tiny_world):
    sweep = {"models": [{"name": "tiny", "path": REPO}], "tasks": ["tiny_mc"], "limit": 2,
             "include_path": [str(tiny_world["tasks"])]}
    return build_plan(sweep_from_mapping(sweep, "test"))


def test_main_moving_on_changes_the_keys_and_is_refused_in_one_folder(offline_cache, tiny_world, tmp_path):
    before = _plan(tiny_world)
    (model,) = before.model_revisions
    assert model.checkpoint.commit == NEW and content_fingerprint(model.checkpoint) == [REPO, None, NEW]
    run = tmp_path / "run"
    run.mkdir()
    write_manifest(run, new_manifest(before))
    assert json.loads((run / "manifest.json").read_text())["models"]["tiny@main"]["commit"] == NEW
    (offline_cache / f"models--{REPO.replace('/', '--')}" / "refs" / "main").write_text(OLD)
    models.hub_commit.cache_clear()
    try:
        after = _plan(tiny_world)
        assert {s.key for s in after.shards}.isdisjoint(s.key for s in before.shards)
        with pytest.raises(UserError, match=f"commit {NEW} -> {OLD}"):
            check_same_models(run, after)
    finally:
        (offline_cache / f"models--{REPO.replace('/', '--')}" / "refs" / "main").write_text(NEW)


_LOAD = """
import sys
from harness.backends.loading import LoadSpec, load_model
from harness.checkpoint import Checkpoint
commit = sys.argv[1] if sys.argv[1] != "-" else None
model, _ = load_model(LoadSpec(Checkpoint("tiny-org/tiny", None, False, None, commit=commit)), "cpu")
print(float(sum(p.double().sum() for p in model.parameters())))
"""


@pytest.mark.slow
def test_a_worker_loads_the_commit_the_plan_keyed(hub_cache):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub_cache))

    def loaded(commit: str) -> float:
        out = subprocess.run([sys.executable, "-c", _LOAD, commit], env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return float(out.stdout.strip().splitlines()[-1])

    main, old, new = loaded("-"), loaded(OLD), loaded(NEW)
    assert main == new and old != new  # refs/main is NEW; the pinned OLD commit is loaded as asked

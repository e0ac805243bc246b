"""What a checkpoint's files say: its content fingerprint, hashed once, and the revision order."""

from __future__ import annotations

import os
import shutil

from harness import checkpoint
from harness.checkpoint import Checkpoint, content_fingerprint


def _folder(tmp_path, weights: bytes):
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text("{}")
    (folder / "optimizer.pt").write_bytes(b"trainer state, not the model")
    (folder / "README.md").write_text("a model card")
    return Checkpoint(str(folder), None, True, None)


def test_the_fingerprint_covers_model_files_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    names = [name for name, _ in content_fingerprint(_folder(tmp_path, b"w1"))]
    assert names == ["config.json", "model.safetensors"]


def test_a_copy_that_keeps_the_mtime_is_hashed_again(tmp_path, monkeypatch):
    # rsync -a / cp -p keep the mtime: a same-size retrained file must still get a new fingerprint.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = _folder(tmp_path, b"old weights")
    before = content_fingerprint(model)
    weights = tmp_path / "model" / "model.safetensors"
    stat = weights.stat()
    retrained = tmp_path / "retrained.safetensors"
    retrained.write_bytes(b"new weights")
    os.utime(retrained, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.copy2(retrained, weights)  # same size, same mtime, other content
    assert weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert content_fingerprint(model) != before


def test_each_file_is_hashed_once_even_when_the_cache_cannot_be_saved(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(checkpoint, "_save_cache", lambda path, cache: None)  # a read-only home
    monkeypatch.setattr(checkpoint, "_DIGESTS", checkpoint._DigestCache())
    hashed = []
    real = checkpoint.hashlib.sha256
    monkeypatch.setattr(checkpoint.hashlib, "sha256", lambda: hashed.append(1) or real())
    model = _folder(tmp_path, b"weights")
    for _ in range(5):
        content_fingerprint(model)
    assert len(hashed) == 2  # config.json and model.safetensors, once each


def test_a_local_ladder_without_a_revision_orders_as_its_last_step(tiny_world, tmp_path):
    from harness.config import sweep_from_mapping
    from harness.plan.models import final_revisions, model_revisions

    ladder = tmp_path / "ladder"
    for step in ("step1", "step2"):
        shutil.copytree(tiny_world["small"], ladder / step)
    sweep = sweep_from_mapping({"models": [{"name": "lad", "path": str(ladder), "revisions": ["main", "step1"]}],
                                "tasks": ["tiny_mc"]}, "test")
    assert final_revisions(model_revisions(sweep)) == {"lad@main"}  # main resolves to step2


def test_caches_follow_xdg_cache_home(monkeypatch, tmp_path):
    # One rule for every cache that outlives a run: $XDG_CACHE_HOME/harness, else ~/.cache/harness;
    # each still has its own override (HARNESS_CACHE_DIR, HARNESS_STAGING_DIR).
    from harness import checkpoint
    from harness.plan.request_cache import CACHE_ENV, default_cache_dir
    from harness.results.remote import STAGING_ENV, RemoteFolder, staging_dir

    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv(STAGING_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "harness" / "requests"
    assert checkpoint._cache_file() == tmp_path / "xdg" / "harness" / "file-digests.json"
    remote = RemoteFolder(url="s3://bucket/runs/a", scheme="s3", bucket="bucket", root="bucket/runs/a", fs=None)
    assert staging_dir(remote).parent == tmp_path / "xdg" / "harness" / "remote"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "harness" / "requests"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "own"))
    assert default_cache_dir() == tmp_path / "own" / "requests"
